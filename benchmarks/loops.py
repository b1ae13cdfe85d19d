"""Compiled loops side by side with their peers: first call and steady call.

* **scan RNN**: an Elman RNN (hidden 6, inputs 3, T=1000) written with `tracegrad.scan`,
  `compile_grad` of its loss (value and the gradients of h0, xs, W, U, b), against
  `jax.jit(jax.value_and_grad(...))` of the same loss written with `jax.lax.scan`.
* **Newton**: Newton's iteration for `x^3 - 2x = a` on 4096 float64 values in a
  `while_loop` until the largest residual is below 1e-12 (`jit`), against a numba `@njit`
  loop of the same algorithm.
* **drag projectile**: 500 Euler steps of `v += dt (g - c |v| v); x += dt v` in a
  `fori_loop`, `compile_grad` with respect to (v0, c).

The first call is timed from building the compiled function to the end of its first call
(disk cache off for tracegrad; each peer gets a fresh function), after one unrelated
warm-up compile per framework so that one-time process setup stays out of it.  Peers that
are not installed are skipped (jax and numba are not dependencies of tracegrad).

Run from the repository root: ``python -m benchmarks.loops [--samples N]``.
"""
from __future__ import annotations

import argparse
import importlib.util
import platform

import numpy as np

import tracegrad as tg

from .timing import first_call, steady_seconds

HIDDEN, INPUTS, STEPS = 6, 3, 1000
NEWTON_N, NEWTON_TOL, NEWTON_MAX = 4096, 1e-12, 100
DRAG_STEPS, DRAG_DT = 500, 0.01


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


# ---- the programs -----------------------------------------------------------------------------

def rnn_inputs():
    rng = np.random.default_rng(0)
    return (rng.normal(size=HIDDEN) * 0.1, rng.normal(size=(STEPS, INPUTS)),
            rng.normal(size=(HIDDEN, HIDDEN)) * 0.4, rng.normal(size=(HIDDEN, INPUTS)),
            rng.normal(size=HIDDEN) * 0.1)


def rnn_loss(scan, xp):
    """sum(h_T) + sum_t |h_t|^2 with h = tanh(W h + U x_t + b), through `scan`."""
    def loss(h0, xs, W, U, b):
        def step(h, x):
            h = xp.tanh(W @ h + U @ x + b)
            return h, xp.sum(h * h)
        h, ys = scan(step, h0, xs)
        return xp.sum(h) + xp.sum(ys)
    return loss


def newton_inputs():
    return (np.random.default_rng(1).uniform(0.5, 3.0, NEWTON_N),)


def newton_tracegrad(a):
    def cond(c):
        x, k = c
        return (np.max(np.abs(x * x * x - 2.0 * x - a)) > NEWTON_TOL) & (k < NEWTON_MAX)

    def body(c):
        x, k = c
        return x - (x * x * x - 2.0 * x - a) / (3.0 * x * x - 2.0), k + 1
    return tg.while_loop(cond, body, (a + 1.0, 0))[0]


def newton_plain(a):
    """The same iteration as a Python loop (numba compiles this one)."""
    x, k = a + 1.0, 0
    while np.max(np.abs(x * x * x - 2.0 * x - a)) > NEWTON_TOL and k < NEWTON_MAX:
        x = x - (x * x * x - 2.0 * x - a) / (3.0 * x * x - 2.0)
        k += 1
    return x


def drag_inputs():
    return np.array([20.0, 15.0]), np.float64(0.02)


def drag_loss(v0, c):
    g = np.array([0.0, -9.81])

    def step(i, s):
        x, v = s
        v = v + DRAG_DT * (g - c * np.sqrt(np.sum(v * v)) * v)
        return x + DRAG_DT * v, v
    x, v = tg.fori_loop(0, DRAG_STEPS, step, (np.zeros(2), v0))
    return x[0] + x[1] * 0.5


# ---- builders: each returns a fresh zero-argument callable ----------------------------------

def tracegrad_rnn():
    f, args = tg.compile_grad(rnn_loss(tg.scan, np), disk_cache=False), rnn_inputs()
    return lambda: f(*args)


def jax_rnn():
    import jax
    import jax.numpy as jnp
    f = jax.jit(jax.value_and_grad(rnn_loss(lambda s, c, xs: jax.lax.scan(s, c, xs), jnp),
                                   argnums=(0, 1, 2, 3, 4)))
    args = [jax.device_put(a) for a in rnn_inputs()]
    return lambda: jax.block_until_ready(f(*args))


def tracegrad_newton():
    f, args = tg.jit(newton_tracegrad, disk_cache=False), newton_inputs()
    return lambda: f(*args)


def numba_newton():
    import numba
    f, args = numba.njit(newton_plain), newton_inputs()
    return lambda: f(*args)


def tracegrad_drag():
    f, args = tg.compile_grad(drag_loss, disk_cache=False), drag_inputs()
    return lambda: f(*args)


def _jax_setup():
    import jax
    jax.config.update("jax_enable_x64", True)
    jax.block_until_ready(jax.jit(lambda x: x * 2.0)(np.ones(3)))


def _numba_setup():
    import numba
    numba.njit(lambda x: x * 2.0)(np.ones(3))


def _tracegrad_setup():
    tg.jit(lambda x: x * 2.0, disk_cache=False)(np.ones(3))


SETUPS = {"tracegrad": _tracegrad_setup, "jax": _jax_setup, "numba": _numba_setup}
# (workload, tracegrad builder, peer name, peer builder)
WORKLOADS = [
    ("scan RNN (T=1000, value + 5 grads)", tracegrad_rnn, "jax", jax_rnn),
    ("Newton while_loop (4096 f64)", tracegrad_newton, "numba", numba_newton),
    ("drag projectile fori_loop (500 steps, value + 2 grads)", tracegrad_drag, None, None),
]


def measure(build, samples):
    call, out, first = first_call(build)
    median, _ = steady_seconds(call, samples=samples)
    return first, median, out


def _check(ours, theirs):
    """The two results agree (the benchmark compares equal work)."""
    a = [np.asarray(x) for x in _leaves(ours)]
    b = [np.asarray(x) for x in _leaves(theirs)]
    return len(a) == len(b) and all(np.allclose(x, y, rtol=1e-9, atol=1e-12) for x, y in zip(a, b))


def _leaves(x):
    if isinstance(x, (list, tuple)):
        return [leaf for item in x for leaf in _leaves(item)]
    return [x]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5)
    args = parser.parse_args(argv)
    for name, setup in SETUPS.items():
        if name == "tracegrad" or installed(name):
            setup()
    print(f"CPU: {cpu_model()}\n")
    print("| workload | tracegrad first (ms) | tracegrad steady (us) | peer | peer first (ms) "
          "| peer steady (us) | first ratio | steady ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for label, ours, peer, theirs in WORKLOADS:
        first, steady, out = measure(ours, args.samples)
        row = f"| {label} | {first * 1e3:.0f} | {steady * 1e6:.1f} |"
        if peer is None or not installed(peer):
            print(row + f" {peer or '-'} | - | - | - | - |", flush=True)
            continue
        p_first, p_steady, p_out = measure(theirs, args.samples)
        agree = "" if _check(out, p_out) else " (results differ!)"
        print(row + f" {peer}{agree} | {p_first * 1e3:.0f} | {p_steady * 1e6:.1f} | "
              f"{first / p_first:.2f}x | {steady / p_steady:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
