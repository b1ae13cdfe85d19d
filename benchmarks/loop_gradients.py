"""Gradients of Python loops over mid-size arrays: rolled back into a scan, or unrolled.

``python -m benchmarks.loop_gradients [--repeats N]``

Each case is ``x = x * a + 0.001 * sin(x)`` for T steps on n float64 elements, then
``sum(x)``, under ``compile_grad`` (value and both gradients) with the disk cache off.
It is compiled twice: as by default (passes/reroll.py decides; for a program that is
differentiated, a loop of GRAD_MIN_EQNS equations or more over arrays of at most
GRAD_BODY_ELEMENTS rolls) and with TRACEGRAD_REROLL=0 (always unrolled).  The table
gives each one's first call (trace, compile and one run) and its steady call (the
minimum over interleaved rounds), and whether the default rolled the loop.
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

CASES = [(100, 3000), (250, 3000), (500, 3000), (200, 6000), (250, 30000)]


def loop_loss(steps):
    def loss(x, a):
        for _ in range(steps):
            x = x * a + 0.001 * np.sin(x)
        return np.sum(x)
    return loss


def _compiled(steps, reroll, args):
    import tracegrad
    os.environ["TRACEGRAD_REROLL"] = reroll
    try:
        f = tracegrad.compile_grad(loop_loss(steps), disk_cache=False)
        start = time.perf_counter()
        f(*args)
        return f, time.perf_counter() - start
    finally:
        os.environ.pop("TRACEGRAD_REROLL", None)


def _steady(fs, args, repeats):
    best = [float("inf")] * len(fs)
    for _ in range(repeats):
        for i, f in enumerate(fs):
            start = time.perf_counter()
            f(*args)
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    print("| steps | elements | rolled by default | default first / steady | unrolled first / steady |")
    print("|---|---|---|---|---|")
    for steps, n in CASES:
        inputs = (np.random.default_rng(0).normal(size=n), np.array(0.999))
        (f, first), (g, first_u) = _compiled(steps, "1", inputs), _compiled(steps, "0", inputs)
        rolled = "rerolled" in f._spec().stages
        s, s_u = _steady([f, g], inputs, args.repeats)
        print(f"| {steps} | {n:,} | {'yes' if rolled else 'no'} | {first:.2f} s / {s * 1e3:.2f} ms "
              f"| {first_u:.2f} s / {s_u * 1e3:.2f} ms |")


if __name__ == "__main__":
    main()
