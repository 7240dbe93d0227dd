"""Pictures of compiled functions: the joint graph drawn as a lecture's computation graph.

`picture(transformed, *args, forward_only=False)` compiles `transformed` for the call
`transformed(*args)` and draws its optimized joint graph: inputs, forward operations,
the loss, and the backward pass's cotangent nodes in a second colour (a compiled
step's optimizer update in a third), each node labelled with its name, operation and
dtype[shape]. Python-number operands are written into the operation
(`divide(1.0, ·)`) rather than drawn. `forward_only=True` draws the traced forward
graph instead (what `show` prints as the forward IR).

The graph goes through networkx's DOT export (`networkx.drawing.nx_pydot.to_pydot`,
which needs the `pydot` package: `pip install adjoint[pictures]`); Graphviz's `dot`
program, when installed, renders it to SVG, PNG or PDF. The returned `Picture` has
`.dot` (the DOT text), `.save(path)` (by suffix: .dot/.gv, .svg, .png, .pdf) and
renders inline in Jupyter (`_repr_svg_`, or `_repr_html_` showing the DOT text when
Graphviz is missing).
"""
from __future__ import annotations

import html
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import networkx as nx
from networkx.drawing import nx_pydot

from compiler.api import Transformed
from compiler.errors import AdjointError, api_boundary
from compiler.ir import Graph, Node
from compiler.standalone import compiled_for, describe, forward_graph
from compiler.step import Step
from compiler.api import INSPECTORS

INSTALL_GRAPHVIZ = "install Graphviz to render it: apt-get install graphviz (Debian/Ubuntu) or brew install graphviz (macOS)"
INSTALL_PYDOT = "pictures need the pydot package: pip install 'adjoint[pictures]' (or pip install pydot)"

COLOURS = {  # fill, border
    "input": ("#fff2cc", "#b8860b"),
    "const": ("#eeeeee", "#777777"),
    "forward": ("#dae8fc", "#3465a4"),
    "loss": ("#dae8fc", "#1a3e7a"),
    "backward": ("#fde0c5", "#ce5c00"),
    "update": ("#d5f0d0", "#3b8132"),
}
RENDERED = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
TEXT = (".dot", ".gv")


class PicturesUnavailable(AdjointError):
    """pydot (for the DOT export) or Graphviz (for rendering) is not installed."""


class GraphvizMissing(PicturesUnavailable):
    """Graphviz's `dot` program is not installed: only DOT text can be written."""


def graphviz_available() -> bool:
    return shutil.which("dot") is not None


def render(dot: str, fmt: str) -> bytes:
    """`dot -T<fmt>` of DOT text; raises GraphvizMissing without Graphviz."""
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizMissing(f"Graphviz's dot program was not found; {INSTALL_GRAPHVIZ}")
    done = subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, timeout=60)
    if done.returncode != 0:
        raise PicturesUnavailable(f"dot -T{fmt} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


class Picture:
    """A drawn graph: `.dot` text, `.svg()`, `.save(path)`; renders inline in Jupyter."""

    def __init__(self, dot: str, title: str = ""):
        self.dot = dot
        self.title = title
        self._svg: Optional[str] = None

    def svg(self) -> str:
        """The picture as SVG text (needs Graphviz)."""
        if self._svg is None:
            self._svg = render(self.dot, "svg").decode()
        return self._svg

    def save(self, path: Any) -> Path:
        """Write the picture, in the format its suffix names: .dot or .gv (DOT text,
        always possible), .svg, .png or .pdf (rendered by Graphviz, else
        GraphvizMissing)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix in TEXT:
            path.write_text(self.dot)
        elif suffix in RENDERED:
            data = self.svg().encode() if suffix == ".svg" else render(self.dot, RENDERED[suffix])
            path.write_bytes(data)
        else:
            raise PicturesUnavailable(
                f"cannot tell the picture format from {path.name!r}: use .svg, .png, .pdf, .dot or .gv"
            )
        return path

    def _repr_svg_(self) -> Optional[str]:
        return self.svg() if graphviz_available() else None

    def _repr_html_(self) -> Optional[str]:
        if graphviz_available():
            return None  # the SVG is shown
        note = html.escape(f"Graphviz is not installed; {INSTALL_GRAPHVIZ}. The graph in DOT:")
        return f"<p>{note}</p><pre>{html.escape(self.dot)}</pre>"

    def __repr__(self) -> str:
        return f"<Picture {self.title}: {self.dot.count('->')} edges>"


@api_boundary
def picture(transformed: Transformed, *args: Any, forward_only: bool = False, **kwargs: Any) -> Picture:
    """The computation graph `transformed(*args, **kwargs)` compiles to (see the module
    docstring). For a compile_step object, `args` are (params, *batch)."""
    compiled, sig = compiled_for(transformed, args, kwargs)
    name = getattr(transformed.fun, "__name__", "fn")
    at = ", ".join(f"{n}: {a}" for n, a in zip(sig.names, sig.avals))
    at = at if len(at) <= 100 else at[:97] + "..."
    if forward_only:
        graph = forward_graph(transformed, sig)
        title = f"{name} (forward) at {at}"
        loss = graph.outputs[0] if graph.outputs and _is_loss(transformed, graph, graph.outputs[0]) else None
    else:
        graph = compiled.graph
        title = f"{describe(transformed)} of {name} at {at}"
        loss = graph.outputs[0] if graph.outputs and _has_value(transformed) else None
    return Picture(to_dot(graph, loss=loss, title=title), title)


def _has_value(transformed: Transformed) -> bool:
    """Whether the compiled function's first output is the differentiated value."""
    return isinstance(transformed, Step) or bool(getattr(transformed, "with_value", False))


def _is_loss(transformed: Transformed, graph: Graph, i: Optional[int]) -> bool:
    if i is None or transformed.kind == "jit" or i not in graph:
        return False
    node = graph.node(i)
    return node.shape == () and node.dtype.kind in "fc"


def _pydot():
    try:
        import pydot  # noqa: F401  (optional: the [pictures] extra)
    except ImportError:
        raise PicturesUnavailable(INSTALL_PYDOT) from None
    return nx_pydot


def roles(graph: Graph) -> dict[int, str]:
    """Each node's role: input, const, forward, backward (cotangent computations) or
    update (values computed from gradients that are not gradients: an optimizer's)."""
    backward = {n.id for n in graph.nodes() if n.grad_of is not None or n.cotangent_of is not None}
    after = graph.descendants(backward) if backward else set()
    out = {}
    for node in graph.nodes():
        if node.is_input:
            out[node.id] = "input"
        elif node.is_const:
            out[node.id] = "const"
        elif node.id in backward:
            out[node.id] = "backward"
        elif node.id in after:
            out[node.id] = "update"
        else:
            out[node.id] = "forward"
    return out


def node_name(graph: Graph, node: Node) -> str:
    """The name a node is drawn with: the user's name, `g_<name>` for a cotangent,
    else `%id` as in the printed IR."""
    if node.name:
        return node.name
    if node.cotangent_of is not None:
        primal = graph.node(node.cotangent_of) if node.cotangent_of in graph else None
        return f"g_{primal.name}" if primal is not None and primal.name else f"g_%{node.cotangent_of}"
    return f"%{node.id}"


def _operation(graph: Graph, node: Node) -> str:
    if node.is_input:
        return "input"
    if node.is_const:
        return "captured array" if node.params.get("captured") else "constant"
    literals = [graph.python_scalar(i) for i in node.inputs]
    if any(v is not None for v in literals):
        shown = ", ".join("·" if v is None else repr(v) for v in literals)
        return f"{node.op}({shown})"
    return node.op or node.kind


def drawn(graph: Graph, node: Node) -> bool:
    """Python-number constants are written into their users' labels, not drawn."""
    return not (node.is_const and node.aval.weak)


def to_networkx(graph: Graph, loss: Optional[int] = None, title: str = "") -> nx.DiGraph:
    """The graph as a networkx DiGraph with Graphviz attributes (ids `n<id>`)."""
    role = roles(graph)
    out = nx.DiGraph(name="adjoint")
    out.graph["graph"] = {"rankdir": "TB", "labelloc": "t", "fontname": "Helvetica", "fontsize": "14",
                          "label": _quote(title + "\nblue: forward   orange: backward (cotangents)"
                                          + ("   green: optimizer update" if "update" in role.values() else ""))}
    out.graph["node"] = {"fontname": "Helvetica", "fontsize": "11", "style": "filled", "shape": "box"}
    out.graph["edge"] = {"arrowsize": "0.7"}
    outputs = set(graph.outputs)
    for node in graph.nodes():
        if not drawn(graph, node):
            continue
        kind = "loss" if node.id == loss else role[node.id]
        fill, border = COLOURS[kind]
        name = node_name(graph, node) + ("  (loss)" if node.id == loss else "")
        attrs = {
            "label": _quote(f"{name}\n{_operation(graph, node)}\n{node.aval}"),
            "fillcolor": _quote(fill), "color": _quote(border),
            "shape": "ellipse" if kind == "input" else "note" if kind == "const" else "box",
            "role": kind,
        }
        if node.id in outputs:
            attrs["peripheries"] = "2"
        if kind == "loss":
            attrs["penwidth"] = "2"
        if node.loc is not None:
            attrs["tooltip"] = _quote(f"{node.loc}  {node.loc.text}".strip())
        out.add_node(f"n{node.id}", **attrs)
    for node in graph.nodes():
        if not drawn(graph, node):
            continue
        for i in dict.fromkeys(node.inputs):
            if drawn(graph, graph.node(i)):
                colour = COLOURS[role[node.id]][1] if role[node.id] in ("backward", "update") else "#333333"
                out.add_edge(f"n{i}", f"n{node.id}", color=_quote(colour))
    return out


def to_dot(graph: Graph, loss: Optional[int] = None, title: str = "") -> str:
    """DOT text of the graph, through networkx's pydot export."""
    nx_pydot = _pydot()
    return nx_pydot.to_pydot(to_networkx(graph, loss, title)).to_string()


def _quote(text: str) -> str:
    """A DOT quoted string (networkx refuses unquoted values containing ':')."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


__all__ = ["Picture", "picture", "to_dot", "to_networkx", "render", "graphviz_available", "roles",
           "PicturesUnavailable", "GraphvizMissing", "INSTALL_GRAPHVIZ", "INSTALL_PYDOT"]


INSPECTORS["picture"] = picture
