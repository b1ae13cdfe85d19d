"""Derivative rules of the control-flow primitives (`ir/control_flow.py`).

Registered on the primitives when `passes.autodiff` is imported (ir/ cannot
import the passes these rules need).  They follow the multi-output protocol of
`passes/autodiff.py`: a JVP rule records one equation computing outputs and
tangents, a VJP rule records the forward equation and returns a pullback.

* JVP of all three: the same loop or branch over the JVP of its bodies,
  carrying (primal, tangent) pairs.  Which carries have a nonzero tangent is a
  fixed point: a carry is active if its initial value is or if the body makes
  it depend on an active value.
* `scan`, reverse mode: the forward scan runs the forward half of the body's
  VJP (`vjp_split`) and also stacks, per step, the residuals its backward half
  reads; the pullback is a scan in the opposite direction over the backward
  half, carrying the carries' cotangents and the sums of the consts'
  cotangents and producing the xs' cotangents as its ys.  Residuals that are
  consts or xs are not stacked: the reverse scan reads the originals.
* `cond`, reverse mode: the pullback is a `cond` on the same index over each
  branch's VJP (which recomputes the branch's forward values).
* `while`, reverse mode (which JAX refuses): the trip count is known only at
  run time, so the IR, whose shapes are static, cannot hold the per-step
  carries as a value.  The pullback is one `while_vjp` equation that runs the
  loop again, pushing every carry that enters the body on a tape that grows,
  then applies the body's VJP to the tape in reverse.  Memory: trip count x
  the bytes of all carries, while the pullback runs.  `while_vjp` has a JVP
  (forward-over-reverse second derivatives) but no VJP.
"""
from __future__ import annotations

from tracegrad.ir import ops
from tracegrad.ir.core import Var
from tracegrad.ir.primitives import PRIMITIVES

from . import autodiff
from .control_graphs import (fixed_point, flags, float_flags, outputs, permuted, relabel,
                             split3, spread, where)


# ---- JVP --------------------------------------------------------------------------------------

def _jvp_body(body, groups_on, out_on, in_groups, out_groups):
    """`jvp_graph(body)` with inputs interleaved per role (each group, then its
    tangents) and outputs likewise; groups are index ranges of the body."""
    which = [f for g in groups_on for f in g]
    jbody = autodiff.jvp_graph(body, which=which, out_which=out_on)
    n_in, n_out = len(body.invars), len(body.outvars)
    t_in = _tangent_positions(n_in, groups_on)
    t_out = _tangent_positions(n_out, [out_on[s:e] for s, e in out_groups])
    in_order = [i for g, (s, e) in enumerate(in_groups) for i in list(range(s, e)) + t_in[g]]
    out_order = [i for g, (s, e) in enumerate(out_groups) for i in list(range(s, e)) + t_out[g]]
    return relabel(permuted(jbody, in_order, out_order))


def _tangent_positions(n, groups_on):
    """Indices, after the n primals, of the tangents of each group."""
    positions, k = [], n
    for on in groups_on:
        count = sum(on)
        positions.append(list(range(k, k + count)))
        k += count
    return positions


def _tangents_for(tangents, flags, primals):
    """The tangent values of the flagged positions (zeros where a tangent is None)."""
    return [t if t is not None else ops.full_like(p, 0.0)
            for t, p, f in zip(tangents, primals, flags) if f]


def _scan_jvp(tangents, *primals, body, num_consts, num_carry, length, reverse):
    nc, nk = num_consts, num_carry
    consts, init, xs = split3(primals, nc, nk)
    t_consts, t_init, t_xs = split3(tangents, nc, nk)
    c_on, x_on = flags(t_consts, nc), flags(t_xs, len(xs))
    k_on, out_on = fixed_point(body, c_on, flags(t_init, nk), x_on, nk)
    k_on = float_flags(init, k_on)
    y_on = out_on[nk:]
    nb = len(body.invars)
    jbody = _jvp_body(body, [c_on, k_on, x_on], k_on + y_on,
                      [(0, nc), (nc, nc + nk), (nc + nk, nb)],
                      [(0, nk), (nk, len(body.outvars))])
    outs = ops.scan(consts + _tangents_for(t_consts, c_on, consts),
                    init + _tangents_for(t_init, k_on, init),
                    xs + _tangents_for(t_xs, x_on, xs), jbody, length, reverse)
    nkt = sum(k_on)
    carries, t_carries = outs[:nk], outs[nk:nk + nkt]
    ys, t_ys = outs[nk + nkt:nk + nkt + len(y_on)], outs[nk + nkt + len(y_on):]
    return carries + ys, spread(k_on, t_carries) + spread(y_on, t_ys)



def _while_jvp(tangents, *primals, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, init = split3(primals, cond_nconsts, body_nconsts)
    _, t_bc, t_init = split3(tangents, cond_nconsts, body_nconsts)
    b_on = flags(t_bc, len(bc))
    k_on, _ = fixed_point(body_graph, b_on, flags(t_init, len(init)), [], len(init))
    k_on = float_flags(init, k_on)
    nb, nk = len(bc), len(init)
    jbody = _jvp_body(body_graph, [b_on, k_on], k_on, [(0, nb), (nb, nb + nk)], [(0, nk)])
    extra = [Var(v.aval) for v in where(k_on, cond_graph.invars[cond_nconsts:])]
    test = cond_graph.replace(invars=list(cond_graph.invars) + extra)
    outs = ops.while_(cc, bc + _tangents_for(t_bc, b_on, bc),
                      init + _tangents_for(t_init, k_on, init), test, jbody)
    return outs[:nk], spread(k_on, outs[nk:])


def _cond_jvp(tangents, index, *operands, branches):
    on = flags(tangents[1:], len(operands))
    out_on = [any(flags) for flags in zip(*[autodiff.active_outputs(b, on) for b in branches])]
    n_out = len(branches[0].outvars)
    jbranches = [_jvp_body(b, [on], out_on, [(0, len(operands))], [(0, n_out)])
                 for b in branches]
    # _jvp_body interleaves per group: with one group the order is already
    # (operands, tangents) -> (outputs, tangents)
    outs = ops.cond(index, list(operands) + _tangents_for(tangents[1:], on, operands), jbranches)
    return outs[:n_out], spread(out_on, outs[n_out:])


# ---- VJP: cond, while ------------------------------------------------------------------------

def _branch_vjp(branch, on, ct_on):
    """`operands + cts[ct_on] -> operand cts[on]` of one branch."""
    full = autodiff.vjp_graph(branch, wrt=[i for i, f in enumerate(on) if f], cts=ct_on)
    n_out = len(branch.outvars)
    return relabel(outputs(full, range(n_out, len(full.outvars))))


def _cond_vjp(active, index, *operands, branches):
    on = float_flags(operands, active[1:])
    outs = ops.cond(index, list(operands), branches)

    def pullback(cts):
        ct_on = [c is not None for c in cts]
        grads = ops.cond(index, list(operands) + [c for c in cts if c is not None],
                         [_branch_vjp(b, on, ct_on) for b in branches])
        return [None] + spread(on, grads)
    return outs, pullback


def _while_vjp(active, *primals, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, init = split3(primals, cond_nconsts, body_nconsts)
    _, b_on, k_on = split3(active, cond_nconsts, body_nconsts)
    b_on = float_flags(bc, b_on)
    k_on, _ = fixed_point(body_graph, b_on, float_flags(init, k_on), [], len(init))
    outs = ops.while_(cc, bc, init, cond_graph, body_graph)

    def pullback(cts):
        ct = [c if c is not None else ops.full_like(p, 0.0)
              for c, p, f in zip(cts, init, k_on) if f]
        full = autodiff.vjp_graph(body_graph, wrt=[i for i, f in enumerate(b_on + k_on) if f],
                                  cts=k_on)
        bwd = relabel(outputs(full, range(len(body_graph.outvars), len(full.outvars))))
        grads = ops.while_vjp(cc, bc, init, ct, cond_graph, body_graph, bwd,
                              [i for i, f in enumerate(b_on) if f],
                              [i for i, f in enumerate(k_on) if f])
        n_b = sum(b_on)
        return [None] * len(cc) + spread(b_on, grads[:n_b]) + spread(k_on, grads[n_b:])
    return outs, pullback


def _while_vjp_jvp(tangents, *primals, cond_graph, body_graph, body_bwd, cond_nconsts,
                   body_nconsts, active_consts, active_carries):
    """Forward mode through the reverse sweep: the same `while_vjp` on the loop
    extended with tangent carries, whose backward step is the JVP of `body_bwd`
    (its cotangent carries gain their tangents, as do the const sums)."""
    n_ct = len(active_carries)
    cc, bc, init = split3(primals[:len(primals) - n_ct], cond_nconsts, body_nconsts)
    ct, t_ct = list(primals[len(primals) - n_ct:]), list(tangents[len(primals) - n_ct:])
    _, t_bc, t_init = split3(tangents[:len(primals) - n_ct], cond_nconsts, body_nconsts)
    nb, nk = len(bc), len(init)
    b_on = [t is not None or i in active_consts for i, t in enumerate(t_bc)]
    k_on = [t is not None or i in active_carries for i, t in enumerate(t_init)]
    k_on, _ = fixed_point(body_graph, b_on, k_on, [], nk)
    jbody = _jvp_body(body_graph, [b_on, k_on], k_on, [(0, nb), (nb, nb + nk)], [(0, nk)])
    extra = [Var(v.aval) for v in where(k_on, cond_graph.invars[cond_nconsts:])]
    test = cond_graph.replace(invars=list(cond_graph.invars) + extra)
    n_bwd_in, n_bwd_out = len(body_bwd.invars), len(body_bwd.outvars)
    jbwd = _jvp_body(body_bwd, [b_on, k_on, [True] * n_ct], [True] * n_bwd_out,
                     [(0, nb), (nb, nb + nk), (nb + nk, n_bwd_in)],
                     [(0, len(active_consts)), (len(active_consts), n_bwd_out)])
    t_of = lambda flags, n, i: n + sum(flags[:i])  # noqa: E731  (index of i's tangent)
    grads = ops.while_vjp(
        cc, bc + _tangents_for(t_bc, b_on, bc), init + _tangents_for(t_init, k_on, init),
        ct + _tangents_for(t_ct, [True] * n_ct, ct), test, jbody, jbwd,
        list(active_consts) + [t_of(b_on, nb, i) for i in active_consts],
        list(active_carries) + [t_of(k_on, nk, i) for i in active_carries])
    na = len(active_consts)
    outs = grads[:na] + grads[2 * na:2 * na + n_ct]
    return outs, grads[na:2 * na] + grads[2 * na + n_ct:]


def _no_reverse_of_reverse(*args, **params):
    raise autodiff.MissingRuleError(
        "while_vjp (the reverse mode of while_loop) has no VJP: reverse-over-reverse "
        "derivatives through while_loop are not supported. Use forward-over-reverse "
        "(tracegrad.jvp of tracegrad.grad) for second derivatives, or scan / fori_loop with "
        "Python-int bounds")


def _register():
    from .autodiff_scan import scan_vjp

    rules = {"scan": (scan_vjp, _scan_jvp), "cond": (_cond_vjp, _cond_jvp),
             "while": (_while_vjp, _while_jvp), "while_vjp": (_no_reverse_of_reverse, _while_vjp_jvp)}
    for name, (vjp, jvp) in rules.items():
        PRIMITIVES[name].vjp, PRIMITIVES[name].jvp = vjp, jvp


_register()
