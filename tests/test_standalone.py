"""Saved modules run with NumPy only: each is imported in a subprocess where neither
`compiler` nor `runtime` can be imported (`python -I -S`, cwd a temp dir, sys.path
holding only the standard library and NumPy's folder) and must give the compiled
function's results."""
import ast
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compiler import compile_step, grad, value_and_grad
from compiler import standalone
from runtime import nn, optim, tree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
from quiz import f as quiz_f  # noqa: E402

NUMPY_DIR = os.path.dirname(os.path.dirname(np.__file__))

RUNNER = textwrap.dedent("""
    import importlib.util, pickle, sys
    sys.path.append({numpy_dir!r})
    assert importlib.util.find_spec("compiler") is None, "compiler is importable"
    assert importlib.util.find_spec("runtime") is None, "runtime is importable"
    import numpy as np
    spec = importlib.util.spec_from_file_location("saved", {module!r})
    saved = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(saved)
    fn = getattr(saved, {name!r})
    with open("inputs.pkl", "rb") as f:
        calls = pickle.load(f)
    results = []
    for args in calls:  # successive calls on the same argument objects (a step updates them in place)
        results.append((fn(*args), [np.array(a, copy=True) for a in args]))
    with open("outputs.pkl", "wb") as f:
        pickle.dump(results, f)
""")


def run_isolated(tmp_path: Path, module: Path, name: str, args: list, calls: int = 1) -> list:
    """[(result, the arguments after the call)] per call of `name` from `module`."""
    (tmp_path / "inputs.pkl").write_bytes(pickle.dumps([args] * calls))
    script = tmp_path / "runner.py"
    script.write_text(RUNNER.format(numpy_dir=NUMPY_DIR, module=str(module), name=name))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([sys.executable, "-I", "-S", str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return pickle.loads((tmp_path / "outputs.pkl").read_bytes())


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            found.add((node.module or "").split(".")[0])
    return found


def assert_tree_close(got, want):
    got_leaves, got_def = tree.flatten(got)
    want_leaves, want_def = tree.flatten(want)
    assert got_def == want_def
    for g, w in zip(got_leaves, want_leaves):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def test_quiz_value_and_grad(tmp_path):
    fg = value_and_grad(quiz_f, argnums=(0, 1))
    path = standalone.save(fg, tmp_path / "quiz_grad.py", 2.0, 3.0)
    assert imports_of(path) == {"numpy"}
    assert not (tmp_path / "quiz_grad.npz").exists()
    text = path.read_text()
    doc = ast.get_docstring(ast.parse(text))
    assert "quiz.py:16" in doc and "value_and_grad" in doc
    assert "x: float (weak float64[])" in doc and "z: float (weak float64[])" in doc
    assert f"adjoint {standalone.compiler_version()}" in doc
    assert "def f_value_and_grad(x, z):" in text
    assert "# grad of: quiz.py:17  a = x * z" in text  # the generated code's comments are kept
    [(result, _)] = run_isolated(tmp_path, path, "f_value_and_grad", [2.0, 3.0])
    assert_tree_close(result, fg(2.0, 3.0))
    assert [round(float(v)) for v in result[1]] == [1208, 810]


def _loss_fn(params, x, y):
    return nn.softmax_cross_entropy(nn.mlp(params, x, activation=nn.sigmoid), y)


OPTIMIZERS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "momentum": lambda: optim.SGD(lr=0.1, momentum=0.9),
    "nesterov": lambda: optim.SGD(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": lambda: optim.SGD(lr=0.1, momentum=0.5, weight_decay=1e-2),
    "adam": lambda: optim.Adam(lr=0.01),
}


@pytest.mark.parametrize("which", sorted(OPTIMIZERS))
def test_mlp_training_step(tmp_path, which):
    rng = np.random.default_rng(0)
    params = nn.init_mlp([4, 6, 3], rng=rng)
    x, y = rng.standard_normal((5, 4)), rng.integers(0, 3, size=5)
    opt = OPTIMIZERS[which]()
    step = compile_step(_loss_fn, opt)
    path = standalone.save(step, tmp_path / "step.py", params, x, y)
    assert imports_of(path) == {"numpy"}
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert "params (updated in place)" in doc and "batch:" in doc
    # the documented calling convention: params leaves, state leaves, hyperparameters, batch
    state = opt.init(params)
    leaves = tree.flatten(params)[0] + tree.flatten(state)[0] + list(opt.hyperparams(0).values()) + [x, y]
    saved = run_isolated(tmp_path, path, "_loss_fn_step", [np.copy(a) if isinstance(a, np.ndarray) else a for a in leaves],
                         calls=2)
    losses = [step(params, x, y) for _ in range(2)]
    want_after = tree.flatten(params)[0] + tree.flatten(step.state)[0]
    for (loss, _), want in zip(saved, losses):
        np.testing.assert_allclose(loss, want, rtol=1e-12)
    after = saved[-1][1][: len(want_after)]
    for got, want in zip(after, want_after):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def rnn(W, U, x):
    h = np.zeros(3)
    for t in range(x.shape[0]):
        h = np.tanh(W @ h + U @ x[t])
    return np.sum(h ** 2)


def test_rnn_loop_with_a_constant_made_inside(tmp_path):
    rng = np.random.default_rng(1)
    W, U, x = rng.standard_normal((3, 3)) * 0.5, rng.standard_normal((3, 2)), rng.standard_normal((4, 2))
    fg = value_and_grad(rnn, argnums=(0, 1))
    path = standalone.save(fg, tmp_path / "rnn.py", W, U, x)
    assert imports_of(path) == {"numpy"}
    assert "np.array([0.0, 0.0, 0.0], dtype='float64')" in path.read_text()  # a small constant, as a literal
    [(result, _)] = run_isolated(tmp_path, path, "rnn_value_and_grad", [W, U, x])
    assert_tree_close(result, fg(W, U, x))


W_BIG = np.random.default_rng(2).standard_normal((8, 8))
BIAS = np.random.default_rng(3).standard_normal(20)


def closes_over(x):
    return np.sum(np.tanh(W_BIG @ x[:8] + BIAS[:8])) + np.sum(x * BIAS)


def test_closed_over_arrays_saved_beside_the_module(tmp_path):
    g = grad(closes_over)
    x = np.linspace(-1, 1, 20)
    path = standalone.save(g, tmp_path / "closed.py", x)
    npz = tmp_path / "closed.npz"
    assert npz.exists() and set(np.load(npz).files) == {"W_BIG", "BIAS"}
    assert imports_of(path) == {"numpy", "os"}
    moved = tmp_path / "elsewhere"  # loaded relative to the module's own file, not the cwd
    moved.mkdir()
    os.replace(path, moved / "closed.py")
    os.replace(npz, moved / "closed.npz")
    path = moved / "closed.py"
    [(result, _)] = run_isolated(tmp_path, path, "closes_over_grad", [x])
    np.testing.assert_allclose(result, g(x), rtol=1e-12)


def test_closed_over_arrays_as_arguments(tmp_path):
    g = grad(closes_over)
    x = np.linspace(-1, 1, 20)
    path = standalone.save(g, tmp_path / "closed.py", x, constants="arguments")
    assert not (tmp_path / "closed.npz").exists()
    assert imports_of(path) == {"numpy"}
    assert "def closes_over_grad(x, W_BIG, BIAS):" in path.read_text()
    [(result, _)] = run_isolated(tmp_path, path, "closes_over_grad", [x, W_BIG, BIAS])
    np.testing.assert_allclose(result, g(x), rtol=1e-12)


def test_runtime_calls_become_copied_helpers(tmp_path):
    """Generated code that calls runtime.nn (fused primitives printed as calls) gets
    those functions, and the ones they call, copied in; a user variable named like a
    helper does not clash with it."""
    source = textwrap.dedent('''\
        import numpy as np
        import runtime.nn
        # const: float64[3] array, bound at compile time


        def f_grad(z, labels, log_softmax):
            sigmoid = runtime.nn.sigmoid(z)  # f.py:3
            t1 = runtime.nn.softmax_cross_entropy(z, labels) + runtime.nn.logsumexp(z, axis=1, keepdims=False)
            return (sigmoid, t1, runtime.nn.log_softmax(z, axis=-1) + log_softmax)
        ''')
    rewritten = standalone.rewrite(source, "f_grad", {}, set())
    path = tmp_path / "helpers.py"
    path.write_text("\n".join(rewritten.text) + "\n")
    assert imports_of(path) == {"numpy"}
    text = path.read_text()
    assert "runtime" not in text.replace("# from runtime.", "")
    assert "@fused" not in text and "def logsumexp(" in text
    assert "# f.py:3" in text
    z = np.random.default_rng(4).standard_normal((2, 3))
    labels = np.array([0, 2])
    [(got, _)] = run_isolated(tmp_path, path, "f_grad", [z, labels, 1.0])
    want = (nn.sigmoid(z), nn.softmax_cross_entropy(z, labels) + nn.logsumexp(z, axis=1), nn.log_softmax(z) + 1.0)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12)
