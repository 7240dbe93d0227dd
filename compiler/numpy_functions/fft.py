"""np.fft on traced values (see compiler/numpy_functions/__init__.py).

Every complex and real transform, in its one-axis (`fft`, `n`, `axis`), two-axis
(`fft2`) and n-axis (`fftn`, `s`, `axes`) spelling, binds one primitive of
compiler/primitives/fft.py with NumPy's defaults made explicit: the axes, the length
along each (a -1 in `s` keeps the array's; irfft's default is 2 * (m - 1)) and the
norm. hfft and ihfft are NumPy's own recipes (irfft of the conjugate, the conjugate
of rfft, with the dual norm); fftshift and ifftshift are rolls. fftfreq and rfftfreq
take static ints and need no handler.
"""
from __future__ import annotations

import operator
from typing import Any, Optional, Sequence

import numpy as np

from compiler.errors import ShapeError, at_user_line
from compiler.numpy_dispatch import _no_extras, as_tracer, implements, one_axis
from compiler.primitives.fft import DUAL_NORM, NORMS
from compiler.tracing import Tracer, bind


def _norm(fn: str, norm: Optional[str]) -> str:
    norm = "backward" if norm is None else norm
    if norm not in NORMS:
        raise at_user_line(ShapeError, f"np.fft.{fn}: norm {norm!r} is not one of None, {', '.join(map(repr, NORMS))}")
    return norm


def _lengths(fn: str, s: Any) -> tuple[int, ...]:
    try:
        return tuple(operator.index(n) for n in s)
    except TypeError:
        raise at_user_line(ShapeError, f"np.fft.{fn}: the lengths must be static ints, got {s!r}") from None


def _transform(fn: str, op: str, a: Any, s: Optional[Sequence[int]], axes: Optional[Sequence[int]],
               norm: Optional[str], out: Any) -> Tracer:
    """Bind `op` with NumPy's defaults resolved: with neither `s` nor `axes` every
    axis, with `s` only its last len(s) axes; a length of -1 (or none given) keeps
    the array's, except irfft's last, which defaults to 2 * (m - 1)."""
    _no_extras(f"fft.{fn}", out=out)
    a = as_tracer(a)
    if axes is None:
        axes = range(a.ndim) if s is None else range(a.ndim - len(s), a.ndim)
    axes = tuple(one_axis(d, a.ndim) for d in axes)
    if len(set(axes)) != len(axes):
        raise at_user_line(ShapeError, f"np.fft.{fn}: repeated axes {axes} are not supported; transform once per axis")
    if not axes:
        raise at_user_line(ShapeError, f"np.fft.{fn}: no axes to transform for an array of shape {a.shape}")
    lengths = (-1,) * len(axes) if s is None else _lengths(fn, s)
    if len(lengths) != len(axes):
        raise at_user_line(ShapeError, f"np.fft.{fn}: {len(lengths)} lengths for {len(axes)} axes")
    sizes = [a.shape[d] for d in axes]
    if op == "fft.irfftn":
        sizes[-1] = 2 * (sizes[-1] - 1)
    lengths = tuple(m if n == -1 else n for n, m in zip(lengths, sizes))
    if any(n < 1 for n in lengths):
        raise at_user_line(ShapeError, f"np.fft.{fn}: invalid number of data points {lengths} for shape {a.shape}")
    if op == "fft.rfftn" and a.dtype.kind == "c":
        raise at_user_line(ShapeError, f"np.fft.{fn} transforms real arrays; of a complex one use np.fft.fft")
    return bind(op, a, s=lengths, axes=axes, norm=_norm(fn, norm))


def _one_axis(fn: str, op: str):
    def transform(a, n=None, axis=-1, norm=None, out=None) -> Tracer:
        return _transform(fn, op, a, None if n is None else (n,), (axis,), norm, out)

    return transform


def _two_axes(fn: str, op: str):
    def transform(a, s=None, axes=(-2, -1), norm=None, out=None) -> Tracer:
        return _transform(fn, op, a, s, axes, norm, out)

    return transform


def _n_axes(fn: str, op: str):
    def transform(a, s=None, axes=None, norm=None, out=None) -> Tracer:
        return _transform(fn, op, a, s, axes, norm, out)

    return transform


for _name, _op in (("fft", "fft.fftn"), ("ifft", "fft.ifftn"), ("rfft", "fft.rfftn"), ("irfft", "fft.irfftn")):
    implements(getattr(np.fft, _name))(_one_axis(_name, _op))
    implements(getattr(np.fft, _name + "2"))(_two_axes(_name + "2", _op))
    implements(getattr(np.fft, _name + "n"))(_n_axes(_name + "n", _op))


def _conj(x: Tracer) -> Tracer:
    return np.conjugate(x) if x.dtype.kind == "c" else x


@implements(np.fft.hfft)
def hfft(a, n=None, axis=-1, norm=None, out=None) -> Tracer:
    """The real signal of a Hermitian-symmetric half spectrum: NumPy's irfft of the
    conjugate with the dual norm."""
    a = as_tracer(a)
    return _transform("hfft", "fft.irfftn", _conj(a), None if n is None else (n,), (axis,),
                       DUAL_NORM[_norm("hfft", norm)], out)


@implements(np.fft.ihfft)
def ihfft(a, n=None, axis=-1, norm=None, out=None) -> Tracer:
    """The inverse of hfft: the conjugate of rfft with the dual norm."""
    return _conj(_transform("ihfft", "fft.rfftn", a, None if n is None else (n,), (axis,),
                            DUAL_NORM[_norm("ihfft", norm)], out))


def _shift(x: Any, axes: Any, sign: int) -> Tracer:
    x = as_tracer(x)
    axes = tuple(range(x.ndim)) if axes is None else (axes,) if np.ndim(axes) == 0 else tuple(axes)
    return np.roll(x, tuple(sign * (x.shape[d] // 2) for d in axes), axes)


@implements(np.fft.fftshift)
def fftshift(x, axes=None) -> Tracer:
    return _shift(x, axes, 1)


@implements(np.fft.ifftshift)
def ifftshift(x, axes=None) -> Tracer:
    return _shift(x, axes, -1)
