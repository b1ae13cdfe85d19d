"""Row writes into a buffer as one concatenation of what was written.

Tracing `hs[t] = h` (or `hs = hs.at[t].set(h)`) with a static index gives
`where(M, pad(h), hs)`, M a constant mask of the written region.  A Python loop
writing one row per step makes a chain of T such selects, each over the whole
buffer: fused, every element of the result evaluates all T of them (compile time
and run time grow as T^2), and the loop cannot roll, since each step's pad has
other params.

`concat_writes` rewrites every value of such a chain that something other than the
chain reads: the rows each write covers last come from that write, the others from
the buffer the chain started from, as one `concatenate` along axis 0 of slices.  A
Python loop then ends in the concatenation of its steps' rows, which rolls
(passes/reroll.py) like `np.stack` of a list.  Only writes of whole rows qualify:
pads with unit steps that start at 0 and are full along every axis but the first,
under a constant mask that is True exactly on the written rows.

Invariant: each rewritten value equals the select chain's, element for element
(M's check is exact; a select copies its operands' bits).
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import Eqn, Graph, Var
from tracegrad.ir.core import ShapedArray
from tracegrad.ir.primitives import PRIMITIVES

from .cse import Redirects
from .dce import dce


def concat_writes(graph: Graph) -> Graph:
    """`graph` with its chains of row writes read as concatenations (module docstring);
    the same graph when it has none."""
    if not any(e.prim.name == "where" for e in graph.eqns):
        return graph
    graph = _without_identity_reshapes(graph)  # (`.at[t].set` adds one per write)
    consts = {v: np.asarray(c) for v, c in zip(graph.constvars, graph.constvals)}
    producers = {o: e for e in graph.eqns for o in e.outs}
    chains = {}  # var -> (base var, [(lo, hi, rows var)] in write order)
    for eqn in graph.eqns:
        write = _row_write(eqn, consts, producers)
        if write is not None:
            base, writes = chains.get(eqn.inputs[2], (eqn.inputs[2], []))
            chains[eqn.out] = (base, writes + [write])
    if not chains:
        return graph
    readers = _chain_readers(graph, chains)
    if not readers:
        return graph
    eqns = []
    for eqn in graph.eqns:
        if eqn.outs[0] in readers:
            eqns.extend(_concatenation(eqn, *chains[eqn.outs[0]]))
        else:
            eqns.append(eqn)
    return dce(graph.replace(eqns=eqns))


def _without_identity_reshapes(graph: Graph) -> Graph:
    """`graph` with each reshape to its operand's own shape replaced by the operand
    (simplify's reshape_same, alone: the traced graph is otherwise left as traced)."""
    redirects, eqns = Redirects(), []
    for e in graph.eqns:
        e = redirects.eqn(e)
        if e.prim.name == "reshape" and isinstance(e.inputs[0], Var) \
                and e.out.aval == e.inputs[0].aval:
            redirects.set(e.out, e.inputs[0])
        else:
            eqns.append(e)
    return redirects.finish(graph, eqns) if len(redirects) else graph


def _row_write(eqn, consts, producers):
    """(lo, hi, rows var) when `eqn` is where(M, pad(u), x) writing whole rows of x."""
    if eqn.prim.name != "where" or len(eqn.inputs) != 3:
        return None
    mask, padded, x = eqn.inputs
    if mask not in consts or not isinstance(padded, Var) or not isinstance(x, Var):
        return None
    pad = producers.get(padded)
    if pad is None or pad.prim.name != "pad" or padded.aval != x.aval:
        return None
    u, starts, steps = pad.inputs[0], pad.params["starts"], pad.params["steps"]
    shape = x.aval.shape
    if not isinstance(u, Var) or not shape or any(s != 1 for s in steps):
        return None
    if any(starts[1:]) or u.aval.shape[1:] != shape[1:]:
        return None
    lo, hi = starts[0], starts[0] + u.aval.shape[0]
    if hi <= lo:
        return None
    region = np.zeros(shape, bool)
    region[lo:hi] = True
    m = consts[mask]
    if m.shape != shape or m.dtype != np.bool_ or not np.array_equal(m, region):
        return None
    return lo, hi, u


def _chain_readers(graph, chains) -> set:
    """The chain values read by something other than the next write of their chain."""
    read = {v for v in graph.outvars if isinstance(v, Var)} | {g.var for g in graph.guards}
    for eqn in graph.eqns:
        skip = eqn.inputs[2] if eqn.outs[0] in chains else None
        read |= {a for a in eqn.inputs if isinstance(a, Var) and a is not skip}
    return read & set(chains)


def _pieces(rows: int, base, writes):
    """[(source var, first row in the source, rows)] covering rows 0..rows-1 in order:
    each row from the last write covering it, else from the base."""
    owner = [(base, r) for r in range(rows)]
    for lo, hi, u in writes:
        owner[lo:hi] = [(u, r - lo) for r in range(lo, hi)]
    pieces = []
    for src, at in owner:
        if pieces and pieces[-1][0] is src and pieces[-1][1] + pieces[-1][2] == at:
            pieces[-1] = (src, pieces[-1][1], pieces[-1][2] + 1)
        else:
            pieces.append((src, at, 1))
    return pieces


def _concatenation(eqn, base, writes) -> list:
    """Equations computing `eqn`'s output as the concatenation of its pieces."""
    out = eqn.out
    shape, dtype = out.aval.shape, out.aval.dtype
    eqns, parts = [], []
    for src, at, n in _pieces(shape[0], base, writes):
        if at == 0 and n == src.aval.shape[0]:
            parts.append(src)
            continue
        part = Var(ShapedArray((n,) + shape[1:], dtype))
        params = dict(starts=(at,) + (0,) * (len(shape) - 1), steps=(1,) * len(shape),
                      sizes=(n,) + shape[1:])
        eqns.append(Eqn(PRIMITIVES["slice"], [src], params, part, eqn.src))
        parts.append(part)
    if len(parts) == 1:
        eqns.append(Eqn(PRIMITIVES["convert"], [parts[0]], {"dtype": dtype}, out, eqn.src))
    else:
        eqns.append(Eqn(PRIMITIVES["concatenate"], parts, {"axis": 0}, out, eqn.src))
    return eqns
