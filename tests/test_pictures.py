"""Pictures: `tracegrad.draw` of tensors, traced programs and compiled functions, and DOT."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.layout import layout
from tracegrad.pictures import diagram_of, to_dot


def _seed():
    a, b, c, d = (tg.tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0, 4.0))
    return (a + b) + c * d


def _rnn(h, w, xs):
    def step(h, x):
        h = np.tanh(w @ h + x)
        return h, np.sum(h)
    h, ys = tg.scan(step, h, xs)
    return np.sum(ys) + np.sum(h)


RNN_ARGS = (np.ones(3), np.eye(3) * 0.5, np.ones((5, 3)))


def _labels(d):
    return sorted(box.label for box in d.boxes.values())


def test_seed_autograd_graph_reads_like_torchviz():
    d = diagram_of(_seed())
    labels = _labels(d)
    assert labels.count("AddBackward0") == 2 and labels.count("MulBackward0") == 1
    assert [s for s in labels if s.startswith("leaf")] == [
        f"leaf f64[] = {v}\nAccumulateGrad" for v in (1, 2, 3, 4)]
    assert len(d.edges) == 7  # 4 leaves, 2 inner nodes into the root node, root -> result
    lay = layout(d)
    ys = {d.boxes[k].label: p.y for k, p in lay.boxes.items()}
    assert ys["leaf f64[] = 1\nAccumulateGrad"] < ys["MulBackward0"] < ys["tensor f64[]"]


def test_traced_program_boxes_edges_and_loop_clusters():
    d = diagram_of(tg.trace(_rnn)(*RNN_ARGS))
    (scan,) = [b for b in d.boxes.values() if b.kind == "cluster"]
    assert "= scan" in scan.label and scan.children[0].title == "body"
    body_ops = _labels(scan.children[0])
    assert any("= tanh" in s for s in body_ops) and any("= dot" in s for s in body_ops)
    assert {label for _, _, label in d.edges} >= {"f64[3]", "f64[3,3]", "f64[5,3]"}
    lay = layout(d)
    (cluster_key,) = [k for k, b in d.boxes.items() if b.kind == "cluster"]
    inner = lay.boxes[cluster_key].children[0][1]
    assert lay.boxes[cluster_key].w >= inner.width and lay.boxes[cluster_key].h > inner.height


def test_every_edge_points_down():
    for obj in (_seed(), tg.trace(_rnn)(*RNN_ARGS)):
        d = diagram_of(obj)
        lay = layout(d)
        for a, b, _ in d.edges:
            assert lay.boxes[a].y + lay.boxes[a].h < lay.boxes[b].y


def test_compiled_function_draws_its_kernels():
    f = tg.compile_grad(_rnn)
    f(*RNN_ARGS)
    d = diagram_of(f)
    assert any(b.label.startswith("LoopStep") and b.children for b in d.boxes.values())
    assert any("(input)" in b.label for b in d.boxes.values())
    dot = f.to_dot()
    assert dot.startswith("digraph") and "subgraph cluster_" in dot and "LoopStep" in dot


@pytest.mark.parametrize("suffix, magic", [(".svg", b"<?xml"), (".png", b"\x89PNG"),
                                           (".pdf", b"%PDF")])
def test_draw_writes_the_format_of_the_suffix(tmp_path, suffix, magic):
    f = tg.jit(_rnn)
    f(*RNN_ARGS)
    for i, obj in enumerate((_seed(), tg.trace(_rnn)(*RNN_ARGS), f)):
        path = tmp_path / f"p{i}{suffix}"
        assert tg.draw(obj, path) == str(path)
        data = path.read_bytes()
        assert data.startswith(magic) and len(data) > 2000


def test_bad_suffix_and_bad_object(tmp_path):
    with pytest.raises(ValueError, match="suffix picks the format"):
        tg.draw(_seed(), tmp_path / "x.jpg")
    with pytest.raises(TypeError, match="cannot draw a str"):
        tg.draw("hello", tmp_path / "x.svg")


def test_missing_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"pip install 'tracegrad\[viz\]'"):
        tg.draw(_seed(), tmp_path / "x.svg")


def test_dot_text_of_every_kind():
    assert to_dot(_seed()).count("AddBackward0") == 2
    assert "subgraph cluster_" in to_dot(tg.trace(_rnn)(*RNN_ARGS))


def test_networkx_keeps_every_output_position_and_literal_outputs():
    g = tg.trace(lambda x: (x, x, x * 2, 1.0))(np.ones(3)).to_networkx()
    outputs = sorted(d["outputs"] for _, d in g.nodes(data=True) if "outputs" in d)
    assert outputs == [(0, 1), (2,), (3,)]
    assert any(d["op"] == "literal" and d["value"] == 1.0 for _, d in g.nodes(data=True))


def test_exports_and_pictures_name_body_values_as_the_printer_does():
    """The printer names a while's bodies in param order (body_graph, then cond_graph),
    then its outputs; networkx, DOT and draw's diagram use the same names and labels."""
    def f(x):
        return tg.while_loop(lambda c: c[0] < 10, lambda c: (c[0] + 1, c[1] * 0.9), (0, x))

    p = tg.trace(f)(np.ones(3))
    text = str(p.graph)  # i j = while[... body_graph={b c . d e} cond_graph={f g . h}]
    assert "i:i64[] j:f64[3] = while" in text and "h:bool[] = lt f" in text
    g = p.to_networkx()
    assert {n for n, d in g.nodes(data=True) if d["op"] == "while"} == {"i", "j"}
    bodies = next(d["bodies"] for _, d in g.nodes(data=True) if "bodies" in d)
    assert list(bodies) == ["body_graph", "cond_graph"]
    assert {n: d["op"] for n, d in bodies["cond_graph"].nodes(data=True)} == \
        {"f": "input", "g": "input", "h": "lt"}
    assert {n: d["op"] for n, d in bodies["body_graph"].nodes(data=True)} == \
        {"b": "input", "c": "input", "d": "add", "e": "mul"}
    assert "while cond_graph" in p.to_dot()
    assert any(b.label.startswith("i j = while") for b in diagram_of(p).boxes.values())
