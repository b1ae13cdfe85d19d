"""A caching memory handler for numpy array data: freed large blocks are kept for the next
allocation of about the same size, as PyTorch's caching allocator does for GPU tensors.

Eager operations on large arrays each allocate a fresh output, and the eager backward frees
most of them again within the same step.  Fresh memory from the system pays a page fault
on first touch of every page (on the machines measured a 4 MB float32 array cost more to
fault in than a multiplication writing it did); a block that numpy has freed and that is
handed out again does not.  numpy lets a process choose the allocator of new arrays
(NEP 49: `PyDataMem_SetHandler`, per context variable); `install()` sets this handler in
the current context (tracegrad/eager.py does, at the first native eager operation).

The handler (native code, built here and disk-cached like the eager kernels):

- malloc(n), n >= MIN_BYTES: of the cached blocks whose usable size is n to n + n/8, the
  one filed last (the likeliest to be in the CPU's caches still), else numpy's default
  handler's malloc (its small-block cache and its huge-page advice included).  calloc
  likewise, then clears the cached block (memset).  realloc: the default's.
- free(p): a block of at least MIN_BYTES joins the cache when the cache has a slot and its
  bytes stay within the budget, evicting (freeing) older blocks to make room; else the
  default's free.  Every block comes from libc's malloc (numpy's default allocates with
  it), and the size a block is filed under is libc's `malloc_usable_size`, never numpy's
  word, so a block handed out is always at least as large as asked.

Only memory numpy has freed is reused, so no array ever aliases another.  The cache takes a
try-lock: a caller that finds it taken (another thread, or a lock left by a fork) bypasses
the cache, so nothing ever waits.  The code is never unloaded (arrays allocated by it can
be freed until the interpreter exits).
"""
from __future__ import annotations

import ctypes
import os

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir

from .fastcall import _Indirect as Indirect
from . import irutil
from .irutil import I64, PTR, Loop, declare, i64, libc_symbols

MIN_BYTES = 1 << 17  # smaller blocks come from libc's heap without page faults to save
SLOTS = 32  # cached blocks at most
DEFAULT_BUDGET_MB = 64  # bytes cached at most (TRACEGRAD_EAGER_CACHE_MB; 0 switches it off)
NAME = b"tracegrad_eager_cache"
I1, I32 = ir.IntType(1), ir.IntType(32)
VOID = ir.VoidType()
# a cached block, its usable size (0: an empty slot) and when it was filed (tg_mem_clock)
SLOT = ir.LiteralStructType([PTR, I64, I64])
STATS = ("hits", "misses", "stored", "evicted")
_LIBC = ("free", "malloc_usable_size", "memset")
DEFAULT = ("ctx", "malloc", "calloc", "realloc", "free")  # numpy's default handler, tg_mem_default


def _global(m, name, ty):
    g = ir.GlobalVariable(m, ty, name)
    g.initializer = ir.Constant(ty, None)
    g.align = 64
    g.type = PTR  # opaque, as pool.py's globals
    return g


class MemoryModule:
    """Builds the handler's IR: the cache's globals and the four allocator functions."""

    def __init__(self):
        m = self.m = ir.Module(name="tg_eager_memory")
        self.lock = _global(m, "tg_mem_lock", I32)
        self.slots = _global(m, "tg_mem_slots", ir.ArrayType(SLOT, SLOTS))
        self.total = _global(m, "tg_mem_total", I64)
        self.budget = _global(m, "tg_mem_budget", I64)
        self.next = _global(m, "tg_mem_next", I64)
        self.clock = _global(m, "tg_mem_clock", I64)
        self.stats = _global(m, "tg_mem_stats", ir.ArrayType(I64, len(STATS)))
        self.default = _global(m, "tg_mem_default", ir.ArrayType(PTR, len(DEFAULT)))

    def libc(self, name, ret, args):
        return declare(self.m, f"tg_sys_{name}", ret, args)

    def numpy(self, b, name, ret, args):
        """Call numpy's default handler's `name` (its ctx first, then `args`)."""
        slot = lambda k: b.gep(self.default, [i64(0), I32(k)], source_etype=ir.ArrayType(PTR, len(DEFAULT)))  # noqa: E731
        ctx, fn = (b.load(slot(DEFAULT.index(k)), typ=PTR) for k in ("ctx", name))
        fnty = ir.FunctionType(ret, [PTR] + [a.type for a in args])
        return b.call(Indirect(fn, fnty), [ctx] + list(args))

    def function(self, name, ret, args, internal=True):
        return irutil.function(self.m, name, ret, args, internal)

    def build(self) -> ir.Module:
        self.take_fn = self._take()
        self.put_fn = self._put()
        self._malloc()
        self._calloc()
        self._realloc()
        self._free()
        return self.m

    # ---- small pieces ----

    def field(self, b, j, k):
        return b.gep(self.slots, [i64(0), j, I32(k)], inbounds=True,
                     source_etype=ir.ArrayType(SLOT, SLOTS))

    def count(self, b, which: str):
        ptr = b.gep(self.stats, [i64(0), I32(STATS.index(which))], source_etype=ir.ArrayType(I64, len(STATS)))
        b.store(b.add(b.load(ptr, typ=I64), i64(1)), ptr)

    def trylock(self, b):
        return b.extract_value(b.cmpxchg(self.lock, I32(0), I32(1), "acquire", "monotonic"), 1)

    def unlock(self, b):
        b.atomic_rmw("xchg", self.lock, I32(0), "release")

    @staticmethod
    def blocks(fn, *names):
        return [fn.append_basic_block(n) for n in names]

    # ---- the cache ----

    def _take(self):
        """`ptr take(i64 n)`: the most recently filed cached block of usable size n..n + n/8
        (the likeliest to be in the caches still), removed from the cache; null if none (or
        the cache is taken)."""
        fn, b = self.function("tg_mem_take", PTR, [I64])
        n = fn.args[0]
        best, newest = b.alloca(I64), b.alloca(I64)
        b.store(i64(-1), best)
        b.store(i64(-1), newest)
        scan, hit, nohit, busy = self.blocks(fn, "scan", "hit", "nohit", "busy")
        b.cbranch(self.trylock(b), scan, busy)
        b.position_at_end(scan)
        with Loop(b, i64(0), i64(SLOTS), "slot") as j:
            size, stamp = (b.load(self.field(b, j, k), typ=I64) for k in (1, 2))
            fits = b.and_(b.icmp_unsigned(">=", size, n),
                          b.icmp_unsigned("<=", b.sub(size, n), b.lshr(n, i64(3))))
            better = b.and_(fits, b.icmp_signed(">", stamp, b.load(newest)))
            b.store(b.select(better, j, b.load(best)), best)
            b.store(b.select(better, stamp, b.load(newest)), newest)
        j = b.load(best)
        b.cbranch(b.icmp_signed(">=", j, i64(0)), hit, nohit)
        b.position_at_end(hit)
        block = b.load(self.field(b, j, 0), typ=PTR)
        size = b.load(self.field(b, j, 1), typ=I64)
        b.store(i64(0), self.field(b, j, 1))
        b.store(b.sub(b.load(self.total, typ=I64), size), self.total)
        self.count(b, "hits")
        self.unlock(b)
        b.ret(block)
        b.position_at_end(nohit)
        self.count(b, "misses")
        self.unlock(b)
        b.ret(ir.Constant(PTR, None))
        b.position_at_end(busy)
        b.ret(ir.Constant(PTR, None))
        return fn

    def _evict(self, b, j):
        """Free slot j's block (cache held)."""
        size = b.load(self.field(b, j, 1), typ=I64)
        b.call(self.libc("free", VOID, [PTR]), [b.load(self.field(b, j, 0), typ=PTR)])
        b.store(i64(0), self.field(b, j, 1))
        b.store(b.sub(b.load(self.total, typ=I64), size), self.total)
        self.count(b, "evicted")

    def _store_at(self, b, j, p, u):
        b.store(p, self.field(b, j, 0))
        b.store(u, self.field(b, j, 1))
        stamp = b.add(b.load(self.clock, typ=I64), i64(1))  # filing order, for take
        b.store(stamp, self.clock)
        b.store(stamp, self.field(b, j, 2))
        b.store(b.add(b.load(self.total, typ=I64), u), self.total)
        b.store(b.urem(b.add(j, i64(1)), i64(SLOTS)), self.next)
        self.count(b, "stored")
        self.unlock(b)
        b.ret(ir.Constant(I1, 1))

    def _put(self):
        """`i1 put(ptr p, i64 u)`: file block p (usable size u) in the cache.  Slots are
        visited from `next` (one past the last block filed): a slot's block is evicted while
        the new one does not fit the budget, and the first empty slot it fits takes it; when
        every slot is full, the block at `next` (the oldest filed, unless taken since) goes."""
        fn, b = self.function("tg_mem_put", I1, [PTR, I64])
        p, u = fn.args
        lock, locked, head, body, evict, check, store, nxt, full, no = self.blocks(
            fn, "lock", "locked", "head", "body", "evict", "check", "store", "next", "full", "no")
        b.cbranch(b.icmp_unsigned(">", u, b.load(self.budget, typ=I64)), no, lock)
        b.position_at_end(lock)
        b.cbranch(self.trylock(b), locked, no)
        b.position_at_end(locked)
        start = b.load(self.next, typ=I64)
        b.branch(head)
        b.position_at_end(head)
        k = b.phi(I64)
        k.add_incoming(i64(0), locked)
        b.cbranch(b.icmp_signed("<", k, i64(SLOTS)), body, full)
        b.position_at_end(body)
        j = b.urem(b.add(start, k), i64(SLOTS))
        over = b.icmp_unsigned(">", b.add(b.load(self.total, typ=I64), u), b.load(self.budget, typ=I64))
        taken = b.icmp_unsigned("!=", b.load(self.field(b, j, 1), typ=I64), i64(0))
        b.cbranch(b.and_(over, taken), evict, check)
        b.position_at_end(evict)
        self._evict(b, j)
        b.branch(check)
        b.position_at_end(check)
        over = b.icmp_unsigned(">", b.add(b.load(self.total, typ=I64), u), b.load(self.budget, typ=I64))
        empty = b.icmp_unsigned("==", b.load(self.field(b, j, 1), typ=I64), i64(0))
        b.cbranch(b.and_(empty, b.not_(over)), store, nxt)
        b.position_at_end(store)
        self._store_at(b, j, p, u)
        b.position_at_end(nxt)
        k.add_incoming(b.add(k, i64(1)), nxt)
        b.branch(head)
        b.position_at_end(full)  # every slot full, the budget kept: replace the one at `start`
        self._evict(b, start)
        self._store_at(b, start, p, u)
        b.position_at_end(no)
        b.ret(ir.Constant(I1, 0))
        return fn

    # ---- numpy's allocator functions: (ctx, ...) as PyDataMemAllocator declares them ----

    def _cached(self, b, fn, n):
        """(block, hit, miss): take a cached block for n bytes and branch on whether there
        was one; the builder is left in `hit`."""
        hit, miss = self.blocks(fn, "hit", "miss")
        block = b.call(self.take_fn, [n])
        b.cbranch(b.icmp_unsigned("!=", block, ir.Constant(PTR, None)), hit, miss)
        b.position_at_end(hit)
        return block, hit, miss

    def _malloc(self):
        fn, b = self.function("tg_mem_malloc", PTR, [PTR, I64], internal=False)
        n = fn.args[1]
        large, small = self.blocks(fn, "large", "small")
        b.cbranch(b.icmp_unsigned(">=", n, i64(MIN_BYTES)), large, small)
        b.position_at_end(large)
        block, hit, miss = self._cached(b, fn, n)
        b.ret(block)
        b.position_at_end(miss)
        b.branch(small)
        b.position_at_end(small)
        b.ret(self.numpy(b, "malloc", PTR, [n]))

    def _calloc(self):
        fn, b = self.function("tg_mem_calloc", PTR, [PTR, I64, I64], internal=False)
        count, size = fn.args[1:]
        product = b.call(declare(self.m, "llvm.umul.with.overflow.i64",
                                 ir.LiteralStructType([I64, I1]), [I64, I64]), [count, size])
        n = b.extract_value(product, 0)
        large, small = self.blocks(fn, "large", "small")
        fits = b.and_(b.not_(b.extract_value(product, 1)), b.icmp_unsigned(">=", n, i64(MIN_BYTES)))
        b.cbranch(fits, large, small)
        b.position_at_end(large)
        block, hit, miss = self._cached(b, fn, n)
        b.call(self.libc("memset", PTR, [PTR, I32, I64]), [block, I32(0), n])
        b.ret(block)
        b.position_at_end(miss)
        b.branch(small)
        b.position_at_end(small)
        b.ret(self.numpy(b, "calloc", PTR, [count, size]))

    def _realloc(self):
        fn, b = self.function("tg_mem_realloc", PTR, [PTR, PTR, I64], internal=False)
        b.ret(self.numpy(b, "realloc", PTR, list(fn.args[1:])))

    def _free(self):
        fn, b = self.function("tg_mem_free", VOID, [PTR, PTR, I64], internal=False)
        p, size = fn.args[1:]
        some, large, release, done = self.blocks(fn, "some", "large", "release", "done")
        b.cbranch(b.icmp_unsigned("==", p, ir.Constant(PTR, None)), done, some)
        b.position_at_end(some)
        usable = b.call(self.libc("malloc_usable_size", I64, [PTR]), [p])
        b.cbranch(b.icmp_unsigned(">=", usable, i64(MIN_BYTES)), large, release)
        b.position_at_end(large)
        b.cbranch(b.call(self.put_fn, [p, usable]), done, release)
        b.position_at_end(release)
        self.numpy(b, "free", VOID, [p, size])
        b.branch(done)
        b.position_at_end(done)
        b.ret_void()


# ---- numpy's side -------------------------------------------------------------------------

class Handler(ctypes.Structure):
    """numpy's PyDataMem_Handler (version 1)."""
    _fields_ = [("name", ctypes.c_char * 127), ("version", ctypes.c_uint8), ("ctx", ctypes.c_void_p),
                ("malloc", ctypes.c_void_p), ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p)]


SET_HANDLER_SLOT = 304  # PyArray_API[304]: PyDataMem_SetHandler (numpy >= 1.22)
DEFAULT_HANDLER_SLOT = 306  # PyArray_API[306]: &PyDataMem_DefaultHandler (a capsule)


def _api_table():
    from .fastcall import _array_api_table  # noqa: PLC0415 (numpy's C API table)
    return ctypes.cast(_array_api_table(), ctypes.POINTER(ctypes.c_void_p))


def numpy_default() -> Handler | None:
    """numpy's default handler (its allocator functions), or None where the capsule at its
    slot is not one of version 1 named "default_allocator"."""
    capsule = ctypes.cast(ctypes.c_void_p.from_address(_api_table()[DEFAULT_HANDLER_SLOT]).value,
                          ctypes.py_object).value
    get = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
        ("PyCapsule_GetPointer", ctypes.pythonapi))
    handler = Handler.from_address(get(capsule, b"mem_handler"))
    if handler.name != b"default_allocator" or handler.version != 1 or not handler.free:
        return None
    return handler


def budget_bytes() -> int:
    env = os.environ.get("TRACEGRAD_EAGER_CACHE_MB", "").strip()
    return (int(env) if env.isdigit() else DEFAULT_BUDGET_MB) << 20


class Memory:
    """The handler in this process: built and loaded once, never unloaded; `install()` makes
    it numpy's allocator in the current context."""

    def __init__(self):
        self.addresses = None
        self.keep = []  # the engine, the handler struct, its name and capsule: never freed

    def load(self, compile_module, default: Handler) -> dict:
        """Name -> address of the functions and globals (`compile_module(module)` gives the
        engine of an IR module, eager.Kernels._compile); `default` is numpy's default
        handler, which the cache falls back to."""
        if self.addresses is None:
            for name, address in libc_symbols(_LIBC).items():
                llvm.add_symbol(name, address)
            engine = compile_module(MemoryModule().build())
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(engine))  # never freed (docstring)
            words = (ctypes.c_void_p * len(DEFAULT)).from_address(
                engine.get_global_value_address("tg_mem_default"))
            words[:] = [getattr(default, k) for k in DEFAULT]
            table = {n: engine.get_function_address(f"tg_mem_{n}") for n in ("malloc", "calloc", "realloc", "free")}
            table.update({g: engine.get_global_value_address(f"tg_mem_{g}")
                          for g in ("budget", "total", "stats", "slots")})
            self.keep.append(engine)
            self.addresses = table
        return self.addresses

    def capsule(self):
        """numpy's handler capsule for this allocator.  Every array it allocates holds the
        capsule, and numpy reads the handler struct and the capsule's name when it frees
        one, possibly late in the interpreter's shutdown: both are never freed."""
        if not hasattr(self, "_capsule"):
            a = self.addresses
            handler = Handler(NAME, 1, None, a["malloc"], a["calloc"], a["realloc"], a["free"])
            name = ctypes.create_string_buffer(b"mem_handler")
            for obj in (handler, name):
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
            new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_void_p,
                                    ctypes.c_void_p)(("PyCapsule_New", ctypes.pythonapi))
            self._capsule = new(ctypes.addressof(handler), ctypes.addressof(name), None)
            self.keep += [handler, name, self._capsule]
        return self._capsule

    def set_budget(self, nbytes: int) -> None:
        ctypes.c_int64.from_address(self.addresses["budget"]).value = int(nbytes)

    def stats(self) -> dict:
        words = (ctypes.c_int64 * len(STATS)).from_address(self.addresses["stats"])
        cached = ctypes.c_int64.from_address(self.addresses["total"]).value
        return dict(zip(STATS, words[:]), cached_bytes=cached)


MEMORY = Memory()


def _set_handler(capsule_address) -> None:
    setter = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p)(_api_table()[SET_HANDLER_SLOT])
    setter(capsule_address)  # the previous handler, released


def active() -> bool:
    """Whether numpy allocates through this handler in the current context."""
    return np_handler_name() == NAME.decode()


def np_handler_name() -> str:
    try:
        from numpy._core.multiarray import get_handler_name
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import get_handler_name
    return get_handler_name()


def install(compile_module) -> bool:
    """Make the caching handler numpy's allocator in the current context (budget
    `budget_bytes()`; none when it is 0).  Returns whether it is installed."""
    budget = budget_bytes()
    if budget <= 0 or np.lib.NumpyVersion(np.__version__) < "1.22.0":
        return False
    default = numpy_default()
    if default is None:
        return False
    MEMORY.load(compile_module, default)
    MEMORY.set_budget(budget)
    _set_handler(id(MEMORY.capsule()))
    return active()


def uninstall() -> None:
    """numpy's default allocator again in the current context (where this one is set).
    Blocks freed from now on go back to libc (budget 0); those cached stay until the
    handler is installed again and reuses or evicts them."""
    if MEMORY.addresses is not None and active():
        _set_handler(None)
        MEMORY.set_budget(0)
