"""Eager forward plus backward: tracegrad's `Tensor` against PyTorch eager, in one run.

```sh
python -m benchmarks.eager                 # the four cases, full sizes
python -m benchmarks.eager --smoke         # tiny sizes, one checked call each, no timing
python -m benchmarks.eager --only seed,mlp --repeats 9
python -m benchmarks.eager --torch-threads 1   # PyTorch on one thread (a loaded machine)
```

Cases (each one call = forward, loss and backward, leaf gradients reset to None first):

* `seed`  -- the seed graph `(a+b)+c*d` on scalars: per-op overhead;
* `mlp`   -- X[256,784] -> 512 tanh -> 10, float32, mean squared error (X needs no grad);
* `chain` -- `sum(tanh(x)*exp(-x**2/2))` over 1M float32 elements;
* `train` -- 10 steps of a small MLP with `zero_grad`, `backward` and `Adam.step`
  (`tracegrad.optim` against `torch.optim`);
* `relu_mlp` -- the MLP with a ReLU hidden layer (`maximum(h, 0)`);
* `chain2` -- `sum(log1p(|x|) + 0.1*x**3 + sqrt(x*x+1))` over 1M float32 elements.

Before timing, both sides compute the same values and gradients (or parameters after
training) within float32 tolerance. The two sides are timed interleaved, case by case and
repeat by repeat, so that load from other processes hits both alike; the table gives the
minimum and median per call and the ratios tracegrad / PyTorch (below 1: tracegrad faster).
PyTorch is skipped, with a note, when it is not installed.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.timing import calibrate, run_n  # noqa: E402

TRAIN_STEPS = 10


def load_torch():
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---- the two libraries behind one small interface ------------------------------------------

class TracegradLib:
    name = "tracegrad"

    def __init__(self):
        import tracegrad
        self.tg, self.np = tracegrad, tracegrad.numpy

    def leaf(self, a, requires_grad=True):
        return self.tg.tensor(a, requires_grad=requires_grad)

    def value(self, t):
        return np.array(t.detach().data)

    def tanh(self, x):
        return self.np.tanh(x)

    def exp(self, x):
        return self.np.exp(x)

    def relu(self, x):
        return self.np.maximum(x, 0.0)

    def log1p(self, x):
        return self.np.log1p(x)

    def abs(self, x):
        return self.np.abs(x)

    def sqrt(self, x):
        return self.np.sqrt(x)

    def adam(self, params, lr):
        return self.tg.optim.Adam(params, lr=lr)


class TorchLib:
    name = "torch"

    def __init__(self, torch):
        self.torch = torch

    def leaf(self, a, requires_grad=True):
        return self.torch.tensor(a, requires_grad=requires_grad)

    def value(self, t):
        return t.detach().numpy().copy()

    def tanh(self, x):
        return self.torch.tanh(x)

    def exp(self, x):
        return self.torch.exp(x)

    def relu(self, x):
        return self.torch.relu(x)

    def log1p(self, x):
        return self.torch.log1p(x)

    def abs(self, x):
        return self.torch.abs(x)

    def sqrt(self, x):
        return self.torch.sqrt(x)

    def adam(self, params, lr):
        return self.torch.optim.Adam(params, lr=lr)


# ---- the cases: build(lib, inputs) -> call(); call() -> (value, [gradients]) ------------------

def _reset(leaves):
    for t in leaves:
        t.grad = None


def _grads(lib, leaves):
    return [lib.value(t.grad) for t in leaves]


def seed_inputs(rng, smoke):
    return [np.asarray(v) for v in rng.standard_normal(4)]


def seed_build(lib, inputs):
    a, b, c, d = leaves = [lib.leaf(v) for v in inputs]

    def call():
        _reset(leaves)
        z = (a + b) + c * d
        z.backward()
        return z, leaves
    return call


def mlp_inputs_sized(rng, n, d, h, k):
    """X[n,d], W1[d,h], b1[h], W2[h,k], b2[k] and the target Y[n,k], float32."""
    f = np.float32
    return [rng.standard_normal((n, d)).astype(f), (rng.standard_normal((d, h)) / d ** 0.5).astype(f),
            np.zeros(h, f), (rng.standard_normal((h, k)) / h ** 0.5).astype(f), np.zeros(k, f),
            rng.standard_normal((n, k)).astype(f)]


def mlp_inputs(rng, smoke):
    return mlp_inputs_sized(rng, *((8, 12, 16, 3) if smoke else (256, 784, 512, 10)))


def _mlp_loss(lib, x, w1, b1, w2, b2, y):
    out = lib.tanh(x @ w1 + b1) @ w2 + b2
    err = out - y
    return (err * err).mean()


def mlp_build(lib, inputs):
    x, w1, b1, w2, b2, y = inputs
    x, y = lib.leaf(x, False), lib.leaf(y, False)
    leaves = [lib.leaf(v) for v in (w1, b1, w2, b2)]

    def call():
        _reset(leaves)
        loss = _mlp_loss(lib, x, *leaves[:2], *leaves[2:], y)
        loss.backward()
        return loss, leaves
    return call


def chain_inputs(rng, smoke):
    return [rng.standard_normal(1000 if smoke else 1_000_000).astype(np.float32)]


def chain_build(lib, inputs):
    x = lib.leaf(inputs[0])

    def call():
        _reset([x])
        s = (lib.tanh(x) * lib.exp(-(x * x) / 2)).sum()
        s.backward()
        return s, [x]
    return call


def relu_mlp_build(lib, inputs):
    """The MLP with a ReLU hidden layer: its backward masks by the sign of the pre-activation."""
    x, w1, b1, w2, b2, y = inputs
    x, y = lib.leaf(x, False), lib.leaf(y, False)
    leaves = [lib.leaf(v) for v in (w1, b1, w2, b2)]

    def call():
        _reset(leaves)
        out = lib.relu(x @ leaves[0] + leaves[1]) @ leaves[2] + leaves[3]
        err = out - y
        loss = (err * err).mean()
        loss.backward()
        return loss, leaves
    return call


def chain2_build(lib, inputs):
    """A second elementwise chain: log1p, abs, an integer power and sqrt."""
    x = lib.leaf(inputs[0])

    def call():
        _reset([x])
        s = (lib.log1p(lib.abs(x)) + 0.1 * x ** 3 + lib.sqrt(x * x + 1.0)).sum()
        s.backward()
        return s, [x]
    return call


def train_inputs(rng, smoke):
    return mlp_inputs_sized(rng, *((8, 6, 8, 2) if smoke else (64, 32, 64, 4)))


def train_build(lib, inputs):
    x, w1, b1, w2, b2, y = inputs
    x, y = lib.leaf(x, False), lib.leaf(y, False)
    params = [lib.leaf(v) for v in (w1, b1, w2, b2)]
    opt = lib.adam(params, 1e-2)

    def call():
        for _ in range(TRAIN_STEPS):
            opt.zero_grad()
            loss = _mlp_loss(lib, x, *params, y)
            loss.backward()
            opt.step()
        return loss, params
    return call


@dataclass
class Case:
    id: str
    what: str
    inputs: Callable
    build: Callable
    # what the check compares after one call: gradients, or the parameters (training)
    compare_params: bool = False


CASES = [
    Case("seed", "`(a+b)+c*d`, f64 scalars", seed_inputs, seed_build),
    Case("mlp", "MLP 256x784 -> 512 tanh -> 10, f32, MSE", mlp_inputs, mlp_build),
    Case("chain", "`sum(tanh(x)*exp(-x**2/2))`, 1M f32", chain_inputs, chain_build),
    Case("train", f"{TRAIN_STEPS} Adam steps, MLP 64x32 -> 64 tanh -> 4, f32", train_inputs,
         train_build, compare_params=True),
    Case("relu_mlp", "MLP 256x784 -> 512 ReLU -> 10, f32, MSE", mlp_inputs, relu_mlp_build),
    Case("chain2", "`sum(log1p(|x|) + 0.1*x**3 + sqrt(x*x+1))`, 1M f32", chain_inputs, chain2_build),
]
CASES_BY_ID = {c.id: c for c in CASES}


# ---- checking ----------------------------------------------------------------------------------

def _arrays(lib, case, result):
    value, leaves = result
    arrays = [lib.value(t) for t in leaves] if case.compare_params else _grads(lib, leaves)
    return [lib.value(value)] + arrays


def check(case, libs, smoke=False, rng_seed=0):
    """Build every library's call on the same inputs, call once each, and compare with the
    first library's arrays. Returns the built calls (fresh ones: training mutates state)."""
    inputs = case.inputs(np.random.default_rng(rng_seed), smoke)
    results = [_arrays(lib, case, case.build(lib, inputs)()) for lib in libs]
    for lib, arrays in zip(libs[1:], results[1:]):
        for i, (got, want) in enumerate(zip(arrays, results[0])):
            _assert_close(got, want, f"{case.id}: {lib.name} array {i}")
    return [case.build(lib, inputs) for lib in libs]


def _assert_close(got, want, what):
    rtol = 1e-4 if want.dtype == np.float32 else 1e-10
    scale = max(float(np.max(np.abs(want), initial=0.0)), 1e-30)
    if got.shape != want.shape or not np.allclose(got, want, rtol=rtol, atol=rtol * scale):
        err = np.max(np.abs(got.astype(np.float64) - want)) if got.shape == want.shape else "shape"
        raise AssertionError(f"{what} differs from tracegrad's (max abs error {err})")


# ---- timing ------------------------------------------------------------------------------------

@dataclass
class Timings:
    per_call: dict = field(default_factory=dict)  # lib name -> [seconds per call, per repeat]

    def add(self, name, seconds):
        self.per_call.setdefault(name, []).append(seconds)


def time_case(calls, names, repeats, min_sample_s):
    """Per-call seconds of each call, interleaved: repeat r times every library once."""
    counts = []
    for call in calls:
        run_n(call, 2)  # warm-up (first-use costs, allocator)
        counts.append(calibrate(call, min_sample_s))
    timings = Timings()
    for _ in range(repeats):
        for call, name, n in zip(calls, names, counts):
            timings.add(name, run_n(call, n) / n)
    return timings


# ---- the report ----------------------------------------------------------------------------------

def fmt(seconds):
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def table(rows, torch):
    head = "| case | tracegrad min | tracegrad median | PyTorch min | PyTorch median | ratio min | ratio median |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for case, t in rows:
        tg = t.per_call["tracegrad"]
        cells = [fmt(min(tg)), fmt(statistics.median(tg))]
        pt = t.per_call.get("torch")
        if pt:
            cells += [fmt(min(pt)), fmt(statistics.median(pt)), f"{min(tg) / min(pt):.2f}x",
                      f"{statistics.median(tg) / statistics.median(pt):.2f}x"]
        else:
            cells += ["n/a"] * 4
        lines.append(f"| {case.id}: {case.what} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_note(torch):
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cores = os.cpu_count()
    lines = [f"Machine: {cores} cores, load average {load:.2f} at start."]
    if torch is None:
        lines.append("PyTorch is not installed: its columns are n/a.")
    else:
        lines.append(f"PyTorch {torch.__version__} uses its own {torch.get_num_threads()} intra-op "
                     "threads; tracegrad uses numpy/BLAS threads. Both share the same cores.")
    return "\n".join(lines)


def run(only=None, repeats=7, min_sample_s=0.1, smoke=False, use_torch=True, out=sys.stdout,
        torch_threads=None):
    """Check and time the cases; returns the rows [(Case, Timings)] (timings empty in smoke)."""
    torch = load_torch() if use_torch else None
    if torch is not None and torch_threads:
        torch.set_num_threads(torch_threads)
    libs = [TracegradLib()] + ([TorchLib(torch)] if torch is not None else [])
    rows = []
    for case in [CASES_BY_ID[c] for c in only] if only else CASES:
        calls = check(case, libs, smoke)
        if smoke:
            print(f"{case.id}: ok ({', '.join(lib.name for lib in libs)} agree)", file=out)
            continue
        rows.append((case, time_case(calls, [lib.name for lib in libs], repeats, min_sample_s)))
        print(f"{case.id}: timed", file=sys.stderr)
    if not smoke:
        print(machine_note(torch) + "\n\n" + table(rows, torch), file=out)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes, checks only, no timing")
    p.add_argument("--only", default="", help="comma-separated case ids: " + ",".join(CASES_BY_ID))
    p.add_argument("--repeats", type=int, default=7, help="timed samples per case and library")
    p.add_argument("--min-sample-s", type=float, default=0.1, help="minimum length of one sample")
    p.add_argument("--no-torch", action="store_true", help="time tracegrad alone")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="PyTorch's intra-op threads (default: its own choice, all cores)")
    a = p.parse_args(argv)
    only = [c for c in a.only.split(",") if c]
    unknown = [c for c in only if c not in CASES_BY_ID]
    if unknown:
        p.error(f"unknown case(s) {unknown}; choose from {list(CASES_BY_ID)}")
    run(only, a.repeats, a.min_sample_s, a.smoke, not a.no_torch, torch_threads=a.torch_threads)


if __name__ == "__main__":
    main()
