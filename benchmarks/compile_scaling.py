"""Compile time against program size: a drag projectile integrated by N Euler steps.

Each step is ``v = v + dt * (g - c * |v| * v)`` and ``x = x + dt * v``; the loop
is plain Python, so the traced program grows linearly with N and holds one
reduction (the norm) per step.  ``compile_grad`` of the final height and range
is compiled once per N with the disk cache off; the table gives the first
call's total time, its CPU time (this process, all threads: on a shared machine
it varies less than the wall time), and the part spent planning fusion.

Run from the repository root: ``python -m benchmarks.compile_scaling [N ...]``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tracegrad
from tracegrad.passes.fusion import planning

DEFAULT_STEPS = (10, 20, 40, 80, 160)
GRAVITY = np.array([0.0, -9.81])


def projectile(steps: int):
    """The loss of a projectile with quadratic drag after `steps` Euler steps."""
    def loss(v0, c):
        x, v, dt = np.zeros(2), v0, 0.01
        for _ in range(steps):
            speed = np.sqrt(np.sum(v * v))
            v = v + dt * (GRAVITY - c * speed * v)
            x = x + dt * v
        return x[0] + x[1]
    return loss


class PlanTimer:
    """Accumulates the time spent in fusion planning while installed."""

    def __init__(self):
        self.seconds = 0.0
        self._original = planning.plan

    def __enter__(self):
        def timed(graph):
            t0 = time.perf_counter()
            try:
                return self._original(graph)
            finally:
                self.seconds += time.perf_counter() - t0
        planning.plan = timed
        return self

    def __exit__(self, *exc):
        planning.plan = self._original


def measure(steps: int) -> tuple[float, float, float]:
    """(first-call seconds, its CPU seconds, planning seconds) of compile_grad at
    `steps` Euler steps."""
    f = tracegrad.compile_grad(projectile(steps), disk_cache=False)
    v0, c = np.array([30.0, 30.0]), np.array(0.05)
    with PlanTimer() as timer:
        t0, c0 = time.perf_counter(), time.process_time()
        f(v0, c)
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
    return total, cpu, timer.seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="*", type=int, default=list(DEFAULT_STEPS))
    args = parser.parse_args(argv)
    measure(2)  # imports and one-time setup stay out of the table
    print(f"{'steps':>6} {'first call (s)':>15} {'cpu (s)':>8} {'planning (s)':>13}")
    for n in args.steps:
        total, cpu, plan = measure(n)
        print(f"{n:>6} {total:>15.3f} {cpu:>8.3f} {plan:>13.3f}", flush=True)


if __name__ == "__main__":
    main()
