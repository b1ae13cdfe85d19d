"""Golden snapshots of kernel programs: the printed output of fusion for a few canonical
functions, compared with the text stored in tests/golden/<name>.txt.

A change to fusion, autodiff or the cleanup passes that alters a kernel program shows up
here as a diff to read (how many kernels, what each one loads, computes and stores).  When
the change is intended, rewrite the snapshots with

    TRACEGRAD_UPDATE_GOLDEN=1 python -m pytest tests/test_kernel_golden.py

and review the diff of tests/golden/ before committing it.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import tracegrad
from tracegrad.ir import GraphBuilder, ShapedArray, ops, verify
from tracegrad.passes.fusion import fuse

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE = os.environ.get("TRACEGRAD_UPDATE_GOLDEN") == "1"
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)


def fused_text(fn, *avals):
    """The printed kernel program of `fn` (written with ir.ops) on inputs of these avals."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(shape, dtype)) for shape, dtype in avals]
    out = fn(*xs)
    return str(fuse(verify(b.build(list(out) if isinstance(out, tuple) else [out]))))


def compiled_text(fn, *args):
    """The kernel program `compile_grad` built (value and every gradient) for these args."""
    f = tracegrad.compile_grad(fn)
    f(*args)
    return f.ir("kernels")


# ---- the canonical functions --------------------------------------------------------------

def elementwise_chain(x, y):
    t = ops.mul(ops.tanh(x), ops.exp(ops.mul(ops.mul(-0.5, x), x)))
    return ops.add(ops.div(t, ops.add(1.0, ops.abs(y))), ops.log1p(ops.mul(y, y)))


def sum_loss(x):
    return np.sum(np.sin(x) * np.exp(-x * x) + np.log1p(np.exp(x)))


def softmax_row_loss(x, y):
    e = np.exp(x - np.max(x, axis=1, keepdims=True))
    return np.sum(e / np.sum(e, axis=1, keepdims=True) * y)


def slice_pad_loss(x):
    inner = x[1:-1]
    return np.sum(np.tanh(x[::2]) ** 2) + np.sum((inner - x[:-2]) ** 2 * x[2:])


def dot_bias_loss(w, b, x):
    return np.mean(np.tanh(x @ w + b))


def rnn_loss(W, U, b, xs):
    def step(h, x):
        h = np.tanh(W @ h + x @ U + b)
        return h, np.sum(h)
    _, ys = tracegrad.scan(step, np.zeros(4), xs)
    return np.sum(ys)


def _rng():
    return np.random.default_rng(0)


CASES = {
    "elementwise_chain": lambda: fused_text(elementwise_chain, ((64,), F32), ((64,), F32)),
    "sum_grad": lambda: compiled_text(sum_loss, _rng().standard_normal(100)),
    "softmax_row_grad": lambda: compiled_text(softmax_row_loss, _rng().standard_normal((4, 10)),
                                              _rng().standard_normal((4, 10))),
    "slice_pad_grad": lambda: compiled_text(slice_pad_loss, _rng().standard_normal(21)),
    "dot_bias_grad": lambda: compiled_text(dot_bias_loss, _rng().standard_normal((5, 3)),
                                           np.zeros(3), _rng().standard_normal((8, 5))),
    "rnn_scan_grad": lambda: compiled_text(rnn_loss, _rng().standard_normal((4, 4)) * 0.3,
                                           _rng().standard_normal((2, 4)), np.zeros(4),
                                           _rng().standard_normal((7, 2))),
}


# ---- the snapshots --------------------------------------------------------------------------

def check_golden(name, text):
    path = GOLDEN_DIR / f"{name}.txt"
    text = text.rstrip("\n") + "\n"
    if UPDATE:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run with TRACEGRAD_UPDATE_GOLDEN=1 to write it"
    want = path.read_text()
    assert text == want, (f"the kernel program of {name} differs from {path}; if intended, "
                          "rewrite it with TRACEGRAD_UPDATE_GOLDEN=1 and review the diff")


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_program_matches_golden(name):
    check_golden(name, CASES[name]())


@pytest.mark.parametrize("name", sorted(CASES))
def test_kernel_program_text_is_stable_within_a_process(name):
    """Building the same program twice prints the same text (no ids or addresses in it)."""
    assert CASES[name]() == CASES[name]()


def test_every_golden_file_has_a_case():
    stored = {p.stem for p in GOLDEN_DIR.glob("*.txt")}
    assert stored == set(CASES), "tests/golden/ and CASES name different programs"
