"""A training step's model output, for evaluation: the loss function cut where it
first meets the labels, compiled forward-only. `runtime.train.fit` calls it as
`step.predict(params, x)` to measure accuracy without knowing the model."""
from __future__ import annotations

from typing import Any

import numpy as np

from compiler.aliasing import view_source
from compiler.api import Compiled, Jit
from compiler.errors import UnsupportedError
from compiler.guards import Guards
from compiler.ir import Graph
from compiler.lowering import lower
from compiler.passes import dce
from compiler.signature import Signature


class Prediction(Jit):
    """`loss_fn(params, x, labels)` cut to the value it compares with the labels."""

    kind = "prediction"

    def __init__(self, step: Any):
        super().__init__(step.fun)
        self.step = step
        self.threshold = 0.0  # single outputs above it predict class 1 (0.5 for probabilities)

    def __call__(self, params: Any, x: Any) -> Any:
        return super().__call__(params, x, self._dummy_labels(x))

    def source(self, params: Any, x: Any) -> str:
        return super().source(params, x, self._dummy_labels(x))

    def _dummy_labels(self, x: Any) -> np.ndarray:
        """Stand-in labels shaped like the step's last batch (they are cut away)."""
        labels = self.step._labels
        if labels is None:
            raise TypeError("call the step on a batch first, so the shape and dtype of its labels are known")
        return np.zeros((np.shape(x)[0],) + np.shape(labels)[1:], dtype=np.asarray(labels).dtype)

    def _compile(self, sig: Signature) -> Compiled:
        guards = Guards()
        graph, result = self._trace(sig, guards)
        if self.step.has_aux:
            result = result[0]
        prediction = _model_output(graph, result.id, x=graph.inputs[-2], labels=graph.inputs[-1])
        self.threshold = 0.5 if _is_probability(graph, prediction) else 0.0
        graph.outputs = [prediction]
        dce(graph)  # the label-dependent part of the loss goes; then the labels input itself
        graph.remove(graph.inputs.pop())
        generated = lower(graph, self._name("_predict"), prediction).generated
        return Compiled(generated, graph, lambda out: out, guards=guards)

    def _lookup(self, args, kwargs, new_path=""):
        compiled, sig = super()._lookup(args, kwargs, new_path)
        sig.traced = sig.traced[:-1]
        return compiled, sig


def _model_output(graph: Graph, loss: int, x: int, labels: int) -> int:
    """The value the loss compares with the labels: the latest node computed from `x`
    (not from the labels) that every route from `x` into the label-dependent part of
    the loss passes through. Penalty terms that do not involve `x` are ignored."""
    from_labels = graph.descendants([labels])
    from_x = graph.descendants([x]) - from_labels
    frontier = [
        i for i in graph.ancestors([loss]) & from_x
        if graph.node(i).dtype.kind in "fc" and any(u in from_labels for u in graph.users(i))
    ]
    if not frontier:
        raise UnsupportedError("could not find the model's output in the loss; pass predict= to fit")
    common = set.intersection(*(graph.ancestors([i]) & from_x for i in frontier))
    return max(common)


def _is_probability(graph: Graph, i: int) -> bool:
    """Whether node `i` is a sigmoid output, possibly reshaped or sliced."""
    return view_source(graph, i).op == "runtime.nn.sigmoid"
