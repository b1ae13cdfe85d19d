"""Guards of compiled specializations: settling float guards on compiled values,
and the advice given when a guard keeps failing.

The trace evaluates a guard with the reference interpreter (numpy); the native
code evaluates the same graph with its own rounding: float sums are
reassociated into vector partial sums and the transcendental functions are
tracegrad's own (docs/codegen.md, "Reassociation policy"; docs/mathlib.md).
A guard on a float value (`float(np.sum(x))`, a `.item()` used as a Python
number) can therefore differ in its last bits between the two.

When a specialization is compiled, its native code runs once on the inputs it
was traced with.  A float guard whose compiled value differs from the traced
one by no more than the rounding bound

    8 * eps * (n + 1) * max(|traced value|, S)

(eps: of the narrowest float dtype the value is computed from) is *settled*: from then on it expects the compiled value, compared exactly, so
the native code agrees with itself on every later call.  `n` is the number of
terms summed on the way to the guarded value (the reduced extents of the sums
and the contracted dimensions of the products it depends on, those inside a
`scan` or `while` body once per iteration) and `S` the
largest sum of magnitudes `sum|x_i|` among those sums; `(n - 1) * eps * S` is
the textbook bound for any summation order, and the factor 8 covers the few
ULPs of the transcendental functions.  A larger difference, or a different
bool or integer (a comparison within rounding of its threshold), is not
accepted: the specialization is dropped and that call runs uncompiled, with a
warning naming the guard (numpy's decision, the function's own); after
`max_specializations` such compiles for one signature, its calls that no
specialization serves run uncompiled without trying again (compile.py).

Only the traced inputs are checked this way: on later calls the native code decides
each guard with its own rounding.  A comparison whose value falls within rounding of
its threshold for those inputs (`if np.sum(x) >= c` with numpy's sum and the
compiled one on either side of `c`) can therefore take the other branch than an eager
run of the same function, a whole-branch difference that rounding alone would not
make; results near such a boundary are as uncertain as the value compared.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from tracegrad.ir import Graph, Var
from tracegrad.ir.control_flow import split_scan, split_while
from tracegrad.ir.interpreter import eval_eqns, eval_graph, read

ROUNDING_FACTOR = 8
FLOAT_VALUE_KINDS = ("float", "value")  # float() and a .item() used as a Python number


class GuardMismatch(RuntimeError):
    """A specialization's native code decides a guard differently on the inputs it was
    traced with, by more than rounding."""


def settle(graph: Graph, arrays, guards, values) -> list:
    """`guards` with float guards expecting the compiled `values` (see the module docstring).

    Raises GuardMismatch for a guard that differs by more than the rounding bound.
    """
    settled, env = [], None
    for g, v in zip(guards, values):
        if g.holds(v):
            settled.append(g)
            continue
        if not _is_float(g):
            raise _mismatch(g, v, "a comparison within rounding of its threshold decides "
                                  "differently in compiled code")
        env = env if env is not None else _bind(graph, arrays)
        if abs(float(v) - float(g.expected)) > tolerance(graph, g, env):
            raise _mismatch(g, v, "more than the rounding difference between eager and "
                                  "compiled evaluation")
        settled.append(dataclasses.replace(g, expected=np.array(v, copy=True)))
    return settled


def _dtype(guard) -> np.dtype:
    return guard.var.aval.dtype  # a Var or, after constant folding, a Literal


def _is_float(guard) -> bool:
    return _dtype(guard).kind == "f" and np.size(guard.expected) == 1


def _mismatch(guard, value, why) -> GuardMismatch:
    return GuardMismatch(
        f"guard {guard.kind} at {guard.src}: the compiled code gives "
        f"{np.asarray(value).tolist()!r} on the inputs it was traced with, where the trace saw "
        f"{np.asarray(guard.expected).tolist()!r} ({why}). Make the decision with "
        "tracegrad.numpy.where, or run the function uncompiled.")


def _bind(graph, arrays) -> dict:
    env = dict(zip(graph.constvars, graph.constvals))
    env.update(zip(graph.invars, arrays))
    return env


def tolerance(graph: Graph, guard, env) -> float:
    """The rounding bound of the module docstring for `guard` (evaluates its sums in `env`)."""
    eqns = _ancestors(graph, guard.var)
    eval_eqns(eqns, env)
    n, magnitude = 0, abs(float(guard.expected))
    for e in eqns:
        terms, size = _summed(e, env)
        n += terms
        magnitude = max(magnitude, size)
    return ROUNDING_FACTOR * _eps(guard, eqns) * (n + 1) * magnitude


def _eps(guard, eqns) -> float:
    """The largest eps among the float values the guarded one is computed from: a float64
    value converted from float32 results carries float32's rounding."""
    floats = [o.aval.dtype for e in eqns for o in e.outs if o.aval.dtype.kind == "f"]
    return max(float(np.finfo(d).eps) for d in floats + [_dtype(guard)])


def _summed(eqn, env):
    """(terms per result, largest sum of magnitudes) of a summing equation, or of the sums
    inside a loop (added over its iterations: their roundings compound through the carry);
    (0, 0) otherwise."""
    name = eqn.prim.name
    if name in LOOPS:
        return LOOPS[name](eqn, [read(env, a) for a in eqn.inputs])
    if name == "reduce_sum":
        x = np.abs(np.asarray(read(env, eqn.inputs[0]), dtype=np.float64))
        terms = int(np.prod([x.shape[a] for a in eqn.params["axes"]], dtype=np.int64))
        return terms, float(np.max(np.sum(x, axis=eqn.params["axes"]), initial=0.0))
    if name == "dot":
        a, b = (np.abs(np.asarray(read(env, v), dtype=np.float64)) for v in eqn.inputs)
        return a.shape[-1], float(np.max(np.matmul(a, b), initial=0.0))
    return 0, 0.0


def _body(graph, args):
    """(terms, largest magnitude, outputs) of one application of a loop body graph."""
    env = eval_eqns(graph.eqns, _bind(graph, args))
    terms, size = 0, 0.0
    for e in graph.eqns:
        t, m = _summed(e, env)
        terms, size = terms + t, max(size, m)
    return terms, size, [read(env, v) for v in graph.outvars]


def _scan_summed(eqn, args):
    p = eqn.params
    consts, carry, xs = split_scan(args, p["num_consts"], p["num_carry"])
    terms, size = 0, 0.0
    for i in (range(p["length"] - 1, -1, -1) if p["reverse"] else range(p["length"])):
        t, m, outs = _body(p["body"], consts + carry + [np.asarray(x)[i] for x in xs])
        terms, size, carry = terms + t, max(size, m), outs[:p["num_carry"]]
    return terms, size


def _while_summed(eqn, args):
    p = eqn.params
    cc, bc, carry = split_while(args, p["cond_nconsts"], p["body_nconsts"])
    terms, size = 0, 0.0
    while bool(eval_graph(p["cond_graph"], *cc, *carry)[0]):
        t, m, carry = _body(p["body_graph"], bc + carry)
        terms, size = terms + t, max(size, m)
    return terms, size


LOOPS = {"scan": _scan_summed, "while": _while_summed}


def _ancestors(graph: Graph, var) -> list:
    """The equations `var` depends on, in graph order."""
    needed = {var} if isinstance(var, Var) else set()
    found = []
    for e in reversed(graph.eqns):
        if any(o in needed for o in e.outs):
            found.append(e)
            needed.update(a for a in e.inputs if isinstance(a, Var))
    return found[::-1]


# ---- advice when a guard keeps failing ----------------------------------------------

def location(guard):
    """(filename, lineno) of the user's line that made `guard`, or None."""
    return location_of(guard.src)


def location_of(src):
    """(filename, lineno) of a `file:line` source location, or None."""
    file, _, line = (src or "").rpartition(":")
    return (file, int(line)) if file and line.isdigit() else None


def advice(guard) -> str:
    if guard.kind in FLOAT_VALUE_KINDS:
        return ("Keep the value symbolic: compare it as `x.item() > c` (which guards only the "
                "comparison's outcome), compute with it as an array (`y * x`), or branch with "
                "tracegrad.cond or tracegrad.numpy.where.")
    return ("Make the decision in the program: tracegrad.numpy.where or tracegrad.cond instead "
            "of a Python branch, or pass the value as a static argument.")
