"""Candidate runs for rerolling: stretches of equations that repeat by signature.

An equation's signature is what must be equal for two equations to be the same
step of a loop body: primitive, params, the kind and aval of each operand and
the avals of its outputs.  Two things are left out because they may change from
one iteration to the next and still roll (`reroll_roles.py` decides): the value
of a literal operand and the `starts` of a `slice` (`x[t]`).

Candidate periods are the distances between consecutive equations of equal
signature and small multiples of them (a body made of two equal halves repeats by
signature at half its period): the top distances with their multiples, then every
distance, most frequent first, then the other multiples.  For each period, one
vectorized comparison of the signature sequence with itself shifted finds the maximal
runs.
"""
from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np

from tracegrad.ir import Graph, Literal

from .cse import _freeze

MAX_PERIODS = 24   # distinct periods tried per graph, most frequent first
MULTIPLES = 4      # each frequent distance d also proposes 2d .. MULTIPLES*d
TOP_MULTIPLIED = 3  # the most frequent distances whose multiples are tried first


def _param_key(v):
    """A hashable key for a param value; bodies by their text and constants."""
    if isinstance(v, Graph):
        digest = hashlib.sha1()
        for c in v.constvals:
            digest.update(np.ascontiguousarray(c).tobytes())
        return ("graph", str(v), tuple((c.dtype.str, c.shape) for c in v.constvals),
                digest.digest())
    if isinstance(v, tuple) and any(isinstance(g, Graph) for g in v):
        return ("graphs",) + tuple(_param_key(g) for g in v)
    return _freeze(v)


def signature(eqn) -> tuple:
    params = eqn.params
    if eqn.prim.name == "slice":
        params = {k: v for k, v in params.items() if k != "starts"}
    pkey = tuple(sorted((k, _param_key(v)) for k, v in params.items()))
    ins = tuple(("lit", a.aval.dtype.str) if isinstance(a, Literal)
                else (a.aval.shape, a.aval.dtype.str) for a in eqn.inputs)
    outs = tuple((v.aval.shape, v.aval.dtype.str) for v in eqn.outs)
    return (eqn.prim.name, pkey, ins, outs)


def signature_ids(eqns) -> np.ndarray:
    """One small int per equation; equal ints mean equal signatures."""
    table: dict = {}
    return np.array([table.setdefault(signature(e), len(table)) for e in eqns], dtype=np.int64)


def _periods(ids: np.ndarray, min_trips: int) -> list[int]:
    """Candidate periods: frequent distances to the previous equal signature."""
    last: dict[int, int] = {}
    distances: Counter = Counter()
    for i, s in enumerate(ids.tolist()):
        if s in last:
            distances[i - last[s]] += 1
        last[s] = i
    frequent = [d for d, n in distances.most_common() if n >= min_trips]
    # the top distances' multiples (a body of two equal halves), then every distance: a
    # body whose stages differ (an integrator's) repeats only at its whole period, one of
    # the distances (an equation that occurs once per trip) ranked below the halves',
    # then the other multiples
    top = [d * m for d in frequent[:TOP_MULTIPLIED] for m in range(1, MULTIPLES + 1)]
    rest = [d * m for m in range(2, MULTIPLES + 1) for d in frequent[TOP_MULTIPLIED:]]
    periods = list(dict.fromkeys(top + frequent + rest))
    return [p for p in periods if p * (min_trips + 1) <= len(ids)][:MAX_PERIODS]


def _runs_of(ids: np.ndarray, period: int, min_len: int):
    """(start, whole periods) of each maximal stretch that repeats with `period`."""
    same = np.concatenate([[False], ids[period:] == ids[:-period], [False]])
    edges = np.flatnonzero(np.diff(same.astype(np.int8)))
    for a, b in zip(edges[::2].tolist(), edges[1::2].tolist()):
        trips = (b - a + period) // period  # ids[i] == ids[i+p] on [a, b): [a, b+p) repeats
        if trips * period >= min_len:
            yield a, trips


def candidate_runs(eqns, min_eqns: int, min_trips: int) -> list[tuple[int, int, int]]:
    """(start, period, trips) candidates, the most equations covered first, then
    the shortest period (a body of period p also repeats with period 2p)."""
    if len(eqns) < 2 * min_trips:
        return []
    ids = signature_ids(eqns)
    found = []
    for p in _periods(ids, min_trips):
        found.extend((a, p, trips) for a, trips in _runs_of(ids, p, max(min_eqns, p * (min_trips + 1))))
    return sorted(found, key=lambda r: (-r[1] * r[2], r[1], r[0]))
