"""Compiled sorts: the native merge sort against the host callback (numpy's SIMD sort), and
tracegrad against numpy and jax.jit on sorting workloads.

``python -m benchmarks.sorting [--repeats N] [--no-jax]``

- *route*: `np.sort` / `np.argsort(kind="stable")` of one size compiled twice, by default
  (TRACEGRAD_EXTERN_NATIVE unset: the native lowering below
  `extern_sorting.MIN_CALLBACK_SORT` elements, the callback from there) and with every
  extern on the host callback (TRACEGRAD_EXTERN_NATIVE=0): below the threshold, where
  the callback starts to win; above it, the two columns are the same route.
- *peers*: sort, stable argsort, and the value and gradient of a trimmed-mean loss
  (`sum(sort(x)[:, :k] ** 2)`), compiled as by default, against numpy and jax.jit.

Each number is the minimum over `repeats` rounds of the per-call time, every contender
running once per round in turn (interleaved). The disk cache is off.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

if __package__ in (None, ""):  # run as `python benchmarks/sorting.py`
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

os.environ["TRACEGRAD_DISABLE_CACHE"] = "1"

ROUTE_SHAPES = [(8,), (64,), (256,), (16, 64), (1024,), (64, 64), (1000, 200)]
PEER_SHAPES = [(1000, 200), (200000,)]


def _per_call(f, x, n):
    start = time.perf_counter()
    for _ in range(n):
        f(x)
    return (time.perf_counter() - start) / n


def interleaved(contenders: dict, x, repeats: int) -> dict:
    """Minimum per-call seconds of each contender, the rounds interleaved."""
    for f in contenders.values():
        f(x)
    n = max(1, int(0.02 / max(_per_call(next(iter(contenders.values())), x, 1), 1e-7)))
    best = {k: float("inf") for k in contenders}
    for _ in range(repeats):
        for k, f in contenders.items():
            best[k] = min(best[k], _per_call(f, x, n))
    return best


def _compiled(fun, native: bool, x):
    """`fun` compiled for x's signature with the route forced (it is read at lowering)."""
    import tracegrad
    os.environ["TRACEGRAD_EXTERN_NATIVE"] = "" if native else "0"
    try:
        f = tracegrad.jit(fun)
        f(x)
        return f
    finally:
        os.environ.pop("TRACEGRAD_EXTERN_NATIVE", None)


def route(repeats: int):
    rng = np.random.default_rng(0)
    print("| op | shape | native (us) | callback (us) | callback / native |")
    print("|---|---|---|---|---|")
    for name, fun in (("sort", lambda v: np.sort(v, axis=-1)),
                      ("argsort", lambda v: np.argsort(v, axis=-1, kind="stable"))):
        for shape in ROUTE_SHAPES:
            x = rng.standard_normal(shape)
            native, callback = _compiled(fun, True, x), _compiled(fun, False, x)
            t = interleaved({"native": native, "callback": callback}, x, repeats)
            print(f"| {name} | {shape} | {t['native'] * 1e6:,.1f} | {t['callback'] * 1e6:,.1f} "
                  f"| {t['callback'] / t['native']:.2f}x |")


def _trimmed(xp, k):
    def loss(x):
        return xp.sum(xp.sort(x, axis=-1)[..., :k] ** 2)
    return loss


def _hand_trimmed_vg(k):
    def vg(x):
        p = np.argsort(x, axis=-1, kind="stable")
        s = np.take_along_axis(x, p, -1)
        g = np.zeros_like(x)
        np.put_along_axis(g, p[..., :k], 2 * s[..., :k], -1)
        return np.sum(s[..., :k] ** 2), g
    return vg


def peers(repeats: int, use_jax: bool):
    import tracegrad
    rng = np.random.default_rng(1)
    jax = None
    if use_jax:
        try:
            import jax
            import jax.numpy as jnp
            jax.config.update("jax_enable_x64", True)
        except ImportError:
            jax = None
    print("| workload | shape | numpy (us) | jax.jit (us) | tracegrad (us) | tracegrad / best peer |")
    print("|---|---|---|---|---|---|")
    for shape in PEER_SHAPES:
        x = rng.standard_normal(shape)
        k = shape[-1] // 4
        cases = {
            "sort": (lambda v: np.sort(v, axis=-1),
                     (lambda v: jnp.sort(v, axis=-1)) if jax else None),
            "stable argsort": (lambda v: np.argsort(v, axis=-1, kind="stable"),
                               (lambda v: jnp.argsort(v, axis=-1, stable=True)) if jax else None),
            "trimmed loss value+grad": (_hand_trimmed_vg(k),
                                        jax.value_and_grad(_trimmed(jnp, k)) if jax else None),
        }
        for name, (np_fun, jax_fun) in cases.items():
            if name.startswith("trimmed"):
                tg = tracegrad.compile_grad(_trimmed(np, k))
            else:
                tg = tracegrad.jit(np_fun)
            contenders = {"numpy": np_fun, "tracegrad": tg}
            if jax_fun is not None:
                jf = jax.jit(jax_fun)
                contenders["jax"] = lambda v, jf=jf: jax.block_until_ready(jf(v))
            t = interleaved(contenders, x, repeats)
            best = min(v for k_, v in t.items() if k_ != "tracegrad")
            jax_us = f"{t['jax'] * 1e6:,.0f}" if "jax" in t else "-"
            print(f"| {name} | {shape} | {t['numpy'] * 1e6:,.0f} | {jax_us} | "
                  f"{t['tracegrad'] * 1e6:,.0f} | {t['tracegrad'] / best:.2f}x |")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-jax", action="store_true")
    args = ap.parse_args(argv)
    print(f"load average: {os.getloadavg()[0]:.2f}")
    route(args.repeats)
    print()
    peers(args.repeats, not args.no_jax)


if __name__ == "__main__":
    main()
