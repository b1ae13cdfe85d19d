"""Extern kernels (kind "extern") through fusion and codegen: the cumulative primitives
compiled against eager numpy (native lowerings and the host callback), inside loop and
branch bodies, under compile_grad; a multi-result primitive, an impl that raises, and
programs reloaded from the disk cache in a fresh process (codegen/extern.py)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracegrad
from tracegrad.codegen import extern
from tracegrad.ir import GraphBuilder, ShapedArray, ops
from tracegrad.ir.core import ShapedArray as Aval
from tracegrad.ir.primitives import PRIMITIVES, Primitive, register
from tracegrad.passes.fusion import fuse
from tracegrad.passes.kernel_interp import run_program
from tracegrad.passes.kernels import ExternKernel

from extern_cases import compile_ops as compiled

CUMULATIVE = {"cumsum": np.add, "cumprod": np.multiply, "cummax": np.maximum,
              "cummin": np.minimum}


@pytest.fixture(params=["native", "callback"])
def route(request, monkeypatch):
    """Each test runs with native lowerings and with every extern kernel calling back."""
    if request.param == "callback":
        monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    else:
        monkeypatch.delenv("TRACEGRAD_EXTERN_NATIVE", raising=False)
    return request.param


def reference(name, x, axis, reverse):
    x = np.flip(x, axis) if reverse else x
    out = CUMULATIVE[name].accumulate(x, axis=axis, dtype=x.dtype)
    return np.flip(out, axis) if reverse else out


def data(shape, dtype, rng):
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-2, 2, shape).astype(dtype)
    return rng.integers(-4, 5, shape).astype(dtype)


SHAPES_AXES = [((7,), 0), ((3, 5), 0), ((3, 5), 1), ((2, 3, 4), 1), ((2, 0, 3), 1),
               ((4, 0), 0), ((1, 9), 1)]


@pytest.mark.parametrize("name", sorted(CUMULATIVE))
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
@pytest.mark.parametrize("reverse", [False, True])
def test_cumulative_compiled_equals_numpy(route, name, dtype, shape, axis, reverse):
    x = data(shape, dtype, np.random.default_rng(0))
    fn = getattr(ops, name)
    kp, cp, (out,) = compiled(lambda v: fn(v, axis, reverse), x)
    want = reference(name, x, axis, reverse)
    assert out.dtype == want.dtype and out.shape == want.shape
    np.testing.assert_allclose(out, want, rtol=2e-6 if dtype == np.float32 else 1e-13)
    host = "tg_host_call" in cp.llvm_ir()
    assert host == (route == "callback" or extern.native_for(kp.kernels[0]) is None)


@pytest.mark.parametrize("name", sorted(CUMULATIVE))
def test_nan_and_signed_zeros_like_numpy(route, name):
    x = np.array([1.0, np.nan, 3.0, -1.0, 5.0, -0.0, 0.0])
    for v in (x, x[2:], -x[2:][::-1]):
        _, _, (out,) = compiled(lambda a: getattr(ops, name)(a, 0), v)
        want = reference(name, v, 0, False)
        np.testing.assert_array_equal(out, want)
        np.testing.assert_array_equal(np.signbit(out), np.signbit(want))


def test_views_are_materialized_before_the_kernel(route):
    """A transposed, broadcast or computed operand is stored; the result feeds a loop."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))

    def f(v):
        t = ops.cumsum(ops.transpose(ops.sin(v), (1, 0)), 1)
        b = ops.cummax(ops.broadcast(ops.reduce_sum(v, (1,)), (2, 3)), 1)
        r = ops.cumprod(ops.reshape(v, (12,)), 0, True)
        return ops.mul(t, 2.0), b, r
    kp, _, outs = compiled(f, x)
    assert sum(isinstance(k, ExternKernel) for k in kp.kernels) == 3
    want = [2 * np.cumsum(np.sin(x).T, 1), np.maximum.accumulate(
        np.broadcast_to(x.sum(1), (2, 3)), 1), np.cumprod(x.reshape(-1)[::-1])[::-1]]
    for got, w in zip(outs, want):
        np.testing.assert_allclose(got, w, rtol=1e-13)
    assert all(a.size == 0 or a.flags.c_contiguous for a in outs)


# ---- control-flow bodies ---------------------------------------------------------------

def test_scan_body(route):
    def f(h0, xs):
        def step(h, x):
            h = ops.cumsum(ops.add(h, x), 0, reverse=True)
            return ops.mul(h, 0.5), ops.cummax(h, 0)
        return tracegrad.scan(step, h0, xs)

    rng = np.random.default_rng(2)
    h0, xs = rng.standard_normal(4), rng.standard_normal((5, 4))
    got = tracegrad.jit(f, disk_cache=False)(h0, xs)
    h, ys = h0, []
    for x in xs:
        h = np.cumsum((h + x)[::-1])[::-1]
        ys.append(np.maximum.accumulate(h))
        h = h * 0.5
    np.testing.assert_allclose(got[0], h, rtol=1e-12)
    np.testing.assert_allclose(got[1], np.stack(ys), rtol=1e-12)


def test_fori_loop_and_cond_bodies(route):
    def f(x):
        y = tracegrad.fori_loop(0, 3, lambda i, v: ops.cumprod(ops.add(v, 0.1), 0), x)
        return tracegrad.cond(ops.gt(ops.reduce_sum(y, (0,)), 0.0),
                              lambda v: ops.cumsum(v, 0), lambda v: ops.cummin(v, 0), y)

    for x in (np.array([0.5, 0.9, 1.1]), np.array([-0.5, 0.9, -3.0])):
        y = x
        for _ in range(3):
            y = np.cumprod(y + 0.1)
        want = np.cumsum(y) if y.sum() > 0 else np.minimum.accumulate(y)
        np.testing.assert_allclose(tracegrad.jit(f, disk_cache=False)(x), want, rtol=1e-12)


def test_while_loop_body(route):
    def f(x):
        return tracegrad.while_loop(lambda v: ops.lt(ops.reduce_max(v, (0,)), 100.0),
                                    lambda v: ops.cumsum(ops.add(v, 1.0), 0), x)

    x = np.array([0.0, 1.0, 2.0])
    y = x
    while y.max() < 100:
        y = np.cumsum(y + 1)
    np.testing.assert_allclose(tracegrad.jit(f, disk_cache=False)(x), y)


# ---- gradients ---------------------------------------------------------------------------

def _loss(x, w):
    a = ops.cumprod(x, 1)
    b = ops.cummax(ops.mul(x, w), 0, reverse=True)
    c = ops.cumsum(ops.sin(x), 1, reverse=True)
    return ops.reduce_sum(ops.mul(ops.add(ops.add(a, b), c), w), (0, 1))


def test_compile_grad_matches_finite_differences(route):
    rng = np.random.default_rng(3)
    x = (rng.permutation(12).reshape(3, 4) * 0.3 + 0.1) * rng.choice([-1, 1], (3, 4))
    x[1, 2] = 0.0  # cumprod through an exact zero
    w = rng.uniform(0.5, 1.5, (3, 4))
    value, (gx, gw) = tracegrad.compile_grad(_loss, disk_cache=False)(x, w)
    from tracegrad.tracer import tensor
    np.testing.assert_allclose(value, _loss(tensor(x), tensor(w)).data, rtol=1e-12)
    for arg, grad in ((0, gx), (1, gw)):
        fd = np.zeros_like(grad)
        for i in np.ndindex(grad.shape):
            args = [x.copy(), w.copy()]
            args[arg][i] += 1e-6
            plus = _loss(*args)
            args[arg][i] -= 2e-6
            fd[i] = (plus - _loss(*args)) / 2e-6
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def _looped(x, w):
    def step(h, xt):
        h = ops.cumprod(ops.add(ops.mul(h, w), xt), 0, reverse=True)
        return h, ops.cummax(h, 0)
    scales = np.repeat(np.array([[0.1], [0.2], [-0.3]]), 4, axis=1)
    h, ys = tracegrad.scan(step, x, ops.mul(ops.broadcast(x, (3, 4)), scales))
    body = lambda c: (ops.add(c[0], 1), ops.cumsum(ops.sin(c[1]), 0))  # noqa: E731
    v = tracegrad.while_loop(lambda c: ops.lt(c[0], 3), body, (np.int64(0), h))[1]
    return ops.reduce_sum(ops.add(v, ops.reduce_sum(ys, (0,))), (0,))


def test_compile_grad_through_loop_bodies_equals_eager(route):
    """Extern kernels in scan bodies, their reverse bodies and a while_vjp's tape loop."""
    from tracegrad.tracer import tensor
    x, w = np.array([0.5, -0.7, 0.9, 1.1]), np.array([0.9, 1.2, -0.4, 0.3])
    value, grads = tracegrad.compile_grad(_looped, disk_cache=False)(x, w)
    xe, we = tensor(x, requires_grad=True), tensor(w, requires_grad=True)
    out = _looped(xe, we)
    out.backward()
    np.testing.assert_allclose(value, out.data, rtol=1e-12)
    np.testing.assert_allclose(grads[0], xe.grad.data, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], we.grad.data, rtol=1e-10, atol=1e-12)


# ---- a multi-result primitive and an impl that raises ------------------------------------

def _split_rule(x, *, k):
    return [ShapedArray(x.shape, x.dtype), ShapedArray((k,), np.dtype(np.int64))]


def _split_impl(x, *, k):
    x = np.asarray(x)
    if x.size and x.reshape(-1)[0] < -100:
        raise ValueError("test_extern_split: a first element below -100")
    return [np.sort(x, axis=-1), np.arange(k, dtype=np.int64) * x.ndim]


@pytest.fixture
def split_prim():
    """A temporary multi-result extern primitive with no native lowering."""
    prim = register(Primitive("test_extern_split", "extern", _split_rule, _split_impl,
                              differentiable=False, multiple_results=True))
    yield prim
    del PRIMITIVES[prim.name]


def _split(x, k=3):
    return ops.bind("test_extern_split", x, k=k)


def test_multiple_results_take_the_callback(split_prim):
    x = np.random.default_rng(4).standard_normal((3, 5))
    kp, cp, (s, idx, t) = compiled(lambda v: (*_split(ops.transpose(v, (1, 0))),
                                              ops.add(_split(v)[0], 1.0)), x)
    np.testing.assert_array_equal(s, np.sort(x.T, -1))
    np.testing.assert_array_equal(idx, [0, 2, 4])
    np.testing.assert_array_equal(t, np.sort(x, -1) + 1)
    assert "tg_host_call" in cp.llvm_ir()
    np.testing.assert_array_equal(run_program(kp, x)[0], s)
    assert "extern k" in str(kp) and "test_extern_split[k=3]" in str(kp)


def test_an_impl_that_raises_is_reraised(split_prim):
    _, cp, _ = compiled(lambda v: _split(v)[0], np.zeros(4))
    with pytest.raises(ValueError, match="below -100"):
        cp(np.array([-200.0, 1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(cp(np.array([3.0, 1.0, 2.0, 0.0]))[0], [0, 1, 2, 3])
    with pytest.raises(ValueError, match="below -100"):  # the ctypes path too
        cp.call_ctypes([np.array([-200.0, 1.0, 2.0, 3.0])])


def test_a_failing_call_stops_a_while_loop(split_prim):
    """The host call fails on trip 101: the loop stops (its condition would read what the
    failed call left) and the error is raised; the program runs again afterwards."""
    def f(x, stop):
        return tracegrad.while_loop(lambda v: ops.gt(ops.reduce_sum(v, (0,)), stop),
                                    lambda v: ops.sub(_split(v)[0], 1.0), x)

    jf = tracegrad.jit(f, disk_cache=False)
    np.testing.assert_array_equal(jf(np.array([1.0, 0.0]), -50.0), [-26.0, -25.0])
    with pytest.raises(ValueError, match="below -100"):
        jf(np.array([1.0, 0.0]), -1e9)
    np.testing.assert_array_equal(jf(np.array([1.0, 0.0]), -10.0), [-6.0, -5.0])


# ---- the disk cache across processes -------------------------------------------------------

CHILD = textwrap.dedent("""
    import numpy as np
    from tracegrad.codegen import compile_graph
    from tracegrad.ir import GraphBuilder, ShapedArray, ops
    from tracegrad.passes.fusion import fuse
    b = GraphBuilder()
    x = b.new_input(ShapedArray((6,), np.float64))
    y = ops.cumsum(ops.cumprod(ops.sin(x), 0, True), 0)
    graph = b.build([ops.cummax(y, 0), y])
    cp = compile_graph(graph, fuse, name="extern_cached")
    outs = cp(np.linspace(-1.0, 1.0, 6))
    print(cp.from_cache, "tg_host_call" in cp.llvm_ir(), " ".join(repr(float(v)) for v in outs[0]))
""")


@pytest.mark.parametrize("native", ["1", "0"])
def test_disk_cache_reload_in_a_fresh_process(tmp_path, native):
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(tmp_path), TRACEGRAD_EXTERN_NATIVE=native)
    env.pop("TRACEGRAD_DISABLE_CACHE", None)
    runs = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        hit, host, *values = out.stdout.split()
        runs.append((hit == "True", host == "True", [float(v) for v in values]))
    x = np.linspace(-1.0, 1.0, 6)
    want = np.maximum.accumulate(np.cumsum(np.cumprod(np.sin(x)[::-1])[::-1]))
    assert [r[0] for r in runs] == [False, True]
    for _, host, values in runs:
        assert host == (native == "0")
        np.testing.assert_allclose(values, want, rtol=1e-13)


def test_kernel_avals_are_what_the_primitive_sees():
    b = GraphBuilder()
    x = b.new_input(ShapedArray((2, 3), np.float32))
    kp = fuse(b.build([ops.reshape(ops.cumsum(ops.reshape(x, (6,)), 0), (3, 2))]))
    (k,) = [k for k in kp.kernels if isinstance(k, ExternKernel)]
    assert k.in_avals == [Aval((6,), np.dtype(np.float32))] and k.inputs[0].shape == (2, 3)
    assert k.outputs[0].kind == "output" and k.outputs[0].shape == (3, 2)


def test_threads_share_a_program_with_host_calls(monkeypatch):
    """Two threads call one program whose host calls need the GIL: no deadlock, right
    results (the program releases the GIL and holds its mutex)."""
    import threading
    monkeypatch.setenv("TRACEGRAD_EXTERN_NATIVE", "0")
    _, cp, _ = compiled(lambda v: ops.cumsum(ops.cumsum(ops.sin(v), 0), 0, True), np.zeros(64))
    xs = [np.random.default_rng(i).standard_normal(64) for i in range(2)]
    wants = [cp(x)[0] for x in xs]  # alone; each thread must get exactly these
    for x, want in zip(xs, wants):
        np.testing.assert_allclose(want, np.cumsum(np.cumsum(np.sin(x))[::-1])[::-1],
                                   rtol=1e-9, atol=1e-12)
    errors = []

    def work(x, want):
        try:
            for _ in range(200):
                np.testing.assert_array_equal(cp(x)[0], want)
        except BaseException as e:  # noqa: BLE001  (reported by the main thread)
            errors.append(e)
    threads = [threading.Thread(target=work, args=a, daemon=True) for a in zip(xs, wants)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads) and not errors, errors
