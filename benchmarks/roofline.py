"""Each workload's share of the machine's limit, from the limits measured in the same run.

A workload's lower bound is the largest of three times, each from what it must do at least:
- memory: the bytes it must move (read every input once, write every gradient once) at the
  two-thread triad bandwidth;
- matmul: its matrix-product flops at numpy/OpenBLAS's matmul rate for its dtype;
- transcendentals: how many tanh/exp/log/sin it must evaluate, at tracegrad's own measured
  cost per element (single thread, data in cache), spread over the cores.
The share is that bound over an implementation's median time: 100% means at the limit.
Workloads bound by per-call overhead (tiny inputs) have no entry.

>>> from benchmarks.workloads import WORKLOADS_BY_ID
>>> work = WORK["W6"](WORKLOADS_BY_ID["W6"].inputs(smoke=True))
>>> work["bytes"]
16000
"""
from __future__ import annotations

import numpy as np

from benchmarks import limits

TRANSCENDENTALS = ("tanh", "exp", "log", "sin")
COST_ELEMENTS = 1 << 15  # fits L2: the cost of the math, not of memory


def _io_bytes(inputs, wrt) -> int:
    return sum(a.nbytes for a in inputs) + sum(inputs[i].nbytes for i in wrt)


def _w2(inputs):
    n = inputs[0].size
    return {"bytes": _io_bytes(inputs, (0,)), "dtype": "float32",
            "transcendentals": {"tanh": n, "exp": 2 * n, "log": n}}


def _w3(inputs):
    W1, _, W2, _, X, _ = inputs
    (batch, n_in), (hidden, n_out) = X.shape, W2.shape
    # forward X@W1, h@W2; backward X.T@da, dz@W2.T, h.T@dz
    flops = 2 * batch * hidden * (2 * n_in + 3 * n_out)
    return {"bytes": _io_bytes(inputs, (0, 1, 2, 3)), "flops": flops, "dtype": "float32",
            "transcendentals": {"tanh": batch * hidden, "exp": batch * n_out}}


def _w4(inputs):
    w, X, _ = inputs
    return {"bytes": _io_bytes(inputs, (0,)), "flops": 4 * X.size, "dtype": "float64",
            "transcendentals": {"exp": X.shape[0], "log": X.shape[0]}}


def _w6(inputs):
    return {"bytes": _io_bytes(inputs, (0,)), "dtype": "float64", "transcendentals": {}}


def _w8(inputs):
    return {"bytes": _io_bytes(inputs, (0, 1, 2)), "dtype": "float32",
            "transcendentals": {"tanh": inputs[0].size}}


def _w9(inputs):
    return {"bytes": _io_bytes(inputs, (0,)), "dtype": "float32",
            "transcendentals": {"exp": inputs[0].size}}


def _w10(inputs):
    return {"bytes": _io_bytes(inputs, (1, 2)), "dtype": "float64",
            "transcendentals": {"exp": inputs[1].size}}


WORK = {"W2": _w2, "W3": _w3, "W4": _w4, "W6": _w6, "W8": _w8, "W9": _w9, "W10": _w10}


def transcendental_ns(dtypes=("float32", "float64")) -> dict | None:
    """ns per element of each transcendental in tracegrad's compiled code, one thread."""
    try:
        import tracegrad
    except ImportError:
        return None
    x0 = np.random.default_rng(0).uniform(0.1, 2.0, COST_ELEMENTS)
    out = {}
    for dtype in dtypes:
        x = x0.astype(dtype)
        base = _per_element(tracegrad.jit(lambda v: np.sum(v * 1.5), disk_cache=False), x)
        for name in TRANSCENDENTALS:
            fn = getattr(np, name)
            f = tracegrad.jit(lambda v, fn=fn: np.sum(fn(v)), disk_cache=False)
            out[f"{name}_{dtype}"] = max(_per_element(f, x) - base, 0.0)
    return out


def _per_element(f, x, reps: int = 200) -> float:
    f(x)  # compile
    return limits.best_seconds(lambda: f(x), reps) / x.size * 1e9


def bounds(work: dict, limits: dict, cores: int) -> dict:
    """Lower-bound seconds per resource for one workload's `work`."""
    bw = max(v for k, v in limits["bandwidth"].items() if k.startswith("GBps"))
    out = {"memory": work["bytes"] / (bw * 1e9)}
    if work.get("flops"):
        out["matmul"] = work["flops"] / (limits["matmul"][f"GFLOPs_{work['dtype']}"] * 1e9)
    costs = limits.get("transcendentals")
    if costs and work["transcendentals"]:
        ns = sum(n * costs[f"{name}_{work['dtype']}"] for name, n in work["transcendentals"].items())
        out["transcendentals"] = ns * 1e-9 / cores
    return out
