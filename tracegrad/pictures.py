"""Pictures of graphs: `tracegrad.draw(obj, "out.svg")` and `tracegrad.pictures.to_dot(obj)`.

Three things are drawn, each as a `layout.Diagram`:
  * an eager Tensor: its `grad_fn` graph as torchviz draws it, backward nodes
    (`AddBackward0`, `MulBackward0`, ...) and leaves with shape and dtype (and
    the value of 0-d leaves), arrows from the leaves to the result;
  * a traced program (or an IR graph): one box per equation, edges labelled
    with the shape and dtype of the value they carry, the bodies of loops and
    branches drawn inside their equation's box;
  * a compiled function (its latest specialization) or a kernel program:
    kernels and buffers, an arrow for each read and each write.
Rendering uses matplotlib (the `viz` extra) with the layered layout of
`tracegrad/layout.py`: no system package; the file's suffix picks SVG, PNG or PDF.

>>> import numpy as np, tracegrad
>>> from tracegrad.pictures import to_dot
>>> a, b = tracegrad.tensor(1.0, requires_grad=True), tracegrad.tensor(2.0, requires_grad=True)
>>> print(to_dot(a * b + a).splitlines()[1])
  rankdir=TB;
"""
from __future__ import annotations

import os

from tracegrad.ir import Graph, Literal
from tracegrad.ir.core import short_dtype
from tracegrad.ir.printer import Namer, _has_body, _param, body_params

from .layout import GAP_Y, LINE_H, PAD, TITLE_H, Box, Diagram, layout

FORMATS = ("svg", "png", "pdf")
COLORS = {"op": "#dbe9f6", "input": "#e3f4e4", "const": "#efe2f3", "output": "#ffe9cc",
          "leaf": "#dff1ef", "temp": "#f1f1f1", "cluster": "#ffffff"}
MAX_PARAMS = 48  # characters of params shown under an equation's name


# ---- what to draw ----------------------------------------------------------------------

def _aval_text(x) -> str:
    return f"{short_dtype(x.dtype)}[{','.join(map(str, x.shape))}]"


def tensor_diagram(tensor) -> Diagram:
    """The autograd graph behind an eager tensor (torchviz's picture)."""
    d = Diagram(title="autograd graph")
    root = d.add("result", Box(f"tensor {_aval_text(tensor)}", "output"))
    nodes, stack = {}, [tensor.grad_fn] if tensor.grad_fn is not None else []
    while stack:
        node = stack.pop()
        if id(node) not in nodes:
            nodes[id(node)] = node
            d.add(id(node), _node_box(node))
            stack += _inputs_of(node)
    for node in nodes.values():  # edges point from a node's inputs to it
        for n in _inputs_of(node):
            d.connect(id(n), id(node))
    if tensor.grad_fn is not None:
        d.connect(id(tensor.grad_fn), root)
    return d


def _inputs_of(node) -> list:
    return [n for n, _ in getattr(node, "next_functions", ()) if n is not None]


def _node_box(node) -> Box:
    leaf = getattr(node, "variable", None)
    if leaf is None:
        return Box(node.name())
    value = f" = {leaf.data.item():g}" if leaf.data.shape == () else ""
    return Box(f"leaf {_aval_text(leaf.data)}{value}\nAccumulateGrad", "leaf")


def graph_diagram(graph: Graph, namer: Namer | None = None, title: str = "") -> Diagram:
    """A traced program's graph: equations as boxes, bodies inside their equation."""
    namer = namer or Namer()
    d, producer = Diagram(title=title), {}
    for kind, vars_ in (("const", graph.constvars), ("input", graph.invars)):
        for v in vars_:
            producer[v] = d.add(("v", namer(v)), Box(f"{namer(v)}: {v.aval}", kind))
    for i, eqn in enumerate(graph.eqns):
        key = d.add(("e", i), _eqn_box(eqn, namer))
        for a in eqn.inputs:
            if not isinstance(a, Literal) and a in producer:
                d.connect(producer[a], key, str(a.aval))
        producer.update({o: key for o in eqn.outs})
    outs = ", ".join(namer.atom(v) for v in graph.outvars)
    out = d.add("outputs", Box(f"outputs ({outs})", "output"))
    for v in graph.outvars:
        if not isinstance(v, Literal) and v in producer:
            d.connect(producer[v], out, str(v.aval))
    return d


def _eqn_box(eqn, namer) -> Box:
    # the bodies are named first, then the outputs, as the printer names them
    bodies = [graph_diagram(g, namer.body(), label) for label, g in body_params(eqn)]
    outs = " ".join(namer(o) for o in eqn.outs)
    plain = " ".join(f"{k}={_param(v)}" for k, v in sorted(eqn.params.items())
                     if not _has_body(v))
    if len(plain) > MAX_PARAMS:
        plain = plain[:MAX_PARAMS - 3] + "..."
    label = f"{outs} = {eqn.prim.name}" + (f"\n{plain}" if plain else "")
    return Box(label, "cluster" if bodies else "op", bodies)


def kernels_diagram(program, title="kernel program") -> Diagram:
    """A kernel program: kernels and the buffers they read and write; the bodies of
    loop and branch steps drawn inside them."""
    d = Diagram(title=title)
    for kernel in program.kernels:
        bodies = [kernels_diagram(body, name) for name, body in _bodies(kernel)]
        key = d.add(("k", id(kernel)), Box(_kernel_label(kernel), "cluster" if bodies else "op",
                                           bodies))
        for buf in kernel.reads():
            d.connect(_buffer(d, buf), key, "")
        for buf in kernel.writes():
            d.connect(key, _buffer(d, buf), "")
    return d


def _bodies(kernel) -> list:
    """(name, kernel program) of a step's bodies: a loop's body (and its reverse loop), a
    conditional's branches."""
    found = [("body", kernel.body)] if hasattr(getattr(kernel, "body", None), "kernels") else []
    grad = getattr(kernel, "grad", None)
    if grad is not None:
        found.append(("reverse body", grad.body))
    found += [(f"branch {i}", b) for i, b in enumerate(getattr(kernel, "branches", ()))]
    return found


def _buffer(d: Diagram, buf):
    key = ("b", id(buf))
    if key not in d.boxes:
        kind = buf.kind if buf.kind in ("input", "const", "output") else "temp"
        d.add(key, Box(f"{buf} ({buf.kind})", kind))
    return key


def _kernel_label(kernel) -> str:
    kind = type(kernel).__name__
    name = getattr(kernel, "name", "")
    detail = ""
    if hasattr(kernel, "domain"):
        detail = f"domain {list(kernel.domain)}, {len(kernel.body)} instructions"
    elif hasattr(kernel, "m"):
        detail = f"batch {kernel.batch}: ({kernel.m}x{kernel.k}) @ ({kernel.k}x{kernel.n})"
    elif hasattr(kernel, "prim"):
        detail = str(kernel.prim)
    return f"{kind} {name}" + (f"\n{detail}" if detail else "")


def diagram_of(obj) -> Diagram:
    """The diagram of a Tensor, TracedProgram, Graph, compiled function or kernel program."""
    from tracegrad.tracer import Tensor, TracedProgram

    if isinstance(obj, Diagram):
        return obj
    if isinstance(obj, Tensor):
        return tensor_diagram(obj)
    if isinstance(obj, TracedProgram):
        return graph_diagram(obj.graph, title=getattr(obj.fun, "__name__", "") or "")
    if isinstance(obj, Graph):
        return graph_diagram(obj)
    if hasattr(obj, "kernels"):
        return kernels_diagram(obj)
    if hasattr(obj, "cache_info") and hasattr(obj, "_spec"):  # a jit / compile_grad function
        return kernels_diagram(obj._spec().native.kernel_program())
    raise TypeError(f"cannot draw a {type(obj).__name__}: draw a Tensor, a traced program "
                    "(tracegrad.trace), an IR graph, a compiled function or a kernel program")


# ---- DOT text --------------------------------------------------------------------------

def to_dot(obj, name: str = "tracegrad") -> str:
    """Graphviz DOT text of anything `draw` draws (clusters for loop and branch bodies)."""
    lines, counter = [f"digraph {name} {{", "  rankdir=TB;"], iter(range(10**9))
    _dot(diagram_of(obj), lines, "  ", counter)
    return "\n".join(lines + ["}"])


def _dot(d: Diagram, lines, pad, counter):
    ids = {key: f"n{next(counter)}" for key in d.boxes}
    for key, box in d.boxes.items():
        label = box.label.replace('"', "'").replace("\n", "\\n")
        shape = "ellipse" if box.kind == "op" else "box"
        lines.append(f'{pad}{ids[key]} [label="{label}", shape={shape}];')
        for child in box.children:
            lines.append(f'{pad}subgraph cluster_{next(counter)} {{')
            lines.append(f'{pad}  label="{child.title}"; style=dashed;')
            _dot(child, lines, pad + "  ", counter)
            lines.append(f"{pad}}}")
    for a, b, label in d.edges:
        lines.append(f'{pad}{ids[a]} -> {ids[b]}' + (f' [label="{label}"];' if label else ";"))


# ---- rendering -------------------------------------------------------------------------

def _matplotlib():
    try:
        from matplotlib.figure import Figure
        from matplotlib.patches import FancyBboxPatch
    except ImportError:
        raise ImportError("tracegrad.draw needs matplotlib: pip install 'tracegrad[viz]' "
                          "(or pip install matplotlib)") from None
    return Figure, FancyBboxPatch


def draw(obj, path):
    """Draw a Tensor's autograd graph, a traced program or a compiled function's kernels
    to `path` (`.svg`, `.png` or `.pdf`); returns the path.  Needs matplotlib
    (`pip install 'tracegrad[viz]'`)."""
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"draw: {path!r}: the suffix picks the format, one of "
                         f"{', '.join('.' + f for f in FORMATS)}")
    Figure, patch = _matplotlib()
    diagram = diagram_of(obj)
    lay = layout(diagram)
    fig = Figure(figsize=(max(lay.width, 72) / 72, max(lay.height, 72) / 72))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, max(lay.width, 72))
    ax.set_ylim(max(lay.height, 72), 0)
    ax.axis("off")
    _render(ax, patch, diagram, lay, 0.0, 0.0)
    fig.savefig(path, format=fmt)
    return path


def _render(ax, patch, d, lay, ox, oy):
    if d.title:
        ax.text(ox + lay.width / 2, oy + TITLE_H / 2, d.title, ha="center", va="center",
                fontsize=10, style="italic", color="#555555")
    for key, box in d.boxes.items():
        _render_box(ax, patch, box, lay.boxes[key], ox, oy)
    for a, b, label in d.edges:
        _render_edge(ax, lay.boxes[a], lay.boxes[b], label, ox, oy)


def _render_box(ax, patch, box, p, ox, oy):
    x, y = ox + p.x, oy + p.y
    style = "round,pad=0,rounding_size=6" if box.kind in ("op", "cluster") else "square,pad=0"
    ax.add_patch(patch((x, y), p.w, p.h, boxstyle=style, facecolor=COLORS[box.kind],
                       edgecolor="#444444", linewidth=1.6 if box.kind == "output" else 0.8,
                       linestyle="--" if box.kind == "cluster" else "-"))
    text_h = len(box.label.split("\n")) * LINE_H + 2 * PAD
    ty = y + (text_h / 2 if box.children else p.h / 2)
    ax.text(x + p.w / 2, ty, box.label, ha="center", va="center", fontsize=11,
            family="monospace")
    cx = x + (p.w - sum(lay.width for _, lay in p.children)) / (len(p.children) + 1)
    for child, child_lay in p.children:
        _render(ax, patch, child, child_lay, cx, y + text_h)
        cx += child_lay.width + (p.w - sum(lay.width for _, lay in p.children)) / (len(p.children) + 1)


def _render_edge(ax, p, q, label, ox, oy):
    start = (ox + p.x + p.w / 2, oy + p.y + p.h)
    end = (ox + q.x + q.w / 2, oy + q.y)
    # An edge that skips layers bends, so that it passes beside the boxes in between.
    bend = 0.25 if q.y - (p.y + p.h) > 2 * GAP_Y else 0.0
    ax.annotate("", xy=end, xytext=start,
                arrowprops=dict(arrowstyle="-|>", color="#666666", linewidth=0.8,
                                shrinkA=0, shrinkB=0, connectionstyle=f"arc3,rad={bend}"))
    if label:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2, label, fontsize=8,
                ha="center", va="center", color="#333333",
                bbox=dict(boxstyle="square,pad=0.1", facecolor="white", edgecolor="none"))
