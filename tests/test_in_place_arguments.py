"""A jitted function that writes into its array arguments in place (`u[1:-1] += ...`,
`x *= s`) without returning them changes the caller's arrays as plain NumPy would: the
trace outputs the written values and each call copies them back (compile.py's
Specialization.write_back)."""
import warnings

import numpy as np
import pytest

import tracegrad


@pytest.fixture(autouse=True)
def _no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", tracegrad.InPlaceArgumentWarning)
        yield


def heat_step(u):
    u[1:-1] += 0.25 * (u[2:] - 2 * u[1:-1] + u[:-2])


def test_every_call_writes_back_as_numpy_would():
    u, want = np.array([0.0, 0.0, 1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    f = tracegrad.jit(heat_step)
    for _ in range(3):  # the first call compiles, the others take the fast path
        assert f(u) is None
        heat_step(want)
        np.testing.assert_allclose(u, want, rtol=1e-15)


def test_pytrees_keywords_views_and_dtypes():
    def update(state, scale, *, extra):
        state["w"] *= scale
        state["b"][0] = -1.0
        extra += 1
        return state["w"].sum()

    state = {"w": np.ones(3, np.float32), "b": np.zeros(2)}
    extra = np.arange(6.0)[::2]  # a strided view: the write reaches its base
    base = extra.base
    out = tracegrad.jit(update)(state, 2.0, extra=extra)
    assert out == 6.0 and state["w"].dtype == np.float32 and state["w"].tolist() == [2.0] * 3
    assert state["b"].tolist() == [-1.0, 0.0] and base.tolist() == [1.0, 1.0, 3.0, 3.0, 5.0, 5.0]


def test_an_eager_tensor_argument_is_updated_too():
    t = tracegrad.tensor(np.array([0.0, 0.0, 1.0, 0.0, 0.0]))
    tracegrad.jit(heat_step)(t)
    np.testing.assert_allclose(np.asarray(t), [0.0, 0.25, 0.5, 0.25, 0.0])


def test_a_read_only_argument_raises_as_numpy_does():
    u = np.ones(4)
    u.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        tracegrad.jit(heat_step)(u)
    with pytest.raises(ValueError, match="read-only"):
        heat_step(u)


def test_a_returned_argument_is_written_back_as_well():
    def returned(u):
        u[0] = 9.0
        return u, u * 2

    u = np.zeros(2)
    out, twice = tracegrad.jit(returned)(u)
    np.testing.assert_array_equal(out, [9.0, 0.0])
    np.testing.assert_array_equal(twice, [18.0, 0.0])
    assert u.tolist() == [9.0, 0.0]  # as NumPy's (the result is a new array, not u itself)


def test_bitwise_shift_and_matmul_in_place_operators_are_writes_too():
    def f(b, i, m):
        b &= np.array([True, False, True])
        i <<= 2
        m @= np.array([[0.0, 1.0], [1.0, 0.0]])

    args = [np.array([True, True, False]), np.array([5, 9, 12]), np.array([[1.0, 2.0], [3.0, 4.0]])]
    want = [a.copy() for a in args]
    f(*want)
    tracegrad.jit(f)(*args)
    for got, w in zip(args, want):
        np.testing.assert_array_equal(got, w)


def test_arguments_sharing_memory_run_as_numpy_would():
    """The trace takes each argument for an independent array; where a written one shares
    memory with another, the call runs the function uncompiled (NumPy's semantics)."""
    def f(a, b):
        a += 1.0
        b += 1.0
        return b.sum()

    f_jit = tracegrad.jit(f)
    for make in (lambda: (lambda u: (u, u))(np.arange(4.0)),
                 lambda: (lambda x: (x[:5], x[3:]))(np.arange(8.0))):
        got_args, want_args = make(), make()
        for _ in range(2):  # compile, then the fast path
            assert f_jit(*got_args) == f(*want_args)
            np.testing.assert_array_equal(got_args[0].base if got_args[0].base is not None
                                          else got_args[0],
                                          want_args[0].base if want_args[0].base is not None
                                          else want_args[0])


def test_the_decision_is_per_call_a_list_first_then_an_array():
    def inc(x):
        x += 1.0

    g = tracegrad.jit(inc)
    with pytest.warns(tracegrad.InPlaceArgumentWarning):
        with warnings.catch_warnings():
            warnings.simplefilter("default", tracegrad.InPlaceArgumentWarning)
            g([1.0, 2.0, 3.0])  # a list has nothing to write into
    x = np.array([1.0, 2.0, 3.0])  # the same signature: written back
    g(x)
    np.testing.assert_array_equal(x, [2.0, 3.0, 4.0])
    s = np.float64(1.0)
    tracegrad.jit(inc)(s)  # immutable, as in NumPy: no change and no warning
    assert s == 1.0


def test_writes_into_an_argument_inside_a_branch_or_loop_body_are_refused():
    """Such a write would land once in the enclosing program, whatever the branch taken or
    the number of iterations; fori_loop and scan refused it already."""
    def in_cond(u, p):
        def yes(x):
            u[0] = 5.0
            return x
        return tracegrad.cond(p, yes, lambda x: -x, 1.0)

    def in_while(u):
        def body(c):
            u[0] += 1.0
            return c + 1
        return tracegrad.while_loop(lambda c: c < 3, body, 0)

    with pytest.raises(TypeError, match="enclosing trace from inside a nested one"):
        tracegrad.jit(in_cond)(np.ones(3), np.array(False))
    with pytest.raises(TypeError, match="enclosing trace from inside a nested one"):
        tracegrad.jit(in_while)(np.ones(3))


def test_changing_a_containers_entries_warns():
    """`p["w"] = p["w"] - g` changes the caller's dict in NumPy; a compiled function cannot,
    and says so (`p["w"] -= g` writes the array itself back)."""
    def step(p, g):
        p["w"] = p["w"] - 0.1 * g

    def step_in_place(p, g):
        p["w"] -= 0.1 * g

    p = {"w": np.ones(2)}
    with pytest.warns(tracegrad.InPlaceArgumentWarning, match=r"containers of argument 0 \('p'\)"):
        with warnings.catch_warnings():
            warnings.simplefilter("default", tracegrad.InPlaceArgumentWarning)
            tracegrad.jit(step)(p, np.ones(2))
    tracegrad.jit(step_in_place)(p, np.ones(2))
    np.testing.assert_allclose(p["w"], [0.9, 0.9])


def test_a_nested_functions_own_arrays_made_from_closed_over_values_stay_writable():
    """`buf = x * 2.0` inside a grad, checkpoint, loop body or branch is that function's
    own array, though recorded in the enclosing trace: writes into it (and through its
    views) are allowed and exact; only arrays that existed before the nested trace began
    are refused."""
    x0 = np.arange(4.0)

    def grad_local(x):
        def loss(w):
            buf = x * 2.0
            buf[0] = 0.0
            view = buf[1:]
            view += 10.0
            return (buf * w).sum()
        return tracegrad.grad(loss)(x)

    def body_local(x):
        def body(c):
            buf = x * 1.0
            buf[0] = 7.0
            return c + buf.sum()
        return tracegrad.while_loop(lambda c: c < 50.0, body, 0.0)

    def branch_local(x, p):
        def yes(v):
            buf = x * 1.0
            buf[0] = 7.0
            return buf + v
        return tracegrad.cond(p, yes, lambda v: x + v, 0.0)

    np.testing.assert_allclose(tracegrad.jit(grad_local)(x0), [0.0, 12.0, 14.0, 16.0])
    np.testing.assert_allclose(tracegrad.jit(body_local)(x0), 52.0)
    np.testing.assert_allclose(tracegrad.jit(branch_local)(x0, np.array(True)), [7.0, 1.0, 2.0, 3.0])
