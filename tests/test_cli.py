"""`python -m compiler show|graph|dump`, run as a subprocess the way a person would."""
import importlib.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
QUIZ = str(ROOT / "examples" / "quiz.py")
QUIZ_ARGS = ["--args", "2.0, 3.0", "--what", "value_and_grad", "--argnums", "0,1"]


def cli(*argv, cwd=None, env=None):
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    base["PYTHONPATH"] = str(ROOT)
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "compiler", *argv], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=base, timeout=120)


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("targets")
    (folder / "models.py").write_text(textwrap.dedent("""\
        import numpy as np
        from compiler import value_and_grad
        from runtime import nn

        def loss_fn(params, x, y):
            return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.relu), y)

        @value_and_grad
        def energy(v):
            return np.sum(v ** 2) / 2

        def scaled(x, *, scale=2.0):
            return np.tanh(x) * scale

        def vector(x):
            return x * 2.0
        """))
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n")
    return folder


def test_show_prints_forward_ir_optimized_ir_and_source():
    done = cli("show", f"{QUIZ}:f", *QUIZ_ARGS)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    forward, optimized, source = out.split("=== ")[1:]
    assert forward.startswith("forward IR: f (") and "x: weak float64[], z: weak float64[]" in forward
    assert "%2:a: weak float64[] = multiply(%0:x, %1:z)" in forward and "grad of" not in forward
    assert optimized.startswith("optimized IR: value_and_grad(argnums=(0, 1)) of f")
    assert "(grad of %0)" in optimized and "# quiz.py" not in optimized
    assert source.startswith("generated source: f_value_and_grad") and "def f_value_and_grad(x, z):" in source
    with_lines = cli("show", f"{QUIZ}:f", *QUIZ_ARGS, "--source-lines").stdout
    assert any(line.startswith("%2:a: weak float64[] = multiply(%0:x, %1:z)") and line.endswith("# quiz.py:17")
               for line in with_lines.splitlines())


def test_show_a_training_step_from_shapes(targets):
    shapes = "params.W1=f64[4,5] params.b1=f64[5] params.W2=f64[5,3] params.b2=f64[3] x=f64[8,4] y=i64[8]"
    done = cli("show", f"{targets / 'models.py'}:loss_fn", "--what", "step", "--optimizer", "adam lr=0.01",
               "--shapes", shapes)
    assert done.returncode == 0, done.stderr
    assert "def loss_fn_step(W1, b1, W2, b2, m_W1" in done.stdout
    assert "x: float64[8,4], y: int64[8]" in done.stdout


def test_show_a_decorated_object_and_jit_with_keywords(targets):
    done = cli("show", f"{targets / 'models.py'}:energy", "--args", "[1.0, 2.0]")
    assert done.returncode == 0, done.stderr
    assert "def energy_value_and_grad(v):" in done.stdout
    done = cli("show", f"{targets / 'models.py'}:scaled", "--what", "jit", "--args", "[0.5, 1.0], scale=3.0")
    assert done.returncode == 0, done.stderr
    assert "def scaled_jit(" in done.stdout


def test_graph_writes_dot_and_svg(tmp_path):
    done = cli("graph", f"{QUIZ}:f", *QUIZ_ARGS, "-o", str(tmp_path / "quiz.dot"))
    assert done.returncode == 0, done.stderr
    dot = (tmp_path / "quiz.dot").read_text()
    assert "digraph" in dot and "role=backward" in dot
    done = cli("graph", f"{QUIZ}:f", *QUIZ_ARGS, "--forward-only")
    assert done.returncode == 0 and "digraph" in done.stdout and "role=backward" not in done.stdout
    if shutil.which("dot"):
        done = cli("graph", f"{QUIZ}:f", *QUIZ_ARGS, "-o", str(tmp_path / "quiz.svg"))
        assert done.returncode == 0, done.stderr
        assert "<svg" in (tmp_path / "quiz.svg").read_text()


def test_graph_without_graphviz_writes_the_dot_file_and_says_how_to_install(tmp_path):
    done = cli("graph", f"{QUIZ}:f", *QUIZ_ARGS, "-o", str(tmp_path / "quiz.svg"), env={"PATH": ""})
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "quiz.svg").exists()
    assert "digraph" in (tmp_path / "quiz.dot").read_text()
    assert "apt-get install graphviz" in done.stderr and "brew install graphviz" in done.stderr


def test_dump_writes_a_module_that_runs(tmp_path):
    out = tmp_path / "quiz_grad.py"
    done = cli("dump", f"{QUIZ}:f", *QUIZ_ARGS, "-o", str(out))
    assert done.returncode == 0, done.stderr
    spec = importlib.util.spec_from_file_location("quiz_grad", out)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    value, (dx, dz) = module.f_value_and_grad(2.0, 3.0)
    assert [round(float(dx)), round(float(dz))] == [1208, 810]
    np.testing.assert_allclose(value, 412.19, rtol=1e-4)
    assert cli("dump", f"{QUIZ}:f", *QUIZ_ARGS).stdout.startswith('"""f_value_and_grad')


@pytest.mark.parametrize("argv, message", [
    (["show", "examples/nope.py:f", "--args", "1.0"], "no such file"),
    (["show", f"{QUIZ}:nope", "--args", "1.0"], "has no 'nope'"),
    (["show", QUIZ, "--args", "1.0"], "path.py:function"),
    (["show", "{broken}:f", "--args", "1.0"], "RuntimeError: boom"),
    (["show", f"{QUIZ}:f", "--shapes", "x=f32[2,"], "not dtype[shape]"),
    (["show", f"{QUIZ}:f", "--shapes", "x=q8[2]"], "unknown dtype"),
    (["show", f"{QUIZ}:f", "--args", "2.0, __import__('os')"], "not a Python literal"),
    (["show", f"{QUIZ}:f", "--args", "2.0, 3.0", "--what", "step", "--optimizer", "rmsprop lr=1"], "unknown optimizer"),
    (["show", f"{QUIZ}:f", "--args", "2.0, 3.0", "--argnums", "x"], "--argnums"),
    (["show", "{models}:vector", "--args", "[1.0, 2.0]"], "grad needs a scalar float output"),
    (["dump", f"{QUIZ}:f", "--bogus"], "unrecognized arguments"),
])
def test_mistakes_exit_2_with_one_line(targets, argv, message):
    argv = [a.format(broken=targets / "broken.py", models=targets / "models.py") for a in argv]
    done = cli(*argv)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert message in lines[0] and "Traceback" not in done.stderr
