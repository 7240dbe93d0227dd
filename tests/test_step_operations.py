"""The NumPy work of a compiled training step, counted, not timed: the operations
(calls, arithmetic operators, in-place operators, comparisons) in the generated step
for the benchmark's B configuration (784-256-256-10, ReLU, softmax cross-entropy,
plain SGD), against the same count for the step a careful person writes by hand
(benchmarks/mlp_step.py's `hand_step`, unrolled here for three layers).

The compiled step does five operations fewer than the careful one, and the ceiling
holds it there. Its softmax cross-entropy reuses its exponentials for the gradient
and makes its row-index array once, when the module loads, as careful code does; its
per-row loss reads the shift and the picked logits once each; and its backward pass
is seeded with the learning rate (plain SGD reads each gradient only as lr * g), so
no parameter's update multiplies."""
import ast

import numpy as np

from compiler import compile_step
from runtime import nn, optim

CEILING = 40

CAREFUL = '''
def careful(W1, b1, W2, b2, W3, b3, x, y, rows, lr, n):
    z1 = x @ W1
    z1 += b1
    np.maximum(z1, 0, out=z1)
    z2 = z1 @ W2
    z2 += b2
    np.maximum(z2, 0, out=z2)
    z = z2 @ W3
    z += b3
    z -= z.max(axis=1, keepdims=True)
    picked = z[rows, y]
    e = np.exp(z, out=z)
    s = e.sum(axis=1, keepdims=True)
    loss = (np.log(s).sum() - picked.sum()) / n
    s *= n
    e /= s
    e[rows, y] -= 1.0 / n
    gW3 = z2.T @ e
    gb3 = e.sum(axis=0)
    g2 = e @ W3.T
    g2 *= z2 > 0
    gW2 = z1.T @ g2
    gb2 = g2.sum(axis=0)
    g1 = g2 @ W2.T
    g1 *= z1 > 0
    gW1 = x.T @ g1
    gb1 = g1.sum(axis=0)
    gW3 *= lr
    W3 -= gW3
    gb3 *= lr
    b3 -= gb3
    gW2 *= lr
    W2 -= gW2
    gb2 *= lr
    b2 -= gb2
    gW1 *= lr
    W1 -= gW1
    gb1 *= lr
    b1 -= gb1
    return loss
'''


def operations(source: str, name: str) -> int:
    """Calls, binary and in-place operators, comparisons and negations in function `name`."""
    module = ast.parse(source)
    body = next(node for node in module.body if isinstance(node, ast.FunctionDef) and node.name == name)
    kinds = (ast.Call, ast.BinOp, ast.AugAssign, ast.Compare, ast.UnaryOp)
    return sum(isinstance(node, kinds) for node in ast.walk(body))


def test_compiled_b_step_does_no_more_numpy_work_than_its_ceiling():
    rng = np.random.default_rng(0)
    params = nn.init_mlp([784, 256, 256, 10], rng=rng)
    x, y = rng.normal(size=(128, 784)), rng.integers(0, 10, 128)

    def loss_fn(p, x, y):
        return nn.softmax_cross_entropy(nn.mlp(p, x, activation=nn.relu), y)

    source = compile_step(loss_fn, optim.SGD(lr=1e-3)).source(params, x, y)
    compiled, careful = operations(source, "loss_fn_step"), operations(CAREFUL, "careful")
    assert careful == 45
    assert compiled <= CEILING, f"{compiled} operations (careful NumPy: {careful}, ceiling {CEILING}):\n{source}"
