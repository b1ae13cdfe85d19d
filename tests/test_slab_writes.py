"""Row writes into a buffer in a Python loop read as one concatenation (passes/slab_writes.py)."""
import numpy as np
import pytest

import tracegrad
from tracegrad.ir import eval_graph
from tracegrad.passes.slab_writes import concat_writes

RNG = np.random.default_rng(0)


def rnn_rows(steps, style="setitem"):
    def loss(W, b, xs):
        hs = np.zeros((steps, 4)) + 0.0 * b  # a traced buffer
        h = np.zeros(4)
        for t in range(steps):
            h = np.tanh(W @ h + xs[t] + b)
            if style == "setitem":
                hs[t] = h
            else:
                hs = hs.at[t].set(h)
        return np.sum(hs ** 2)
    return loss


@pytest.mark.parametrize("style", ["setitem", "at"])
def test_a_loop_writing_rows_compiles_as_a_loop(style):
    args = (RNG.normal(size=(4, 4)) * 0.4, RNG.normal(size=4), RNG.normal(size=(40, 4)))
    f = tracegrad.compile_grad(rnn_rows(40, style), argnums=(0, 1, 2), disk_cache=False)
    value, grads = f(*args)
    ref_value, ref_grads = tracegrad.value_and_grad(rnn_rows(40, style), argnums=(0, 1, 2))(*args)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    for a, b in zip(grads, ref_grads):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert "scan[" in f.ir("rerolled")


def test_partial_repeated_and_read_back_writes_keep_numpy_semantics():
    def f(x, rows):
        buf = x * 1.0
        buf[3] = rows[0]
        buf[1:3] = rows[1:3]
        first = np.sum(buf)  # an intermediate value read
        buf[3] = rows[3] * 2.0  # the last write of a row wins
        buf[0] = buf[3] + 1.0
        return first, buf
    x, rows = RNG.normal(size=(6, 3)), RNG.normal(size=(4, 3))
    got = tracegrad.jit(f, disk_cache=False)(x, rows)
    want = f(x.copy(), rows)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-14)  # (a sum: any order)
    np.testing.assert_array_equal(got[1], want[1])


def test_a_select_whose_mask_is_not_the_written_rows_is_left_alone():
    def fn(x, u):
        keep = np.zeros((4, 2), bool)
        keep[1, 0] = True  # one element, not the row pad writes
        return tracegrad.numpy.where(keep, tracegrad.numpy.pad(u, ((1, 2), (0, 0))), x)
    from tracegrad.tracer import make_graph
    x, u = RNG.normal(size=(4, 2)), RNG.normal(size=(1, 2))
    g = make_graph(fn, (x, u)).graph
    assert concat_writes(g) is g
    np.testing.assert_array_equal(eval_graph(g, x, u)[0], fn(x, u))
