"""An interrupt stops a compile wherever it lands, and leaves every cache, lock and
trace stack usable: Ctrl-C in a notebook never needs a kernel restart.

An exception a signal handler raises while Python finalizes an object (closes an
abandoned generator, runs a weakref callback or `__del__`) cannot propagate there:
Python prints "Exception ignored" and goes on. During a compile such an interrupt is
kept and raised at the next point that can raise it (tracing.keeping_interrupts).
"""
import gc
import random
import signal
import sys
import time

import numpy as np
import pytest

from compiler import api, grad, tracing


class Alarm(BaseException):
    """What the tests' signal handlers raise (not an Exception: nothing swallows it)."""


def model():
    def loss(x, w):
        h = x
        for _ in range(20):
            h = np.tanh(h @ w) + 0.1 * h
        return np.sum(h ** 2)

    return loss


X, W = np.ones((3, 4)), np.eye(4) * 0.5


def assert_usable() -> None:
    """No trace left on the stack, no profile hook, collection back on, the compile
    lock free; and a fresh compile gives the right gradient."""
    assert tracing._STACK.contexts == [] and tracing._STACK.keeping == 0 and tracing._STACK.lost is None
    assert sys.getprofile() is None
    assert gc.isenabled() and api._GC_PAUSES[0] == 0
    assert api._GC_LOCK.acquire(blocking=False)
    api._GC_LOCK.release()
    expected = grad(model())(X, W)
    np.testing.assert_allclose(grad(model())(X, W), expected)


def test_an_interrupt_in_a_finalizer_during_a_trace_is_raised_not_lost():
    class Bomb:
        def __del__(self):
            raise KeyboardInterrupt

    def f(x):
        Bomb()  # finalized at once; Python itself could only print the interrupt
        return np.sum(np.sin(x))

    with pytest.raises(KeyboardInterrupt):
        grad(f)(X)
    assert_usable()


def test_a_signal_handlers_exception_in_a_finalizer_is_raised_not_lost():
    def handler(signum, frame):
        raise Alarm()

    class Ringer:
        def __del__(self):
            signal.raise_signal(signal.SIGUSR1)  # the handler runs inside this finalizer

    def f(x):
        Ringer()
        return np.sum(np.cos(x))

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with pytest.raises(Alarm):
            grad(f)(X)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert_usable()


def test_other_exceptions_in_finalizers_are_reported_as_python_reports_them():
    reported = []

    class Faulty:
        def __del__(self):
            raise ValueError("a bug in a __del__")

    def f(x):
        Faulty()
        return np.sum(x * 3.0)

    previous = sys.unraisablehook
    sys.unraisablehook = reported.append
    try:
        np.testing.assert_allclose(grad(f)(X), 3.0)
    finally:
        sys.unraisablehook = previous
    assert [type(r.exc_value) for r in reported] == [ValueError]


def test_alarms_at_many_points_of_a_compile_always_stop_it():
    fired = []

    def handler(signum, frame):
        fired.append(time.perf_counter())
        raise Alarm()

    start = time.perf_counter()
    grad(model())(X, W)
    span = time.perf_counter() - start
    draw = random.Random(0)
    previous = signal.signal(signal.SIGALRM, handler)
    # Other libraries' gc callbacks (hypothesis installs one) run Python code where
    # an alarm after the compile, while the result runs, would be lost by Python itself.
    callbacks, gc.callbacks[:] = list(gc.callbacks), []
    stopped = lost = 0
    try:
        for _ in range(60):
            fired.clear()
            compiled = grad(model())
            signal.setitimer(signal.ITIMER_REAL, draw.uniform(0.0002, span))
            try:
                compiled(X, W)
                done = time.perf_counter()
                signal.setitimer(signal.ITIMER_REAL, 0)
                lost += bool(fired and fired[0] < done)
            except Alarm:
                stopped += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)
        gc.callbacks[:] = callbacks
    assert lost == 0 and stopped > 0
    assert_usable()
