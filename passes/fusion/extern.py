"""Planning of extern equations (kind "extern": sort, gather, LAPACK, cumsum, ...).

An extern equation is a buffer boundary, like a dot or a control-flow step:
fusion never fuses into it.  Each operand is a buffer it reads in place: a
buffer, or a chain of reshapes of one (the same row-major memory); any other
view (a transpose, a broadcast, a slice) or computed value is stored first
(`NeedBuffer`: the planner stores it and plans again), and a literal is filled
into a temp.  Each result is a buffer of its own, so the kernel always writes
fresh memory.  Its task is a kernel of its own, which emission turns into an
`ExternKernel` (semantics in passes/kernels.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from tracegrad.passes.kernels import ExternKernel

from .control import operand_buffers
from .tasks import StoreSpec, Task


@dataclass(eq=False)
class ExternSpec:
    """An extern equation and the buffer read for each of its operands."""

    eqn: object
    operands: list


def extern_tasks(plan, eqn) -> list:
    """The kernel's task, after the fills of its literal operands."""
    operands, fills = operand_buffers(plan, eqn)
    stores = [StoreSpec(plan.buffers[v], v, None, None) for v in eqn.outs]
    return fills + [Task((), stores, after=fills, control=ExternSpec(eqn, operands))]


def emit_extern(task, name) -> ExternKernel:
    eqn = task.control.eqn
    return ExternKernel(name, eqn.prim.name, dict(eqn.params), list(task.control.operands),
                        [s.buffer for s in task.stores], [a.aval for a in eqn.inputs],
                        [v.aval for v in eqn.outs])
