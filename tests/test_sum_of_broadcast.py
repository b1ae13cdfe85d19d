"""A sum over the copies a broadcast makes is a product (simplify's
`reduce_sum_of_broadcast`), and a loop too large to run is refused.

Integers are exact (the product wraps around as the sum does); floats differ
from the sum by rounding only, and only from MIN_FLOAT_COPIES copies on.
"""
import numpy as np
import pytest

import tracegrad
from tracegrad.ir import GraphBuilder, ShapedArray, eval_graph, ops, verify
from tracegrad.passes.fusion import KernelSizeError
from tracegrad.passes.manager import cleanup, cleanup_by_rounds
from tracegrad.passes.simplify import MIN_FLOAT_COPIES, simplify_counted

F32, F64, I32, I64 = (np.dtype(t) for t in (np.float32, np.float64, np.int32, np.int64))
HUGE = (2**20, 2**20, 3, 4)  # 2**40 copies of a (3, 4) array: never looped over


def build(fn, *avals):
    b = GraphBuilder(record_source=False)
    xs = [b.new_input(ShapedArray(shape, dtype)) for shape, dtype in avals]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def prims(graph):
    return [e.prim.name for e in graph.eqns]


def sum_of_broadcast(shape, axes):
    return lambda x: ops.reduce_sum(ops.broadcast(x, shape), axes)


def test_the_sum_of_a_huge_broadcast_is_a_product():
    g = cleanup(build(sum_of_broadcast(HUGE, (0, 1, 2, 3)), ((3, 4), F64)))
    assert all(e.out.aval.size <= 12 for e in g.eqns), str(g)
    x = np.arange(12.0).reshape(3, 4)
    f = tracegrad.jit(lambda x: np.sum(np.broadcast_to(x, HUGE)))
    assert f(x) == 2.0**40 * 66
    value, (grad,) = tracegrad.compile_grad(lambda x: np.mean(np.broadcast_to(x, HUGE)))(x)
    assert value == pytest.approx(5.5)
    np.testing.assert_allclose(grad, np.full((3, 4), 1 / 12))


@pytest.mark.parametrize("x_shape, shape, axes", [
    ((3,), (MIN_FLOAT_COPIES, 3), (0,)),               # an added axis
    ((3,), (MIN_FLOAT_COPIES, 3), (0, 1)),             # added and kept, both reduced
    ((3, 1), (2, 3, MIN_FLOAT_COPIES // 2), (0, 2)),   # added and stretched
    ((3, 1), (2, 3, MIN_FLOAT_COPIES), (2,)),          # stretched only; the added axis stays
    ((1, 3, 1), (MIN_FLOAT_COPIES, 3, 2), (0, 2)),     # stretched size-1 dims
    ((1, 3), (1, MIN_FLOAT_COPIES, 1, 3), (0, 1, 2)),  # size-1 axes reduced, not copied
])
@pytest.mark.parametrize("dtype", [F32, F64])
def test_float_sums_of_broadcasts_match_numpy_within_rounding(x_shape, shape, axes, dtype):
    g = build(sum_of_broadcast(shape, axes), (x_shape, dtype))
    out, fired = simplify_counted(g)
    assert fired["reduce_sum_of_broadcast"] == 1
    x = (np.random.default_rng(0).standard_normal(x_shape) + 2).astype(dtype)
    want = np.sum(np.broadcast_to(x.astype(np.float64), shape), axis=axes)
    rtol = 1e-5 if dtype == F32 else 1e-9  # numpy's own sum of 2**16 terms rounds ~1e-12
    np.testing.assert_allclose(eval_graph(cleanup(g), x)[0], want, rtol=rtol)
    np.testing.assert_allclose(tracegrad.jit(lambda x: np.sum(np.broadcast_to(x, shape),
                                                              axis=axes))(x), want, rtol=rtol)


def test_few_float_copies_stay_a_sum():
    g = build(sum_of_broadcast((MIN_FLOAT_COPIES - 1, 3), (0,)), ((3,), F64))
    assert not simplify_counted(g)[1]


@pytest.mark.parametrize("dtype", [I32, I64])
def test_integer_sums_of_broadcasts_are_exact_and_wrap_as_the_sum_does(dtype):
    g = build(sum_of_broadcast((7, 2, 5), (0, 2)), ((2, 1), dtype))
    out = cleanup(g)
    assert "broadcast" not in prims(out)
    big = np.iinfo(dtype).max // 3
    x = np.array([[big], [-big + 5]], dtype)
    np.testing.assert_array_equal(eval_graph(out, x)[0], eval_graph(g, x)[0])
    def f(x):  # numpy's sum of int32 is an int64 sum
        return np.sum(np.broadcast_to(x, (7, 2, 5)), axis=(0, 2))
    np.testing.assert_array_equal(tracegrad.jit(f)(x), f(x))


def test_the_product_keeps_numpys_signed_zero():
    """sum starts from +0.0: copies of -0.0 sum to +0.0, and so does the product."""
    g = cleanup(build(sum_of_broadcast((MIN_FLOAT_COPIES, 2), (0,)), ((2,), F64)))
    got = eval_graph(g, np.array([-0.0, np.inf]))[0]
    assert got[0] == 0 and not np.signbit(got[0]) and got[1] == np.inf


def test_cleanup_with_added_equations_equals_rounds_of_the_passes():
    def f(x, y):  # two equal expansions (CSE merges their helpers), then more rules
        s = ops.reduce_sum(ops.broadcast(x, (MIN_FLOAT_COPIES, 3)), (0,))
        t = ops.reduce_sum(ops.broadcast(x, (MIN_FLOAT_COPIES, 3)), (0,))
        u = ops.reduce_sum(ops.broadcast(ops.mul(y, 1.0), (4, 3)), (0, 1))
        return ops.add(ops.mul(s, 1.0), t), ops.neg(ops.neg(u))
    g = build(f, ((3,), F64), ((3,), I32))
    by_worklist, by_rounds = cleanup(g), cleanup_by_rounds(g)
    assert str(by_worklist) == str(by_rounds)
    assert "broadcast" not in prims(by_worklist) and prims(by_worklist).count("mul") == 2


def test_absurd_loops_are_refused_with_their_size():
    f = tracegrad.jit(lambda x: np.sum(np.exp(np.broadcast_to(x, (2**26, 2**26, 3, 4)))))
    with pytest.raises(KernelSizeError, match=r"\(67108864, 67108864, 3, 4\).*iterations"):
        f(np.ones(4))


def test_a_reduction_over_a_stack_reads_each_piece_where_it_lies():
    """np.stack(shifted views).mean(0)/.sum(0): the pieces' sums added, with no stacked
    copy (simplify's reduce_sum_of_concatenate and *_of_ones rules), same values; a
    max keeps its stack (a tie's second derivative, see the next test)."""
    x = np.random.default_rng(3).normal(size=1008)
    for red in ("mean", "max", "min", "sum"):
        def f(x, red=red):
            return getattr(np.stack([x[i:i + 1000] for i in range(8)]), red)(axis=0)
        c = tracegrad.jit(f)
        np.testing.assert_allclose(c(x), f(x), rtol=1e-13)
        assert ("concatenate" in c.ir("optimized")) == (red in ("max", "min"))
    g = tracegrad.grad(lambda x: np.sum(np.stack([x[i:i + 1000] for i in range(8)]).max(0)))
    want = np.zeros_like(x)
    np.add.at(want, np.arange(1000) + np.stack([x[i:i + 1000] for i in range(8)]).argmax(0), 1.0)
    np.testing.assert_allclose(tracegrad.jit(g)(x), want)


def test_a_tie_across_the_pieces_of_a_concatenation_keeps_its_second_derivative():
    """The derivative of a max shares a tie among all tied elements; a second derivative
    of the cleaned gradient graph must see that too (jax: 2/9 each)."""
    def f(x):
        return np.concatenate([x[:2], x[2:]]).max() ** 2
    x = np.ones(3)
    np.testing.assert_allclose(tracegrad.jacfwd(tracegrad.grad(f))(x)[0], [2 / 9] * 3)
    np.testing.assert_allclose(tracegrad.hessian(f)(x)[0], [2 / 9] * 3)
