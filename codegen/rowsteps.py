"""Grouped scans in native code: a row-block step's ranges of trips on the pool's threads.

A scan with `groups` G (passes/kernels.py; passes/rowblock.py makes them) is emitted as
* a range function `void tg_ranges(ptr tarena, ptr p..., ptr slots, ptr next)`: until
  the counter at `next` passes G, it claims the next range g (an atomic increment) and
  runs the range's trips, its carries double-buffered in the range's two slots
  (loops._Carries) from `init` on, so that the range's result ends in its first slot;
  the body's temps live at `tarena`;
* in the step function, T calls of it, each with its own `tarena`, through the worker
  pool (pool.py `tg_pool_run`): T is the program's thread count (never more than G) when
  the step's work reaches threads.PARALLEL_MIN_COST, else 1 (a direct call).  Claiming
  ranges one at a time balances the threads, and a thread that the OS does not run
  (another process has its core) leaves its ranges to the others;
* after the join, the ranges' results folded in range order by `merge` (a loop):
  ((r0 . r1) . r2) ... . r(G-1), double-buffered in `carries`/`scratch` so that the last
  fold writes `carries`.  The fold order does not depend on T, so neither does the result.

Arena, from the step's base offset: the counter (a cache line), the slots (G ranges x
carries x 2 buffers), then T regions of the body's temps, one per thread.
"""
from __future__ import annotations

from llvmlite import ir

from tracegrad.passes.kernels import LoopKernel, distinct

from . import pool, threads
from .irutil import I64, PTR, align_up, declare, i64
from .loops import VOID, Scope, _Carries, _Counter, _halves, _nbytes, _offset, _p, _slices

ALIGN = 64  # bytes: slots and regions start on cache lines (no sharing between threads)
PTR_BYTES = 8
# Whether a body runs as one BodyUnit (loops.py, compiled at O3) rather than a call per
# kernel unit (each at its own level, units.py; the merge's kernels are the body's combine
# kernels, so they compile once): both ran W4's and W8's steps equally fast, and the
# kernel units compiled their programs in about 0.7x the time.
WHOLE_BODY = False


class _Slots:
    """Where range g's two buffers of carry j are: slots + g * group + offset_j (+ size_j)."""

    def __init__(self, carries):
        self.sizes = [align_up(max(_nbytes(c), 1), ALIGN) for c in carries]
        self.offsets = [2 * sum(self.sizes[:j]) for j in range(len(carries))]
        self.group = 2 * sum(self.sizes)

    def pointers(self, b, slots, g, half: int) -> list:
        """Range g's buffers `half` (0: where its result ends, 1: the other) of every carry;
        `g` an int or an i64 value."""
        at = g * self.group if isinstance(g, int) else b.mul(g, i64(self.group), flags=("nsw",))
        base = _offset(b, slots, at)
        return [_offset(b, base, off + half * size) for off, size in zip(self.offsets, self.sizes)]


def _edge(b, step, g):
    """The first trip of range g (an i64): length * g // groups."""
    return b.sdiv(b.mul(g, i64(step.length), flags=("nsw",)), i64(step.groups))


def _range_trips(inner, step, layout, slots, g) -> None:
    """Range g's trips, its carries from `init` to its first slots."""
    b = inner.b
    lo, hi = _edge(b, step, g), _edge(b, step, b.add(g, i64(1)))
    trips = b.sub(hi, lo)
    homes, others = layout.pointers(b, slots, g, 0), layout.pointers(b, slots, g, 1)
    carries = _Carries(b, homes, others, [_nbytes(c) for c in step.carries])
    odd = b.icmp_signed("==", b.and_(trips, i64(1)), i64(1))  # an odd count ends on the homes
    start_nxt = _halves(b, homes, others, odd)
    loop = _Counter(b, "trip")
    carries.enter(_p(inner, step.init), start_nxt, loop.pre)
    loop.test(inner.go(b.icmp_signed("<", loop.t, trips)))
    i = b.add(lo, loop.t, flags=("nsw",))
    xs = _slices(inner, step.xs, step.length, i) if step.xs else []
    ys = _slices(inner, step.ys, step.length, i) if step.ys else []
    inner.program(step.body, _p(inner, step.consts) + carries.cur + xs, carries.nxt + ys,
                  whole=WHOLE_BODY)
    carries.swap()
    loop.next()
    carries.settle()


def _range_function(scope, step, shared, layout):
    """(the range function, the bytes of its temps: one thread's region)."""
    fn = ir.Function(scope.module, ir.FunctionType(VOID, [PTR] * (len(shared) + 3)),
                     scope.module.get_unique_name("tg_ranges"))
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    slots, counter = fn.args[len(shared) + 1:]
    inner = Scope(scope, fn, {id(buf): a for buf, a in zip(shared, fn.args[1:])}, 0)
    b = inner.b
    ranges = _Counter(b, "range")
    g = b.atomic_rmw("add", counter, i64(1), "monotonic")
    ranges.test(b.icmp_signed("<", g, i64(step.groups)))
    _range_trips(inner, step, layout, slots, g)
    ranges.next()
    b.ret_void()
    scope.n_calls += inner.n_calls
    return fn, align_up(inner.high, ALIGN)


def _work(step) -> int:
    """The step's estimated cost, in threads.kernel_cost units (the thread policy's)."""
    per_trip = sum(threads.kernel_cost(k) for k in step.body.kernels if isinstance(k, LoopKernel))
    return per_trip * step.length


def share_count(scope, step) -> int:
    """Threads for the step's ranges (module docstring)."""
    wanted = scope.step_threads
    if wanted < 2 or _work(step) < threads.PARALLEL_MIN_COST:
        return 1
    return min(wanted, step.groups)


def _task(module, fn):
    """`void task(ptr ctx)`: calls `fn` (all of whose arguments are pointers) on the
    pointers the context holds (the pool's task)."""
    task = ir.Function(module, pool.TASK_TYPE, fn.name + "_task")
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block("entry"))
    ctx = task.args[0]
    b.call(fn, [b.load(b.gep(ctx, [i64(j)], source_etype=PTR), typ=PTR)
                for j in range(len(fn.args))])
    b.ret_void()
    return task


def _run_threads(scope, fn, pointers, n: int, regions: tuple) -> None:
    """n calls of fn (one direct call when n == 1), call t with its temps at arena offset
    first + t * size, `regions` being (first, size)."""
    b, (first, size) = scope.b, regions
    args = [[_offset(b, scope.arena, first + t * size)] + pointers for t in range(n)]
    if n == 1:
        b.call(fn, args[0])
        return
    ctx = b.alloca(PTR, size=i64(n * len(fn.args)), name="ctx")
    for j, value in enumerate(v for values in args for v in values):
        b.store(value, b.gep(ctx, [i64(j)], source_etype=PTR))
    run = declare(b.module, "tg_pool_run", VOID, [PTR, PTR, I64, I64])
    stride = i64(len(fn.args) * PTR_BYTES)
    b.call(run, [_task(b.module, fn), ctx, stride, i64(n)])  # returns when every call has


def _fold(scope, step, layout, slots) -> None:
    """carries = ((r0 . r1) . r2) ...: the ranges' results in range order, a loop over
    ranges 1..G-1 double-buffered in carries/scratch (the last fold writes `carries`)."""
    b, groups = scope.b, step.groups
    homes, others = _p(scope, step.carries), _p(scope, step.scratch)
    carries = _Carries(b, homes, others, [_nbytes(c) for c in step.carries])
    start_nxt = _halves(b, homes, others, groups % 2 == 0)  # fold g writes homes: G-1-g even
    first = layout.pointers(b, slots, 0, 0)
    loop = _Counter(b, "fold")
    carries.enter(first, start_nxt, loop.pre)
    g = b.add(loop.t, i64(1), flags=("nsw",))
    loop.test(b.icmp_signed("<", g, i64(groups)))
    scope.program(step.merge, carries.cur + layout.pointers(b, slots, g, 0), carries.nxt,
                  whole=WHOLE_BODY)
    carries.swap()
    loop.next()
    carries.settle()  # G == 1: range 0's result is copied


def emit_groups(scope, step) -> None:
    """A grouped scan (module docstring), in step function `scope` (loops.Scope)."""
    layout = _Slots(step.carries)
    shared = distinct(step.consts + step.init + step.xs + step.ys)
    fn, region = _range_function(scope, step, shared, layout)
    b, n, base = scope.b, share_count(scope, step), scope.free_offset
    at = align_up(base, ALIGN)
    first = at + ALIGN + step.groups * layout.group
    counter, slots = _offset(b, scope.arena, at), _offset(b, scope.arena, at + ALIGN)
    b.store(i64(0), counter)
    _run_threads(scope, fn, _p(scope, shared) + [slots, counter], n, (first, region))
    scope.free_offset = first + n * region  # the merge's temps, past every thread's
    scope.high = max(scope.high, scope.free_offset)
    if step.carries:
        _fold(scope, step, layout, slots)
    scope.free_offset = base
