"""Pictures of the joint graph: DOT through networkx and pydot, parsed back; SVG
when Graphviz is installed."""
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pydot = pytest.importorskip("pydot", reason="pictures need the [pictures] extra (pydot)")

from compiler import compile_step, value_and_grad  # noqa: E402
from compiler import pictures  # noqa: E402
from runtime import nn, optim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
from quiz import f as quiz_f  # noqa: E402


def parse(dot: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyparsing's own diagnostics on pydot's grammar
        [graph] = pydot.graph_from_dot_data(dot)
    nodes = {}
    for node in graph.get_nodes():
        attrs = node.get_attributes()
        if "label" in attrs:
            lines = attrs["label"].strip('"').split("\\n")
            nodes[node.get_name()] = (lines, attrs.get("role"), attrs.get("fillcolor"))
    edges = {(e.get_source(), e.get_destination()) for e in graph.get_edges()}
    return nodes, edges


def by_name(nodes):
    return {lines[0].split()[0]: (key, lines, role) for key, (lines, role, _) in nodes.items()}


def test_quiz_joint_graph_round_trips_through_dot():
    picture = pictures.picture(value_and_grad(quiz_f, argnums=(0, 1)), 2.0, 3.0)
    nodes, edges = parse(picture.dot)
    named = by_name(nodes)
    for name, op in [("x", "input"), ("z", "input"), ("a", "multiply"), ("b", "log"), ("c", "sin"),
                     ("d", "exp"), ("e", "divide"), ("f", "divide"), ("y", "add")]:
        assert named[name][1][1] == op
    assert named["x"][2] == "input" and named["a"][2] == "forward"
    assert named["y"][2] == "loss" and "(loss)" in named["y"][1][0]
    assert named["x"][1][2] == "weak float64[]" and named["b"][1][2] == "float64[]"
    for g in ("g_x", "g_z", "g_a", "g_b", "g_c"):
        assert named[g][2] == "backward"
    assert named["g_c"][1][1] == "divide(1.0, ·)"  # a Python-number operand is written in, not drawn
    key = {name: v[0] for name, v in named.items()}
    for src, dst in [("x", "a"), ("z", "a"), ("x", "b"), ("b", "c"), ("a", "d"), ("a", "e"), ("b", "e"),
                     ("c", "f"), ("a", "f"), ("f", "y"), ("g_a", "g_z"), ("x", "g_z")]:
        assert (key[src], key[dst]) in edges, (src, dst)
    fills = {role: fill for _, role, fill in nodes.values()}
    assert fills["forward"] != fills["backward"]
    graph = value_and_grad(quiz_f, argnums=(0, 1)).ir(2.0, 3.0)
    drawn = [n for n in graph.nodes() if not (n.is_const and n.aval.weak)]
    assert set(nodes) == {f"n{n.id}" for n in drawn}
    assert edges == {(f"n{i}", f"n{n.id}") for n in drawn for i in n.inputs if i in {m.id for m in drawn}}


def test_forward_only_has_no_backward_nodes():
    picture = pictures.picture(value_and_grad(quiz_f, argnums=(0, 1)), 2.0, 3.0, forward_only=True)
    nodes, edges = parse(picture.dot)
    roles = {role for _, role, _ in nodes.values()}
    assert roles == {"input", "forward", "loss"}
    assert len(nodes) == 10


def test_training_step_draws_the_optimizer_update():
    params = nn.init_mlp([3, 4, 2], rng=np.random.default_rng(0))
    step = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x), y), optim.SGD(lr=0.1, momentum=0.9))
    nodes, _ = parse(pictures.picture(step, params, np.ones((2, 3)), np.array([0, 1])).dot)
    roles = {role for _, role, _ in nodes.values()}
    assert {"input", "forward", "loss", "backward", "update"} <= roles


def test_without_graphviz_dot_text_is_still_written(tmp_path, monkeypatch):
    picture = pictures.picture(value_and_grad(quiz_f, argnums=(0, 1)), 2.0, 3.0)
    monkeypatch.setattr(pictures.shutil, "which", lambda name: None)
    assert picture._repr_svg_() is None
    assert "apt-get install graphviz" in picture._repr_html_()
    with pytest.raises(pictures.GraphvizMissing, match="brew install graphviz"):
        picture.save(tmp_path / "quiz.svg")
    picture.save(tmp_path / "quiz.dot")
    assert (tmp_path / "quiz.dot").read_text() == picture.dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_svg_rendering(tmp_path):
    picture = pictures.picture(value_and_grad(quiz_f, argnums=(0, 1)), 2.0, 3.0)
    svg = picture._repr_svg_()
    assert "<svg" in svg and "g_x" in svg
    assert picture._repr_html_() is None  # Jupyter shows the SVG
    picture.save(tmp_path / "quiz.svg")
    assert (tmp_path / "quiz.svg").read_text().count('class="node"') == len(parse(picture.dot)[0])


def test_committed_quiz_picture_is_an_svg():
    text = (ROOT / "docs" / "quiz.svg").read_text()
    assert "<svg" in text and "g_x" in text and "g_z" in text
