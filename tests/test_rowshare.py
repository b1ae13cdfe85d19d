"""Row runs compute a costly value once (passes/rowshare.py): the first kernel that computes it
stores it into a one-block temp, later kernels of the step load it."""
import numpy as np
import pytest

import tracegrad
from tracegrad.passes import rowshare
from tracegrad.passes.kernels import Buffer, IndexMap, Load, LoopKernel, LoopStep, Op, Store


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", "1")


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_loss(x, w):
    return np.sum(softmax(x) * w)


def body_prims(fn, *args):
    kp = fn._spec().native.kernel_program()
    step, = [k for k in kp.kernels if isinstance(k, LoopStep)]
    return [ins.prim for k in step.body.kernels for ins in k.body if isinstance(ins, Op)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_step_computes_exp_once_and_matches_numpy(dtype):
    x = np.random.default_rng(0).standard_normal((512, 384)).astype(dtype)
    f = tracegrad.jit(softmax, disk_cache=False)
    y = f(x)
    assert body_prims(f, x).count("exp") == 1
    np.testing.assert_allclose(y, softmax(x), rtol=2e-6 if dtype == np.float32 else 1e-14)


def test_sharing_gives_the_same_bits_as_recomputing(monkeypatch):
    x = np.random.default_rng(1).standard_normal((256, 640))
    y = tracegrad.jit(softmax, disk_cache=False)(x)
    monkeypatch.setattr(rowshare, "SHARE_COST", 10 ** 9)
    f = tracegrad.jit(softmax, disk_cache=False)
    y2 = f(x)
    assert body_prims(f, x).count("exp") == 2  # recomputed: the comparison means something
    assert np.array_equal(y, y2)


def test_softmax_gradient_through_shared_values():
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((256, 640)), rng.standard_normal((256, 640))
    value, (gx,) = tracegrad.compile_grad(softmax_loss, argnums=(0,), disk_cache=False)(x, w)
    s = softmax(x)
    np.testing.assert_allclose(value, np.sum(s * w), rtol=1e-12)
    np.testing.assert_allclose(gx, s * (w - np.sum(s * w, axis=1, keepdims=True)), rtol=1e-10,
                               atol=1e-15)


def _kernels(overwrite: bool):
    """k0 sums exp(X) per row; optionally k1 overwrites X; k2 writes exp(X) / sum."""
    f8, dom = np.dtype(np.float64), (4, 8)
    X, S, Y, O = (Buffer(n, s, f8, "temp") for n, s in [("X", (4, 8)), ("S", (4,)), ("Y", (4, 8)),
                                                         ("O", (4, 8))])
    row, rows = IndexMap(0, (8, 1)), IndexMap(0, (1, 0))
    k0 = LoopKernel("k0", dom, [Load(X, row, f8), Op("exp", (0,), {}, f8)],
                    [Store(S, 1, rows, "sum")])
    k1 = LoopKernel("k1", dom, [Load(Y, row, f8)], [Store(X, 0, row)])
    k2 = LoopKernel("k2", dom, [Load(X, row, f8), Op("exp", (0,), {}, f8), Load(S, rows, f8),
                                Op("div", (1, 2), {}, f8)], [Store(O, 3, row)])
    return [k0, k1, k2] if overwrite else [k0, k2]


def test_a_value_is_shared_only_while_its_inputs_stay_unwritten():
    k0, k2 = rowshare.shared(_kernels(False), widest=8)
    temp, = [s.buffer for s in k0.stores if s.buffer.name == "share"]
    assert [type(i).__name__ for i in k2.body] == ["Load", "Load", "Op"]
    assert k2.body[0].buffer is temp
    run = _kernels(True)
    assert rowshare.shared(run, widest=8) is run  # k1 overwrites X: exp(X) is computed again


def test_a_temp_wider_than_the_rows_is_not_made():
    run = _kernels(False)
    assert rowshare.shared(run, widest=4) is run


def test_a_value_per_row_is_left_to_the_inner_loop_hoisting():
    f8, dom = np.dtype(np.float64), (4, 8)
    X, S, A, O = (Buffer(n, s, f8, "temp") for n, s in [("X", (4, 8)), ("S", (4,)), ("A", (4, 8)),
                                                         ("O", (4, 8))])
    row, rows = IndexMap(0, (8, 1)), IndexMap(0, (1, 0))
    per_row = [Load(S, rows, f8), Op("sqrt", (0,), {}, f8), Op("exp", (1,), {}, f8)]
    k0 = LoopKernel("k0", dom, per_row + [Load(X, row, f8), Op("mul", (2, 3), {}, f8)],
                    [Store(A, 4, row)])
    k1 = LoopKernel("k1", dom, per_row + [Load(A, row, f8), Op("div", (3, 2), {}, f8)],
                    [Store(O, 4, row)])
    assert rowshare.shared([k0, k1], widest=8) == [k0, k1]
