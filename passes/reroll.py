"""Loop rerolling: a Python loop that tracing unrolled becomes a `scan` again.

Tracing runs a Python `for` loop, so its N iterations arrive as N copies of the
same equations, and every later stage (gradient, cleanup, fusion planning,
codegen) pays N times.  This pass finds such runs and rolls them back into one
`scan` equation whose body is one iteration, so the gradient comes from the
scan rule and compile time no longer grows with the trip count.

A run is a stretch of the equation list that repeats with period `p`
(`runs.py` finds candidates by signature: primitive, params, operand kinds and
avals).  Iteration 0 of a run stays as it is (it is peeled: it defines every
carry's initial value).  Iterations 1..L are rolled when each operand of each
equation plays the same role in all of them (`roles.py`):

  * made by the same iteration: an edge inside the body;
  * made by the iteration before: a carry;
  * defined before the run, the same value every time: a constant of the body;
  * a literal, or a constant array, that changes per iteration: an `xs` input
    (a stacked constant);
  * `x[t]` on an array defined before the run, with `t` advancing by a fixed
    step: an `xs` input (one strided slice of that array).

The first iteration where a role differs ends the run.  Values of rolled
iterations read after the run become scan outputs: a value read only from the
last iteration becomes an extra carry, any other is stacked as `ys` and read
back with a slice.  The rolled program computes the same operations in the same
order as the unrolled one.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> h = x = b.new_input(ShapedArray((3,), np.float64))
>>> for _ in range(20):
...     h = ops.add(ops.mul(h, x), 1.0)
>>> g = reroll(b.build([h]), min_eqns=8)
>>> [e.prim.name for e in g.eqns], g.eqns[-1].params["length"]
(['mul', 'add', 'scan'], 19)
"""
from __future__ import annotations

import os

from tracegrad.ir.core import map_subgraphs

from .reroll_build import roll
from .reroll_roles import producers, rolled_run
from .reroll_runs import candidate_runs

ENV = "TRACEGRAD_REROLL"
# A run is rolled when it has at least this many rolled iterations and equations:
# a short loop gains nothing in compile time and keeps cross-iteration fusion.
MIN_TRIPS = 4
MIN_EQNS = 64
MAX_ROLLS = 64  # runs rolled per graph (each one rescans the graph)
# Unrolled, fusion joins iterations: a chain of elementwise steps on a large array
# is one pass over memory, and the gradient recomputes instead of storing every
# step.  Rolled, each iteration is a pass and the gradient stacks its residuals.
# So a loop is rolled when its body's arrays are small (at most this many
# elements: the runtime is call overhead, not memory), or when it is so long that
# compiling it unrolled would cost more than the passes.
MAX_BODY_ELEMENTS = 2048
MIN_EQNS_LARGE = 20000
# A program that is differentiated next is rolled sooner: unrolled, its gradient is one
# long kernel (the per-step reductions over the chain of steps) that LLVM compiles in
# seconds, while rolled, its cost is the stacked residuals, one slice per step, and
# each step is a pass: cheap while the slices stay in cache, slower beyond
# (`python -m benchmarks.loop_gradients` measures both ways).  So past GRAD_MIN_EQNS
# equations, where the unrolled compile starts to take seconds, a loop also rolls if
# its largest array has at most GRAD_BODY_ELEMENTS.
GRAD_MIN_EQNS = 600
GRAD_BODY_ELEMENTS = 1 << 13


def enabled() -> bool:
    """Rerolling is on unless TRACEGRAD_REROLL=0 (read on every compile)."""
    return os.environ.get(ENV, "1").strip() not in ("0", "off", "false", "no")


def reroll(graph, min_eqns: int = MIN_EQNS, min_trips: int = MIN_TRIPS, gradient=False):
    """`graph` with its repeated runs rolled into `scan`s (bodies included); `gradient`:
    the graph is differentiated next (see RESIDUAL_BYTES)."""
    def again(g):
        return reroll(g, min_eqns, min_trips, gradient)
    graph = _in_bodies(graph, again)
    for _ in range(MAX_ROLLS):
        run = _first_rollable(graph, min_eqns, min_trips, gradient)
        if run is None:
            return graph
        graph = roll(graph, run, again)
    return graph


def _in_bodies(graph, again):
    """Bodies of the control-flow equations already in `graph`, rerolled."""
    eqns = [map_subgraphs(e, again) for e in graph.eqns]
    if all(a is b for a, b in zip(eqns, graph.eqns)):
        return graph
    return graph.replace(eqns=eqns)


def _first_rollable(graph, min_eqns, min_trips, gradient):
    """The largest candidate run whose roles hold for enough iterations, or None."""
    where = None
    for start, period, trips in candidate_runs(graph.eqns, min_eqns, min_trips):
        where = producers(graph) if where is None else where
        run = rolled_run(graph, where, start, period, trips)
        if run is not None and run.length >= min_trips and run.length * period >= min_eqns:
            if _worth_rolling(graph.eqns, run, gradient):
                return run
    return None


def _worth_rolling(eqns, run, gradient) -> bool:
    eqn_count, elements = run.length * run.period, _largest(eqns, run)
    if eqn_count >= MIN_EQNS_LARGE or elements <= MAX_BODY_ELEMENTS:
        return True
    return gradient and eqn_count >= GRAD_MIN_EQNS and elements <= GRAD_BODY_ELEMENTS


def _largest(eqns, run) -> int:
    """Elements of the largest array one iteration reads or makes.  An `x[t]` slice
    (`run.slices`) reads only its slice of the stacked array, which the scan's xs
    hand the body: the stacked array itself is no body array."""
    sizes = [a.aval.size for j in range(run.period) for e in [run.eqn(eqns, 1, j)]
             for a in ([] if j in run.slices else list(e.inputs)) + list(e.outs)]
    return max(sizes, default=0)
