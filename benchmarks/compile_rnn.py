"""Compile time of an unrolled Elman RNN against its length.

The loss is ``sum(h_T)`` with ``h = tanh(W @ h + xs[t] @ U + b)`` (hidden 4,
inputs 3), written as a plain Python loop, so the traced program grows linearly
with T.  ``compile_grad`` over (W, U, b, xs) is compiled once per T with the disk
cache off; the table gives the first call (trace + transforms + fusion + code
generation + one run), the steady call, and the stages the compiled function
reports (``cache_info()[0]["stage_seconds"]``: fusion planning and code generation).

Run from the repository root: ``python -m benchmarks.compile_rnn [T ...] [--jax]``.
``--jax`` adds jax.jit of the same loop (jax is not a dependency of tracegrad).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import tracegrad

DEFAULT_STEPS = (5, 20, 50, 100, 200)
HIDDEN, INPUTS = 4, 3


def rnn_loss(steps: int, xp=np):
    """sum(h_T) of the Elman RNN unrolled over `steps` inputs, in namespace `xp`."""
    def loss(W, U, b, xs):
        h = xp.zeros(HIDDEN)
        for t in range(steps):
            h = xp.tanh(W @ h + xs[t] @ U + b)
        return xp.sum(h)
    return loss


def rnn_inputs(steps: int):
    rng = np.random.default_rng(0)
    W = rng.normal(size=(HIDDEN, HIDDEN)) * 0.5
    U = rng.normal(size=(INPUTS, HIDDEN)) * 0.5
    b = rng.normal(size=HIDDEN) * 0.1
    xs = rng.normal(size=(steps, INPUTS))
    return W, U, b, xs


def steady_us(f, args, calls: int = 2000) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(calls):
            f(*args)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best * 1e6


def measure_tracegrad(steps: int) -> dict:
    f = tracegrad.compile_grad(rnn_loss(steps), disk_cache=False)
    args = rnn_inputs(steps)
    t0 = time.perf_counter()
    f(*args)
    first = time.perf_counter() - t0
    info = f.cache_info()[0]
    return {"first_s": first, "steady_us": steady_us(f, args), "stages": info.get("stage_seconds", {})}


def measure_jax(steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    f = jax.jit(jax.value_and_grad(rnn_loss(steps, jnp), argnums=(0, 1, 2, 3)))
    args = [jax.device_put(a) for a in rnn_inputs(steps)]
    t0 = time.perf_counter()
    jax.block_until_ready(f(*args))
    first = time.perf_counter() - t0
    call = lambda *a: jax.block_until_ready(f(*a))  # noqa: E731
    return {"first_s": first, "steady_us": steady_us(call, args, 200)}


def _stage_text(stages: dict) -> str:
    return " ".join(f"{k}={v * 1e3:.0f}" for k, v in stages.items() if isinstance(v, float))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("steps", nargs="*", type=int, default=list(DEFAULT_STEPS))
    parser.add_argument("--jax", action="store_true", help="also time jax.jit of the same loop")
    args = parser.parse_args(argv)
    measure_tracegrad(2)  # imports and one-time setup stay out of the table
    print(f"{'T':>5} {'first (s)':>10} {'steady (us)':>12}  stages (ms)")
    for n in args.steps:
        r = measure_tracegrad(n)
        print(f"{n:>5} {r['first_s']:>10.3f} {r['steady_us']:>12.1f}  {_stage_text(r['stages'])}",
              flush=True)
        if args.jax:
            j = measure_jax(n)
            print(f"{'jax':>5} {j['first_s']:>10.3f} {j['steady_us']:>12.1f}", flush=True)


if __name__ == "__main__":
    main()
