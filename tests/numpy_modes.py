"""Helpers of the sorting and reduction tests: run one `tracegrad.numpy` function
every way (numpy operands, eager tensors, traced + interpreted, compiled) and
check gradients against central differences in float64."""
from __future__ import annotations

import numpy as np

import tracegrad
from tracegrad.tracer import Tensor, tensor, trace

MODES = ("numpy", "eager", "traced", "jit")


def _plain(x):
    if isinstance(x, (tuple, list)):
        return type(x)(_plain(v) for v in x)
    return np.asarray(x.data if isinstance(x, Tensor) else x)


def run(fn, args, mode):
    """`fn(*args)` in one mode, results as numpy arrays (tuples stay tuples)."""
    if mode == "numpy":
        return _plain(fn(*args))
    if mode == "eager":
        return _plain(fn(*[tensor(a) for a in args]))
    if mode == "traced":
        return _plain(trace(fn)(*args)(*args))
    return _plain(tracegrad.jit(fn)(*args))


def assert_same(got, want, rtol=1e-12, atol=0.0, mode=""):
    """Values, dtypes and shapes equal (NaNs in the same places)."""
    if isinstance(want, (tuple, list)):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), mode
        for g, w in zip(got, want):
            assert_same(g, w, rtol, atol, mode)
        return
    want = np.asarray(want)
    assert got.shape == want.shape, f"{mode}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{mode}: dtype {got.dtype} != {want.dtype}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=mode)
    else:
        np.testing.assert_array_equal(got, want, err_msg=mode)


def check_modes(fn, ref, args, rtol=1e-12, atol=0.0, modes=MODES):
    """`fn` agrees with the numpy reference `ref` in every mode."""
    want = ref(*args)
    for mode in modes:
        assert_same(run(fn, args, mode), want, rtol, atol, mode)


def _weighted(fn, weights):
    def scalar(*args):
        return tracegrad.numpy.sum(tracegrad.numpy.multiply(fn(*args), weights))
    return scalar


def fd_grad(fn, args, weights, i, h=1e-6):
    """Central differences of sum(fn(*args) * weights) with respect to argument i."""
    a = np.asarray(args[i], np.float64)
    grad = np.zeros(a.size)
    for k in range(a.size):
        step = np.zeros(a.size)
        step[k] = h
        vals = []
        for sign in (1, -1):
            moved = list(args)
            moved[i] = (a.ravel() + sign * step).reshape(a.shape)
            vals.append(np.sum(np.asarray(fn(*moved), np.float64) * weights))
        grad[k] = (vals[0] - vals[1]) / (2 * h)
    return grad.reshape(a.shape)


def check_grad(fn, args, argnum=0, rtol=1e-6, atol=1e-7, seed=0, compiled=True):
    """Gradient of sum(fn * w) for random w: eager autograd, `tracegrad.grad` (traced)
    and `compile_grad` against central differences."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(np.shape(fn(*args)))
    want = fd_grad(fn, args, w, argnum)
    scalar = _weighted(fn, w)
    ts = [tensor(a, requires_grad=(i == argnum)) for i, a in enumerate(args)]
    scalar(*ts).backward()
    got = {"eager": ts[argnum].grad.data,
           "traced": tracegrad.grad(scalar, argnums=argnum)(*args)}
    if compiled:
        got["compiled"] = tracegrad.compile_grad(scalar, argnums=argnum)(*args)[1]
    for mode, g in got.items():
        np.testing.assert_allclose(np.asarray(g), want, rtol=rtol, atol=atol, err_msg=mode)
