"""codegen: programs made by fusion (with their gradients) compiled in every body mode."""

import numpy as np
import pytest

from tracegrad.codegen import outline
from tracegrad.codegen import lower_program
from tracegrad.codegen.lower import KernelEmitter
from tracegrad.ir import GraphBuilder, ShapedArray, ops
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import run_program
from codegen_cases import F32, F64, compile_
from codegen_cases import body_mode_fixture  # noqa: F401 (a pytest fixture)


# ---- programs made by fusion ------------------------------------------------------------------

def _w2_like(b, x):
    t = ops.add(ops.mul(ops.tanh(x), ops.exp(ops.mul(ops.mul(x, x), -0.5))),
                ops.log(ops.add(ops.exp(x), 1.0)))
    return [ops.reduce_sum(t, (0,))]


def _rosenbrock(b, x):
    n = x.shape[0]
    head, tail = ops.slice(x, (0,), (1,), (n - 1,)), ops.slice(x, (1,), (1,), (n - 1,))
    d = ops.sub(tail, ops.integer_pow(head, 2))
    return [ops.reduce_sum(ops.add(ops.mul(100.0, ops.integer_pow(d, 2)),
                                   ops.integer_pow(ops.sub(1.0, head), 2)), (0,))]


def _softmax_rows(b, x):
    m = ops.reduce_max(x, (1,))
    e = ops.exp(ops.sub(x, ops.broadcast(ops.reshape(m, (x.shape[0], 1)), x.shape)))
    s = ops.reduce_sum(e, (1,))
    return [ops.div(e, ops.broadcast(ops.reshape(s, (x.shape[0], 1)), x.shape))]


def _mlp(b, x):
    w = np.linspace(-1, 1, x.shape[1] * 40).reshape(x.shape[1], 40).astype(x.dtype)
    h = ops.tanh(ops.dot(x, w))
    return [ops.reduce_sum(ops.mul(h, h), (0, 1))]


def _pads(b, x):
    p = ops.pad(x, (2,), (1,), (x.shape[0] + 5,))
    return [ops.mul(p, p), ops.concatenate([x, ops.neg(x)], 0)]


FUSED = [("w2", _w2_like, (1023,), F32), ("rosenbrock", _rosenbrock, (1023,), F64),
         ("softmax", _softmax_rows, (7, 33), F64), ("mlp", _mlp, (33, 50), F32),
         ("pads", _pads, (33,), F64)]


@pytest.mark.parametrize("name,fn,shape,dtype", FUSED, ids=[f[0] for f in FUSED])
def test_fused_programs_with_gradients(name, fn, shape, dtype, body_mode):
    """fuse(graph [+ its gradient]) compiled == the kernel interpreter on the same program."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray(shape, dtype))
    graph = b.build(fn(b, x))
    if len(graph.outvars) == 1 and graph.outvars[0].aval.shape == ():
        graph = grad_graph(graph)
    kp = fuse(graph)
    xv = np.random.default_rng(11).uniform(-1.5, 1.5, shape).astype(dtype)
    got, want = compile_(kp)(xv), run_program(kp, xv)
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == F32 else dict(rtol=1e-11, atol=1e-11)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, **tol)


def _w7_like(b, x, steps=30):
    for _ in range(steps):
        x = ops.add(ops.mul(ops.sin(x), 0.9), ops.mul(ops.mul(x, x), 0.1))
    return [ops.reduce_sum(x, (0,))]


def test_w7_like_gradient_shares_sincos():
    """Forward sin and backward cos of each step become one out-of-line sincos call."""
    b = GraphBuilder()
    x = b.new_input(ShapedArray((16,), F64))
    kp = fuse(grad_graph(b.build(_w7_like(b, x))))
    [kernel] = [k for k in kp.kernels if outline.wants_outline(k)]
    lanes = KernelEmitter(None, kernel, "k", math=object()).lanes
    text = lower_program(kp).text()
    pair = f"<{lanes} x double>"
    assert text.count(f'call {{{pair}, {pair}}} @"tg_m_sincos_v{lanes}f64"') == 30
    assert "tg_m_sin_" not in text and "tg_m_cos_" not in text
    xv = np.random.default_rng(14).uniform(-1, 1, 16)
    got, want = compile_(kp)(xv), run_program(kp, xv)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
