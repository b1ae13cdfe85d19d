"""tracegrad.distributed on a LocalCluster of 2 worker processes (started here, closed at
the end): equality with single-process compile_grad, pytrees, sum/mean, uneven shards,
dask arrays, a worker killed between calls, and the error messages."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import tracegrad as tg

distributed = pytest.importorskip("distributed")
from tracegrad.distributed import DataParallel  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((1001, 5))  # 1001 rows: uneven shards
Y = (RNG.standard_normal(1001) > 0).astype(np.float64)


def logistic(p, x, y):
    z = x @ p["w"] + p["b"]
    return np.mean(np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0.0) - y * z)


def squared_sum(p, x, y):
    w, (scale,) = p
    return np.sum((np.tanh(x @ w) * scale - y) ** 2)


PARAMS = {"w": np.linspace(-0.5, 0.5, 5), "b": np.float64(0.1)}


@pytest.fixture(scope="module")
def dp():
    with DataParallel(logistic, (X, Y), n_workers=2) as dp:  # its own LocalCluster
        yield dp
    assert dp.client is None


def _close(a, b):
    for x, y in zip(tg.tree_util.tree_leaves(a), tg.tree_util.tree_leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


def test_mean_over_uneven_shards_equals_one_process(dp):
    assert len(dp.shards) == 2 and [hi - lo for lo, hi in dp.bounds] == [500, 501]
    value, grads = dp(PARAMS)
    _close((value, grads), tg.compile_grad(logistic, argnums=0)(PARAMS, X, Y))
    value2, _ = dp({"w": PARAMS["w"] * 2, "b": PARAMS["b"]})  # same program, new parameters
    assert value2 != value


def test_new_parameter_dtypes_get_their_own_program(dp):
    p32 = {"w": PARAMS["w"].astype(np.float32), "b": np.float32(0.1)}
    value, grads = dp(p32)
    assert grads["w"].dtype == np.float32
    want = tg.compile_grad(logistic, argnums=0)(PARAMS, X, Y)[0]
    np.testing.assert_allclose(value, want, rtol=1e-5)


def test_sum_reduce_and_nested_pytrees(dp):
    p = (np.full(5, 0.2), (np.float64(1.5),))
    with DataParallel(squared_sum, [X, Y], reduce="sum", client=dp.client) as sp:
        value, grads = sp(p)
    assert dp.client is not None  # a client passed in is not closed
    _close((value, grads), tg.compile_grad(squared_sum, argnums=0)(p, X, Y))
    assert isinstance(grads, tuple) and isinstance(grads[1], tuple)


def test_dask_arrays_are_computed_on_the_workers(dp):
    da = pytest.importorskip("dask.array")
    with DataParallel(logistic, (da.from_array(X, chunks=(300, 5)), da.from_array(Y, chunks=300)),
                      client=dp.client) as ddp:
        _close(ddp(PARAMS), dp(PARAMS))


def test_a_worker_killed_between_calls(dp):
    before = dp(PARAMS)
    try:
        dp.client.run(lambda: os._exit(1), workers=[dp.workers[0]])
    except Exception:  # the worker's connection closes under the call
        pass
    _close(dp(PARAMS), before)
    # the recovery waited for the nanny's new worker: the shards are spread over both again
    assert len(dp.workers) == 2 and len({a._address for a in dp.actors}) == 2
    dp.client.wait_for_workers(2, timeout=60)


def test_errors_name_the_worker_and_the_problem(dp):
    def cannot_compile(p, x, y):
        return np.sum(np.cumsum(x @ p["w"]) > 0.0) * p["w"][0]
    with DataParallel(lambda p, x, y: np.sum(x @ p["w"]), (X, Y), client=dp.client) as ok:
        placed = []
        place = ok._place
        ok._place = lambda: placed.append(1) or place()
        with pytest.raises(Exception, match="contracted|shapes"):
            ok({"w": np.ones(3)})  # a trace error on the driver: the user's line
        assert not placed  # raised at once: no worker was lost, no shard placed again
    with DataParallel(cannot_compile, (X, Y), client=dp.client) as broken:
        bad_text = "# tracegrad program\n%% format 1\nnot a program\n"  # the worker says so
        with pytest.raises(RuntimeError, match=r"worker tcp://[^:]+:\d+: IRSyntaxError"):
            broken.actors[0].load("key", bad_text, 1).result()
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'sum'"):
        DataParallel(logistic, (X, Y), reduce="max", client=dp.client)
    with pytest.raises(ValueError, match="same number of rows"):
        DataParallel(logistic, (X, Y[:10]), client=dp.client)
    with pytest.raises(ValueError, match="no rows"):  # (a mean over none was NaN)
        DataParallel(logistic, (X[:0], Y[:0]), client=dp.client)
    with DataParallel(logistic, (X.tolist(), Y.tolist()), client=dp.client) as lists:
        _close(lists(PARAMS), dp(PARAMS))  # lists are arrays (they failed late)


def test_a_python_branch_on_a_parameter_is_traced_again_when_it_turns(dp):
    """As compile_grad specializes again when a guard fails, so do the shards' programs
    (the second call failed on the workers with the guard)."""
    def branchy(p, x, y):
        z = x @ p["w"]
        if p["s"] > 0:
            return np.mean((z - y) ** 2)
        return np.mean(np.abs(z - y))
    with DataParallel(branchy, (X, Y), client=dp.client) as ddp:
        for s in (1.0, -1.0, 1.0):
            params = {"w": PARAMS["w"], "s": np.float64(s)}
            value, grads = ddp(params)
            want_value, want_grads = tg.value_and_grad(branchy)(params, X, Y)
            np.testing.assert_allclose(value, want_value, rtol=1e-10)
            np.testing.assert_allclose(grads["w"], want_grads["w"], rtol=1e-9)


def test_a_constructor_that_fails_closes_the_cluster_it_started(monkeypatch):
    """An error while placing the shards must not leave the LocalCluster it started."""
    closed = []
    close = DataParallel.close
    monkeypatch.setattr(DataParallel, "close", lambda self: closed.append(1) or close(self))
    monkeypatch.setattr(DataParallel, "_place", lambda self: (_ for _ in ()).throw(
        ValueError("cannot place this data")))
    with pytest.raises(ValueError, match="cannot place"):
        DataParallel(logistic, (X, Y), n_workers=1)
    assert closed


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r"tracegrad\[distributed\]"):
        DataParallel(logistic, (X, Y))


def test_float32_values_stay_float32(dp):
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    p32 = {"w": PARAMS["w"].astype(np.float32), "b": np.float32(0.1)}
    with DataParallel(logistic, (x32, y32), client=dp.client) as d32:
        value, grads = d32(p32)
    assert value.dtype == np.float32 and grads["w"].dtype == np.float32


def _branchy(p, x, y):
    z = x @ p["w"]
    if p["s"] > 0:
        return np.mean((z - y) ** 2)
    return np.mean(np.abs(z - y))


def test_calls_from_threads_whose_branches_differ(dp):
    """A call retracing for its branch handed its program to another thread's call that
    took the other branch, which then failed its guard (hunt D2): calls take turns."""
    from concurrent.futures import ThreadPoolExecutor
    with DataParallel(_branchy, (X, Y), client=dp.client) as ddp:
        params = [{"w": PARAMS["w"], "s": np.float64(s)} for s in (1.0, -1.0) * 6]
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(ddp, params))
    for p, (value, _) in zip(params, got):
        np.testing.assert_allclose(value, tg.value_and_grad(_branchy)(p, X, Y)[0], rtol=1e-10)


def test_a_python_float_parameter_is_weak_and_narrow_data_convert(dp):
    x32, y32 = X.astype(np.float32), Y.astype(np.float32)
    p = {"w": PARAMS["w"].astype(np.float32), "b": 0.5}
    with DataParallel(logistic, (x32, y32), client=dp.client) as d32:
        value, grads = d32(p)
    assert value.dtype == np.float32  # as compile_grad's (a float64 b had widened it)
    np.testing.assert_allclose(value, tg.compile_grad(logistic, argnums=0)(p, x32, y32)[0],
                               rtol=1e-5)
    small = (np.abs(X) * 9).astype(np.uint8)
    with DataParallel(logistic, (small, Y), client=dp.client) as d8:
        _close(d8(PARAMS), tg.compile_grad(logistic, argnums=0)(PARAMS, small, Y))


def test_misuse_is_named_on_the_driver(dp):
    with DataParallel(logistic, (X, Y), client=dp.client) as ddp:
        with pytest.raises(TypeError, match=r"params\['step'\] has dtype int64"):
            ddp({**PARAMS, "step": 3})
        with pytest.raises(TypeError, match="no arrays to differentiate"):
            ddp({})
    with DataParallel(lambda p, x, y: (logistic(p, x, y), np.sum(x)), (X, Y),
                      client=dp.client) as aux:
        with pytest.raises(TypeError, match="one scalar"):
            aux(PARAMS)
    closed = DataParallel(logistic, (X, Y), client=dp.client)
    closed.close()
    with pytest.raises(RuntimeError, match="closed"):
        closed(PARAMS)
    da = pytest.importorskip("dask.array")
    xd = da.from_array(X, chunks=(300, 5))
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        DataParallel(logistic, (xd[xd[:, 0] > 0], xd[:, 1]), client=dp.client)
