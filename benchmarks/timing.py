"""First-call and steady-state timing.

The first call is timed from building the implementation (compile_grad, jax.jit, njit, ...)
to the end of its first evaluation, so it includes tracing and compilation. Steady state:
a few warm-up calls, then the repetition count is sized so one sample lasts at least
``min_sample_s``, and the median per-call time over ``samples`` samples is reported.
The garbage collector is off inside a sample, as in ``timeit``.
"""

from __future__ import annotations

import gc
import math
import signal
import statistics
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator


class Timeout(Exception):
    """Raised inside the timed code when a :func:`deadline` expires."""


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Raise :class:`Timeout` in the main thread after ``seconds`` (no-op if unsupported).

    Uses SIGALRM, so it only works on Unix in the main thread; elsewhere the code runs
    without a limit.
    """
    in_main = threading.current_thread() is threading.main_thread()
    if not (seconds and in_main and hasattr(signal, "setitimer")):
        yield
        return

    def on_alarm(signum, frame):
        raise Timeout(f"did not finish in {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# OpenBLAS's workers spin-wait for new work for a while after a threaded call (its
# THREAD_TIMEOUT, 2^28 cycles: about 0.1 s) and take the cores from whatever runs next: a
# sample right after numpy's or autograd's W3 ran tracegrad's calls 1.6x slower on 2 cores.
SETTLE_S = 0.15


def first_call(build: Callable[[], Callable[[], Any]], timeout: float | None = None):
    """Build a fresh callable and run it once: returns (call, first output, seconds)
    (after a pause of SETTLE_S: the previous entry's spinning threads)."""
    time.sleep(SETTLE_S)
    start = time.perf_counter()
    with deadline(timeout):
        call = build()
        out = call()
    return call, out, time.perf_counter() - start


def run_n(call: Callable[[], Any], n: int) -> float:
    """Seconds taken by ``n`` back-to-back calls, garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        for _ in range(n):
            call()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def calibrate(call: Callable[[], Any], min_sample_s: float) -> int:
    """Smallest tried repetition count whose sample lasts at least ``min_sample_s``."""
    n = 1
    while True:
        elapsed = run_n(call, n)
        if elapsed >= min_sample_s:
            return n
        n = max(2 * n, math.ceil(n * 1.1 * min_sample_s / max(elapsed, 1e-9)))


def steady_seconds(call: Callable[[], Any], samples: int = 5, min_sample_s: float = 0.2,
                   warmup: int = 3) -> tuple[float, float]:
    """(median, minimum) seconds per call once warm.

    The median is what the report shows; the minimum, in the JSON only, is the better
    estimate when other processes competed for the cores.
    """
    run_n(call, warmup)
    n = calibrate(call, min_sample_s)
    per_call = [run_n(call, n) / n for _ in range(samples)]
    return statistics.median(per_call), min(per_call)


def interleaved_steady(calls: dict, samples: int = 5, min_sample_s: float = 0.2,
                       warmup: int = 3, settle_s: float = SETTLE_S) -> dict:
    """{name: (median, minimum) seconds per call, or the exception it raised}, the samples
    of all calls taken in turns: round k runs sample k of every call, so that a drift of
    the machine's speed during the measurement (seen here at 30% within minutes) touches
    every entry alike instead of whichever ran in a slow phase.  Each sample starts after
    a pause of `settle_s`, so that no entry pays for the previous one's spinning threads."""
    reps, per_call, failed = {}, {}, {}
    for name, call in calls.items():
        try:
            run_n(call, warmup)
            reps[name], per_call[name] = calibrate(call, min_sample_s), []
        except Exception as exc:  # noqa: BLE001  (reported per entry)
            failed[name] = exc
    for _ in range(samples):
        for name in list(per_call):
            time.sleep(settle_s)
            try:
                per_call[name].append(run_n(calls[name], reps[name]) / reps[name])
            except Exception as exc:  # noqa: BLE001
                failed[name] = exc
                del per_call[name]
    out = {name: (statistics.median(v), min(v)) for name, v in per_call.items()}
    return {**out, **failed}
