"""Compiling several LLVM modules at once, on threads.

llvmlite runs every call into LLVM under one process-wide lock of its own, so threads
that go through it only take turns.  LLVM itself compiles independent modules
concurrently when each thread has its own LLVMContext and TargetMachine (its parallel
code generation and ThinLTO back ends work that way).  A `Slot` holds those objects for
one thread.  The long calls of a job (parsing, the pass pipeline, code generation,
printing) go to llvmlite's C functions directly, outside llvmlite's lock and, as ctypes
foreign calls, outside the GIL; the short ones (triple, pass builder set-up) go through
llvmlite as usual.

The caller holds llvm_util.LOCK for the whole batch, so one compile runs at a time as
before, and a job's thread touches only its own slot's objects and the module it parses.
Slots live as long as the process: their contexts keep the types and constants of what
they compiled, as LLVM's global context does.  Without those C functions (another
llvmlite), or with one worker, jobs run one after another through llvm_util.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from ctypes import c_char_p, string_at
from dataclasses import dataclass

import llvmlite.binding as llvm
from llvmlite.binding import ffi

from . import llvm_util


@dataclass
class Job:
    """One module to compile: the IR texts linked into it, its optimization level and
    code generator."""

    texts: list
    level: int | str  # 0-3 or llvm_util.LIGHT
    fast: bool = False  # the code generator's fast path (glue code)
    keep_ir: bool = True  # print the optimized IR (else Done.ir_text is None: see optimized_ir)

    @property
    def size(self) -> int:
        return sum(len(t) for t in self.texts)


@dataclass
class Done:
    """A job's object code, optimized IR, and seconds spent optimizing (with parsing) and
    generating code."""

    obj: bytes
    ir_text: str
    optimize_seconds: float
    object_seconds: float


def _raw(name: str):
    """The ctypes function behind llvmlite's locked wrapper of `name`, or None."""
    try:
        return getattr(getattr(ffi.lib, name), "_cfn", None)
    except AttributeError:
        return None


_NAMES = ("LLVMPY_ParseAssembly", "LLVMPY_VerifyModule", "LLVMPY_RunNewModulePassManager",
          "LLVMPY_TargetMachineEmitToMemory", "LLVMPY_PrintModuleToString")


@dataclass(frozen=True)
class _Calls:
    parse: object
    verify: object
    run: object
    emit: object
    print: object


def _calls() -> _Calls | None:
    found = [_raw(name) for name in _NAMES]
    return None if any(f is None for f in found) else _Calls(*found)


class Slot:
    """The LLVM objects private to one compiling thread (module docstring)."""

    def __init__(self):
        self.context = llvm.create_context()
        self.machines = {False: llvm_util.host_target_machine(),
                         True: llvm_util.host_target_machine(opt=0)}
        host = llvm_util.target_machine()
        self.triple, self.layout = host.triple, str(host.target_data)


_SLOTS: list = []
_SLOTS_LOCK = threading.Lock()


def _after_fork_in_child():
    """A child forked while a parent thread compiled in a slot cannot trust that slot's
    LLVM objects (left mid-compile) nor find the slots' lock free: new ones."""
    global _SLOTS_LOCK
    _SLOTS_LOCK = threading.Lock()
    _SLOTS.clear()  # (their memory stays, unused)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def slots(n: int) -> list:
    """The first `n` slots, made on first use (call with llvm_util.LOCK held)."""
    with _SLOTS_LOCK:
        while len(_SLOTS) < n:
            _SLOTS.append(Slot())
        return _SLOTS[:n]


def _parse_all(calls: _Calls, slot: Slot, texts):
    """One module: the first text's, with the others linked into it."""
    module = _parse(calls, slot, texts[0])
    for text in texts[1:]:
        module.link_in(_parse(calls, slot, text))
    return module


def _parse(calls: _Calls, slot: Slot, text: str):
    with ffi.OutputString() as err:
        module = llvm.ModuleRef(calls.parse(slot.context, c_char_p(text.encode()), err),
                                slot.context)
        if err:
            module.close()
            raise RuntimeError(f"LLVM IR parsing error\n{err}")
    with ffi.OutputString() as err:
        if calls.verify(module, err):
            raise RuntimeError(str(err))
    module.triple, module.data_layout = slot.triple, slot.layout
    return module


def _emit(calls: _Calls, machine, module) -> bytes:
    with ffi.OutputString() as err:
        buffer = calls.emit(machine, module, 1, err)
        if not buffer:
            raise RuntimeError(str(err))
    try:
        return string_at(ffi.lib.LLVMPY_GetBufferStart(buffer), ffi.lib.LLVMPY_GetBufferSize(buffer))
    finally:
        ffi.lib.LLVMPY_DisposeMemoryBuffer(buffer)


def _print(calls: _Calls, module) -> str:
    with ffi.OutputString() as out:
        calls.print(module, out)
        return str(out)


def _run_on(calls: _Calls, slot: Slot, job: Job) -> Done:
    """One job on `slot`'s objects, outside llvmlite's lock (module docstring)."""
    t0 = time.perf_counter()
    module = _parse_all(calls, slot, job.texts)
    try:
        manager, builder = llvm_util.pass_manager(slot.machines[False], job.level)
        calls.run(manager, module, builder)
        t1 = time.perf_counter()
        obj = _emit(calls, slot.machines[job.fast], module)
        text = _print(calls, module) if job.keep_ir else None
        return Done(obj, text, t1 - t0, time.perf_counter() - t1)
    finally:
        module.close()


def _optimized(job: Job):
    """The job's module parsed, linked and optimized with llvmlite's own objects (hold
    llvm_util.LOCK)."""
    ref = llvm_util.parse(job.texts[0])
    for text in job.texts[1:]:
        ref.link_in(llvm_util.parse(text))
    llvm_util.optimize(ref, job.level)
    return ref


def _run_serially(job: Job) -> Done:
    t0 = time.perf_counter()
    ref = _optimized(job)
    t1 = time.perf_counter()
    obj = llvm_util.emit_object(ref, fast=job.fast)
    return Done(obj, str(ref) if job.keep_ir else None, t1 - t0, time.perf_counter() - t1)


def optimized_ir(job: Job) -> str:
    """The optimized IR text of a job run without `keep_ir`, made again on demand: the
    pipeline is deterministic, and printing every module cost a tenth of a first call
    (W4: 12 ms of CPU for five modules) that no one reads without a disk cache."""
    with llvm_util.LOCK:
        return str(_optimized(job))


def run_jobs(jobs: list, workers: int) -> list:
    """Each job's `Done`, in order, compiled on up to `workers` threads, the caller one of
    them (the longest texts first, so that the threads finish close together).  Hold
    llvm_util.LOCK.

    Plain threads, not a concurrent.futures pool: its `submit` takes a lock that its own
    before-fork hook holds, and a fork waiting for LOCK while this thread, holding LOCK,
    waited for that lock never returned (llvm_util's fork hook)."""
    calls = _calls()
    workers = min(workers, len(jobs))
    if workers <= 1 or calls is None:
        return [_run_serially(job) for job in jobs]
    todo = queue.SimpleQueue()
    for i in sorted(range(len(jobs)), key=lambda i: -jobs[i].size):
        todo.put(i)
    done, failed = [None] * len(jobs), []

    def work(slot):
        while not failed:  # after a failure, the jobs left are not started
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done[i] = _run_on(calls, slot, jobs[i])
            except BaseException as e:  # raised on the caller's thread, below
                failed.append(e)

    first, *others = slots(workers)
    helpers = []
    try:  # however the caller's share ends, no helper outlives the call (and LOCK)
        for slot in others:
            helpers.append(threading.Thread(target=work, args=(slot,), name="tracegrad-llvm"))
            helpers[-1].start()
        work(first)
    finally:
        if not failed:
            failed.append(None)  # stops the helpers after their current job
        for t in helpers:
            t.join()
    if failed[0] is not None:
        raise failed[0]
    return done
