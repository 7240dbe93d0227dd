"""How a suite of user mistakes checks the errors adjoint reports.

A test file marks the line of each mistake with a trailing `# <- marker` comment.
`check` asserts that the error is an `AdjointError` of the expected class whose
message starts with that file's name and the marked line, names the given phrases,
and whose traceback holds at most one compiler frame: the public entry point the
user called (compiler/api.py, compiler/errors.py or, for compile_step, compiler/step.py).
"""
from __future__ import annotations

import os
import traceback
from pathlib import Path
from typing import Callable

import compiler
from compiler import AdjointError

COMPILER_DIR = str(Path(compiler.__file__).resolve().parent) + os.sep
BOUNDARY_FILES = tuple(os.path.join("compiler", name) for name in ("api.py", "errors.py", "step.py", "tracing.py"))  # tracing: the tracer entry points


def checks_for(test_file: str) -> tuple[Callable[[str], int], Callable[..., str]]:
    """`line_of(marker)` and `check(excinfo, cls, marker, *phrases)` for one test file."""
    path = Path(test_file).resolve()
    lines = path.read_text().splitlines()

    def line_of(marker: str) -> int:
        """The line of the test file carrying `# <- marker`."""
        hits = [k for k, line in enumerate(lines, 1) if line.rstrip().endswith(f"# <- {marker}")]
        assert len(hits) == 1, f"marker {marker!r} found {len(hits)} times"
        return hits[0]

    def check(excinfo, cls: type, marker: str, *phrases: str) -> str:
        """The error is a `cls` at the marked line naming `phrases`, with a clean traceback."""
        err = excinfo.value
        assert isinstance(err, cls) and isinstance(err, AdjointError), type(err)
        message = str(err)
        assert message.startswith(f"{path.name}:{line_of(marker)}: "), message
        for phrase in phrases:
            assert phrase in message, (phrase, message)
        compiler_frames = [f for f in traceback.extract_tb(excinfo.tb) if f.filename.startswith(COMPILER_DIR)]
        assert len(compiler_frames) <= 1, [f"{f.filename}:{f.lineno}" for f in compiler_frames]
        assert all(f.filename.endswith(BOUNDARY_FILES) for f in compiler_frames), compiler_frames
        assert err.__cause__ is None
        return message

    return line_of, check
