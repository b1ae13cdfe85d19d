"""What the machine can do, measured in the same run as the workloads, and what it is.

Memory bandwidth comes from a single-pass triad ``c[i] = a[i] + s*b[i]`` written in C and
compiled with gcc at run time (``np.add(a, s*b, out=c)`` is two passes plus a temporary).
Without gcc it falls back to ``np.add(a, b, out=c)``, also one pass of the same traffic, and
says so. Bytes are counted as STREAM does: 24 per element (read a, read b, write c),
ignoring the write-allocate read of c.

The harness never sets or changes OPENBLAS_CORETYPE (nor any thread-count variable); it
only reports what the environment had.
"""

from __future__ import annotations

import ctypes
import datetime
import importlib.metadata
import os
import platform
import resource
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

TRIAD_C = r"""
#include <pthread.h>
struct job { double *c; const double *a, *b; double s; long lo, hi; };
static void *run(void *p) {
    struct job *j = p;
    for (long i = j->lo; i < j->hi; i++) j->c[i] = j->a[i] + j->s * j->b[i];
    return 0;
}
void triad(double *c, const double *a, const double *b, double s, long n, int nthreads) {
    pthread_t tid[64]; struct job jobs[64];
    if (nthreads > 64) nthreads = 64;
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (struct job){c, a, b, s, n * t / nthreads, n * (t + 1) / nthreads};
        if (t) pthread_create(&tid[t], 0, run, &jobs[t]);
    }
    run(&jobs[0]);
    for (int t = 1; t < nthreads; t++) pthread_join(tid[t], 0);
}
"""

ENV_REPORTED = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                "MKL_NUM_THREADS", "XLA_FLAGS", "TRACEGRAD_ISA", "NPY_DISABLE_CPU_FEATURES",
                "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "NUMBA_CPU_NAME")
ISA_REPORTED = ENV_REPORTED[5:]  # set by `benchmarks.run --isa`
VERSIONED = ("numpy", "scipy", "jax", "jaxlib", "torch", "autograd", "numba", "llvmlite",
             "tracegrad")


def compile_triad(workdir: str):
    """The C triad as a ctypes function, or None when gcc is missing or fails."""
    gcc = shutil.which("gcc")
    if not gcc:
        return None
    src, lib = os.path.join(workdir, "triad.c"), os.path.join(workdir, "triad.so")
    with open(src, "w") as fh:
        fh.write(TRIAD_C)
    cmd = [gcc, "-O3", "-march=native", "-shared", "-fPIC", "-pthread", src, "-o", lib]
    if subprocess.run(cmd, capture_output=True).returncode != 0:
        return None
    fn = ctypes.CDLL(lib).triad
    fn.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_double, ctypes.c_long, ctypes.c_int]
    return fn


def numpy_pass(c, a, b, threads: int) -> None:
    """The fallback: c = a + b in one pass, split over Python threads (numpy drops the GIL)."""
    parts = [slice(len(a) * t // threads, len(a) * (t + 1) // threads) for t in range(threads)]
    workers = [threading.Thread(target=np.add, args=(a[p], b[p]), kwargs={"out": c[p]})
               for p in parts]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def best_seconds(fn, reps: int) -> float:
    fn()  # first touch already done by the caller; this one warms caches and the TLB
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _one_pass(triad, a, b, c, threads: int):
    if triad is None:
        return lambda: numpy_pass(c, a, b, threads)
    addresses = (c.ctypes.data, a.ctypes.data, b.ctypes.data)  # precomputed: ~1 us each
    return lambda: triad(*addresses, 3.0, len(a), threads)


def bandwidth(n: int = 1 << 24, threads=(1, 2), reps: int = 8) -> dict:
    """GB/s of a single-pass triad over three float64 arrays of n elements (>> L3)."""
    a, b, c = np.full(n, 1.0), np.full(n, 2.0), np.full(n, 0.0)  # written: pages are real
    with tempfile.TemporaryDirectory() as tmp:
        triad = compile_triad(tmp)
        method = "C triad (gcc -O3 -march=native, pthreads)" if triad else \
            "numpy np.add(a, b, out=c) fallback: gcc unavailable"
        result = {"method": method, "bytes_per_element": 24, "elements": n}
        for t in threads:
            seconds = best_seconds(_one_pass(triad, a, b, c, t), reps)
            result[f"GBps_{t}_threads"] = 24 * n / seconds / 1e9
    return result


def matmul_gflops(n: int = 2048, reps: int = 5) -> dict:
    """numpy (BLAS) n x n matmul throughput, best of ``reps``, float32 and float64."""
    rng = np.random.default_rng(0)
    out = {}
    for dtype in (np.float32, np.float64):
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        out[f"GFLOPs_{np.dtype(dtype).name}"] = 2 * n ** 3 / best_seconds(lambda a=a, b=b: a @ b, reps) / 1e9
    out["n"] = n
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _blas() -> str:
    try:
        deps = np.show_config(mode="dicts")["Build Dependencies"]
        blas = deps["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:
        return "unknown"


def openblas_core() -> str | None:
    """The kernel family the loaded OpenBLAS picked (what OPENBLAS_CORETYPE would override)."""
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename",
                       "openblas_get_corename64_", "openblas_get_corename"):
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return None


def machine_info() -> dict:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy_blas": _blas(),
        "openblas_core": openblas_core(),
        "versions": {d: _version(d) for d in VERSIONED},
        "env": {k: os.environ.get(k) for k in ENV_REPORTED},
    }


def cpu_snapshot() -> dict | None:
    """Machine-wide busy and steal CPU seconds (/proc/stat), this process's own, and the time."""
    try:
        with open("/proc/stat") as fh:
            fields = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    tick = os.sysconf("SC_CLK_TCK")
    own = sum(getattr(resource.getrusage(who), f) for who in
              (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for f in ("ru_utime", "ru_stime"))
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return {"wall": time.time(), "busy": (user + nice + system + irq + softirq) / tick,
            "steal": steal / tick, "own": own}


def competition(start: dict | None, end: dict | None, cores: int) -> dict | None:
    """Shares of the machine's CPU time that other processes and the hypervisor took."""
    if not start or not end or end["wall"] <= start["wall"]:
        return None
    capacity = (end["wall"] - start["wall"]) * cores
    others = (end["busy"] - start["busy"]) - (end["own"] - start["own"])
    return {"others_share": max(others, 0.0) / capacity,
            "steal_share": (end["steal"] - start["steal"]) / capacity}
