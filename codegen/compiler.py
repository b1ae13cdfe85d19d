"""Compiling a program: cache lookups, compile units, linking, stage times and progress.

* `compile_graph(graph, plan, ...)` compiles an optimized graph.  With a disk cache it
  first looks the program up by the graph itself (cache.graph_key), so a hit skips
  fusion planning as well as code generation; on a miss it calls `plan(graph)` (fusion)
  for the kernel program.
* `compile_program(kp, ...)` compiles a kernel program (cache.program_key).

Either way the kernel program is lowered to an entry module and its distinct compile
units (lower.py, units.py).  Each unit is loaded from the disk cache by its own key or
emitted, optimized at its own level and turned into object code (without a disk cache,
the units of one level share one module per thread: `_unit_jobs`); the entry through the
code generator's fast path, unoptimized when it only calls (`_entry_job`); one engine
links them all.  LLVM work runs under llvm_util.LOCK; planning and graph hashing do not
need it.

A program's modules (its units' modules and the entry) are optimized and turned into
object code on up to `n_threads` threads, each with its own LLVM context and target
machines (llvm_jobs.py: llvmlite's own lock would make threads take turns, so the long
calls bypass it); the object code is the same as on one thread.

`CompiledProgram.stage_seconds` says where the time went (key, lookup, plan, lower,
emit, llvm (the threads' wall time), optimize and object (summed over threads), entry,
link), and `kernel_stats` how many kernel calls the program has, how many distinct
units, how many of them were compiled and how many loaded from the cache.  With `TRACEGRAD_LOG=1` (or `info`) a compile that has run for
PROGRESS_AFTER seconds logs its progress on the "tracegrad" logger.
"""
from __future__ import annotations

import functools
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass

from tracegrad.passes.kernels import CondStep, LoopStep
from tracegrad.passes.matvec import matvec_loops
from tracegrad.passes.rowblock import rowblock

from . import blas, cache, extern, fingerprint, llvm_jobs, llvm_util, lower, threads
from .lower import lower_program
from .runtime import FAST_ENTRY, CompiledProgram, ProgramImage, join_modules, register_symbols

PROGRESS_AFTER = 2.0  # seconds into a compile before progress is logged
PROGRESS_EVERY = 1.0  # seconds between progress lines
LOG = logging.getLogger("tracegrad")


# ---- stage times and progress ----------------------------------------------------------

def logging_requested() -> bool:
    """TRACEGRAD_LOG=1|info|debug|true: progress of long compiles on the "tracegrad" logger
    (given a stderr handler and level INFO if the application configured none)."""
    value = os.environ.get("TRACEGRAD_LOG", "").strip().lower()
    if value not in ("1", "info", "debug", "true", "yes"):
        return False
    if LOG.level == logging.NOTSET or LOG.level > logging.INFO:
        LOG.setLevel(logging.DEBUG if value == "debug" else logging.INFO)
    if not LOG.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        LOG.addHandler(handler)
    return True


class Stages:
    """The times of one compile's stages, and its progress lines (module docstring)."""

    def __init__(self, name: str):
        self.name, self.t0 = name, time.perf_counter()
        self.seconds = {}
        self.logging = logging_requested()
        self._logged = self.t0

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def progress(self, message: str) -> None:
        now = time.perf_counter()
        if self.logging and now - self.t0 >= PROGRESS_AFTER and now - self._logged >= PROGRESS_EVERY:
            LOG.info("compiling %s: %s (%.1f s)", self.name, message, now - self.t0)
            self._logged = now

    def finish(self, cp: CompiledProgram, stats: dict) -> CompiledProgram:
        cp.compile_seconds = self.elapsed()
        cp.stage_seconds = {k: round(v, 6) for k, v in self.seconds.items()}
        cp.kernel_stats = stats
        if self.logging and cp.compile_seconds >= PROGRESS_AFTER:
            times = ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items())
            LOG.info("compiled %s in %.1f s (%s s); kernels: %s", self.name,
                     cp.compile_seconds, times, stats)
        return cp


# ---- compile units -----------------------------------------------------------------------

@dataclass
class UnitCode:
    obj: bytes
    ir_text: str | object  # the optimized IR, or a function making it (llvm_jobs.optimized_ir)


def _ir_of(code: UnitCode) -> str:
    return code.ir_text() if callable(code.ir_text) else code.ir_text


def _unit_from_cache(store, unit) -> UnitCode | None:
    entry = store.load(unit.key) if store is not None else None
    if entry is None or len(entry.blobs) != 1:
        return None
    return UnitCode(entry.blobs[0], entry.ir_text)


def _cached_units(units, store, stages: Stages, stats: dict):
    """(codes of the units found in the disk cache, the units to compile)."""
    codes, missing = [], []
    for unit in units:
        with stages.stage("lookup"):
            code = _unit_from_cache(store, unit)
        if code is None:
            missing.append(unit)
        else:
            codes.append(code)
    stats["loaded"] += len(codes)
    stats["compiled"] += len(missing)
    return codes, missing


def _unit_jobs(units, merge: bool, workers: int, stages: Stages) -> list:
    """The compile jobs of `units` (emitted here): one per unit when each unit's object is
    stored on its own, else (no disk cache) the units of one optimization level linked
    into one module per worker (each module costs a fixed part, pass pipelines and code
    generator set-up, besides its size), their optimized IR printed only on demand."""
    built = []
    with stages.stage("emit"):
        for unit in units:
            module, level = unit.build()
            built.append((str(module), level))
    if not merge:
        return [llvm_jobs.Job([text], level) for text, level in built]
    by_level = {}
    for text, level in built:
        by_level.setdefault(level, []).append(text)
    return [llvm_jobs.Job(share, level, keep_ir=False) for level, texts in by_level.items()
            for share in _shares(texts, workers)]


def _shares(texts, n: int) -> list:
    """`texts` in at most n groups of about equal length: longest first, each to the
    shortest group so far."""
    groups = [[] for _ in range(min(n, len(texts)))]
    sizes = [0] * len(groups)
    for text in sorted(texts, key=len, reverse=True):
        j = sizes.index(min(sizes))
        groups[j].append(text)
        sizes[j] += len(text)
    return groups


def _run_jobs(jobs, workers: int, stages: Stages) -> list:
    """Each job's UnitCode (llvm_jobs.run_jobs).  Stage times add up over threads: the
    units' under optimize and object, the entry's (the fast job) under entry."""
    with stages.stage("llvm"):
        done = llvm_jobs.run_jobs(jobs, workers)
    for job, d in zip(jobs, done):
        if job.fast:
            stages.add("entry", d.optimize_seconds + d.object_seconds)
        else:
            stages.add("optimize", d.optimize_seconds)
            stages.add("object", d.object_seconds)
    return [UnitCode(d.obj, d.ir_text if d.ir_text is not None
                     else functools.partial(llvm_jobs.optimized_ir, job))
            for job, d in zip(jobs, done)]


def _store_units(store, units, codes, stages: Stages) -> None:
    with stages.stage("store"):
        for unit, code in zip(units, codes):
            store.store(unit.key, cache.CacheEntry({"unit": unit.text}, [code.obj], code.ir_text))


def unit_codes(units, store, stages: Stages, stats: dict, workers: int = 1) -> list:
    """The object code of every unit: from the disk cache, else compiled (and stored).
    Without a disk cache the units of one optimization level share one object file
    (per worker thread), so the list may be shorter than `units`."""
    codes, missing = _cached_units(units, store, stages, stats)
    jobs = _unit_jobs(missing, store is None, workers, stages)
    compiled = _run_jobs(jobs, workers, stages) if jobs else []
    if store is not None:
        _store_units(store, missing, compiled, stages)
    stages.progress(f"{len(units)} distinct kernels")
    return codes + compiled


# ---- programs ------------------------------------------------------------------------------

def _prepare(disk_cache):
    """The disk cache to use; the process's symbols and fast-call function ready."""
    store = cache.resolve(disk_cache)
    register_symbols(store)
    FAST_ENTRY.get(store)  # once per process, before any CompiledProgram needs it
    return store


def _entry_job(lowered, straight: bool, keep_ir: bool = True) -> llvm_jobs.Job:
    """The entry's compile job, always through the code generator's fast path: it holds
    calls, whose code gains nothing from the full one, which takes twice as long for a
    small entry and several times as long per call for a large one.  A straight entry
    (calls, thread launches and BLAS calls, no loop or branch steps) is not optimized at
    all: its run time is its callees', and LLVM's pipeline costs milliseconds even on a
    few dozen instructions.  An entry with steps (loops.py) is optimized at O2, O1 when
    large."""
    if straight:
        level = 0
    else:
        level = 1 if lowered.n_calls > lower.ENTRY_O2_CALLS else 2
    return llvm_jobs.Job([str(lowered.module)], level, fast=True, keep_ir=keep_ir)


def _straight(kp) -> bool:
    """Whether the entry needs no optimization: a kernel program without control-flow
    steps (LoopStep, CondStep) other than row-block steps (a LoopStep with `groups`).
    A row-block step's loop runs a few calls per block of rows, whose kernels take
    microseconds; optimizing it saved nothing measurable, and the O2 entry was a
    fifth of a one-pass W4's first call."""
    return not any(isinstance(k, CondStep) or (isinstance(k, LoopStep) and k.groups is None)
                   for k in kp.kernels)


def _build(kp, name: str, store, key, n_threads: int, stages: Stages,
           workers: int = 1) -> CompiledProgram:
    """Compile a kernel program (holding the LLVM lock) on up to `workers` threads (
    llvm_jobs.py); store it under `key` if given."""
    with stages.stage("lower"):
        lowered = lower_program(kp, name, n_threads, fingerprint.kernel_environment())
    stats = {"calls": lowered.n_calls, "distinct": len(lowered.units), "compiled": 0, "loaded": 0}
    codes, missing = _cached_units(lowered.units, store, stages, stats)
    jobs = _unit_jobs(missing, store is None, workers, stages)
    with stages.stage("emit"):
        jobs.append(_entry_job(lowered, _straight(kp), keep_ir=store is not None))
    *compiled, entry = _run_jobs(jobs, workers, stages)
    if store is not None:
        _store_units(store, missing, compiled, stages)
    codes += compiled
    stages.progress(f"{len(lowered.units)} distinct kernels")
    image = ProgramImage.of(kp, lowered.layout)
    with stages.stage("link"):
        engine = llvm_util.load_objects([entry.obj] + [c.obj for c in codes])
    if store is not None and key is not None:
        meta = {"name": name, "units": [u.key for u in lowered.units],
                "host_calls": lowered.host_calls, **image.to_meta()}
        blobs = [entry.obj] + [c.tobytes() for c in image.big_consts]
        with stages.stage("store"):
            store.store(key, cache.CacheEntry(meta, blobs, entry.ir_text))
    cp = CompiledProgram(image, engine, lambda: join_modules([_ir_of(c) for c in [entry] + codes]),
                         0.0, False, key)
    cp.unit_keys = [u.key for u in lowered.units]
    if lowered.host_calls:
        extern.guard(cp)
    return stages.finish(cp, stats)


def _load(store, key: str, stages: Stages) -> CompiledProgram | None:
    """The program stored under `key` with all its units, or None (a miss)."""
    with stages.stage("lookup"):
        entry = store.load(key)
        if entry is None or not entry.blobs or not isinstance(entry.meta.get("units"), list):
            return None
        units = [store.load(k) for k in entry.meta["units"]]
        if any(u is None or len(u.blobs) != 1 for u in units):
            return None
        try:
            image = ProgramImage.from_meta(entry.meta, entry.blobs[1:])
        except (KeyError, ValueError, TypeError):
            return None
    with stages.stage("link"):
        try:
            engine = llvm_util.load_objects([entry.blobs[0]] + [u.blobs[0] for u in units])
        except RuntimeError:
            return None
    ir_text = join_modules([entry.ir_text] + [u.ir_text for u in units])
    cp = CompiledProgram(image, engine, ir_text, 0.0, True, key)
    cp.unit_keys = list(entry.meta["units"])
    if entry.meta.get("host_calls"):
        extern.guard(cp)
    return stages.finish(cp, {"calls": None, "distinct": len(units), "compiled": 0,
                              "loaded": len(units)})


def _threads_for(kp, requested: int) -> int:
    """A program that calls a multi-threaded BLAS uses only the cores its workers leave."""
    if blas.calls_blas(kp):
        return threads.beside_blas(requested, blas.thread_count())
    return requested


def compile_program(kp, name: str = "program", disk_cache=None, n_threads: int | None = None):
    """Compile a KernelProgram to a CompiledProgram (using the disk cache if enabled).

    `disk_cache`: None uses the environment (TRACEGRAD_CACHE_DIR,
    TRACEGRAD_DISABLE_CACHE), False disables it, a path or DiskCache selects it.
    `n_threads`: worker threads for large kernels (default TRACEGRAD_NUM_THREADS or
    os.cpu_count()); a program that calls a multi-threaded BLAS uses only the cores its
    spinning workers leave (threads.beside_blas).
    """
    stages = Stages(name)
    requested = threads.thread_count(n_threads)
    n_threads = _threads_for(kp, requested)
    with llvm_util.LOCK:
        store = _prepare(disk_cache)
        key = None
        if store is not None:
            with stages.stage("key"):
                key = cache.program_key(kp, fingerprint.program_environment(threads=n_threads))
            cp = _load(store, key, stages)
            if cp is not None:
                cp.planner = lambda: kp
                return cp
        cp = _build(kp, name, store, key, n_threads, stages, workers=requested)
    cp.planner = lambda: kp
    return cp


def graph_environment(plan, requested_threads: int) -> dict:
    """What, besides the graph, decides its program: the planner (its source is in the
    fingerprint) and the thread counts the plan starts from."""
    planner = f"{getattr(plan, '__module__', '')}.{getattr(plan, '__qualname__', repr(plan))}"
    return fingerprint.program_environment(planner=planner, threads=requested_threads,
                                           cpus=os.cpu_count(), blas_threads=blas.thread_count())


def _planned(graph, plan):
    """`plan(graph)` with its narrow products as loops (passes/matvec.py: no BLAS call
    keeps its threads from the program) and its row blocks (passes/rowblock.py: a
    step's ranges of blocks run on the program's threads, rowsteps.py)."""
    return rowblock(matvec_loops(plan(graph)))


def compile_graph(graph, plan, name: str = "program", disk_cache=None,
                  n_threads: int | None = None) -> CompiledProgram:
    """Compile an optimized graph: `plan(graph)` (fusion) gives its kernel program.

    With a disk cache the program is looked up by the graph first, so a hit skips
    planning too.  `disk_cache` and `n_threads` as for `compile_program`.  The result's
    `kernel_program()` gives the kernel program (planned again after a cache hit).
    """
    stages = Stages(name)
    requested = threads.thread_count(n_threads)
    key = None
    with llvm_util.LOCK:
        llvm_util.dispose_pending()
        store = _prepare(disk_cache)
    if store is not None:
        with stages.stage("key"):
            key = cache.graph_key(graph, graph_environment(plan, requested))
        with llvm_util.LOCK:
            cp = _load(store, key, stages)
        if cp is not None:
            cp.planner = functools.cache(lambda: _planned(graph, plan))
            return cp
    with stages.stage("plan"):
        kp = _planned(graph, plan)
    stages.progress(f"planned {len(kp.kernels)} kernels")
    with llvm_util.LOCK:
        cp = _build(kp, name, store, key, _threads_for(kp, requested), stages,
                    workers=requested)
    cp.planner = lambda: kp
    return cp
