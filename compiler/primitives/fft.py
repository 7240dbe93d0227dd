"""Discrete Fourier transforms: np.fft's n-dimensional complex transforms (`fft.fftn`,
`fft.ifftn`) and the real ones (`fft.rfftn` of a real array to its half spectrum,
`fft.irfftn` back). The one-axis and two-axis spellings, hfft / ihfft and the
shifts are written with these by compiler/numpy_functions/fft.py. Params are
normalized there: `s` the transform's length along each of `axes` (distinct,
non-negative), `norm` one of NumPy's three names.

Each transform is linear, so its forward-mode rule is itself applied to the tangent.
The VJPs follow the convention of compiler/transforms/reverse.py (the cotangent of
a complex value is dL/dRe + i dL/dIm): the adjoint of a complex linear map is its
conjugate transpose, which for the DFT is the inverse transform with the dual
normalization ("backward" <-> "forward", "ortho" itself), and the adjoint of the
zero-padding or truncation to `s` is the truncation or zero-padding back. The real
transforms are real-linear maps between a real array and a half spectrum:

- rfftn keeps the first n // 2 + 1 bins of the full spectrum, so its adjoint is
  Re(full inverse of the zero-padded cotangent), which is irfftn of the cotangent
  with the bins irfftn counts twice (all but DC and, for even n, Nyquist) halved;
- irfftn reads each such bin twice (as itself and as its mirrored conjugate) and
  discards the imaginary part of the others, so its adjoint is rfftn of the
  cotangent with those bins doubled.
"""
from __future__ import annotations

import ast
from typing import Any, Callable

import numpy as np

from compiler.errors import ShapeError
from compiler.ir import Aval
from compiler.primitives.registry import COMPLEX_VJPS, Primitive, batched_linear, np_call, register

NORMS = ("backward", "ortho", "forward")
DUAL_NORM = {"backward": "forward", "ortho": "ortho", "forward": "backward"}

Ints = tuple[int, ...]


def complex_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype np.fft gives a transform of `dtype`: single precision stays single."""
    if dtype.kind in "biu":
        return np.dtype(np.complex128)
    return np.result_type(dtype, np.complex64)


def real_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of np.fft.irfft's result for an operand of `dtype`."""
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    return np.finfo(dtype).dtype if dtype.kind == "c" else dtype


def _check(fn: str, x: Aval, s: Ints, axes: Ints, norm: str) -> None:
    if len(s) != len(axes) or not axes:
        raise ShapeError(f"np.fft.{fn}: {len(s)} lengths for {len(axes)} axes")
    if len(set(axes)) != len(axes) or any(not 0 <= a < x.ndim for a in axes):
        raise ShapeError(f"np.fft.{fn}: axes {axes} for an array of shape {x.shape}")
    if any(n < 1 for n in s):
        raise ShapeError(f"np.fft.{fn}: invalid number of data points {s}")
    if norm not in NORMS:
        raise ShapeError(f"np.fft.{fn}: norm {norm!r} is not one of {', '.join(NORMS)}")


def _resized(shape: Ints, s: Ints, axes: Ints) -> Ints:
    sizes = dict(zip(axes, s))
    return tuple(sizes.get(d, n) for d, n in enumerate(shape))


def _half(n: int) -> int:
    """How many bins a real transform of length n keeps."""
    return n // 2 + 1


def _fftn_abstract(x: Aval, *, s: Ints, axes: Ints, norm: str) -> Aval:
    _check("fftn", x, s, axes, norm)
    return Aval(_resized(x.shape, s, axes), complex_dtype(x.dtype))


def _rfftn_abstract(x: Aval, *, s: Ints, axes: Ints, norm: str) -> Aval:
    _check("rfftn", x, s, axes, norm)
    if x.dtype.kind == "c":
        raise ShapeError(f"np.fft.rfftn transforms real arrays, not {x.dtype}")
    return Aval(_resized(x.shape, s[:-1] + (_half(s[-1]),), axes), complex_dtype(x.dtype))


def _irfftn_abstract(x: Aval, *, s: Ints, axes: Ints, norm: str) -> Aval:
    _check("irfftn", x, s, axes, norm)
    return Aval(_resized(x.shape, s, axes), real_dtype(x.dtype))


def _emit(fn: str) -> Callable[..., ast.expr]:
    """`np.fft.fft(x, n=8, axis=0)` for one axis, `np.fft.fftn(x, s=(4, 8), axes=(0, 1))`
    for several; `norm` only where it is not the default."""

    def emit(x: ast.expr, *, s: Ints, axes: Ints, norm: str) -> ast.expr:
        extra = {} if norm == "backward" else {"norm": norm}
        if len(axes) == 1:
            return np_call(f"fft.{fn}", x, n=s[0], axis=axes[0], **extra)
        return np_call(f"fft.{fn}n", x, s=s, axes=axes, **extra)

    return emit


def _fit(x: Any, shape: Ints) -> Any:
    """`x` truncated or zero-padded at the end of each axis to `shape`: the adjoint of
    the padding or truncation a transform's length `s` makes of its operand."""
    if tuple(x.shape) == tuple(shape):
        return x
    index = [slice(None, n) if m > n else slice(None) for m, n in zip(x.shape, shape)]
    while index and index[-1] == slice(None):
        index.pop()
    if index:
        x = x[tuple(index)]
    widths = tuple((0, max(n - m, 0)) for m, n in zip(x.shape, shape))
    return np.pad(x, widths) if any(after for _, after in widths) else x


def _bin_weights(n: int, axis: int, ndim: int, inner: float, dtype: np.dtype) -> np.ndarray:
    """Weights of the n // 2 + 1 bins of a real transform of length n along `axis`:
    1 for DC and (n even) Nyquist, `inner` for the bins counted twice."""
    weights = np.full(_half(n), inner, dtype=dtype)
    weights[0] = 1
    if n % 2 == 0:
        weights[-1] = 1
    return np.reshape(weights, (-1,) + (1,) * (ndim - axis - 1))


def _fftn_vjp(inverse: str):
    def vjp(g, out, x, *, s: Ints, axes: Ints, norm: str):
        return (_fit(g.apply(inverse, s=s, axes=axes, norm=DUAL_NORM[norm]), x.shape),)

    return vjp


def _rfftn_vjp(g, out, x, *, s: Ints, axes: Ints, norm: str):
    halved = g * _bin_weights(s[-1], axes[-1], g.ndim, 0.5, real_dtype(g.dtype))
    return (_fit(halved.apply("fft.irfftn", s=s, axes=axes, norm=DUAL_NORM[norm]), x.shape),)


def _irfftn_vjp(g, out, x, *, s: Ints, axes: Ints, norm: str):
    spectrum = g.apply("fft.rfftn", s=s, axes=axes, norm=DUAL_NORM[norm])
    return (_fit(spectrum * _bin_weights(s[-1], axes[-1], g.ndim, 2.0, g.dtype), x.shape),)


def _batch_axes(params: dict) -> dict:
    """Params for tangents with a leading batch axis (jacfwd): every axis moves by one."""
    return {**params, "axes": tuple(a + 1 for a in params["axes"])}


def _transform(name: str, abstract: Callable[..., Aval], vjp: Callable[..., tuple]) -> None:
    op = f"fft.{name}"
    register(Primitive(op, abstract=abstract, emit=_emit(name[:-1]), vjp=vjp, linear=True,
                       batched_jvp=batched_linear(op, _batch_axes)))
    COMPLEX_VJPS[op] = None  # verified for complex values in tests/test_numpy_fft.py


_transform("fftn", _fftn_abstract, _fftn_vjp("fft.ifftn"))
_transform("ifftn", _fftn_abstract, _fftn_vjp("fft.fftn"))
_transform("rfftn", _rfftn_abstract, _rfftn_vjp)
_transform("irfftn", _irfftn_abstract, _irfftn_vjp)
