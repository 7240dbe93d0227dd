"""Random straight-line NumPy programs through jit, grad, value_and_grad and
compile_step, against eager NumPy and finite differences (see tests/fuzzing.py).

The fast profile: 200 derandomized programs. `python tests/fuzz_run.py --programs
10000` (`make fuzz`) runs many more without hypothesis.
"""
from hypothesis import HealthCheck, given, settings

import fuzzing

FAST = settings(
    max_examples=200, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FAST
@given(fuzzing.programs())
def test_random_program(program: fuzzing.Program) -> None:
    report = fuzzing.check_program(program)
    assert not report.failures, fuzzing.describe(program, report)
