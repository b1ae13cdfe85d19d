"""The eager optimizer step updates numpy buffers in place (`rule_`); it must follow the
functional rule (`rule`, the form that traces and compiles) step by step."""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad as tg
from tracegrad import optim

from test_optim import CASES


def _run_both(cls, h, dtype, steps=5):
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(7).astype(dtype)
    grads = [rng.standard_normal(7).astype(dtype) for _ in range(steps)]
    hyper = {**cls.defaults, **h}
    opt = cls(**h)
    p_fun, s_fun = p0.copy(), opt._init_leaf(p0)
    p_inp, s_inp = p0.copy(), opt._init_leaf(p0)
    for g in grads:
        g_before = g.copy()
        p_fun, s_fun = cls.rule(p_fun, g, s_fun, hyper)
        cls.rule_(p_inp, g, s_inp, hyper)
        assert np.array_equal(g, g_before)  # the gradient is read, never written
    return np.asarray(p_fun), p_inp


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cls, h", CASES + [(optim.SGD, dict(lr=0.1, maximize=True)),
                                            (optim.Adam, dict(lr=0.1, maximize=True))])
def test_in_place_rule_follows_the_functional_rule(cls, h, dtype):
    fun, inp = _run_both(cls, h, dtype)
    assert inp.dtype == dtype
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(inp, fun, rtol=tol, atol=tol)


def test_step_bumps_the_version_and_keeps_the_buffer():
    w = tg.tensor(np.ones(3), requires_grad=True)
    buf = w.data
    y = w * w  # saves w: a later backward through y must see the in-place change
    opt = optim.Adam([w], lr=0.1)
    (w * 2.0).sum().backward()
    opt.step()
    assert w.data is buf and np.all(w.data < 1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_step_skips_parameters_without_gradients():
    a = tg.tensor([1.0], requires_grad=True)
    b = tg.tensor([2.0], requires_grad=True)
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    (a * 3.0).sum().backward()
    opt.step()
    assert a.data.tolist() == [-0.5] and b.data.tolist() == [2.0] and id(b) not in opt.state
