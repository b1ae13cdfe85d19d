"""Control flow in native code: each LoopStep or CondStep (passes/kernels.py) is a step function.

A step is `void tg_step<n>(ptr arena, ptr p0, ptr p1, ...)`, internal and noinline, in the
entry module: one pointer per distinct buffer the step reads or writes, so a nested step
(whose operands are its parent body's run-time pointers) is called exactly like a top-level
one.  Inside, the loop or the branch is LLVM control flow; a `Scope` binds each body
program's buffers to run-time pointers and calls its code.  A body without nested steps is
one compile unit (`BodyUnit`: its kernels linked into one module behind one function, so a
trip is one call, LLVM inlines the kernels into it, and equal bodies compile once); a body
with nested steps calls its kernels' units one by one, as the entry does
(`lower.ProgramEmitter._emit_kernel`, never threads).  Small products are loops, not BLAS
calls (blas.prefers_inline).  A body is emitted once, whatever the trip count, so compile
time does not grow with it.

Memory.
* Carries are double buffers (`carries[j]`, `scratch[j]`): phis hold the current and the
  next pointer of each, swapped after every trip (no copy).  A scan of static length starts
  on the half that makes its last trip write `carries[j]`; when the loop ends with the
  value elsewhere (zero trips, or a while loop's parity) one memcpy moves it there.
* `xs[t]` and `ys[t]` are pointers `base + t * slice bytes`.
* Body temps live in the arena past the program's own temps (`region`): one region per
  nesting level, reused by every step at that level (steps run one at a time).
* `while_vjp`: the body writes each trip's carries straight into a tape (records of every
  carry, 8-byte aligned) that doubles with `realloc` when full, so the carries entering
  trip t are `init` (t = 0) or record t-1: no copies, and a pointer is re-derived from the
  tape's base after every growth.  The reverse loop reads the records backwards; the tape
  is freed at the end.  If `realloc` fails the tape is freed and the step's float outputs
  are NaN: native code never fails otherwise.
"""
from __future__ import annotations

import hashlib

import numpy as np
from llvmlite import ir

from tracegrad.passes.kernels import CondStep, DotKernel, ExternKernel, LoopKernel, LoopStep, distinct

from . import blas, extern, fastcall, llvm_util, outline, units
from .irutil import I64, PTR, align_up, declare, i64, libc_symbols
from .kernel import KernelEmitter
from .lower import ProgramEmitter, plan_arena
from .scalar_ops import storage_type

I1, I8 = ir.IntType(1), ir.IntType(8)
VOID = ir.VoidType()
TAPE_ALIGN = 8  # bytes: each carry's offset in a tape record
TAPE_START = 16  # records the tape first holds


def symbols() -> dict:
    """The libc functions of the tape, for the JIT's symbol table (runtime.register_symbols)."""
    return libc_symbols(("realloc", "free"))


def _nbytes(buf) -> int:
    return buf.size * np.dtype(buf.dtype).itemsize


def step_work(step, program_work) -> int:
    """A rough element count of a step (`program_work` counts a body): a while loop's
    trips are unknown, so it counts as large (the GIL is released around it); an extern
    kernel calling back into Python counts as large too (extern.py)."""
    if isinstance(step, ExternKernel):
        return extern.kernel_work(step, fastcall.GIL_RELEASE_WORK)
    bodies = sum(program_work(p) for p in step.programs())
    if isinstance(step, LoopStep) and step.length is not None and step.grad is None:
        return bodies * max(step.length, 1)
    return max(bodies, 1 << 16) if isinstance(step, LoopStep) else bodies


# ---- the step function and its scope ---------------------------------------------------------

def emit_step(parent, step) -> None:
    """Emit `step` as a function and call it from `parent` (a ProgramEmitter or a Scope)."""
    bufs = distinct(step.reads() + step.writes())
    pointers = [parent._pointer(b) for b in bufs]
    fn = ir.Function(parent.module, ir.FunctionType(VOID, [PTR] * (1 + len(bufs))),
                     parent.module.get_unique_name("tg_step"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    parent.b.call(fn, [parent.arena] + pointers)
    base = parent.free_offset if isinstance(parent, Scope) else parent.scratch_offset
    scope = Scope(parent, fn, {id(b): a for b, a in zip(bufs, fn.args[1:])}, base)
    EMITTERS[type(step)](scope, step)
    scope.b.ret_void()
    parent.n_calls += scope.n_calls
    if isinstance(parent, Scope):
        parent.high = max(parent.high, scope.high)
    else:
        parent.scratch_bytes = max(parent.scratch_bytes, scope.high - base)


class Scope(ProgramEmitter):
    """Emits body programs' kernels inside a step function: their buffers are bound to
    run-time pointers (`bound`), their temps to arena offsets from `free_offset` on.
    `high` is the highest arena offset any body of the step (nested ones too) uses."""

    def __init__(self, parent, fn, bound, base):
        self.module, self.units = parent.module, parent.units
        self.environment, self.const_globals = parent.environment, parent.const_globals
        self.n_threads, self.n_calls, self.part_calls = 1, 0, 0  # bodies never start threads
        self.step_threads = parent.n_threads  # a grouped scan's (rowsteps.py); 1 in a body
        self.host_calls = parent.host_calls
        self.arena, self.bound = fn.args[0], bound
        self.free_offset = self.high = self.scratch_offset = base
        self.scratch_bytes = 0
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))

    def _pointer(self, buf, shift: int = 0):
        base = self.bound.get(id(buf))
        if base is None:
            if buf.kind != "const":
                raise KeyError(f"codegen: buffer {buf} is not bound in this step")
            base = self._const_global(buf)
        if shift:
            base = _offset(self.b, base, shift * np.dtype(buf.dtype).itemsize)
        return base

    def program(self, kp, inputs, outputs, whole: bool = True) -> None:
        """Calls running body program `kp` on pointers `inputs` -> `outputs`; its temps
        from arena offset `free_offset` on (bodies of one step run one at a time).
        `whole=False`: a call per kernel unit even where a BodyUnit fits."""
        offsets, nbytes = plan_arena(kp)
        region = self.free_offset
        for buf, offset in offsets.items():
            self.bound[id(buf)] = _offset(self.b, self.arena, region + offset)
        self.bound.update({id(b): p for b, p in zip(kp.inputs, inputs)})
        self.bound.update({id(b): p for b, p in zip(kp.outputs, outputs)})
        self.free_offset = region + nbytes
        self.high = max(self.high, self.free_offset)
        if whole and BodyUnit.fits(kp):
            self._call_body(kp)
        else:
            for kernel in kp.kernels:
                for part in units.independent_parts(kernel):
                    self._emit_kernel(part)
        self.free_offset = region

    def _call_body(self, kp):
        mine = BodyUnit(kp, self.environment)
        unit = self.units.setdefault(mine.key, mine)  # an equal body compiles once
        fn = declare(self.module, unit.symbol, VOID, unit.arg_types())
        self.b.call(fn, [self._pointer(buf) for buf in mine.args])
        self.n_calls += 1

    def go(self, cond):
        """A loop's condition to continue, false once a host call of this run failed
        (extern.py), so a loop never spins on the garbage of a failed call."""
        if not self.host_calls:
            return cond
        return self.b.and_(cond, extern.healthy(self.b, self.module))


# ---- a whole loop body as one compile unit -----------------------------------------------------

class _Text:
    """IR text that `llvm_util.parse` reads like a module (str() gives it)."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text


class BodyUnit:
    """A body program without nested steps as one compile unit: its distinct kernels (in
    canonical form, units.py) and a function `tg_body_<key>(ptr...)` calling them in order,
    one pointer per buffer of the body, so a trip is one call and LLVM may inline the
    kernels into it.  Small products are loops (blas.dot_as_loop), larger ones BLAS calls.

    Like a KernelUnit it has a `key` (the canonical text and the compiler's environment),
    a `symbol` and `build()`; the program's other units and the disk cache treat it alike.
    """

    def __init__(self, kp, environment: str):
        self.kernels, self.calls, positions = [], [], {}
        self.args = []  # the body's buffers in argument order (this program's own)
        texts = {}
        for kernel in kp.kernels:
            for part in units.independent_parts(kernel):
                self._add(part, texts, positions)
        wiring = [f"call {c[0]} " + " ".join(f"{p}+{s}" for p, s in c[1]) for c in self.calls]
        args = " ".join(f"{np.dtype(b.dtype).str}" for b in self.args)
        self.text = "\n".join(["body", f"args {args}"] + list(texts) + wiring)
        self.key = hashlib.sha256((self.text + "\n" + environment).encode()).hexdigest()

    @staticmethod
    def fits(kp) -> bool:
        return all(isinstance(k, (LoopKernel, DotKernel)) for k in kp.kernels)

    def _position(self, buf, positions) -> int:
        if id(buf) not in positions:
            positions[id(buf)] = len(self.args)
            self.args.append(buf)
        return positions[id(buf)]

    def _add(self, part, texts, positions):
        if isinstance(part, DotKernel) and not blas.prefers_inline(part):
            wires = [(self._position(b, positions), 0) for b in (part.a, part.b, part.out)]
            self.calls.append((part, wires))
            texts.setdefault(f"blas {part.batch} {part.m} {part.k} {part.n} {part.trans_a} "
                             f"{part.trans_b} {np.dtype(part.out.dtype).str}")
            return
        if isinstance(part, DotKernel):
            part = blas.dot_as_loop(part)
        canon, args = units.canonical_form(part)
        text = units.canonical_text(canon, False)
        if text not in texts:
            texts[text] = len(self.kernels)
            self.kernels.append(canon)
        wires = [(self._position(buf, positions), shift * np.dtype(buf.dtype).itemsize)
                 for buf, shift in args]
        self.calls.append((texts[text], wires))

    @property
    def symbol(self) -> str:
        return f"tg_body_{self.key[:32]}"

    def arg_types(self) -> list:
        return [PTR] * len(self.args)

    def build_module(self):
        return self.build()[0]

    def build(self):
        """(the linked module's IR text, optimization level)."""
        wrapper = ir.Module(name=self.symbol)
        fn = ir.Function(wrapper, ir.FunctionType(VOID, self.arg_types()), self.symbol)
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        for target, wires in self.calls:
            ptrs = [_offset(b, fn.args[p], shift) if shift else fn.args[p] for p, shift in wires]
            if isinstance(target, DotKernel):
                blas.emit_product(b, target, *ptrs)
            else:
                b.call(declare(wrapper, self._kernel_name(target), VOID, [PTR] * len(ptrs)), ptrs)
        b.ret_void()
        ref = llvm_util.parse(wrapper)
        for j, canon in enumerate(self.kernels):
            module = ir.Module(name=self._kernel_name(j))
            math = outline.MathFunctions(module)
            KernelEmitter(module, canon, self._kernel_name(j), math).emit()
            math.finish()
            ref.link_in(llvm_util.parse(module))
        for f in ref.functions:
            if f.name.startswith(self.symbol + ".") and not f.is_declaration:
                f.linkage = "internal"
        return _Text(str(ref)), 3

    def _kernel_name(self, j) -> str:
        return f"{self.symbol}.k{j}"


# ---- small IR helpers --------------------------------------------------------------------------

def _memcpy(b, dst, src, nbytes):
    fn = declare(b.module, "llvm.memcpy.p0.p0.i64", VOID, [PTR, PTR, I64, I1])
    b.call(fn, [dst, src, nbytes if isinstance(nbytes, ir.Value) else i64(nbytes),
                ir.Constant(I1, 0)])


def _memset0(b, dst, nbytes):
    fn = declare(b.module, "llvm.memset.p0.i64", VOID, [PTR, I8, I64, I1])
    b.call(fn, [dst, ir.Constant(I8, 0), i64(nbytes), ir.Constant(I1, 0)])


def _offset(b, base, nbytes):
    """`base + nbytes` (an i64 value or int)."""
    nbytes = nbytes if isinstance(nbytes, ir.Value) else i64(nbytes)
    return b.gep(base, [nbytes], inbounds=True, source_etype=I8)


def _if(b, cond, name):
    """Position `b` in a new block taken when `cond`; returns the join block."""
    then = b.append_basic_block(name)
    join = b.append_basic_block(name + ".end")
    b.cbranch(cond, then, join)
    b.position_at_end(then)
    return join


def _settle(b, cur, target, nbytes):
    """Copy a carry's value to where the step's result must be, unless it is already there."""
    join = _if(b, b.icmp_unsigned("!=", cur, target), "settle")
    _memcpy(b, target, cur, nbytes)
    b.branch(join)
    b.position_at_end(join)


class _Carries:
    """Double-buffered carries: phis of the current and next pointer of each, in a loop."""

    def __init__(self, b, homes, others, sizes):
        self.b, self.homes, self.others, self.sizes = b, homes, others, sizes

    def enter(self, start_cur, start_nxt, pre):
        b = self.b
        self.cur = [b.phi(PTR, name="cur") for _ in self.homes]
        self.nxt = [b.phi(PTR, name="nxt") for _ in self.homes]
        for phi, value in zip(self.cur + self.nxt, list(start_cur) + list(start_nxt)):
            phi.add_incoming(value, pre)

    def swap(self):
        """At the end of a trip: the next pointers become current, the others next."""
        b, block = self.b, self.b.block
        for cur, nxt, home, other in zip(self.cur, self.nxt, self.homes, self.others):
            cur.add_incoming(nxt, block)
            nxt.add_incoming(b.select(b.icmp_unsigned("==", nxt, home), other, home), block)

    def settle(self):
        for cur, home, size in zip(self.cur, self.homes, self.sizes):
            _settle(self.b, cur, home, size)


def _halves(b, homes, others, first_home):
    """The pointers trip 0 writes: `homes` where `first_home` (an i1) holds, else `others`."""
    if isinstance(first_home, bool):
        return list(homes) if first_home else list(others)
    return [b.select(first_home, h, o) for h, o in zip(homes, others)]


class _Counter:
    """`for t = 0, 1, ... while go(t)`: a header block with the phi t, a body block."""

    def __init__(self, b, name):
        self.b, self.name = b, name
        self.pre = b.block
        self.header = b.append_basic_block(name)
        self.exit = b.append_basic_block(name + ".end")
        b.branch(self.header)
        b.position_at_end(self.header)
        self.t = b.phi(I64, name="t")
        self.t.add_incoming(i64(0), self.pre)

    def test(self, go):
        body = self.b.append_basic_block(self.name + ".body")
        self.b.cbranch(go, body, self.exit)
        self.b.position_at_end(body)

    def next(self):
        self.t.add_incoming(self.b.add(self.t, i64(1), flags=("nuw", "nsw")), self.b.block)
        self.b.branch(self.header)
        self.b.position_at_end(self.exit)


# ---- scan and while -----------------------------------------------------------------------------

def _p(scope, bufs):
    return [scope._pointer(buf) for buf in bufs]


def _slices(scope, bufs, length, i):
    """Each stacked buffer's slice i: base + i * (bytes / length)."""
    b = scope.b
    return [_offset(b, scope._pointer(buf), b.mul(i, i64(_nbytes(buf) // max(length, 1)),
                                                      flags=("nsw",)))
            for buf in bufs]


def _predicate(scope, step, carries):
    """Run `step.cond` on the current carries; its bool as an i1."""
    b = scope.b
    pred = scope._pointer(step.pred)
    scope.program(step.cond, _p(scope, step.cond_consts) + carries, [pred])
    return b.icmp_unsigned("!=", b.load(pred, typ=I8), ir.Constant(I8, 0))


def _emit_loop(scope, step: LoopStep):
    if step.grad is not None:
        return _emit_taped_while(scope, step)
    if step.groups:
        from . import rowsteps  # rowsteps.py builds on this module
        return rowsteps.emit_groups(scope, step)
    b = scope.b
    sizes = [_nbytes(buf) for buf in step.carries]
    carries = _Carries(b, _p(scope, step.carries), _p(scope, step.scratch), sizes)
    # a scan's last trip (t = length - 1) writes the homes: trip t writes them when
    # length - 1 - t is even; a while loop starts on the homes and may settle at the end
    first_home = step.length is None or (step.length - 1) % 2 == 0
    start_nxt = _halves(b, carries.homes, carries.others, first_home)
    init = _p(scope, step.init)
    loop = _Counter(b, "loop")
    carries.enter(init, start_nxt, loop.pre)
    if step.length is None:
        go = _predicate(scope, step, carries.cur)
    else:
        go = b.icmp_signed("<", loop.t, i64(step.length))
    loop.test(scope.go(go))
    _trip(scope, step, carries, loop.t)
    carries.swap()
    loop.next()
    carries.settle()


def _trip(scope, step, carries, t):
    """One trip of the body: consts + carries + xs[i] -> next carries + ys[i]."""
    b, i = scope.b, t
    if step.reverse:
        i = b.sub(i64(step.length - 1), t, flags=("nsw",))
    xs = _slices(scope, step.xs, step.length, i) if step.xs else []
    ys = _slices(scope, step.ys, step.length, i) if step.ys else []
    scope.program(step.body, _p(scope, step.consts) + carries.cur + xs, carries.nxt + ys)


# ---- while_vjp: the taped forward loop, then the reverse loop ------------------------------------

class _Tape:
    """Records of every carry (8-byte aligned offsets), in memory that grows by doubling."""

    def __init__(self, step):
        self.offsets, size = [], 0
        for buf in step.init:
            self.offsets.append(size)
            size += align_up(max(_nbytes(buf), 1), TAPE_ALIGN)
        self.record = max(size, TAPE_ALIGN)

    def carries(self, b, base, t, init):
        """The carries entering trip t: `init` at t = 0, else record t - 1."""
        first = b.icmp_signed("==", t, i64(0))
        rec = b.mul(b.sub(t, i64(1)), i64(self.record), flags=("nsw",))
        at = b.select(first, i64(0), rec)  # never an address before the tape
        return [b.select(first, p, _offset(b, base, b.add(at, i64(off)))) for p, off in
                zip(init, self.offsets)]

    def record_at(self, b, base, t):
        rec = b.mul(t, i64(self.record), flags=("nsw",))
        return [_offset(b, base, b.add(rec, i64(off))) for off in self.offsets]


def _grow(scope, tape, loop, base, cap, fail_block, fail):
    """Make room for record t: the tape's (base, capacity) after the check."""
    b = scope.b
    pre = b.block
    full = b.icmp_signed("==", loop.t, cap)
    join = b.append_basic_block("tape.ok")
    grow = b.append_basic_block("tape.grow")
    b.cbranch(full, grow, join)
    b.position_at_end(grow)
    new_cap = b.select(b.icmp_signed("==", cap, i64(0)), i64(TAPE_START),
                       b.mul(cap, i64(2), flags=("nsw",)))
    realloc = declare(b.module, "tg_sys_realloc", PTR, [PTR, I64])
    new = b.call(realloc, [base, b.mul(new_cap, i64(tape.record), flags=("nsw",))])
    failed = b.icmp_unsigned("==", new, ir.Constant(PTR, None))
    fail.add_incoming(base, b.block)
    b.cbranch(failed, fail_block, join)
    b.position_at_end(join)
    base2, cap2 = b.phi(PTR, name="tape"), b.phi(I64, name="cap")
    base2.add_incoming(base, pre)
    cap2.add_incoming(cap, pre)
    base2.add_incoming(new, grow)
    cap2.add_incoming(new_cap, grow)
    return base2, cap2


def _emit_taped_while(scope, step: LoopStep):
    b, tape = scope.b, _Tape(step)
    init, here = _p(scope, step.init), b.block
    fail_block = b.append_basic_block("tape.fail")
    b.position_at_end(fail_block)
    fail = b.phi(PTR, name="old")  # the tape to free when it cannot grow
    b.position_at_end(here)
    loop = _Counter(b, "fwd")
    base, cap = b.phi(PTR, name="tape"), b.phi(I64, name="cap")
    base.add_incoming(ir.Constant(PTR, None), loop.pre)
    cap.add_incoming(i64(0), loop.pre)
    loop.test(scope.go(_predicate(scope, step, tape.carries(b, base, loop.t, init))))
    base2, cap2 = _grow(scope, tape, loop, base, cap, fail_block, fail)
    scope.program(step.body, _p(scope, step.consts) + tape.carries(b, base2, loop.t, init),
                  tape.record_at(b, base2, loop.t))
    base.add_incoming(base2, b.block)
    cap.add_incoming(cap2, b.block)
    loop.next()
    _reverse(scope, step, tape, base, loop.t, init)
    b.call(declare(b.module, "tg_sys_free", VOID, [PTR]), [base])
    done = b.append_basic_block("done")
    b.branch(done)
    _fail(scope, step, fail_block, fail, done)


def _reverse(scope, step, tape, base, trips, init):
    """The reverse loop over the tape: (acc, ct) double-buffered, acc from zero."""
    b, g = scope.b, step.grad
    homes, others = _p(scope, g.outs), _p(scope, g.scratch)
    carries = _Carries(b, homes, others, [_nbytes(buf) for buf in g.outs])
    odd = b.icmp_signed("==", b.and_(trips, i64(1)), i64(1))  # an odd count ends on the homes
    start_nxt = _halves(b, homes, others, odd)
    zeros = _halves(b, others, homes, odd)[:g.n_acc]
    for ptr, buf in zip(zeros, g.outs):
        _memset0(b, ptr, _nbytes(buf))
    loop = _Counter(b, "bwd")
    carries.enter(zeros + _p(scope, g.cts), start_nxt, loop.pre)
    loop.test(scope.go(b.icmp_signed("<", loop.t, trips)))
    i = b.sub(b.sub(trips, i64(1)), loop.t, flags=("nsw",))
    entering = tape.carries(b, base, i, init)
    scope.program(g.body, _p(scope, g.consts) + entering + carries.cur, carries.nxt)
    carries.swap()
    loop.next()
    carries.settle()


def _fail(scope, step, fail_block, old, done):
    """The tape could not grow: free it, fill the float outputs with NaN."""
    b = scope.b
    b.position_at_end(fail_block)
    b.call(declare(b.module, "tg_sys_free", VOID, [PTR]), [old])
    for buf in step.grad.outs:
        if np.dtype(buf.dtype).kind == "f":
            _fill(b, scope._pointer(buf), buf, np.nan)
    b.branch(done)
    b.position_at_end(done)


def _fill(b, ptr, buf, value):
    ty = storage_type(buf.dtype)
    loop = _Counter(b, "nan")
    loop.test(b.icmp_signed("<", loop.t, i64(buf.size)))
    b.store(ir.Constant(ty, value), b.gep(ptr, [loop.t], inbounds=True, source_etype=ty))
    loop.next()


# ---- cond ---------------------------------------------------------------------------------------

def _emit_cond(scope, step: CondStep):
    """A switch on the clamped index; each branch runs its program on the same pointers."""
    b, n = scope.b, len(step.branches)
    dtype = np.dtype(step.index.dtype)
    raw = b.load(scope._pointer(step.index), typ=storage_type(dtype))
    wide = raw if raw.type == I64 else (b.zext(raw, I64) if dtype.kind in "ub"
                                        else b.sext(raw, I64))
    index = b.select(b.icmp_signed("<", wide, i64(0)), i64(0), wide)
    index = b.select(b.icmp_signed(">", index, i64(n - 1)), i64(n - 1), index)
    join = b.append_basic_block("cond.end")
    blocks = [b.append_basic_block(f"branch{k}") for k in range(n)]
    switch = b.switch(index, blocks[-1])
    for k, block in enumerate(blocks[:-1]):
        switch.add_case(i64(k), block)
    operands, outs = _p(scope, step.operands), _p(scope, step.outs)
    for kp, block in zip(step.branches, blocks):
        b.position_at_end(block)
        scope.program(kp, operands, outs)
        b.branch(join)
    b.position_at_end(join)


EMITTERS = {LoopStep: _emit_loop, CondStep: _emit_cond}
