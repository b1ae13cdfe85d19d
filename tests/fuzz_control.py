"""Control-flow operation kinds of the fuzzer: cond, switch, while_loop, fori_loop, scan.

Bodies are lambdas over their parameters (and, sometimes, outer nodes they
close over) built from total, bounded functions (sin, tanh, products with
tanh, small constants), so no domain or kink can be crossed inside a loop;
carries are updated as a contraction `k c + (1 - k) tanh(e)` so that values
stay bounded for any trip count.  Every parameter and closed-over value has
the dtype class of the carry, so the body keeps the carry's type.  Branch
predicates are sums a margin away from their threshold; trip counts come from
Python ints or from int nodes (away from truncation steps).
"""
from __future__ import annotations

import re

import numpy as np

from fuzz_ops import _broadcastable, _threshold, to_int


def _expr(g, names, depth=2) -> str:
    """A random smooth expression that reads at least one of `names`."""
    if depth == 0 or g.coin(0.25):
        return g.choice(names)
    a = _expr(g, names, depth - 1)
    kind = g.choice(["sin", "cos", "tanh", "add", "mul", "scale", "shift"])
    c = float(f"{g.rng.uniform(-1.2, 1.2):.2g}")
    return {"sin": f"np.sin({a})", "cos": f"np.cos({a})", "tanh": f"np.tanh({a})",
            "add": f"({a} + {_expr(g, names, depth - 1)})",
            "mul": f"({a} * np.tanh({_expr(g, names, depth - 1)}))",
            "scale": f"({a} * {c!r})", "shift": f"({a} + {c!r})"}[kind]


def _branch(g, params, outer) -> str:
    """A branch body: an expression that reads a parameter (so it has their shape)."""
    for _ in range(20):
        e = _expr(g, params + outer)
        if any(re.search(rf"\b{p}\b", e) for p in params):
            return e
    return params[0]


def _update(g, carry, names) -> str:
    k = float(f"{g.rng.uniform(0.2, 0.9):.2g}")
    return f"({carry} * {k!r} + np.tanh({_expr(g, names)}) * {1 - k:.2g})"


def _closure(g, shape, sym):
    """Maybe an outer node for a body to read: of dtype class `sym`, broadcasting into `shape`."""
    cands = [n for n in g.nodes if n.kind == "f" and n.sym == sym
             and _broadcastable(n.shape, shape) and np.broadcast_shapes(n.shape, shape) == shape]
    return [g.choice(cands).name] if cands and g.coin(0.4) else []


def _same_type_operand(g, x):
    """A second operand of x's shape and dtype class: x itself, a node or a new input."""
    cands = [n for n in g.nodes if n.kind == "f" and n.sym == x.sym and n.shape == x.shape]
    if x.sym == "F" and g.coin(0.3):
        return g.new_input(x.shape)
    return g.choice(cands)


def _predicate(g, slot):
    """(node, source) of a traced bool scalar: the node's sum against a threshold a margin
    away; the node is argument `slot` of the template."""
    p = g.pick()
    t = _threshold(g, [float(np.sum(v)) for v in p.values()])
    return p, f"np.sum({{{slot}}}) {g.choice(['>', '<'])} {t!r}"


def cond(g):
    x = g.pick()
    y = _same_type_operand(g, x)
    p, pred = _predicate(g, 2)
    outer = _closure(g, x.shape, x.sym)
    branches = [f"lambda a, b: {_branch(g, ['a', 'b'], outer)}" for _ in range(2)]
    g.emit(f"L.cond({pred}, {branches[0]}, {branches[1]}, {{0}}, {{1}})", x, y, p)


def switch(g):
    x = g.pick()
    p, pred = _predicate(g, 1)
    n = int(g.rng.integers(2, 4))
    branches = ", ".join(f"lambda a: {_branch(g, ['a'], _closure(g, x.shape, x.sym))}"
                         for _ in range(n))
    index = f"np.astype({pred}, onp.int32) + {int(g.rng.integers(0, 3))}"
    g.emit(f"L.switch({index}, [{branches}], {{0}})", x, p)


def _trip_count(g, slot):
    """(source, operands) of a loop bound: a Python int, or a traced int scalar <= 4
    (argument `slot` of the template)."""
    if g.coin(0.5):
        return str(int(g.rng.integers(0, 5))), []
    i = g.pick("i") if any(n.kind == "i" for n in g.nodes) else to_int(g)
    return f"np.minimum(np.abs(np.sum({{{slot}}})), 4)", [i]


def while_loop(g):
    x = g.pick()
    bound, ops = _trip_count(g, 1)
    body = _update(g, "s[1]", ["s[1]"] + _closure(g, x.shape, x.sym))
    g.emit(f"L.while_loop(lambda s: s[0] < {bound}, lambda s: (s[0] + 1, {body}), "
           f"(onp.int32(0), {{0}}))[1]", x, *ops)


def fori_loop(g):
    x = g.pick()
    bound, ops = _trip_count(g, 1)
    names = ["c"] + _closure(g, x.shape, x.sym)
    if g.coin(0.5):
        names.append("c * np.astype(i, c.dtype)")
    lower = g.choice(["0", "1"])
    g.emit(f"L.fori_loop({lower}, {bound}, lambda i, c: {_update(g, 'c', names)}, {{0}})",
           x, *ops)


def scan(g):
    xs = g.pick("f", lambda n: n.ndim >= 1)
    carry_shape = xs.shape[1:]
    cands = [n for n in g.nodes if n.kind == "f" and n.sym == xs.sym and n.shape == carry_shape]
    init = g.choice(cands) if cands and g.coin(0.5) else (
        g.new_input(carry_shape) if xs.sym == "F" else g.const(carry_shape, "W"))
    reverse = g.choice(["", ", reverse=True"])
    part = g.choice(["[0]", "[1]"])
    names = ["c"] + _closure(g, carry_shape, xs.sym)
    if g.coin(0.2):  # no xs: a fixed number of steps
        y = g.choice([_expr(g, names), "np.sum(c)", "c"])
        n = int(g.rng.integers(0, 4))
        g.emit(f"L.scan(lambda c, x: ({_update(g, 'c', names)}, {y}), {{1}}, None, "
               f"length={n}{reverse}){part}", xs, init)
        return
    y = g.choice([_expr(g, ["c", "x"]), "np.sum(c * x)", "c"])
    g.emit(f"L.scan(lambda c, x: ({_update(g, 'c', names + ['x'])}, {y}), {{1}}, {{0}}"
           f"{reverse}){part}", xs, init)


# custom_jvp rules with their exact tangents: (fun, jvp) sources over a parameter `a`, the
# constant `{c}`; the fuzzer checks them in both modes (reverse is the JVP's transpose).
_CUSTOM = [
    ("np.sin(a) * {c}", "np.cos(p[0]) * {c} * t[0]"),
    ("np.tanh(a) + a * {c}", "(1 - np.tanh(p[0]) ** 2 + {c}) * t[0]"),
    ("a * a * {c}", "2 * {c} * p[0] * t[0]"),
]


def custom_jvp(g):
    """`L.custom_jvp(fun)` with its rule (defjvp returns the rule: a one-line definition)."""
    x = g.pick()
    fun, tangent = g.choice(_CUSTOM)
    c = repr(float(f"{g.rng.uniform(-1.5, 1.5):.2g}"))
    fun, tangent = fun.format(c=c), tangent.format(c=c)
    rule = f"lambda p, t: ((lambda a: {fun})(p[0]), {tangent})"
    g.emit(f"(lambda f: (f.defjvp({rule}), f)[1])(L.custom_jvp(lambda a: {fun}))({{0}})", x)


def checkpoint(g):
    """`L.checkpoint(fun)`: rematerialized in reverse mode (optimization barriers)."""
    x = g.pick()
    g.emit(f"L.checkpoint(lambda a: {_branch(g, ['a'], _closure(g, x.shape, x.sym))})({{0}})", x)


WEIGHTS = {"cond": (cond, 1.5), "switch": (switch, 1), "while_loop": (while_loop, 1),
           "fori_loop": (fori_loop, 1), "scan": (scan, 1.5), "custom_jvp": (custom_jvp, 0.5),
           "checkpoint": (checkpoint, 0.5)}
