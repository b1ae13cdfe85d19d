"""Data-parallel gradients on Dask: scaling with the number of worker processes.

A logistic-regression loss over ROWS x FEATURES rows (value and gradients), computed by
`tracegrad.distributed.DataParallel` with 1 and with 2 worker processes (LocalCluster,
one thread each), against single-process `compile_grad` on the whole data.  Also the
overhead per call: the same with 2 rows per worker (dispatch and gather only).

Run from the repository root: ``python -m benchmarks.distributed [--rows N]``.
"""
from __future__ import annotations

import argparse
import numpy as np

import tracegrad as tg

from .limits import cpu_model
from .timing import steady_seconds

ROWS, FEATURES = 200_000, 64


def loss(p, x, y):
    z = x @ p["w"] + p["b"]
    return np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0) - y * z)


def data(rows):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, FEATURES))
    y = (x @ rng.standard_normal(FEATURES) > 0).astype(np.float64)
    return x, y


def params():
    return {"w": np.zeros(FEATURES), "b": np.float64(0.0)}


def time_workers(n, x, y):
    from tracegrad.distributed import DataParallel

    with DataParallel(loss, (x, y), n_workers=n) as dp:
        p = params()
        dp(p)  # each worker compiles once
        return steady_seconds(lambda: dp(p), samples=5)[0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=ROWS)
    args = parser.parse_args(argv)
    x, y = data(args.rows)
    local = tg.compile_grad(loss, argnums=0)
    local(params(), x, y)
    one_process = steady_seconds(lambda: local(params(), x, y), samples=5)[0]
    one, two = time_workers(1, x, y), time_workers(2, x, y)
    tiny = time_workers(2, *data(4))
    print(f"CPU: {cpu_model()}, rows {args.rows} x {FEATURES}")
    print("| setup | ms per call | speedup over 1 worker |")
    print("|---|---|---|")
    print(f"| compile_grad, one process | {one_process * 1e3:.1f} | |")
    print(f"| DataParallel, 1 worker | {one * 1e3:.1f} | 1.00x |")
    print(f"| DataParallel, 2 workers | {two * 1e3:.1f} | {one / two:.2f}x |")
    print(f"| overhead per call (2 workers, 2 rows each) | {tiny * 1e3:.1f} | |")


if __name__ == "__main__":
    main()
