"""Random straight-line NumPy programs through jit, grad, value_and_grad and
compile_step, against eager NumPy and finite differences (see tests/fuzzing.py).

The fast profile: 200 derandomized programs. `python tests/fuzz_run.py --programs
10000` (`make fuzz`) runs many more without hypothesis.
"""
import importlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import compiler
import fuzzing

memory = importlib.import_module("compiler.passes.memory")

FAST = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzzing.programs())
def test_random_program(program: fuzzing.Program) -> None:
    report = fuzzing.check_program(program)
    assert not report.failures, fuzzing.describe(program, report)


@pytest.mark.parametrize("seed", range(120))
def test_random_program_with_array_reuse_at_every_size(seed, monkeypatch):
    """The memory pass reuses arrays (bias adds into fresh results, out= into dying
    temporaries, `del`s) only above a size threshold that the fuzzer's small arrays
    never reach: with the threshold at 1 element every program exercises them."""
    monkeypatch.setattr(memory, "MIN_DEL_SIZE", 1)
    monkeypatch.setattr(memory, "MIN_IN_PLACE_SIZE", 1)
    compiler.clear_cache()
    program = fuzzing.random_program(10_000 + seed)
    report = fuzzing.check_program(program)
    assert not report.failures, fuzzing.describe(program, report)


def test_the_generator_draws_control_flow_whose_second_input_set_switches_paths():
    """A quarter of the programs take decisions on data (if/else, conditional
    expressions, bounded while loops, float()/.item(), builtin max/min); most of
    those have a second input set that takes another path, checked in the same
    compiled functions (see fuzzing.check_program)."""
    drawn = [fuzzing.random_program(20_000 + seed) for seed in range(60)]
    control = [p for p in drawn if p.controls]
    codes = "\n".join(code for p in control for _, code in p.body)
    assert 5 <= len(control) <= 30
    assert sum(p.paths_differ for p in control) >= len(control) // 2
    for construct in ("if ", " else ", "while ", "for _ in range(", "float(", "max("):
        assert construct in codes, construct
    for p in control:  # the second input set differs
        assert any(i.alt is not None and not np.array_equal(i.alt, i.value) for i in p.inputs)
