"""Run many random programs through adjoint and summarise the failures.

    python tests/fuzz_run.py --programs 10000 [--seed N] [--show K] [--only I]

Program i of a run is `fuzzing.random_program(seed * 1_000_003 + i)`: generated from a
seeded `random.Random`, with no hypothesis overhead and no shrinking. Failures are
grouped by class (kind, check, and the first line of the message with numbers masked);
the first `--show` programs of each class are printed in full, with their values, and
`--only I` reruns program I alone. Exit status 1 when any program failed.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import fuzzing  # noqa: E402


def failure_class(failure: fuzzing.Failure) -> str:
    """What distinguishes one bug from another in a summary: kind, check, and the
    message's first line with names and numbers masked."""
    head = failure.detail.splitlines()[0].split(" e.g. ")[0]
    head = re.sub(r"\bprogram_[0-9a-f]+\.py\b", "<file>", head)
    head = re.sub(r"\b[xsvn]\d+\b", "<var>", head)
    head = re.sub(r"(?<![\w.])-?\d+(\.\d+)?(e-?\d+)?", "<n>", head)
    head = re.sub(r"\((<n>(, )?)*,?\)", "<shape>", head)
    return f"[{failure.kind}] {failure.check}: {head[:160]}"


def program_seed(seed: int, index: int) -> int:
    return seed * 1_000_003 + index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=2, help="programs printed in full per failure class")
    parser.add_argument("--only", type=int, default=None, help="run only program I of this seed")
    args = parser.parse_args(argv)

    indices = [args.only] if args.only is not None else range(args.programs)
    classes: dict[str, list[int]] = defaultdict(list)
    failed: set[int] = set()
    gradients = 0
    control, switched = 0, 0  # programs with control flow on data; those whose second input set takes another path
    start = time.perf_counter()
    for index in indices:
        program = fuzzing.random_program(program_seed(args.seed, index))
        report = fuzzing.check_program(program)
        gradients += report.gradients_checked
        control += program.controls > 0
        switched += program.paths_differ
        if report.failures:
            failed.add(index)
            new = [cls for cls in dict.fromkeys(failure_class(f) for f in report.failures)
                   if len(classes[cls]) < args.show]
            for cls in dict.fromkeys(failure_class(f) for f in report.failures):
                classes[cls].append(index)
            if new or args.only is not None:
                print(f"=== program {index} (rerun: --seed {args.seed} --only {index})")
                print(fuzzing.describe(program, report), flush=True)
    elapsed = time.perf_counter() - start
    print_summary(len(indices), gradients, failed, classes, elapsed, control, switched)
    return 1 if failed else 0


def print_summary(count: int, gradients: int, failed: set[int], classes: dict[str, list[int]], elapsed: float,
                  control: int = 0, switched: int = 0) -> None:
    by_kind: dict[str, set[int]] = defaultdict(set)
    for cls, programs in classes.items():
        by_kind[cls.split("]")[0].lstrip("[")].update(programs)
    print("\n=== summary")
    print(f"programs run:       {count} in {elapsed:.1f} s ({count / elapsed:.1f} programs/s)")
    print(f"gradients checked:  {gradients}")
    print(f"control flow:       {control} programs ({switched} whose second input set takes another path)")
    print(f"programs failing:   {len(failed)}")
    for kind in ("mismatch", "dtype", "mutation", "crash", "refusal"):
        print(f"  {kind + ':':<18}{len(by_kind.get(kind, ()))} programs")
    print("failure classes (programs affected, first few program indices):")
    for cls, programs in sorted(classes.items(), key=lambda kv: -len(kv[1])):
        print(f"  {len(programs):5d}  {cls}  e.g. {programs[:5]}")


if __name__ == "__main__":
    sys.exit(main())
