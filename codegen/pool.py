"""A persistent worker pool for threaded kernels: started once per process, woken per kernel.

`tg_pool_run(task, ctx, stride, n)` runs `task(ctx + i * stride)` for every i in [0, n)
and returns when all have finished.  The caller runs slice 0 itself; slice i > 0 runs on
worker i - 1 when that worker exists, else on the caller after slice 0.  Workers are
pthreads created on first need (up to `MAX_WORKERS`) and never exit; between jobs each
spins (pausing and yielding) on its slot's job counter, then parks on its slot's condition
variable; the caller waits for each worker's slice the same way.  Waking costs a mutex and
a broadcast only when the flag says the other side is parked (Dekker: each side stores
its flag, then loads the other's word, all sequentially consistent, so at least one of
them sees the other).  Yielding while spinning also leaves a core to whoever needs it
(OpenBLAS's spinning workers among them: threads.beside_blas).

Invariants that keep it from crashing or hanging:
- One job at a time: `busy` holds the pid of the process whose thread owns the pool.  A
  second caller (another Python thread) finds it taken and runs all slices itself.
- Fork: a child has none of the parent's workers.  The pool remembers the pid it started
  workers in; a caller in another process starts new ones (re-initializing every slot),
  and takes over a `busy` left by a thread of the parent (that thread is not in the child).
- Shutdown: workers run only this module's code between jobs, so its engine is never
  freed (an extra reference that nothing releases); a task's code is only
  run while its caller, which holds the program, waits in tg_pool_run.
- Workers block every signal: signals stay with the Python threads.
- A worker that cannot be created leaves its slices to the caller.
"""
from __future__ import annotations

import ctypes
import os
import signal

import llvmlite.binding as llvm
from llvmlite import ir

from . import llvm_util
from .fastcall import _Indirect as Indirect
from . import irutil
from .irutil import I64, PTR, declare, i64, libc_symbols

# Slots (one worker each); a job with more slices runs the rest on the caller.
MAX_WORKERS = 255
# Rounds (a pause and a sched_yield) a worker spins on its job counter after a job before
# it parks: a kernel that follows soon (the next threaded kernel of the program, a loop of
# calls) finds it awake without a wake-up syscall.  Yielding in every round gives the core
# away at once when another thread is waiting for it (on a machine with more runnable
# threads than cores a plain spin held the core the caller needed, and parking at once
# made every kernel pay the wake-up).
WORKER_SPIN = 64
# Rounds the caller spins per worker for its slice before parking: slices are equal, so a
# worker normally finishes soon after the caller.
CALLER_SPIN = 256

I1, I8, I32 = ir.IntType(1), ir.IntType(8), ir.IntType(32)
VOID = ir.VoidType()
_LIBC = ("pthread_create", "pthread_detach", "pthread_mutex_init", "pthread_mutex_lock",
         "pthread_mutex_unlock", "pthread_cond_init", "pthread_cond_wait",
         "pthread_cond_broadcast", "pthread_sigmask", "sigfillset", "getpid", "sched_yield")
# seq (jobs posted), done (jobs finished), task, ctx, sleeping (worker parked), waiting
# (caller parked), mutex, condition (room for any libc's pthread types), padding to 256.
SLOT = ir.LiteralStructType([I64, I64, PTR, PTR, I32, I32, ir.ArrayType(I64, 8),
                             ir.ArrayType(I64, 8), ir.ArrayType(I8, 88)])
SEQ, DONE, TASK, CTX, SLEEPING, WAITING, MUTEX, COND = range(8)
TASK_TYPE = ir.FunctionType(VOID, [PTR])


def _store(b, value, ptr, ordering):
    """An atomic store (llvmlite's store_atomic needs typed pointers): an exchange, which is
    also what a sequentially consistent store compiles to on x86."""
    b.atomic_rmw("xchg", ptr, value, ordering)


class PoolModule:
    """Builds the pool's IR: globals, then one function per step of the protocol."""

    def __init__(self):
        self.m = ir.Module(name="tg_pool")
        self.slots = self._global("tg_pool_slots", ir.ArrayType(SLOT, MAX_WORKERS), 128)
        self.busy = self._global("tg_pool_busy", I64, 64)
        self.pid = self._global("tg_pool_pid", I64, 64)
        self.workers = self._global("tg_pool_workers", I64, 64)

    def _global(self, name, ty, align):
        g = ir.GlobalVariable(self.m, ty, name)
        g.initializer = ir.Constant(ty, None)
        g.align = align
        g.type = PTR  # opaque, as LLVM sees it (llvmlite's typed pointer refuses our stores)
        return g

    def libc(self, name, ret, args):
        return declare(self.m, f"tg_sys_{name}", ret, args)

    def function(self, name, ret, args, internal=True):
        return irutil.function(self.m, name, ret, args, internal)

    def build(self) -> ir.Module:
        self.spin_fns = {eq: self._spin(eq) for eq in (True, False)}
        self.sleep_fns = {eq: self._sleep(eq) for eq in (True, False)}
        self.wake_fn = self._wake()
        self.worker_fn = self._worker()
        self.start_fn = self._start_worker()
        self.ensure_fn = self._ensure()
        self.acquire_fn = self._acquire()
        self.serial_fn = self._serial()
        self._run()
        self._workers_query()
        return self.m

    # ---- small pieces ----

    def field(self, b, slot, k):
        return b.gep(slot, [i64(0), I32(k)], inbounds=True, source_etype=SLOT)

    def slot(self, b, w):
        return b.gep(self.slots, [w], inbounds=True, source_etype=SLOT)

    def pause(self, b):
        if llvm.get_process_triple().startswith(("x86_64", "i686", "i386")):
            b.call(declare(self.m, "llvm.x86.sse2.pause", VOID, []), [])

    def _spin(self, equal: bool):
        """`i1 spin(ptr word, i64 value)`: up to the spin count, whether word ==/!= value
        (acquire); the count comes from the caller."""
        fn, b = self.function(f"tg_pool_spin_{'eq' if equal else 'ne'}", I1, [PTR, I64, I64])
        word, value, count = fn.args
        head, body, out = (fn.append_basic_block(s) for s in ("head", "body", "out"))
        entry = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(i64(0), entry)
        hit = self._compare(b, b.load_atomic(word, "acquire", 8, typ=I64), value, equal)
        more = b.icmp_signed("<", i, count)
        b.cbranch(b.or_(hit, b.not_(more)), out, body)
        b.position_at_end(body)
        self.pause(b)
        b.call(self.libc("sched_yield", I32, []), [])
        i.add_incoming(b.add(i, i64(1)), body)
        b.branch(head)
        b.position_at_end(out)
        b.ret(hit)
        return fn

    @staticmethod
    def _compare(b, v, value, equal):
        return b.icmp_unsigned("==" if equal else "!=", v, value)

    def _sleep(self, equal: bool):
        """`void sleep(ptr slot, ptr flag, ptr word, i64 value)`: park on the slot's condition
        until word ==/!= value, with `flag` set while parked."""
        fn, b = self.function(f"tg_pool_sleep_{'eq' if equal else 'ne'}", VOID, [PTR, PTR, PTR, I64])
        slot, flag, word, value = fn.args
        mutex, cond = self.field(b, slot, MUTEX), self.field(b, slot, COND)
        b.call(self.libc("pthread_mutex_lock", I32, [PTR]), [mutex])
        _store(b, I32(1), flag, "seq_cst")
        head, wait, out = (fn.append_basic_block(s) for s in ("head", "wait", "out"))
        b.branch(head)
        b.position_at_end(head)
        hit = self._compare(b, b.load_atomic(word, "seq_cst", 8, typ=I64), value, equal)
        b.cbranch(hit, out, wait)
        b.position_at_end(wait)
        b.call(self.libc("pthread_cond_wait", I32, [PTR, PTR]), [cond, mutex])
        b.branch(head)
        b.position_at_end(out)
        _store(b, I32(0), flag, "seq_cst")
        b.call(self.libc("pthread_mutex_unlock", I32, [PTR]), [mutex])
        b.ret_void()
        return fn

    def _wake(self):
        """`void wake(ptr slot, ptr flag)`: broadcast the slot's condition if `flag` says the
        other side is parked (call after the seq_cst store it waits for)."""
        fn, b = self.function("tg_pool_wake", VOID, [PTR, PTR])
        slot, flag = fn.args
        parked = b.icmp_unsigned("!=", b.load_atomic(flag, "seq_cst", 4, typ=I32), I32(0))
        with b.if_then(parked, likely=False):
            mutex = self.field(b, slot, MUTEX)
            b.call(self.libc("pthread_mutex_lock", I32, [PTR]), [mutex])
            b.call(self.libc("pthread_cond_broadcast", I32, [PTR]), [self.field(b, slot, COND)])
            b.call(self.libc("pthread_mutex_unlock", I32, [PTR]), [mutex])
        b.ret_void()
        return fn

    def _await(self, b, slot, word_k, value, equal, flag_k, spins):
        """Wait until the slot's word ==/!= value: spin, then park."""
        word = self.field(b, slot, word_k)
        hit = b.call(self.spin_fns[equal], [word, value, i64(spins)])
        with b.if_then(b.not_(hit), likely=False):
            b.call(self.sleep_fns[equal], [slot, self.field(b, slot, flag_k), word, value])

    # ---- the worker ----

    def _worker(self):
        """`ptr worker(ptr slot)`: forever: wait for a job (seq changes), run it, publish done."""
        fn, b = self.function("tg_pool_worker", PTR, [PTR])
        slot = fn.args[0]
        mask = b.alloca(ir.ArrayType(I64, 32))  # room for any libc's sigset_t
        b.call(self.libc("sigfillset", I32, [PTR]), [mask])
        sigmask = self.libc("pthread_sigmask", I32, [I32, PTR, PTR])
        b.call(sigmask, [I32(int(signal.SIG_BLOCK)), mask, ir.Constant(PTR, None)])
        entry, loop = b.block, fn.append_basic_block("loop")
        b.branch(loop)
        b.position_at_end(loop)
        last = b.phi(I64)
        last.add_incoming(i64(0), entry)
        self._await(b, slot, SEQ, last, False, SLEEPING, WORKER_SPIN)
        seq = b.load_atomic(self.field(b, slot, SEQ), "acquire", 8, typ=I64)
        task = b.load(self.field(b, slot, TASK), typ=PTR)
        b.call(Indirect(task, TASK_TYPE), [b.load(self.field(b, slot, CTX), typ=PTR)])
        _store(b, seq, self.field(b, slot, DONE), "seq_cst")
        b.call(self.wake_fn, [slot, self.field(b, slot, WAITING)])
        last.add_incoming(seq, b.block)
        b.branch(loop)
        return fn

    # ---- starting workers ----

    def _start_worker(self):
        """`i1 start(ptr slot)`: reset the slot and start its worker; false if it could not."""
        fn, b = self.function("tg_pool_start", I1, [PTR])
        slot = fn.args[0]
        for k in (SEQ, DONE):
            b.store(i64(0), self.field(b, slot, k))
        for k in (SLEEPING, WAITING):
            b.store(I32(0), self.field(b, slot, k))
        null = ir.Constant(PTR, None)
        b.call(self.libc("pthread_mutex_init", I32, [PTR, PTR]), [self.field(b, slot, MUTEX), null])
        b.call(self.libc("pthread_cond_init", I32, [PTR, PTR]), [self.field(b, slot, COND), null])
        tid = b.alloca(I64)
        create = self.libc("pthread_create", I32, [PTR, PTR, PTR, PTR])
        rc = b.call(create, [tid, null, self.worker_fn, slot])
        ok = b.icmp_signed("==", rc, I32(0))
        with b.if_then(ok):
            b.call(self.libc("pthread_detach", I32, [I64]), [b.load(tid, typ=I64)])
        b.ret(ok)
        return fn

    def _ensure(self):
        """`i64 ensure(i64 pid, i64 need)` (pool held): start workers up to `need` (in a new
        process, from none); returns how many of them there are."""
        fn, b = self.function("tg_pool_ensure", I64, [I64, I64])
        pid, need = fn.args
        need = b.select(b.icmp_signed("<", need, i64(MAX_WORKERS)), need, i64(MAX_WORKERS))
        fresh = b.icmp_signed("!=", b.load(self.pid, typ=I64), pid)
        with b.if_then(fresh, likely=False):  # first use, or a forked child: no workers here
            b.store(i64(0), self.workers)
            b.store(pid, self.pid)
        head, grow, out = (fn.append_basic_block(s) for s in ("head", "grow", "out"))
        b.branch(head)
        b.position_at_end(head)
        have = b.load(self.workers, typ=I64)
        b.cbranch(b.icmp_signed("<", have, need), grow, out)
        b.position_at_end(grow)
        slot = self.slot(b, have)
        started = b.call(self.start_fn, [slot])
        with b.if_then(started):
            b.store(b.add(have, i64(1)), self.workers)
        b.cbranch(started, head, out)
        b.position_at_end(out)
        have = b.load(self.workers, typ=I64)
        b.ret(b.select(b.icmp_signed("<", have, need), have, need))
        return fn

    def _acquire(self):
        """`i1 acquire(i64 pid)`: take the pool for this process's thread; a holder from
        another process (a parent, before fork) is taken over."""
        fn, b = self.function("tg_pool_acquire", I1, [I64])
        pid = fn.args[0]
        first = b.cmpxchg(self.busy, i64(0), pid, "acquire", "monotonic")
        old = b.extract_value(first, 0)
        took = b.extract_value(first, 1)
        stale = b.and_(b.not_(took), b.icmp_unsigned("!=", old, pid))
        entry, retry, out = b.block, fn.append_basic_block("retry"), fn.append_basic_block("out")
        b.cbranch(stale, retry, out)
        b.position_at_end(retry)
        took_over = b.extract_value(b.cmpxchg(self.busy, old, pid, "acquire", "monotonic"), 1)
        b.branch(out)
        b.position_at_end(out)
        result = b.phi(I1)
        result.add_incoming(took, entry)
        result.add_incoming(took_over, retry)
        b.ret(result)
        return fn

    # ---- the job ----

    def _serial(self):
        """`void serial(ptr task, ptr ctx, i64 stride, i64 lo, i64 hi)`: slices lo..hi-1 here."""
        fn, b = self.function("tg_pool_serial", VOID, [PTR, PTR, I64, I64, I64])
        task, ctx, stride, lo, hi = fn.args
        self._for(b, lo, hi, lambda i: b.call(Indirect(task, TASK_TYPE), [self._slice(b, ctx, stride, i)]))
        b.ret_void()
        return fn

    @staticmethod
    def _slice(b, ctx, stride, i):
        return b.gep(ctx, [b.mul(i, stride)], source_etype=I8)

    @staticmethod
    def _for(b, lo, hi, body):
        fn = b.function
        head, step, out = (fn.append_basic_block(s) for s in ("for", "for.body", "for.end"))
        pre = b.block
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64)
        i.add_incoming(lo, pre)
        b.cbranch(b.icmp_signed("<", i, hi), step, out)
        b.position_at_end(step)
        body(i)
        i.add_incoming(b.add(i, i64(1)), b.block)
        b.branch(head)
        b.position_at_end(out)

    def _post(self, b, w, task, ctx):
        slot = self.slot(b, w)
        b.store(task, self.field(b, slot, TASK))
        b.store(ctx, self.field(b, slot, CTX))
        seq = self.field(b, slot, SEQ)
        _store(b, b.add(b.load(seq, typ=I64), i64(1)), seq, "seq_cst")
        b.call(self.wake_fn, [slot, self.field(b, slot, SLEEPING)])

    def _join(self, b, w):
        slot = self.slot(b, w)
        seq = b.load(self.field(b, slot, SEQ), typ=I64)
        self._await(b, slot, DONE, seq, True, WAITING, CALLER_SPIN)

    def _run(self):
        """`void tg_pool_run(ptr task, ptr ctx, i64 stride, i64 n)` (the entry point)."""
        fn, b = self.function("tg_pool_run", VOID, [PTR, PTR, I64, I64], internal=False)
        task, ctx, stride, n = fn.args
        pid = b.sext(b.call(self.libc("getpid", I32, []), []), I64)
        serial, take, pooled = (fn.append_basic_block(s) for s in ("serial", "take", "pooled"))
        b.cbranch(b.icmp_signed("<", n, i64(2)), serial, take)
        b.position_at_end(take)
        b.cbranch(b.call(self.acquire_fn, [pid]), pooled, serial)
        b.position_at_end(serial)  # at most one slice, or the pool is taken: all slices here
        b.call(self.serial_fn, [task, ctx, stride, i64(0), n])
        b.ret_void()
        b.position_at_end(pooled)
        used = b.call(self.ensure_fn, [pid, b.sub(n, i64(1))])
        self._for(b, i64(0), used, lambda w: self._post(
            b, w, task, self._slice(b, ctx, stride, b.add(w, i64(1)))))
        b.call(Indirect(task, TASK_TYPE), [ctx])
        b.call(self.serial_fn, [task, ctx, stride, b.add(used, i64(1)), n])
        self._for(b, i64(0), used, lambda w: self._join(b, w))
        _store(b, i64(0), self.busy, "release")
        b.ret_void()

    def _workers_query(self):
        """`i64 tg_pool_workers_here(i64 pid)`: workers running in process `pid` (tests)."""
        fn, b = self.function("tg_pool_workers_here", I64, [I64], internal=False)
        mine = b.icmp_signed("==", b.load(self.pid, typ=I64), fn.args[0])
        b.ret(b.select(mine, b.load(self.workers, typ=I64), i64(0)))


def settings() -> dict:
    """The constants the pool's code is built with (part of its disk-cache key)."""
    return {"MAX_WORKERS": MAX_WORKERS, "WORKER_SPIN": WORKER_SPIN, "CALLER_SPIN": CALLER_SPIN}


def build_object() -> tuple:
    """(object code, IR text) of the pool: unoptimized and quickly emitted, since its speed
    is that of its atomics, syscalls and pauses."""
    ref = llvm_util.parse(PoolModule().build())
    return llvm_util.emit_object(ref, fast=True), str(ref)


class LoadedPool:
    """The pool in this process: loaded at most once, its engine never freed (workers run
    its code until the process ends)."""

    def __init__(self):
        self.addresses = None

    @llvm_util.locked
    def load(self, make_object=None) -> dict:
        """Name -> address; `make_object()` gives the object code (default: build it)."""
        if self.addresses is None:
            for name, address in libc_symbols(_LIBC).items():
                llvm.add_symbol(name, address)
            engine = _load(make_object() if make_object is not None else build_object()[0])
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))  # the extra reference
            table = {n: engine.get_function_address(n) for n in ("tg_pool_run", "tg_pool_workers_here")}
            table["tg_pool_busy"] = engine.get_global_value_address("tg_pool_busy")
            self.addresses = table
        return self.addresses


def _load(obj: bytes):
    try:
        return llvm_util.load_objects([obj])
    except RuntimeError:  # a cached object this LLVM cannot load: build it again
        return llvm_util.load_objects([build_object()[0]])


LOADED = LoadedPool()


def symbols(make_object=None) -> dict:
    """The pool's entry point for the JIT's symbol table (loaded on first use)."""
    return {"tg_pool_run": LOADED.load(make_object)["tg_pool_run"]}


def run_address() -> int:
    """Where `void tg_pool_run(ptr task, ptr ctx, i64 stride, i64 n)` is (tests, benchmarks)."""
    return LOADED.load()["tg_pool_run"]


def busy_word() -> ctypes.c_int64:
    """The pool's `busy` word, as a ctypes view: 0, or the pid of the process whose thread
    holds the pool (tests take it to check the fallbacks)."""
    return ctypes.c_int64.from_address(LOADED.load()["tg_pool_busy"])


def workers_here() -> int:
    """Workers this process has started (0 before the first threaded kernel)."""
    fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(LOADED.load()["tg_pool_workers_here"])
    return int(fn(os.getpid()))
