"""Threaded kernels: what a parallel kernel costs, where two threads start to pay, and
mid-size elementwise kernels against numpy and jax.

``python -m benchmarks.threads [--repeats N] [--only overhead,threshold,midsize]``

- *overhead*: a tiny kernel forced onto 2 threads, minus the same kernel on 1 thread: the
  cost of handing out and joining one parallel kernel (the pool's wake and join).
- *threshold*: for each kernel and size, 1 thread against 2 threads (both forced, whatever
  `threads.PARALLEL_MIN_COST` says), and the kernel's cost in the units of
  `PARALLEL_MIN_COST` (`threads.kernel_cost`): the smallest cost where 2 threads win.
- *midsize*: elementwise kernels of 64K-4M elements as compiled by default (the threshold
  decides) against numpy and jax.jit, in the same run.
- *workloads*: W2, W4, W6 (value and gradient) against numpy and jax.jit, as
  `benchmarks.run` builds them, but as minima over interleaved rounds.

Each number is the minimum over `repeats` rounds of the per-call time; in each round every
contender runs once in turn (interleaved), so load on the machine hits them alike. The
load average is printed with the results. The disk cache is off.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as `python benchmarks/threads.py`
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

os.environ["TRACEGRAD_DISABLE_CACHE"] = "1"

KERNELS = {  # name: (numpy function, dtype)
    "axpb f64": (lambda x: x * 2.0 + 1.0, np.float64),
    "tanh f32": (lambda x: np.tanh(x), np.float32),
    "gelu-like f32": (lambda x: 0.5 * x * (1.0 + np.tanh(0.79788456 * (x + 0.044715 * x * x * x))),
                      np.float32),
}
THRESHOLD_SIZES = [1 << k for k in range(12, 23, 1)]
MIDSIZES = [1 << 16, 1 << 18, 1 << 20, 1 << 22]


def compiled(fun, x, n_threads: int, force: bool):
    """The native program of `fun` at x's signature, on n_threads (`force`: whatever its size)."""
    import tracegrad as tg
    from tracegrad.codegen import threads

    saved, env = threads.PARALLEL_MIN_COST, os.environ.get("TRACEGRAD_NUM_THREADS")
    os.environ["TRACEGRAD_NUM_THREADS"] = str(n_threads)
    if force:
        threads.PARALLEL_MIN_COST = 0
    try:
        f = tg.jit(fun)
        f(x)
        return f._spec().native
    finally:
        threads.PARALLEL_MIN_COST = saved
        if env is None:
            os.environ.pop("TRACEGRAD_NUM_THREADS", None)
        else:
            os.environ["TRACEGRAD_NUM_THREADS"] = env


def kernel_cost(program) -> int:
    """The largest cost among the program's loop kernels (`threads.kernel_cost`)."""
    from tracegrad.codegen import threads
    from tracegrad.passes.kernels import LoopKernel

    kp = program.kernel_program()
    return max(threads.kernel_cost(k) for k in kp.kernels if isinstance(k, LoopKernel))


def per_call(fn, x, budget_s: float = 0.002) -> float:
    """Seconds per call of fn(x), over enough calls to fill about `budget_s`."""
    fn(x)
    t0 = time.perf_counter()
    fn(x)
    one = max(time.perf_counter() - t0, 1e-7)
    n = max(1, int(budget_s / one))
    t0 = time.perf_counter()
    for _ in range(n):
        fn(x)
    return (time.perf_counter() - t0) / n


def interleaved(contenders: dict, x, repeats: int) -> dict:
    """name -> the minimum over `repeats` rounds of seconds per call."""
    return rounds({name: (fn, x) for name, fn in contenders.items()}, repeats)


def rounds(cases: dict, repeats: int) -> dict:
    """key -> the minimum over `repeats` rounds of seconds per call of fn(x), for
    cases = {key: (fn, x)}; every round runs every case once, so a moment when the machine
    has a core free counts for each of them."""
    best = {key: float("inf") for key in cases}
    for _ in range(repeats):
        for key, (fn, x) in cases.items():
            best[key] = min(best[key], per_call(fn, x))
    return best


def _input(n, dtype):
    return np.random.default_rng(0).uniform(-2, 2, n).astype(dtype)


def overhead(repeats: int) -> list:
    rows = []
    for n in (64, 4096):
        fun, dtype = KERNELS["axpb f64"]
        x = _input(n, dtype)
        one, two = compiled(fun, x, 1, True), compiled(fun, x, 2, True)
        t = interleaved({"1": one, "2": two}, x, repeats)
        rows.append((n, t["1"], t["2"], t["2"] - t["1"]))
    print("\n## Overhead of one parallel kernel (x*2+1 f64, forced onto 2 threads)\n")
    print("| elements | 1 thread | 2 threads | overhead |\n|---|---|---|---|")
    for n, a, b, d in rows:
        print(f"| {n} | {a * 1e6:.2f} us | {b * 1e6:.2f} us | {d * 1e6:.2f} us |")
    return rows


def threshold(repeats: int, names=("axpb f64", "tanh f32", "gelu-like f32"), sizes=None) -> list:
    cases, costs = {}, {}
    for name in names:
        fun, dtype = KERNELS[name]
        for n in sizes or THRESHOLD_SIZES:
            x = _input(n, dtype)
            for t in (1, 2):
                cases[name, n, t] = (compiled(fun, x, t, True), x)
            costs[name, n] = kernel_cost(cases[name, n, 2][0])
    t = rounds(cases, repeats)
    rows = [(name, n, cost, t[name, n, 1], t[name, n, 2]) for (name, n), cost in costs.items()]
    print("\n## One thread against two, by kernel cost (PARALLEL_MIN_COST units)\n")
    print("| kernel | elements | cost | 1 thread | 2 threads | 2 / 1 |\n|---|---|---|---|---|---|")
    for name, n, cost, a, b in rows:
        print(f"| {name} | {n} | {cost} | {a * 1e6:.1f} us | {b * 1e6:.1f} us | {b / a:.2f} |")
    return rows


def _peers(fun):
    peers = {"numpy": fun}
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        jitted = jax.jit(_with_jnp(fun, jnp))
        peers["jax.jit"] = lambda x: jitted(x).block_until_ready()
    except ImportError:
        pass
    return peers


def _with_jnp(fun, jnp):
    import types

    return types.FunctionType(fun.__code__, {**fun.__globals__, "np": jnp}, fun.__name__,
                              fun.__defaults__, fun.__closure__)


def midsize(repeats: int) -> list:
    from tracegrad.codegen import threads

    rows = []
    for name, (fun, dtype) in KERNELS.items():
        for n in MIDSIZES:
            x = _input(n, dtype)
            contenders = {"tracegrad": compiled(fun, x, threads.thread_count(), False),
                          "tracegrad 1 thread": compiled(fun, x, 1, False), **_peers(fun)}
            rows.append((name, n, interleaved(contenders, x, repeats)))
    print(f"\n## Mid-size elementwise kernels ({threads.thread_count()} threads,"
          f" PARALLEL_MIN_COST = {threads.PARALLEL_MIN_COST})\n")
    names = list(rows[0][2])
    print("| kernel | elements | " + " | ".join(names) + " |\n|" + "---|" * (len(names) + 2))
    for name, n, t in rows:
        print(f"| {name} | {n} | " + " | ".join(f"{t[k] * 1e6:.1f} us" for k in names) + " |")
    return rows


def workloads(repeats: int, ids=("W2", "W4", "W6")) -> list:
    """Value and gradient of reference workloads (benchmarks/workloads.py), tracegrad against
    numpy (hand-written) and jax.jit as benchmarks.run builds them, interleaved."""
    from benchmarks import impls
    from benchmarks.workloads import WORKLOADS_BY_ID

    peers = [impl for impl in impls.make_impls(("numpy", "jax")) if impl.probe() is None]
    rows = []
    for wid in ids:
        wl = WORKLOADS_BY_ID[wid]
        inputs = wl.inputs()
        calls = {impl.name: impl.build(wl, inputs) for impl in peers}
        t = rounds({name: (lambda _, c=call: c(), None) for name, call in calls.items()}, repeats)
        rows.append((wid, t))
    names = list(rows[0][1])
    print("\n## Workloads, value and gradient (minimum per call)\n")
    print("| workload | " + " | ".join(names) + " | tracegrad / best peer |\n|" + "---|" * (len(names) + 2))
    for wid, t in rows:
        best = min(v for k, v in t.items() if k != "tracegrad")
        print(f"| {wid} | " + " | ".join(f"{t[k] * 1e3:.3f} ms" for k in names)
              + f" | {t['tracegrad'] / best:.2f}x |")
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.threads", description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--only", default="overhead,threshold,midsize,workloads")
    p.add_argument("--kernels", help="threshold: comma-separated names among " + ", ".join(KERNELS))
    p.add_argument("--sizes", help="threshold: comma-separated element counts")
    args = p.parse_args(argv)
    names = args.kernels.split(",") if args.kernels else list(KERNELS)
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else None
    parts = {"overhead": overhead, "threshold": lambda r: threshold(r, names, sizes),
             "midsize": midsize, "workloads": workloads}
    for part in args.only.split(","):
        print(f"\nload average before {part}: {os.getloadavg()}", flush=True)
        parts[part](args.repeats)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
