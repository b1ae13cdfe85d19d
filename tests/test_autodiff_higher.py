"""Second order: grad of grad and Hessian-vector products in all three compositions.
"""
from __future__ import annotations

import numpy as np
import pytest

from tracegrad.ir import (ops)
from tracegrad.passes.autodiff import (grad_graph, jvp_graph, vjp_graph)

from autodiff_cases import (_smooth, _smooth_d2, build, checked, run)


# ---- second order ------------------------------------------------------------------

def test_grad_of_grad_of_a_scalar_function():
    graph = build(_smooth, [np.float64(0.0)])
    d1 = checked(grad_graph(graph, has_value=False))
    d2 = checked(grad_graph(d1, has_value=False))
    for x in (-1.3, 0.4, 2.0):
        assert float(run(d2, x)[0]) == pytest.approx(_smooth_d2(x), rel=1e-12)
    d3 = checked(grad_graph(d2, has_value=False))
    x, h = 0.7, 1e-5
    fd = (_smooth_d2(x + h) - _smooth_d2(x - h)) / (2 * h)
    assert float(run(d3, x)[0]) == pytest.approx(fd, rel=1e-7)


def _hvp_loss(w, x):
    h = ops.tanh(ops.dot(x, w))
    return ops.add(ops.reduce_sum(ops.mul(h, h), (0, 1)),
                   ops.reduce_sum(ops.exp(ops.mul(w, 0.5)), (0, 1)))


def _hvp_setup():
    rng = np.random.default_rng(4)
    w, x, v = rng.standard_normal((3, 2)), rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    graph = build(_hvp_loss, [w, x])
    grad_w = checked(grad_graph(graph, argnums=(0,), has_value=False))
    h = 1e-5
    fd = (run(grad_w, w + h * v, x)[0] - run(grad_w, w - h * v, x)[0]) / (2 * h)
    return graph, grad_w, (w, x, v), fd


def test_hvp_reverse_over_forward():
    graph, _, (w, x, v), fd = _hvp_setup()
    forward = checked(jvp_graph(graph))  # (w, x, tw, tx) -> (f, df.t)
    hvp = checked(vjp_graph(forward, wrt=[0]))  # cotangent (0, 1) selects d(df.t)/dw
    outs = run(hvp, w, x, v, np.zeros_like(x), 0.0, 1.0)
    np.testing.assert_allclose(outs[2], fd, rtol=1e-7, atol=1e-8)


def test_hvp_forward_over_reverse():
    graph, grad_w, (w, x, v), fd = _hvp_setup()
    hvp = checked(jvp_graph(grad_w))  # (w, x, tw, tx) -> (grad, H.t)
    outs = run(hvp, w, x, v, np.zeros_like(x))
    np.testing.assert_allclose(outs[1], fd, rtol=1e-7, atol=1e-8)


def test_hvp_reverse_over_reverse():
    graph, grad_w, (w, x, v), fd = _hvp_setup()
    hvp = checked(vjp_graph(grad_w, wrt=[0]))  # H is symmetric: v^T H == H v
    np.testing.assert_allclose(run(hvp, w, x, v)[1], fd, rtol=1e-7, atol=1e-8)
