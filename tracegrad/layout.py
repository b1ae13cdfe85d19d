"""A layered (Sugiyama-style) layout for small DAG pictures, in pure Python.

A `Diagram` is boxes (text labels, optionally holding sub-diagrams: the
bodies of loops and branches) and edges between them.  `layout` places it
top to bottom:
  * layers by longest path from the sources, so every edge points down;
  * the order within a layer by a few barycenter sweeps (fewer crossings);
  * sizes from the text (monospace), a box holding sub-diagrams as large as
    their own layouts side by side, laid out first (recursively).
Coordinates are in points, y growing downwards; `Placed` boxes give the
top-left corner and size.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CHAR_W, LINE_H, PAD = 6.6, 13.0, 6.0  # monospace 11 pt text, in points
GAP_X, GAP_Y, TITLE_H = 18.0, 34.0, 16.0
SWEEPS = 4


@dataclass
class Box:
    label: str
    kind: str = "op"  # op | input | const | output | leaf | cluster
    children: list = field(default_factory=list)  # Diagrams drawn inside (cluster)


@dataclass
class Diagram:
    boxes: dict = field(default_factory=dict)  # id -> Box, in insertion order
    edges: list = field(default_factory=list)  # (source id, target id, label)
    title: str = ""

    def add(self, key, box: Box):
        self.boxes[key] = box
        return key

    def connect(self, source, target, label=""):
        if source in self.boxes and target in self.boxes:
            self.edges.append((source, target, label))


@dataclass
class Placed:
    x: float
    y: float
    w: float
    h: float
    children: list = field(default_factory=list)  # (Diagram, Layout) of a cluster's bodies


@dataclass
class Layout:
    boxes: dict  # id -> Placed
    width: float
    height: float


def _text_size(label: str) -> tuple:
    lines = label.split("\n")
    return max(len(s) for s in lines) * CHAR_W + 2 * PAD, len(lines) * LINE_H + 2 * PAD


def _size(box: Box) -> tuple:
    w, h = _text_size(box.label)
    if not box.children:
        return w, h, []
    inner = [(d, layout(d)) for d in box.children]
    width = sum(lay.width for _, lay in inner) + GAP_X * (len(inner) + 1)
    height = max(lay.height for _, lay in inner) + h + TITLE_H + GAP_X
    return max(w, width), height, inner


def _layers(diagram: Diagram) -> dict:
    """id -> layer: the longest path from a source (edges in insertion order are a DAG)."""
    preds = {k: [] for k in diagram.boxes}
    for a, b, _ in diagram.edges:
        preds[b].append(a)
    layer = {}
    for key in _topological(diagram, preds):
        layer[key] = 1 + max((layer[p] for p in preds[key]), default=-1)
    return layer


def _topological(diagram, preds) -> list:
    order, seen = [], set()
    for root in diagram.boxes:
        stack = [(root, False)]
        while stack:
            key, done = stack.pop()
            if done:
                order.append(key)
            elif key not in seen:
                seen.add(key)
                stack.append((key, True))
                stack += [(p, False) for p in preds[key] if p not in seen]
    return order


def _order(diagram: Diagram, layer: dict) -> list:
    """Boxes per layer, ordered by barycenter sweeps over their neighbours."""
    rows = [[] for _ in range(max(layer.values(), default=-1) + 1)]
    for key in diagram.boxes:
        rows[layer[key]].append(key)
    ups = {k: [] for k in diagram.boxes}
    downs = {k: [] for k in diagram.boxes}
    for a, b, _ in diagram.edges:
        downs[a].append(b)
        ups[b].append(a)
    for sweep in range(SWEEPS):
        neighbours, sequence = (ups, rows[1:]) if sweep % 2 == 0 else (downs, rows[-2::-1])
        pos = {k: i for row in rows for i, k in enumerate(row)}
        for row in sequence:
            row.sort(key=lambda k: _barycenter(neighbours[k], pos, pos[k]))
    return rows


def _barycenter(keys, pos, default) -> float:
    return sum(pos[k] for k in keys) / len(keys) if keys else default


def layout(diagram: Diagram) -> Layout:
    """Place every box of `diagram` (module docstring)."""
    sizes = {k: _size(b) for k, b in diagram.boxes.items()}
    rows = _order(diagram, _layers(diagram))
    widths = [sum(sizes[k][0] for k in row) + GAP_X * (len(row) - 1) for row in rows]
    width = max(widths, default=0.0) + 2 * GAP_X
    placed, y = {}, GAP_Y / 2 + (TITLE_H if diagram.title else 0.0)
    for row, row_width in zip(rows, widths):
        x = (width - row_width) / 2
        height = max(sizes[k][1] for k in row)
        for k in row:
            w, h, inner = sizes[k]
            placed[k] = Placed(x, y + (height - h) / 2, w, h, inner)
            x += w + GAP_X
        y += height + GAP_Y
    return Layout(placed, width, y - GAP_Y / 2)
