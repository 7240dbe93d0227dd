"""runtime.nn and runtime.optim must reach NumPy only through its dispatch protocols,
the way the compiler's tracer will see them. `Boxed` is a minimal stand-in: it wraps
an array, forwards ufuncs and array functions, and refuses to be converted."""
import numpy as np
import pytest
from numpy.lib.mixins import NDArrayOperatorsMixin

from runtime import nn
from runtime.optim import SGD, Adam
from runtime.tree import flatten, tree_map


def unbox(x):
    if isinstance(x, Boxed):
        return x.value
    if isinstance(x, (list, tuple)):
        return type(x)(unbox(v) for v in x)
    if isinstance(x, dict):
        return {k: unbox(v) for k, v in x.items()}
    return x


class Boxed(NDArrayOperatorsMixin):
    def __init__(self, value):
        self.value = value

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return Boxed(getattr(ufunc, method)(*unbox(inputs), **unbox(kwargs)))

    def __array_function__(self, func, types, args, kwargs):
        return Boxed(func(*unbox(args), **unbox(kwargs)))

    def __array__(self, *args, **kwargs):
        raise TypeError("a traced value cannot become a concrete array")

    def __bool__(self):
        raise TypeError("a traced value has no truth value")

    def __getitem__(self, index):
        return Boxed(self.value[unbox(index)])

    shape = property(lambda self: self.value.shape)
    ndim = property(lambda self: self.value.ndim)
    dtype = property(lambda self: self.value.dtype)
    T = property(lambda self: Boxed(self.value.T))


def boxed_equal(boxed, plain):
    assert isinstance(boxed, Boxed)
    np.testing.assert_allclose(boxed.value, plain, rtol=1e-14)


@pytest.mark.parametrize("fn", [nn.sigmoid, nn.tanh, nn.relu, nn.elu, nn.softmax, nn.log_softmax,
                                nn.logsumexp], ids=lambda f: f.__name__)
def test_activations_trace(fn):
    x = np.random.default_rng(0).standard_normal((3, 4))
    boxed_equal(fn(Boxed(x)), fn(x))


def test_losses_and_mlp_trace():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 3))
    labels = np.array([0, 1, 2, 2, 1, 0])
    y01 = (rng.standard_normal((6, 3)) > 0).astype(float)
    boxed_equal(nn.softmax_cross_entropy(Boxed(z), Boxed(labels)),
                nn.softmax_cross_entropy(z, labels))
    boxed_equal(nn.softmax_cross_entropy(Boxed(z), Boxed(np.eye(3)[labels])),
                nn.softmax_cross_entropy(z, labels))
    boxed_equal(nn.binary_cross_entropy_with_logits(Boxed(z), Boxed(y01)),
                nn.binary_cross_entropy_with_logits(z, y01))
    p = nn.sigmoid(z)
    boxed_equal(nn.binary_cross_entropy(Boxed(p), Boxed(y01)), nn.binary_cross_entropy(p, y01))
    boxed_equal(nn.quadratic(Boxed(z), Boxed(y01)), nn.quadratic(z, y01))
    params = nn.init_mlp([3, 5, 2], rng)
    boxed_equal(nn.mlp(tree_map(Boxed, params), Boxed(z)), nn.mlp(params, z))


@pytest.mark.parametrize("opt", [SGD(0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                                 Adam(0.01)], ids=repr)
def test_optimizer_updates_trace(opt):
    rng = np.random.default_rng(2)
    params = {"W": rng.standard_normal((3, 2)), "b": rng.standard_normal(2)}
    grads = tree_map(lambda p: rng.standard_normal(p.shape), params)
    params, state = opt.update(params, grads, opt.init(params))  # a non-trivial state
    expected, _ = flatten(opt.update(params, grads, state))
    boxed = opt.update(tree_map(Boxed, params), tree_map(Boxed, grads), tree_map(Boxed, state))
    for b, e in zip(flatten(boxed)[0], expected, strict=True):
        boxed_equal(b, e)
