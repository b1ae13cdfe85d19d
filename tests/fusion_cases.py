"""The fusion test helpers shared by the test_fusion_* files: graphs built from ir.ops,
inputs sampled on a domain, and the check that a fused program, run by `run_program`,
agrees with `eval_graph` on the unfused graph.

The interpreter refuses any address outside a buffer and starts temps and outputs
poisoned (NaN), so a missed element or a stray read fails the comparison.
"""
import numpy as np

from tracegrad.ir import GraphBuilder, ShapedArray, eval_graph, ops, verify
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import DotKernel, LoopKernel


F32, F64, I32, I64, BOOL = (np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64,
                                                 np.bool_))
RTOL = {F32: 2e-5, F64: 1e-12}
rng = np.random.default_rng(1234)


# ---- helpers -----------------------------------------------------------------------

def build(fn, *avals):
    """The graph of `fn` applied to inputs of the given (shape, dtype) pairs."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(shape, dtype)) for shape, dtype in avals]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def sample(shape, dtype, domain="real"):
    dtype = np.dtype(dtype)
    if dtype == BOOL:
        return rng.random(shape) < 0.5
    if dtype.kind == "i":
        return rng.integers(-5, 6, shape).astype(dtype)
    x = rng.standard_normal(shape)
    if domain == "positive":
        x = np.abs(x) + 0.1
    return x.astype(dtype)


def loop_kernels(kp):
    return [k for k in kp.kernels if isinstance(k, LoopKernel)]


def dot_kernels(kp):
    return [k for k in kp.kernels if isinstance(k, DotKernel)]


def assert_matches(graph, *args, rtol=None):
    """Fuse, interpret, compare with the unfused graph; returns the program."""
    kp = fuse(graph)
    assert str(kp)  # the printer handles every program
    want = eval_graph(graph, *args)
    got = run_program(kp, *args)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.dtype, g.shape, w.dtype, w.shape)
        tol = rtol if rtol is not None else RTOL.get(w.dtype)
        if tol is None:
            np.testing.assert_array_equal(g, w)
        else:
            atol = tol * (1 + np.max(np.abs(w), initial=0))
            np.testing.assert_allclose(g, w, rtol=tol, atol=atol)
    assert_outputs_written_once(kp)
    return kp


def assert_outputs_written_once(kp):
    """Every output is fresh memory written by the program; no two outputs share a buffer."""
    assert len({id(b) for b in kp.outputs}) == len(kp.outputs)
    written = {id(b) for k in kp.kernels for b in k.writes()}
    assert all(id(b) in written for b in kp.outputs)
    assert not any(b.kind in ("input", "const") for k in kp.kernels for b in k.writes())


def check(fn, *avals, domain="real", rtol=None):
    graph = build(fn, *avals)
    args = [sample(s, d, domain) for s, d in avals]
    return assert_matches(graph, *args, rtol=rtol)


def w7_recurrence(x, steps=100):
    """x = sin(x) * 0.9 + 0.1 * x * x, each link read three times (benchmark W7); sum(x)."""
    for _ in range(steps):
        x = ops.add(ops.mul(ops.sin(x), 0.9), ops.mul(ops.mul(0.1, x), x))
    return ops.reduce_sum(x, (0,))


def drag_steps(v0, c, steps):
    """The position after `steps` Euler steps of a projectile with drag |v| v (ir.ops)."""
    x, v = ops.mul(v0, 0.0), v0
    for _ in range(steps):
        speed = ops.sqrt(ops.reduce_sum(ops.mul(v, v), (0,)))
        drag = ops.mul(ops.mul(c, speed), v)
        v = ops.add(v, ops.mul(0.01, ops.sub(np.array([0.0, -9.81]), drag)))
        x = ops.add(x, ops.mul(0.01, v))
    return x
