"""`scipy.integrate.odeint` and `solve_ivp` on traced values, differentiable by the
adjoint sensitivity method (as autograd's `odeint` and torchdiffeq's
`odeint_adjoint`).

The solve runs SciPy's own solver when the generated code runs (a `host_call`: the
solvers are C and Fortran, which cannot be traced). Its VJP integrates the
augmented system backwards from each output time to the one before it: the state
`y`, its adjoint `a` (da/dt = -a . df/dy) and the parameters' accumulated cotangent
(dp/dt = -a . df/dargs), adding the cotangent of each output as the integration
passes its time. The products `a . df/dy` and `a . df/dargs` come from a `grad` of
the user's dynamics, compiled once per solve, so the dynamics must be traceable
NumPy (anything `grad` accepts).

Differentiable: the initial state `y0` and the float arrays and numbers in `args`.
The output times are constants (a traced `t`, `t_span` or `t_eval` is refused).
Solver options (`rtol`, `atol`, `method`, `hmax`, `mxstep`, `first_step`, ...) are
passed to every solve, forward and backward; `odeint`'s `Dfun` to the forward solve
only. On traced values `full_output`, and `solve_ivp`'s `events` and
`dense_output`, are refused; `solve_ivp` needs `t_eval` and returns an `OdeResult`
holding `t` and `y` (a solve that fails raises `SolverError` when it runs, rather
than return a partial trajectory).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Optional

import numpy as np

from compiler import scipy_dispatch
from compiler.api import grad, jit
from compiler.custom import unpack_cotangents
from compiler.errors import SolverError, UnsupportedError, at_user_line, user_frame, where
from compiler.ir import Aval
from compiler.primitives.custom import HostFunction
from compiler.tracing import Tracer, bind
from runtime import tree

# integrate(dynamics(y, t) -> dy/dt, y0 (flat), times, options) -> the states at `times`, (T, D)
Integrator = Callable[[Callable, np.ndarray, np.ndarray, dict], np.ndarray]


class _Solve:
    """One traced solve: the dynamics `f(y, t, *args)`, the constant times (the
    first is the initial time), the integrator and its options. Traced leaves of
    `y0` and `args` are the host calls' operands; the others keep their values."""

    def __init__(self, name: str, dynamics: Callable, y0: Any, times: np.ndarray, args: tuple,
                 integrate: Integrator, options: dict, jacobian: Optional[Callable] = None):
        self.name, self.dynamics, self.times = name, dynamics, times
        self.integrate, self.options, self.jacobian = integrate, options, jacobian
        self.shape = tuple(np.shape(y0))
        self.size = int(np.prod(self.shape, dtype=np.int64))
        self.y0 = y0 if isinstance(y0, Tracer) else np.asarray(y0, dtype=float)
        self.leaves, self.treedef = tree.flatten(tuple(args))
        self.params = [k for k, leaf in enumerate(self.leaves) if isinstance(leaf, Tracer)]
        self.floats = [k for k in self.params if self.leaves[k].dtype.kind == "f"]
        self._augmented: Optional[Callable] = None
        self.site = where(user_frame())  # the user's line, for refusals made when a transform applies the rules

    def arguments(self, values: Any) -> tuple:
        full = list(self.leaves)
        for k, value in zip(self.params, values):
            full[k] = value
        return tree.unflatten(self.treedef, full)

    def flat_dynamics(self, arguments: tuple) -> Callable:
        shape, dynamics = self.shape, self.dynamics
        return lambda y, t: np.ravel(dynamics(np.reshape(y, shape), t, *arguments))

    # the forward solve ---------------------------------------------------------------

    def trajectory(self) -> Tracer:
        """The states at every time, (T, D), computed by SciPy when the code runs."""
        out = Aval((len(self.times), self.size), np.dtype(float))

        def solve(y0: np.ndarray, *values: Any) -> np.ndarray:
            arguments = self.arguments(values)
            options = self.options
            if self.jacobian is not None:  # odeint's Dfun, given this call's arguments (forward only)
                options = dict(options, Dfun=lambda y, t: self.jacobian(y, t, *arguments))
            with np.errstate(all="ignore"):
                ys = self.integrate(self.flat_dynamics(arguments), np.ravel(y0).astype(float), self.times, options)
            return np.asarray(ys, dtype=float).reshape(out.shape)

        solve.__qualname__ = solve.__name__ = self.name
        call = HostFunction(self.name, solve, out, vjp=self.vjp, why=f"{self.site}: forward mode through {self.name} "
                            "is not supported (its tangent would integrate the variational equations); use reverse mode")
        return bind("host_call", self.y0, *(self.leaves[k] for k in self.params), call=call)

    # the adjoint solve ---------------------------------------------------------------

    def vjp(self, g: Tracer, ys: Tracer, y0: Tracer, *params: Tracer) -> tuple:
        sizes = [self.leaves[k].aval.size for k in self.floats]
        packed = Aval((self.size + sum(sizes),), np.dtype(float))

        def adjoint(ys: np.ndarray, *values_and_g: Any) -> np.ndarray:
            *values, g = values_and_g
            return self.backward(ys, g, values, sum(sizes))

        adjoint.__qualname__ = adjoint.__name__ = f"{self.name}_adjoint"
        call = HostFunction(f"{self.name}_adjoint", adjoint, packed,
                            why=f"{self.site}: second derivatives through {self.name} are not supported")
        packed_cts = bind("host_call", ys, *params, g, call=call)
        return unpack_cotangents(packed_cts, [y0, *params], [True, *(k in self.floats for k in self.params)])

    def backward(self, ys: np.ndarray, g: np.ndarray, values: list, n_params: int) -> np.ndarray:
        """The cotangents of y0 and of the float parameters, packed: the augmented
        system integrated from the last time back to the first."""
        augmented = self.augmented_dynamics()
        d = self.size
        a, p = np.array(g[-1], dtype=float), np.zeros(n_params)
        for i in range(len(self.times) - 1, 0, -1):
            state = np.concatenate([ys[i], a, p])
            with np.errstate(all="ignore"):
                end = self.integrate(lambda s, t: augmented(s, t, *values), state,
                                     np.array([self.times[i], self.times[i - 1]]), self.options)[-1]
            a, p = end[d:2 * d] + g[i - 1], end[2 * d:]
        return np.concatenate([a, p])

    def augmented_dynamics(self) -> Callable:
        """(state, t, *traced args) -> d/dt of [y, a, p], compiled on first use."""
        if self._augmented is None:
            shape, d = self.shape, self.size
            positions = tuple(range(1, 1 + len(self.params)))
            floats = [j for j, k in enumerate(self.params) if k in self.floats]

            def contraction(y: Any, *rest: Any) -> Any:
                *values, a, t = rest
                return np.sum(self.dynamics(y, t, *self.arguments(values)) * a)

            contraction.__name__ = f"{self.name}_dynamics"
            pullback = grad(contraction, argnums=(0, *positions))

            def augmented(state: Any, t: Any, *values: Any) -> Any:
                y, a = np.reshape(state[:d], shape), np.reshape(state[d:2 * d], shape)
                dy = self.dynamics(y, t, *self.arguments(values))
                cts = pullback(y, *values, a, t)
                parts = [np.ravel(dy), -np.ravel(cts[0])] + [-np.ravel(cts[1 + j]) for j in floats]
                return np.concatenate(parts)

            augmented.__name__ = f"{self.name}_augmented"
            self._augmented = jit(augmented)
        return self._augmented


def _constant_times(times: Any, what: str) -> np.ndarray:
    if any(isinstance(leaf, Tracer) for leaf in tree.flatten(times)[0]):
        raise at_user_line(UnsupportedError, f"{what} on traced values needs constant output times: the "
                           "times themselves are not differentiated. Pass them as a NumPy array.")
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or len(times) < 1:
        raise at_user_line(UnsupportedError, f"{what} needs a 1-d array of output times, got shape {times.shape}")
    return times


def _refuse(what: str, given: dict) -> None:
    for option, value in given.items():
        if value:
            raise at_user_line(UnsupportedError, f"{what}(..., {option}=...) is not supported on traced values; "
                               "compute it outside the differentiated function")


def _odeint_integrate(f: Callable, y0: np.ndarray, times: np.ndarray, options: dict) -> np.ndarray:
    return sys.modules["scipy.integrate"].odeint(f, y0, times, **options)


def odeint(func, y0, t, args=(), Dfun=None, col_deriv=0, full_output=0, tfirst=False, **options):
    """scipy.integrate.odeint on traced values: (len(t), len(y0)) states."""
    _refuse("scipy.integrate.odeint", {"full_output": full_output})
    times = _constant_times(t, "scipy.integrate.odeint")
    if np.ndim(y0) > 1:
        raise at_user_line(UnsupportedError, "scipy.integrate.odeint needs a 1-d initial state y0")
    dynamics = (lambda y, t, *a: func(t, y, *a)) if tfirst else func
    jacobian = None if Dfun is None else (lambda y, t, *a: Dfun(t, y, *a)) if tfirst else Dfun
    args = args if isinstance(args, tuple) else (args,)
    solve = _Solve("odeint", dynamics, np.reshape(y0, (-1,)) if np.ndim(y0) == 0 else y0, times, args,
                   _odeint_integrate, dict(options, col_deriv=col_deriv) if Dfun is not None else options, jacobian)
    return solve.trajectory()


def solve_ivp(fun, t_span, y0, method="RK45", t_eval=None, dense_output=False, events=None,
              vectorized=False, args=None, **options):
    """scipy.integrate.solve_ivp on traced values: an OdeResult with `t` (t_eval) and
    `y`, (len(y0), len(t_eval))."""
    _refuse("scipy.integrate.solve_ivp", {"dense_output": dense_output, "events": events})
    if t_eval is None:
        raise at_user_line(UnsupportedError, "scipy.integrate.solve_ivp on traced values needs t_eval (the output "
                           "times): the solver's own steps are only known when it runs")
    start = float(_constant_times(t_span, "scipy.integrate.solve_ivp")[0])
    t_eval = _constant_times(t_eval, "scipy.integrate.solve_ivp")
    prepend = bool(t_eval[0] != start)
    times = np.concatenate([[start], t_eval]) if prepend else t_eval
    if np.ndim(y0) != 1:
        raise at_user_line(UnsupportedError, "scipy.integrate.solve_ivp needs a 1-d initial state y0")
    settings = dict(options, method=method, vectorized=vectorized)

    def integrate(f: Callable, y0: np.ndarray, times: np.ndarray, opts: dict) -> np.ndarray:
        solution = sys.modules["scipy.integrate"].solve_ivp(lambda t, y: f(y, t), (times[0], times[-1]), y0,
                                                            t_eval=times, **opts)
        if not solution.success:
            raise SolverError(f"scipy.integrate.solve_ivp failed while the compiled code ran: {solution.message}")
        return solution.y.T

    args = () if args is None else (args if isinstance(args, tuple) else (args,))
    solve = _Solve("solve_ivp", lambda y, t, *a: fun(t, y, *a), y0, times, args, integrate, settings)
    states = solve.trajectory()
    result_type = sys.modules["scipy.integrate"]._ivp.ivp.OdeResult
    return result_type(t=t_eval, y=np.transpose(states[1:] if prepend else states))


scipy_dispatch.add_installer(
    "scipy.integrate", lambda module: scipy_dispatch.dispatch_functions(module, {"odeint": odeint, "solve_ivp": solve_ivp}))
