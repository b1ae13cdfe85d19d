"""Tasks: the stores that kernels make, one group of stores per stored value.

Elementwise values get a store over their own shape; reductions a reducing
store over their input's shape (reduced dims stride 0; an absorbed inner
reduction of the same kind folds in: sum(sum(x, 1), 0) is one sum over both
axes); concatenations one task per operand writing its region; strided pads
a zero fill, then a scatter; dots a DotKernel whose operands are buffers read
in place (transposed over the last two axes, or under another shape of the
same size).  Expanding a task alone records what it reads and computes.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from tracegrad.ir.core import Literal, Var
from tracegrad.passes.kernels import REDUCTION_OF_PRIMITIVE, Buffer, IndexMap

from .body import Body
from .expand import Expander, NeedBuffer, Read
from .views import View, identity_view, row_major_strides


@dataclass(eq=False)
class StoreSpec:
    buffer: Buffer
    atom: object  # the value stored, evaluated at `view` over the task's domain
    view: View
    index: IndexMap
    reduce: str | None = None


@dataclass(eq=False)
class DotSpec:
    a: Buffer
    b: Buffer
    batch: int
    m: int
    k: int
    n: int
    trans_a: bool
    trans_b: bool


@dataclass(eq=False)
class Task:
    domain: tuple
    stores: list
    roots: set = field(default_factory=set)  # stored vars this task computes itself
    after: list = field(default_factory=list)  # tasks that must run first (write order)
    dot: DotSpec | None = None
    # a kernel of its own: a control-flow step (control.ControlSpec) or an extern
    # routine (extern.ExternSpec)
    control: object = None
    inline: set = field(default_factory=set)  # temps recomputed here instead of loaded
    reads: list = field(default_factory=list)  # Reads
    instances: set = field(default_factory=set)  # the (var, view) pairs it computes
    children: dict = field(default_factory=dict)  # instance -> its operands' (atom, view)
    frontier: list = field(default_factory=list)  # instances left unexpanded (`Plan.stop`)
    # The latest expansion: its body, each store's value, the body's length after each store.
    body: object = None
    values: list = field(default_factory=list)
    marks: list = field(default_factory=list)
    expansion: object = None  # the Expansion those fields come from

    def writes(self):
        return [s.buffer for s in self.stores]


def identity_store(buf, atom, shape, reduce=None, index=None) -> StoreSpec:
    view = identity_view(shape)
    return StoreSpec(buf, atom, view, index or IndexMap(0, row_major_strides(shape)), reduce)


def _reduce_index(x_shape, axes):
    kept = row_major_strides([d for i, d in enumerate(x_shape) if i not in axes])
    it = iter(kept)
    return IndexMap(0, tuple(0 if i in axes else next(it) for i in range(len(x_shape))))


def _swaps_last_two(perm):
    n = len(perm)
    return n >= 2 and tuple(perm) == tuple(range(n - 2)) + (n - 1, n - 2)


def all_tasks(plan, needs) -> list:
    """Every task, after those whose buffers it reads; vars to store first go to `needs`."""
    tasks = []
    for e in plan.eqns:
        if e.outs[0] in plan.buffers:
            try:
                tasks.extend(_tasks_for(plan, e))
            except NeedBuffer as nb:
                needs.append(nb.var)
    for buf, atom in plan.copies:
        tasks.append(Task(atom.aval.shape, [identity_store(buf, atom, atom.aval.shape)]))
    return tasks


def _tasks_for(plan, eqn):
    if eqn.prim.kind == "control":
        from .control import control_tasks  # control.py builds on this module's Task
        return control_tasks(plan, eqn)
    if eqn.prim.kind == "extern":
        from .extern import extern_tasks  # extern.py builds on this module's Task
        return extern_tasks(plan, eqn)
    v, buf, name = eqn.out, plan.buffers[eqn.out], eqn.prim.name
    if v in plan.aliases:
        return []  # the value beneath the reshapes writes this buffer
    if eqn.prim.kind == "reduce":
        return [_reduce_task(plan, eqn, buf)]
    if eqn.prim.kind == "dot":
        return [_dot_task(plan, eqn, buf)]
    if name == "concatenate":
        return _concat_tasks(eqn, buf)
    if name == "pad" and any(abs(s) != 1 for s in eqn.params["steps"]):
        return _scatter_tasks(eqn, buf)
    return [Task(v.aval.shape, [identity_store(buf, v, v.aval.shape)], roots={v})]


def _reduce_task(plan, eqn, buf):
    x, axes = eqn.inputs[0], eqn.params["axes"]
    while x in plan.absorbed:  # reduce(reduce(y, a1), a2) = reduce(y, a1 + a2 mapped to y)
        inner = plan.producer[x]
        kept = [i for i in range(inner.inputs[0].aval.ndim) if i not in inner.params["axes"]]
        axes = tuple(sorted(set(inner.params["axes"]) | {kept[a] for a in axes}))
        x = inner.inputs[0]
    index = _reduce_index(x.aval.shape, axes)
    store = identity_store(buf, x, x.aval.shape, REDUCTION_OF_PRIMITIVE[eqn.prim.name], index)
    return Task(x.aval.shape, [store])


def _concat_tasks(eqn, buf):
    """One task per operand, writing its region of the output."""
    axis, st = eqn.params["axis"], row_major_strides(eqn.out.aval.shape)
    tasks, start = [], 0
    for x in eqn.inputs:
        index = IndexMap(start * st[axis], st)
        tasks.append(Task(x.aval.shape, [identity_store(buf, x, x.aval.shape, index=index)]))
        start += x.aval.shape[axis]
    return tasks


def _scatter_tasks(eqn, buf):
    """A strided pad: fill with zeros, then write the operand at its positions."""
    x, p, out = eqn.inputs[0], eqn.params, eqn.out.aval
    st = row_major_strides(out.shape)
    fill = Task(out.shape, [identity_store(buf, Literal(0, out.dtype), out.shape)])
    index = IndexMap(sum(s * t for s, t in zip(p["starts"], st)),
                     tuple(s * t for s, t in zip(p["steps"], st)))
    scatter = Task(x.aval.shape, [identity_store(buf, x, x.aval.shape, index=index)],
                   after=[fill])
    return [fill, scatter]


def _dot_task(plan, eqn, buf):
    (a, ta), (b, tb) = _dot_operand(plan, eqn.inputs[0]), _dot_operand(plan, eqn.inputs[1])
    xs, ys = eqn.inputs[0].aval.shape, eqn.inputs[1].aval.shape
    spec = DotSpec(a, b, math.prod(xs[:-2]), xs[-2], xs[-1], ys[-1], ta, tb)
    store = StoreSpec(buf, eqn.out, None, None)
    return Task(eqn.out.aval.shape, [store], dot=spec)


def _dot_operand(plan, atom):
    """(buffer, transposed) a DotKernel reads in place for `atom`; else NeedBuffer."""
    trans, eqn = False, plan.producer.get(atom)
    if (atom not in plan.buffers and eqn is not None and eqn.prim.name == "transpose"
            and _swaps_last_two(eqn.params["perm"])):
        atom, trans = eqn.inputs[0], True
    src = atom  # a reshape keeps the memory layout: read the buffer beneath it
    while isinstance(src, Var) and src not in plan.buffers:
        eqn = plan.producer.get(src)
        if eqn is None or eqn.prim.name != "reshape":
            break
        src = eqn.inputs[0]
    if isinstance(src, Var) and src in plan.buffers:
        return plan.buffers[src], trans
    raise NeedBuffer(src if isinstance(src, Var) and src in plan.producer else atom)


@dataclass(eq=False)
class Expansion:
    """A task's expansion as planning keeps it, made in `epoch`: valid while every
    var it consulted keeps its status (stored or not, in `Plan.stop` or not), but
    for frontier values stored since (see `_current`)."""

    epoch: int
    consulted: frozenset  # every var whose status the expansion depends on
    sourced: frozenset  # those asked about as the buffer beneath reshapes
    fields: tuple  # values, marks, reads, instances, body, children, frontier
    parents: dict | None = None  # instance -> the instances reading it (`recompute`)


def expansion_key(task) -> tuple:
    """What a task's expansion depends on besides the plan's state: its domain, the
    values it stores at their views, and the stored values it computes itself."""
    return (task.domain, tuple([(s.atom, s.view) for s in task.stores]),
            frozenset(task.roots | task.inline))


def expand_task(plan, task):
    """Evaluate a task once, alone, to learn what it reads and which values it computes.

    An expansion is a function of `expansion_key(task)` and the status of the vars
    it consulted, so one made in an earlier round (or before a trial join) is reused
    while none of those changed; its parts are never mutated after it is made.
    """
    if task.dot is not None:
        task.reads = [Read(task.dot.a, None, None), Read(task.dot.b, None, None)]
        return
    if task.control is not None:
        task.reads = [Read(b, None, None) for b in task.control.operands]
        return
    key = expansion_key(task)
    known = _current(plan, plan.expansions.get(key))
    if known is None:
        known = _expand(plan, task)
    plan.expansions[key] = task.expansion = known
    (task.values, task.marks, task.reads, task.instances, task.body, task.children,
     task.frontier) = known.fields


def _current(plan, known):
    """`known` as an expansion made now would be, or None where it must be made again.

    A frontier value is loaded from the buffer it gets if stored (`Plan.frontier_buffer`),
    so once stored it is the same load, read and body: it only leaves the frontier
    and the instances.  A value asked about beneath reshapes is read differently
    once stored (a flat load of its buffer), so storing it voids the expansion.
    """
    if known is None or plan.changed_since(known.epoch, known.consulted):
        return None
    if any(plan.promoted_since(known.epoch, v) for v in known.sourced):
        return None
    values, marks, reads, instances, body, children, frontier = known.fields
    stored = [k for k in frontier if plan.promoted_since(known.epoch, k[0])]
    if not stored:
        return known
    frontier = [k for k in frontier if k[0] not in plan.buffers]
    fields = (values, marks, reads, instances - set(stored), body, children, frontier)
    return Expansion(plan.epoch(), known.consulted, known.sourced, fields)


def _expand(plan, task) -> Expansion:
    return _expansion(plan, task, splice=True)


def _expansion(plan, task, splice) -> Expansion:
    """A fresh expansion of `task`; with `splice`, the temps it recomputes are replayed
    from their kept expansions (`_fragment`), which are made without."""
    epoch = plan.epoch()
    fragment = functools.partial(_fragment, plan, task.domain, frozenset(task.inline))
    ex = Expander(plan, task.domain, Body(), task.roots | task.inline, fragment,
                  frozenset(task.inline - task.roots) if splice else frozenset())
    values, marks = [], []
    for s in task.stores:
        values.append(ex.value(s.atom, s.view))
        marks.append(len(ex.body.instrs))
    if ex.needs:
        needs = list(dict.fromkeys(ex.needs))
        raise NeedBuffer(needs[0], needs[1:])
    sourced = frozenset(ex.sourced)
    consulted = frozenset([a for a, _ in ex.memo]) | sourced | ex.consulted
    return Expansion(epoch, consulted, sourced, (values, marks, list(dict.fromkeys(ex.reads)),
                                                 ex.instances, ex.body, ex.children,
                                                 list(dict.fromkeys(ex.frontier))))


def _fragment(plan, domain, inline, var) -> Expansion:
    """The expansion of `var` alone at the identity view of `domain`, computing `inline`
    itself (kept as a task's is).  A task's roots never lie beneath a temp it reads, so
    every task recomputing `var` with those temps replays this one."""
    t = Task(domain, [identity_store(None, var, domain)], inline=set(inline))
    key = expansion_key(t)
    known = _current(plan, plan.expansions.get(key))
    if known is None:
        known = plan.expansions[key] = _expansion(plan, t, splice=False)
    return known
