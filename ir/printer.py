"""jaxpr-style printing: `{ lambda consts ; inputs . let eqns in (outs) }`.

Names are generated in order of first appearance (a, b, ..., z, ba, ...), so
the text of a graph is stable across runs and usable in golden tests.
"""
from __future__ import annotations

import numpy as np

from .core import DTYPES, Graph, Literal, short_dtype


def _name(i: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = letters[i % 26] + s
        i //= 26
        if i == 0:
            return s


# words the parser reads as something else (ir/parser.py): literals, dtypes, keywords
_WORDS = {"True", "False", "None", "inf", "nan", *DTYPES.values()}  # string params quoted
_RESERVED = {"inf", "nan", "let", "in", "lambda", *_WORDS}


# The bits of each float dtype's NaN that prints as plain `nan` (numpy's and x86's quiet NaN).
_QUIET_NAN = {np.dtype(np.float64): 0x7FF8000000000000, np.dtype(np.float32): 0x7FC00000}
FLOAT_BITS = {np.dtype(np.float64): np.uint64, np.dtype(np.float32): np.uint32}  # (the parser's too)


def _literal(value) -> str:
    """`repr(value.tolist())`, except NaNs: a NaN with its sign bit set prints as -nan (a
    guard compares the sign, and x86's inf - inf gives that NaN), and one with other bits
    than the quiet NaN's as nan(0x<bits>), so that the text keeps every bit (a program
    saved and loaded computes identically, and the disk cache keys on this text)."""
    a = np.asarray(value)
    if a.ndim:
        return "[" + ", ".join(_literal(x) for x in a) + "]"
    v = a.item()
    if not (isinstance(v, float) and v != v):
        return repr(v)
    sign = "-" if np.signbit(a) else ""
    if a.dtype not in FLOAT_BITS:
        return sign + "nan"
    bits = int(a.view(FLOAT_BITS[a.dtype])) & ~(1 << (8 * a.dtype.itemsize - 1))
    return sign + ("nan" if bits == _QUIET_NAN[a.dtype] else f"nan(0x{bits:x})")


class Namer:
    """Variable names, unique across a graph and every body printed inside it: a body
    (closed: it sees only its own inputs) gets fresh names each time it is printed, so
    a Graph object that two equations share is printed twice with different names."""

    def __init__(self, count=None, printed=None):
        self.names = {}
        self.count = count if count is not None else [0]  # shared with the bodies' namers
        # every name each var got, in this namer and its bodies' (a shared body's
        # constant is printed under several names, each needing its value when saved)
        self.printed = printed if printed is not None else {}

    def __call__(self, var) -> str:
        name = self.names.get(var)
        if name is None:
            name = _name(self.count[0])
            self.count[0] += 1
            while name in _RESERVED:
                name = _name(self.count[0])
                self.count[0] += 1
            self.names[var] = name
            self.printed.setdefault(var, []).append(name)
        return name

    def body(self) -> "Namer":
        return Namer(self.count, self.printed)

    def atom(self, a) -> str:
        if isinstance(a, Literal):
            return f"{_literal(a.value)}:{short_dtype(a.aval.dtype)}[]"
        return self(a)

    def binder(self, var) -> str:
        return f"{self(var)}:{var.aval}"


def _param(v) -> str:
    if isinstance(v, np.dtype):
        return short_dtype(v)
    if isinstance(v, tuple):
        return "(" + ",".join(_param(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, str) and (not (v.isidentifier() and v.isascii()) or v in _WORDS):
        return repr(v)  # quoted, so that the text parses back as this string (ir/parser.py)
    return str(v)


def _has_body(v) -> bool:
    return isinstance(v, Graph) or (isinstance(v, tuple) and any(isinstance(g, Graph) for g in v))


def body_params(eqn) -> list:
    """(label, body) for each body of `eqn` in printed order: params sorted by name, a tuple
    param's bodies labelled `name[i]`."""
    out = []
    for k, v in sorted(eqn.params.items()):
        if isinstance(v, Graph):
            out.append((k, v))
        elif _has_body(v):
            out += [(f"{k}[{i}]", b) for i, b in enumerate(v) if isinstance(b, Graph)]
    return out


def _body_param(k, v, namer, indent) -> str:
    bodies = [v] if isinstance(v, Graph) else list(v)
    pad = " " * (indent + 2)
    texts = [_format(b, namer.body(), indent + 4) for b in bodies]
    if isinstance(v, Graph):
        return f"\n{pad}{k}={texts[0]}"
    return f"\n{pad}{k}=(" + "".join(f"\n{pad}  {t}" for t in texts) + f"\n{pad})"


def _params(eqn, namer, indent) -> str:
    items = sorted(eqn.params.items())
    plain = [f"{k}={_param(v)}" for k, v in items if not _has_body(v)]
    bodies = [_body_param(k, v, namer, indent) for k, v in items if _has_body(v)]
    if not plain and not bodies:
        return ""
    tail = f"\n{' ' * indent}" if bodies else ""
    return "[" + " ".join(plain) + "".join(bodies) + tail + "]"


def format_eqn(eqn, namer: Namer, indent: int = 4) -> str:
    params = _params(eqn, namer, indent)
    args = " ".join(namer.atom(a) for a in eqn.inputs)
    outs = " ".join(namer.binder(v) for v in eqn.outs)
    return f"{outs} = {eqn.prim.name}{params} {args}"


def _format(graph: Graph, namer: Namer, indent: int) -> str:
    consts = " ".join(namer.binder(v) for v in graph.constvars)
    ins = " ".join(namer.binder(v) for v in graph.invars)
    pad = " " * indent
    lines = [f"{{ lambda {consts + ' ; ' if consts else ''}{ins} . let"]
    lines += [pad + "  " + format_eqn(e, namer, indent + 2) for e in graph.eqns]
    lines.append(f"{pad}in ({', '.join(namer.atom(v) for v in graph.outvars)}) }}")
    for g in graph.guards:
        lines.append(f"{pad}guard {namer.atom(g.var)} == {_literal(g.expected)}  ({g.kind})")
    return "\n".join(lines)


def format_graph(graph: Graph, indent: int = 2, namer: Namer | None = None) -> str:
    """The graph as text; bodies of control flow print nested, with names unique
    across all scopes.  `namer` (filled while printing) maps each Var to its name."""
    return _format(graph, namer if namer is not None else Namer(), indent)
