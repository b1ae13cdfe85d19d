"""Planning of control-flow equations (`cond`, `while`, `scan`, `while_vjp`).

A control-flow equation is a buffer boundary, like a dot: its operands are
buffers it reads in place (a chain of reshapes of a buffer is that buffer's
memory; a computed operand is stored first, a literal is filled into a temp)
and each of its outputs is a buffer.  Its task is a kernel of its own, which
emission turns into a `LoopStep` or `CondStep` (semantics in
`passes/kernels.py`): each body is planned once, recursively, by the same
planner (`fuse`), whatever the trip count.

Buffers the step needs beyond its operands and outputs are temps of the
enclosing program: per carry the second half of its double buffer, the
`while` predicate, and for `while_vjp` the forward carries and the
(acc + ct) double buffers of the reverse loop.  The reverse loop's body is
`body_bwd` with the consts' cotangents accumulated in it (`reverse_body`).
"""
from __future__ import annotations

from dataclasses import dataclass

from tracegrad.ir import ops
from tracegrad.ir.core import Literal, Var
from tracegrad.passes.kernels import Buffer, CondStep, LoopStep, TapeGrad

from .expand import NeedBuffer
from .tasks import StoreSpec, Task, identity_store


@dataclass(eq=False)
class ControlSpec:
    """A control-flow equation and the buffer read for each of its inputs."""

    eqn: object
    operands: list


# ---- tasks -------------------------------------------------------------------------------------

def _in_place(plan, atom):
    """The buffer holding `atom`'s memory (through reshapes), or None."""
    src = atom
    while isinstance(src, Var) and src not in plan.buffers:
        eqn = plan.producer.get(src)
        if eqn is None or eqn.prim.name != "reshape":
            return None
        src = eqn.inputs[0]
    return plan.buffers.get(src) if isinstance(src, Var) else None


def _computed(plan, atom):
    """The computed var to store so that `atom` becomes a buffer."""
    while atom not in plan.buffers and plan.producer[atom].prim.name == "reshape" \
            and isinstance(plan.producer[atom].inputs[0], Var):
        atom = plan.producer[atom].inputs[0]
    return atom


def operand_buffers(plan, eqn):
    """(the buffer read for each input, the fill tasks of literal inputs); NeedBuffer
    for a computed operand (the planner stores it and plans again)."""
    operands, fills = [], []
    for atom in eqn.inputs:
        if isinstance(atom, Literal):
            buf = Buffer("t", (), atom.aval.dtype, "temp")
            fills.append(Task((), [identity_store(buf, atom, ())]))
        else:
            buf = _in_place(plan, atom)
            if buf is None:
                raise NeedBuffer(_computed(plan, atom))
        operands.append(buf)
    return operands, fills


def control_tasks(plan, eqn) -> list:
    """The step's task, after the fills of its literal operands; NeedBuffer for a
    computed operand (the planner stores it and plans again)."""
    operands, fills = operand_buffers(plan, eqn)
    stores = [StoreSpec(plan.buffers[v], v, None, None) for v in eqn.outs]
    return fills + [Task((), stores, after=fills, control=ControlSpec(eqn, operands))]


# ---- emission ----------------------------------------------------------------------------------

def _temp(aval) -> Buffer:
    return Buffer("t", aval.shape, aval.dtype, "temp")


def _fuse(graph):
    from . import fuse  # the package's planner; imported here to avoid an import cycle
    return fuse(graph)


def _split(items, *sizes) -> list:
    out, start = [], 0
    for n in sizes:
        out.append(list(items[start:start + n]))
        start += n
    out.append(list(items[start:]))
    return out


def _emit_cond(eqn, ops_, outs, name):
    return CondStep(name, ops_[0], ops_[1:], outs,
                    [_fuse(b) for b in eqn.params["branches"]])


def _emit_scan(eqn, ops_, outs, name):
    p = eqn.params
    consts, init, xs = _split(ops_, p["num_consts"], p["num_carry"])
    carries, ys = outs[:p["num_carry"]], outs[p["num_carry"]:]
    scratch = [_temp(a) for a in p["body"].out_avals[:p["num_carry"]]]
    return LoopStep(name, _fuse(p["body"]), consts, init, xs, carries, scratch, ys,
                    length=p["length"], reverse=p["reverse"])


def _while_parts(eqn, ops_, carries):
    """The forward while loop of a `while` or `while_vjp` equation, writing `carries`."""
    p = eqn.params
    cc, bc, init = _split(ops_, p["cond_nconsts"], p["body_nconsts"])[:3]
    scratch = [_temp(a) for a in p["body_graph"].out_avals]
    pred = _temp(p["cond_graph"].out_avals[0])
    return dict(body=_fuse(p["body_graph"]), consts=bc, init=init, xs=[], carries=carries,
                scratch=scratch, ys=[], cond=_fuse(p["cond_graph"]), cond_consts=cc, pred=pred)


def _emit_while(eqn, ops_, outs, name):
    return LoopStep(name, **_while_parts(eqn, ops_, outs))


def reverse_body(eqn):
    """`body_consts + carries + acc + ct -> acc + ct'`: `body_bwd` with the active
    consts' cotangents added to `acc` (the sums over trips of `while_vjp`)."""
    from tracegrad.passes.control_graphs import graph_of, inline
    p = eqn.params
    bwd, nb = p["body_bwd"], p["body_nconsts"]
    avals = p["body_graph"].in_avals
    acc_avals = [avals[i] for i in p["active_consts"]]
    n_acc, n_in = len(acc_avals), len(avals)

    def step(b, *ins):
        acc, rest = list(ins[n_in:n_in + n_acc]), list(ins[:n_in]) + list(ins[n_in + n_acc:])
        grads = inline(b, bwd, rest)
        return [ops.add(a, g) for a, g in zip(acc, grads[:n_acc])] + list(grads[n_acc:])
    ct_avals = [avals[nb + i] for i in p["active_carries"]]
    return graph_of(step, list(avals) + acc_avals + ct_avals)


def _emit_while_vjp(eqn, ops_, outs, name):
    p = eqn.params
    n_ct = len(p["active_carries"])
    primal, cts = ops_[:len(ops_) - n_ct], ops_[len(ops_) - n_ct:]
    carries = [_temp(a) for a in p["body_graph"].out_avals]
    parts = _while_parts(eqn, primal, carries)
    grad = TapeGrad(_fuse(reverse_body(eqn)), parts["consts"], cts, outs,
                    [_temp(b) for b in outs], len(p["active_consts"]))
    return LoopStep(name, grad=grad, **parts)


EMITTERS = {"cond": _emit_cond, "scan": _emit_scan, "while": _emit_while,
            "while_vjp": _emit_while_vjp}


def emit_control(task, name):
    """The LoopStep or CondStep of a control task (bodies planned here, once)."""
    spec = task.control
    emitter = EMITTERS.get(spec.eqn.prim.name)
    if emitter is None:
        raise NotImplementedError(f"fusion has no plan for control-flow primitive "
                                  f"{spec.eqn.prim.name!r}")
    return emitter(spec.eqn, list(spec.operands), [s.buffer for s in task.stores], name)
