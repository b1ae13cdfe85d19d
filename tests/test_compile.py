"""The headline API: compile_grad / jit, guards and re-specialization, caching,
introspection and bad input — all compared against eager and numpy."""
import subprocess
import sys
import warnings

import functools

import numpy as np
import pytest

import tracegrad
import tracegrad.numpy as tnp
from tracegrad.testing import assert_compiled_matches_eager


def branchy(a, b):
    if a.item() > 0:
        x = a + b
    else:
        x = a - b
    return x * 2


def test_reference_story_compiled_both_signs():
    f = tracegrad.compile_grad(branchy)
    value, (ga, gb) = f(np.float64(1.0), np.float64(2.0))
    assert (float(value), float(ga), float(gb)) == (6.0, 2.0, 2.0)
    value, (ga, gb) = f(np.float64(-1.0), np.float64(2.0))
    assert (float(value), float(ga), float(gb)) == (-6.0, 2.0, -2.0)
    info = f.cache_info()
    assert len(info) == 2
    assert "first call" in info[0]["reason"] and "guard" in info[1]["reason"]  # compile order


def test_comparison_guard_does_not_respecialize_same_sign():
    f = tracegrad.compile_grad(branchy)
    f(np.float64(1.0), np.float64(2.0))
    value, (ga, gb) = f(np.float64(3.0), np.float64(2.0))
    assert (float(value), float(ga), float(gb)) == (10.0, 2.0, 2.0)
    assert len(f.cache_info()) == 1
    assert f.cache_info()[0]["hits"] >= 1


def _repeat(x):
    y = x
    for _ in range(int(x[0])):  # int() of a traced value: an equality guard
        y = y + 1.0
    return y


def test_too_many_specializations_warns_with_guard():
    g = tracegrad.jit(_repeat, max_specializations=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for v in range(5):
            x = np.array([float(v), 1.0])
            np.testing.assert_allclose(g(x), x + v)
    assert any("specializations" in str(w.message) and "test_compile.py" in str(w.message)
               for w in caught)
    assert len(g.cache_info()) == 2


def test_cache_hit_no_recompile():
    f = tracegrad.compile_grad(lambda x: np.sum(np.sin(x) ** 2))
    x = np.linspace(0, 1, 10)
    f(x)
    spec = f._last
    f(x + 1)
    assert f._last is spec and spec.hits == 1
    assert len(f.cache_info()) == 1
    f(np.linspace(0, 1, 11))  # new shape: new specialization
    assert len(f.cache_info()) == 2


def test_static_args_and_argnums():
    def loss(w, x, scale):
        return scale * np.sum((x @ w) ** 2)

    w, x = np.ones(3), np.arange(6.0).reshape(2, 3)
    val, gw = tracegrad.compile_grad(loss, argnums=0)(w, x, 2.0)
    np.testing.assert_allclose(val, 2.0 * np.sum((x @ w) ** 2))
    np.testing.assert_allclose(gw, 2.0 * 2 * x.T @ (x @ w))
    val, (gw2, gx) = tracegrad.compile_grad(loss, argnums=(0, 1))(w, x, 2.0)
    np.testing.assert_allclose(gw2, gw)
    np.testing.assert_allclose(gx, 2.0 * 2 * np.outer(x @ w, w))


def test_python_number_in_argnums_is_differentiated():
    f = tracegrad.compile_grad(lambda s, x: np.sum(s * x * x), argnums=0)
    v, g = f(2.0, np.arange(3.0))
    assert float(v) == 10.0 and float(g) == 5.0
    v, g = f(3.0, np.arange(3.0))  # same specialization: s is an array, not a static value
    assert float(v) == 15.0 and len(f.cache_info()) == 1


def test_jit_forward_multiple_outputs_pytree():
    f = tracegrad.jit(lambda x, y: {"s": np.sum(x * y), "p": (x + y, tnp.exp(x))})
    x, y = np.arange(4.0), np.ones(4)
    out = f(x, y)
    np.testing.assert_allclose(out["s"], np.sum(x * y))
    np.testing.assert_allclose(out["p"][0], x + y)
    np.testing.assert_allclose(out["p"][1], np.exp(x), rtol=1e-12)


def test_outputs_are_fresh_arrays():
    f = tracegrad.jit(lambda x: x)
    x = np.arange(3.0)
    y = f(x)
    assert y is not x and not np.shares_memory(x, y)
    y2 = f(x)
    assert not np.shares_memory(y, y2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_eager_matches_compiled_mlp(dtype):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((5, 7)).astype(dtype)
    b1 = rng.standard_normal(7).astype(dtype)
    x = rng.standard_normal((4, 5)).astype(dtype)

    def f(w1, b1, x):
        h = np.tanh(x @ w1 + b1)
        return tnp.logsumexp(h, axis=1).mean()

    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_compiled_matches_eager(f, w1, b1, x, rtol=tol, atol=tol)


def test_introspection_stages():
    f = tracegrad.compile_grad(lambda x: np.sum(np.exp(x)))
    f(np.ones(8, np.float32))
    for stage in ("traced", "gradient", "optimized", "kernels"):
        assert f.ir(stage)
    assert "exp" in f.ir("traced")
    assert "define" in f.llvm_ir()
    assert f.asm()
    with pytest.raises(KeyError):
        f.ir("nope")


def test_dump_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_DUMP", str(tmp_path))
    f = tracegrad.compile_grad(lambda x: np.sum(x * x))
    f(np.ones(4))
    (folder,) = tmp_path.iterdir()  # one folder per specialization
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["00-specialization.txt", "01-traced.txt", "02-gradient.txt",
                     "03-optimized.txt", "04-kernels.txt", "05-llvm.txt", "06-asm.txt"]
    summary = (folder / "00-specialization.txt").read_text()
    assert "signature: (f64[4])" in summary and "reason: first call" in summary


# ---- bad input ------------------------------------------------------------------

def _sq(x):
    return np.sum(x * x)


def test_bad_input_converted_where_numpy_would():
    f = tracegrad.compile_grad(_sq)
    v, (g,) = f([1.0, 2.0])  # a list
    assert float(v) == 5.0 and g.tolist() == [2.0, 4.0]
    x = np.arange(10.0)[::2]  # non-contiguous
    v, (g,) = f(x)
    np.testing.assert_allclose(g, 2 * x)
    ro = np.arange(3.0)
    ro.flags.writeable = False
    v, (g,) = f(ro)
    np.testing.assert_allclose(g, 2 * ro)
    with pytest.raises(TypeError, match="float16"):  # as an eager tensor: one rule for both
        f(np.arange(3, dtype=np.float16))


def test_bad_input_rejected_clearly():
    f = tracegrad.compile_grad(_sq)
    with pytest.raises(TypeError, match="argument 0"):
        f(np.array(["a", "b"]))
    with pytest.raises(TypeError, match="argument 0"):
        f(np.array([1 + 2j]))
    with pytest.raises(TypeError, match="argnums"):
        tracegrad.compile_grad(_sq, argnums=1)(np.ones(2))
    with pytest.raises(TypeError, match="scalar"):
        tracegrad.compile_grad(lambda x: x * 2)(np.ones(2))


def test_shape_error_names_user_line():
    def bad(x, y):
        return np.sum(x + y)

    with pytest.raises(Exception, match="test_compile.py"):
        tracegrad.compile_grad(bad)(np.ones(3), np.ones(4))


def test_nan_inf_and_zero_size():
    f = tracegrad.compile_grad(lambda x: np.sum(np.exp(x)))
    v, (g,) = f(np.array([np.inf, 0.0, np.nan]))
    assert np.isnan(v) and g[0] == np.inf and g[1] == 1.0 and np.isnan(g[2])
    v, (g,) = f(np.zeros(0))
    assert float(v) == 0.0 and g.shape == (0,)


def test_disk_cache_hit_in_fresh_process(tmp_path):
    code = (
        "import numpy as np, tracegrad, time\n"
        "f = tracegrad.compile_grad(lambda x: np.sum(np.tanh(x) * x))\n"
        "v, (g,) = f(np.linspace(-1, 1, 33))\n"
        "print(repr(float(v)), f.cache_info()[0]['compile_seconds'], f._last.native.from_cache)\n")
    import os
    env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(tmp_path))
    env.pop("TRACEGRAD_DISABLE_CACHE", None)
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    v1, _, hit1 = first.stdout.split()
    v2, _, hit2 = second.stdout.split()
    assert v1 == v2 and hit1 == "False" and hit2 == "True"


def test_pytree_parameters_like_jax():
    def loss(params, x):
        h = np.tanh(x @ params["w"] + params["b"])
        for layer in params["layers"]:
            h = np.tanh(h @ layer)
        return np.sum(h)

    rng = np.random.default_rng(0)
    params = {"w": rng.standard_normal((3, 4)), "b": np.zeros(4),
              "layers": [rng.standard_normal((4, 4)), rng.standard_normal((4, 2))]}
    x = rng.standard_normal((5, 3))
    f = tracegrad.compile_grad(loss, argnums=0)
    value, g = f(params, x)
    ref_value, ref = tracegrad.value_and_grad(loss)(params, x)  # the interpreter path
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    assert sorted(g) == ["b", "layers", "w"] and len(g["layers"]) == 2
    for a, b in zip(tracegrad.tracer.tree_flatten(g)[0], tracegrad.tracer.tree_flatten(ref)[0]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    f(params, x)
    assert len(f.cache_info()) == 1  # same structure and shapes: a cache hit
    params["layers"].append(np.eye(2))
    f(params, x)
    assert len(f.cache_info()) == 2  # another structure: another specialization


def test_keyword_arguments_are_dynamic_and_never_differentiated():
    """As jax.jit and jax.grad: keyword arguments reach the function; floats and arrays
    among them are traced (one specialization serves every value), never differentiated."""
    f = lambda x, y, *, w=2.0: np.sum(x * y * w)  # noqa: E731
    x, y = np.ones(2), np.full(2, 2.0)
    jf = tracegrad.jit(f)
    assert float(jf(x, y, w=1.5)) == 6.0 and float(jf(x, y, w=2.5)) == 10.0
    assert float(jf(x, y)) == 8.0
    value, grads = tracegrad.compile_grad(f)(x, y, w=np.arange(2.0))
    assert float(value) == 2.0 and len(grads) == 2
    np.testing.assert_array_equal(grads[1], [0.0, 1.0])
    _, gy = tracegrad.compile_grad(f, argnums=-1)(x, y, w=3.0)
    np.testing.assert_array_equal(gy, [3.0, 3.0])
    np.testing.assert_array_equal(tracegrad.grad(f)(x, y, w=3.0), [6.0, 6.0])


def test_jit_on_tensors_that_require_grad_keeps_their_graph():
    """Native code records no backward: such calls run eagerly (with a warning), so that
    .backward() still reaches the inputs; under no_grad they are compiled."""
    x = tracegrad.tensor(np.array([0.5, 1.0]), requires_grad=True)
    f = tracegrad.jit(lambda v: np.sum(np.sin(v) * v))
    with pytest.warns(UserWarning, match="runs eagerly"):
        y = f(x)
    y.backward()
    xs = np.array([0.5, 1.0])
    np.testing.assert_allclose(x.grad.numpy(), np.cos(xs) * xs + np.sin(xs))
    with tracegrad.no_grad():
        assert isinstance(f(x), np.ndarray)


def test_default_argnums_skip_integer_and_bool_arrays():
    f = lambda x, idx, m: np.sum(x[idx] ** 2 * m)  # noqa: E731
    x = np.arange(4.0)
    value, grads = tracegrad.compile_grad(f)(x, np.array([1, 3]), np.array([True, False]))
    assert float(value) == 1.0 and len(grads) == 1
    np.testing.assert_array_equal(grads[0], [0.0, 2.0, 0.0, 0.0])
    _, grads = tracegrad.compile_grad(f)(x, np.array([1, 3]), 2.0)
    assert len(grads) == 2 and float(grads[1]) == 10.0


def test_static_values_equal_but_of_other_types_get_their_own_specialization():
    # 1 == True == 1.0 and 0.0 == -0.0 under ==, but a function may tell them apart
    f = tracegrad.jit(lambda x, flag: x * (2 if flag is True else 3))
    x = np.ones(2)
    assert f(x, 1).tolist() == [3.0, 3.0] and f(x, True).tolist() == [2.0, 2.0]
    g = tracegrad.jit(lambda x, t: x + np.array(t), static_argnums=1)
    assert g(np.zeros(2, np.int64), (1, 2)).dtype == np.int64
    assert g(np.zeros(2, np.int64), (1.0, 2.0)).dtype == np.float64
    h = tracegrad.jit(lambda x, z: x / np.array(z), static_argnums=1)
    assert h(np.ones(1), 0.0)[0] == np.inf and h(np.ones(1), -0.0)[0] == -np.inf


def test_ir_where_takes_its_branch_dtype_from_a_numpy_branch_beside_a_python_float():
    from tracegrad.ir import ops as P
    f = tracegrad.jit(lambda v: P.where(np.greater(v, -0.0), v, np.asarray(0.5)))
    assert f(1.5) == 1.5 and f(-1.0) == 0.5 and f(1.5).dtype == np.float64


def test_static_argnums_and_static_argnames_with_keyword_calls():
    def f(x, n=2, s=1.0):
        return x ** n * s

    g = tracegrad.jit(f, static_argnums=1)
    np.testing.assert_array_equal(g(np.full(2, 3.0), s=2.0), [18.0, 18.0])
    np.testing.assert_array_equal(g(np.full(2, 3.0), n=3, s=2.0), [54.0, 54.0])  # n static by name

    @functools.partial(tracegrad.jit, static_argnames=("act",))
    def h(x, act="id"):
        return np.tanh(x) if act == "tanh" else x

    np.testing.assert_allclose(h(np.ones(2), act="tanh"), np.tanh(1.0))
    np.testing.assert_allclose(h(np.ones(2), "tanh"), np.tanh(1.0))  # static by position too
    np.testing.assert_array_equal(h(np.ones(2)), [1.0, 1.0])
    value, grads = tracegrad.compile_grad(
        lambda w, x, act="id": np.sum(np.tanh(w * x) if act == "tanh" else w * x),
        static_argnames="act")(np.ones(2), np.ones(2), act="tanh")
    np.testing.assert_allclose(grads[0], 1 - np.tanh(1.0) ** 2)
    assert tracegrad.jit(f, donate_argnums=0)(np.ones(2)).tolist() == [1.0, 1.0]


def test_compiled_functions_copy_as_functions_and_pickle_their_options():
    import copy
    import pickle
    f = tracegrad.compile_grad(np.sum, argnums=0)
    x = np.arange(3.0)
    f(x)
    assert copy.copy(f) is f and copy.deepcopy(f) is f and copy.deepcopy([f])[0] is f
    g = pickle.loads(pickle.dumps(f))
    assert g is not f and g.grad and g.grad_argnums == 0
    value, grad = g(x)   # a single argnum: the gradient itself, as jax.value_and_grad
    assert value == 3.0 and np.array_equal(grad, np.ones(3))


def test_cache_info_lists_specializations_in_compile_order():
    f = tracegrad.jit(lambda x: x.sum() * 2 if x.sum() > 0 else x.sum() * 3)
    f(np.ones(3)), f(np.ones(4)), f(-np.ones(4))
    reasons = [c["reason"] for c in f.cache_info()]
    assert reasons[0].startswith("first call") and "signature changed" in reasons[1]
    assert "guard failed" in reasons[2]
    assert f.ir("traced") == f.ir("traced", specialization=2)  # the default is the latest
