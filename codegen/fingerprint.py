"""What generated code depends on besides the program: the environment in every cache key.

* **The compiler**: the sha256 of the source of tracegrad's `ir`, `passes` and `codegen`
  packages (every .py file under them, hashed once per process).  Any change to the
  compiler changes every key, so an upgraded tracegrad never runs object code an older
  one made; there is no version string to bump by hand.
* **Its tuning constants** (`tuning()`), read at call time: they are module attributes
  that tests and users may change, and the source hash only sees their defaults.
* **The target**: llvmlite and LLVM versions, triple, host CPU name and features, and
  the vector width the code is written for.

Programs add what only the entry depends on (`program_environment`): the BLAS route and
the thread counts.  The keys themselves are made in cache.py and units.py.

>>> env = kernel_environment()
>>> kernel_environment() == env and len(compiler_hash()) == 64
True
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os

import llvmlite
import llvmlite.binding as llvm

from . import (blas, extern, fastcall, kernel, llvm_util, lower, outline, simd, threads, units,
               unrolled)

PACKAGES = ("tracegrad.ir", "tracegrad.passes", "tracegrad.codegen")


def _source_files(package: str):
    """(relative path, absolute path) of every .py file under a package, in a fixed order."""
    root = os.path.dirname(importlib.import_module(package).__file__)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(f for f in filenames if f.endswith(".py")):
            path = os.path.join(dirpath, name)
            yield os.path.relpath(path, root), path


def source_hash(packages) -> str:
    """sha256 of every .py file (path and bytes) under the named packages."""
    h = hashlib.sha256()
    for package in packages:
        for rel, path in _source_files(package):
            with open(path, "rb") as f:
                data = f.read()
            h.update(f"{package}/{rel}:{len(data)}\n".encode())
            h.update(data)
    return h.hexdigest()


@functools.cache
def compiler_hash() -> str:
    """sha256 of the compiler's own source (module docstring); once per process."""
    return source_hash(PACKAGES)


def tuning() -> dict:
    """The current values of the constants that steer code generation."""
    return {"PARALLEL_MIN_COST": threads.PARALLEL_MIN_COST,
            "OUTLINE_MIN_CALLS": outline.OUTLINE_MIN_CALLS,
            "LONG_BODY": simd.LONG_BODY, "SPLIT_MIN_LANES": simd.SPLIT_MIN_LANES,
            "COSTLY_BODY": threads.COSTLY_BODY, "COSTLY_MIN_ELEMENTS": simd.COSTLY_MIN_ELEMENTS,
            "UNROLL_BUDGET": unrolled.UNROLL_BUDGET,
            "INNER_ACCUMULATORS": unrolled.INNER_ACCUMULATORS,
            "INLINE_FLOPS": blas.INLINE_FLOPS, "BIG_CONST_BYTES": kernel.BIG_CONST_BYTES,
            "SEGMENT_BUDGET": kernel.SEGMENT_BUDGET, "CHUNK": kernel.CHUNK, "GROUP": kernel.GROUP, "FOLD_PER_ROW": kernel.FOLD_PER_ROW,
            "GIL_RELEASE_WORK": fastcall.GIL_RELEASE_WORK,
            "LONG_SCALAR_BODY": units.LONG_SCALAR_BODY, "SMALL_DOMAIN": units.SMALL_DOMAIN,
            "TINY_DOMAIN": units.TINY_DOMAIN, "TINY_COST": units.TINY_COST,
            "SPLIT_MIN_BODY": units.SPLIT_MIN_BODY, "PART_CALLS": lower.PART_CALLS,
            "ENTRY_O2_CALLS": lower.ENTRY_O2_CALLS, "EXTERN_NATIVE": extern.native_enabled()}


@functools.cache
def target() -> dict:
    """The machine code's target: versions, triple, CPU, features, vector width."""
    with llvm_util.LOCK:
        return {"llvmlite": llvmlite.__version__,
                "llvm": ".".join(map(str, llvm.llvm_version_info)),
                "triple": llvm_util.target_machine().triple, "cpu": llvm.get_host_cpu_name(),
                "features": llvm_util.host_features().flatten(),
                "vector_bits": llvm_util.vector_bits()}


def kernel_environment() -> str:
    """The environment of a kernel unit's code, as canonical JSON text (the LAPACK route
    too: an extern kernel's unit calls LAPACK where it was found, the host otherwise)."""
    from . import lapack

    return json.dumps({"compiler": compiler_hash(), "tuning": tuning(), "target": target(),
                       "lapack": lapack.describe()}, sort_keys=True)


def program_environment(**threads_and_more) -> dict:
    """The environment of a program's entry: the kernels' plus the BLAS route and threads."""
    return {"kernels": kernel_environment(), "blas": blas.describe(), **threads_and_more}
