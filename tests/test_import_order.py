"""SciPy's functions trace whatever the order of imports: bound by name before the
compiler was imported (as most scripts do), through the module, or after. Each order
runs in a fresh interpreter, since an import happens once per process."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECKS = """
x = np.random.default_rng(0).normal(size=(3, 4))
mean, cov = np.zeros(4), np.eye(4) + 0.5

def numeric(f, x, eps=1e-6):
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        step = np.zeros_like(x); step[i] = eps
        out[i] = (f(x + step) - f(x - step)) / (2 * eps)
    return out

def softmax_first(x, softmax=special.softmax):  # bound as a default argument
    return np.sum(softmax(x, axis=1)[:, 0] * np.arange(3))

programs = {
    "logsumexp": lambda x: logsumexp(x, axis=1) @ np.arange(3.0),
    "module logsumexp": lambda x: np.sum(special.logsumexp(x)),
    "log_softmax": lambda x: np.sum(special.log_softmax(x, axis=0) * x),
    "softmax default argument": softmax_first,
    "norm.logpdf bound method": lambda x: np.sum(norm_logpdf(x, 0.5, 2.0)),
    "norm.cdf": lambda x: np.sum(stats.norm.cdf(x)),
    "multivariate_normal.logpdf": lambda x: np.sum(multivariate_normal.logpdf(x, mean, cov)),
    "solve_sylvester (a decorated closure)": lambda x: np.sum(solve_sylvester(np.eye(3) * 3.0, np.eye(4), x) ** 2),
}
for name, f in programs.items():
    np.testing.assert_allclose(jit(f)(x), f(x), rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(grad(f)(x), numeric(f, x), rtol=1e-6, atol=1e-8, err_msg=name)
print("traced:", len(programs))
"""

SCIPY_BY_NAME = """
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from scipy.linalg import solve_sylvester
import scipy.special as special
import scipy.stats as stats
norm_logpdf = stats.norm.logpdf
"""

ORDERS = {
    "scipy first, by name": SCIPY_BY_NAME + "import numpy as np\nfrom compiler import grad, jit\n",
    "compiler first": "import numpy as np\nfrom compiler import grad, jit\n" + SCIPY_BY_NAME,
    "scipy between numpy and compiler": "import numpy as np\n" + SCIPY_BY_NAME + "import compiler\ngrad, jit = compiler.grad, compiler.jit\n",
}


@pytest.mark.parametrize("order", sorted(ORDERS))
def test_scipy_functions_trace_in_any_import_order(order):
    script = textwrap.dedent(ORDERS[order]) + CHECKS
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "traced: 8" in done.stdout
