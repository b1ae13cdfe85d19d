"""Control-flow primitives: `cond`, `while`, `scan` (JAX's `cond_p`, `while_p`,
`scan_p`), and `while_vjp`, the reverse-mode form of `while`.

Each equation holds its bodies as closed graphs in its params: a body reads
only its own inputs and constants, so everything it needs from the enclosing
graph is an explicit operand, in a fixed order of roles:

  * `cond`:  inputs `[index, *operands]`; `branches=(Graph, ...)` each maps the
    operands to outputs of identical avals.  `index` is an integer scalar,
    clamped into range as JAX's `switch` does (0 is the false branch of
    `tracegrad.cond`).
  * `while`: inputs `[*cond_consts, *body_consts, *init]`; `cond_graph` maps
    `cond_consts + carries -> bool[]`, `body_graph` maps `body_consts + carries
    -> carries`.  Outputs: the final carries.
  * `scan`:  inputs `[*consts, *init, *xs]`; `body` maps `consts + carries +
    x slices -> carries + y slices`; every x has leading axis `length`, read at
    index i on step i (from the last index when `reverse`).  Outputs: the final
    carries, then the ys stacked along a new leading axis of `length` (ys[i] is
    produced by the step that read xs[i]).
  * `while_vjp`: the cotangents of a `while` (see `_while_vjp_impl`); built by
    reverse-mode autodiff only.

The shape rules check every body's avals against the operands and that a loop
body returns its carries' avals exactly; the numpy implementations run the
bodies with the reference interpreter.  VJP/JVP rules and DCE rules need the
passes and are registered on these primitives by `passes/autodiff_control.py`
and `passes/control_flow.py`.
"""
from __future__ import annotations

import numpy as np

from . import interpreter
from .core import Graph, ShapedArray
from .primitives import Primitive, ShapeError, bind, register

__all__ = ["cond", "while_", "scan", "while_vjp"]


# ---- shared checks ---------------------------------------------------------------------

def fail(name, msg, *avals):
    shown = f" (operands: {', '.join(map(str, avals))})" if avals else ""
    raise ShapeError(f"{name}: {msg}{shown}")


def _check_graph(name, what, graph):
    if not isinstance(graph, Graph):
        fail(name, f"{what} must be a Graph, got {type(graph).__name__}")


def _check_avals(name, what, got, expected):
    """`got` (a body's avals) must equal `expected` (the operands' avals) one by one."""
    got, expected = list(got), list(expected)
    if got != expected:
        shown = lambda avals: "(" + ", ".join(map(str, avals)) + ")"  # noqa: E731
        fail(name, f"{what} are {shown(got)} but must be {shown(expected)}")


def _check_count(name, what, n, avals):
    if not isinstance(n, int) or not 0 <= n <= len(avals):
        fail(name, f"{what}={n!r} does not fit {len(avals)} operands", *avals)


def _scalar_bool(name, what, avals):
    if len(avals) != 1 or avals[0] != ShapedArray((), np.bool_):
        fail(name, f"{what} must return one bool[] value, it returns "
                   f"({', '.join(map(str, avals))})")


# ---- cond ---------------------------------------------------------------------------------

def _cond_rule(index, *operands, branches):
    if index.shape != () or not np.issubdtype(index.dtype, np.integer):
        fail("cond", "the index must be an integer scalar", index)
    if not isinstance(branches, tuple) or not branches:
        fail("cond", "branches must be a non-empty tuple of Graphs")
    for k, branch in enumerate(branches):
        _check_graph("cond", f"branch {k}", branch)
        _check_avals("cond", f"the inputs of branch {k}", branch.in_avals, [*operands])
        _check_avals("cond", f"the outputs of branch {k}", branch.out_avals,
                     branches[0].out_avals)
    return list(branches[0].out_avals)


def _cond_impl(index, *operands, branches):
    k = int(np.clip(int(index), 0, len(branches) - 1))
    return interpreter.eval_graph(branches[k], *operands)


register(Primitive("cond", "control", _cond_rule, _cond_impl, multiple_results=True,
                   doc="run the branch the (clamped) index selects"))


def cond(index, operands, branches):
    """Bind `cond`: `branches[clip(index)](*operands)` (a list of outputs)."""
    return bind("cond", index, *operands, branches=tuple(branches))


# ---- while ---------------------------------------------------------------------------------

def split_while(args, cond_nconsts, body_nconsts):
    return (list(args[:cond_nconsts]), list(args[cond_nconsts:cond_nconsts + body_nconsts]),
            list(args[cond_nconsts + body_nconsts:]))


def _check_while_params(avals, cond_graph, body_graph, cond_nconsts, body_nconsts):
    _check_count("while", "cond_nconsts", cond_nconsts, avals)
    _check_count("while", "body_nconsts", body_nconsts, avals[cond_nconsts:])
    _check_graph("while", "cond_graph", cond_graph)
    _check_graph("while", "body_graph", body_graph)
    cc, bc, carries = split_while(avals, cond_nconsts, body_nconsts)
    _check_avals("while", "the inputs of cond_graph", cond_graph.in_avals, cc + carries)
    _scalar_bool("while", "cond_graph", cond_graph.out_avals)
    _check_avals("while", "the inputs of body_graph", body_graph.in_avals, bc + carries)
    _check_avals("while", "the outputs of body_graph (the carries)", body_graph.out_avals,
                 carries)
    return cc, bc, carries


def _while_rule(*avals, cond_graph, body_graph, cond_nconsts, body_nconsts):
    _, _, carries = _check_while_params(list(avals), cond_graph, body_graph, cond_nconsts,
                                        body_nconsts)
    return carries


def _while_impl(*args, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, carry = split_while(args, cond_nconsts, body_nconsts)
    while bool(interpreter.eval_graph(cond_graph, *cc, *carry)[0]):
        carry = interpreter.eval_graph(body_graph, *bc, *carry)
    return [np.asarray(c) for c in carry]


register(Primitive("while", "control", _while_rule, _while_impl, multiple_results=True,
                   doc="apply body_graph to the carries while cond_graph holds"))


def while_(cond_consts, body_consts, init, cond_graph, body_graph):
    """Bind `while` (a list of final carries)."""
    return bind("while", *cond_consts, *body_consts, *init, cond_graph=cond_graph,
                body_graph=body_graph, cond_nconsts=len(cond_consts),
                body_nconsts=len(body_consts))


# ---- scan -----------------------------------------------------------------------------------

def split_scan(args, num_consts, num_carry):
    return (list(args[:num_consts]), list(args[num_consts:num_consts + num_carry]),
            list(args[num_consts + num_carry:]))


def _scan_rule(*avals, body, num_consts, num_carry, length, reverse):
    avals = list(avals)
    _check_count("scan", "num_consts", num_consts, avals)
    _check_count("scan", "num_carry", num_carry, avals[num_consts:])
    if not isinstance(length, int) or length < 0 or not isinstance(reverse, bool):
        fail("scan", f"length={length!r} must be an int >= 0 and reverse={reverse!r} a bool")
    _check_graph("scan", "body", body)
    consts, carries, xs = split_scan(avals, num_consts, num_carry)
    for x in xs:
        if x.ndim == 0 or x.shape[0] != length:
            fail("scan", f"every xs operand needs a leading axis of length {length}", x)
    slices = [ShapedArray(x.shape[1:], x.dtype) for x in xs]
    _check_avals("scan", "the inputs of body", body.in_avals, consts + carries + slices)
    outs = body.out_avals
    if len(outs) < num_carry:
        fail("scan", f"body returns {len(outs)} values, fewer than its {num_carry} carries")
    _check_avals("scan", "the carry outputs of body", outs[:num_carry], carries)
    return carries + [ShapedArray((length,) + y.shape, y.dtype) for y in outs[num_carry:]]


def _scan_impl(*args, body, num_consts, num_carry, length, reverse):
    consts, carry, xs = split_scan(args, num_consts, num_carry)
    xs = [np.asarray(x) for x in xs]
    ys = [np.empty((length,) + a.shape, a.dtype) for a in body.out_avals[num_carry:]]
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = interpreter.eval_graph(body, *consts, *carry, *[x[i] for x in xs])
        carry = outs[:num_carry]
        for y, value in zip(ys, outs[num_carry:]):
            y[i] = value
    return [np.asarray(c) for c in carry] + ys


register(Primitive("scan", "control", _scan_rule, _scan_impl, multiple_results=True,
                   doc="loop over the leading axis of xs, carrying state, stacking ys"))


def scan(consts, init, xs, body, length, reverse=False):
    """Bind `scan` (a list: final carries, then stacked ys)."""
    return bind("scan", *consts, *init, *xs, body=body, num_consts=len(consts),
                num_carry=len(init), length=int(length), reverse=bool(reverse))


# ---- while_vjp: reverse mode of while ---------------------------------------------------------

def _while_vjp_rule(*avals, cond_graph, body_graph, body_bwd, cond_nconsts, body_nconsts,
                    active_consts, active_carries):
    avals = list(avals)
    n_ct = len(active_carries)
    primal = avals[:len(avals) - n_ct]
    _, bc, carries = _check_while_params(primal, cond_graph, body_graph, cond_nconsts,
                                         body_nconsts)
    _check_graph("while_vjp", "body_bwd", body_bwd)
    if any(not 0 <= i < len(bc) for i in active_consts) or any(
            not 0 <= i < len(carries) for i in active_carries):
        fail("while_vjp", "active_consts/active_carries index outside the operands")
    ct_avals = [carries[i] for i in active_carries]
    _check_avals("while_vjp", "the carry cotangents", avals[len(primal):], ct_avals)
    _check_avals("while_vjp", "the inputs of body_bwd", body_bwd.in_avals,
                 bc + carries + ct_avals)
    out = [bc[i] for i in active_consts] + ct_avals
    _check_avals("while_vjp", "the outputs of body_bwd", body_bwd.out_avals, out)
    return out


def _while_vjp_impl(*args, cond_graph, body_graph, body_bwd, cond_nconsts, body_nconsts,
                    active_consts, active_carries):
    """Run the loop forward, keeping every carry that enters the body (the tape),
    then apply `body_bwd` to the tape in reverse.

    `body_bwd: body_consts + carries + ct_carries[active] -> ct_consts[active] +
    ct_carries[active]` recomputes one step's forward values from its input
    carry.  The tape holds trip-count x (all carries) bytes while this runs.
    """
    n_ct = len(active_carries)
    cc, bc, carry = split_while(args[:len(args) - n_ct], cond_nconsts, body_nconsts)
    tape = []
    while bool(interpreter.eval_graph(cond_graph, *cc, *carry)[0]):
        tape.append(carry)
        carry = interpreter.eval_graph(body_graph, *bc, *carry)
    ct = [np.asarray(c) for c in args[len(args) - n_ct:]]
    acc = [np.zeros(np.shape(bc[i]), np.asarray(bc[i]).dtype) for i in active_consts]
    for step in reversed(tape):
        outs = interpreter.eval_graph(body_bwd, *bc, *step, *ct)
        acc = [a + d for a, d in zip(acc, outs[:len(acc)])]
        ct = outs[len(acc):]
    return acc + ct


register(Primitive("while_vjp", "control", _while_vjp_rule, _while_vjp_impl,
                   multiple_results=True,
                   doc="cotangents of a while loop: forward with a tape of carries, then "
                       "the body's VJP in reverse"))


def while_vjp(cond_consts, body_consts, init, cts, cond_graph, body_graph, body_bwd,
              active_consts, active_carries):
    """Bind `while_vjp`: cotangents of the active body consts, then of the active carries."""
    return bind("while_vjp", *cond_consts, *body_consts, *init, *cts, cond_graph=cond_graph,
                body_graph=body_graph, body_bwd=body_bwd, cond_nconsts=len(cond_consts),
                body_nconsts=len(body_consts), active_consts=tuple(active_consts),
                active_carries=tuple(active_carries))
