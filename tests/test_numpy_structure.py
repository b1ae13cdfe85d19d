"""Structure functions (pad, tile, repeat, flip, roll, split, the stacks, triangles, meshgrid,
diff, diagonals, linspace, ...) and the named contractions (tensordot, kron, cross, ...):
plain NumPy code on tensors (eager, through NumPy's dispatch), traced and compiled, values
against NumPy in every dtype NumPy allows, gradients against finite differences (float64)
and compiled gradients against eager ones.  einsum has its own file (test_numpy_einsum.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import tracegrad
from tracegrad.testing import check_vjp
from tracegrad.tracer import numpy as tnp
from tracegrad.tracer import tensor, tree_flatten

F, I, B = ("float32", "float64"), ("int32", "int64"), ("bool",)
# the references of the 2-vector cross cases (NumPy deprecates them; they still work)
pytestmark = pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors")


@dataclass
class Case:
    name: str
    fn: Callable  # written with `np.`: numpy arrays give the reference, tensors dispatch
    shapes: tuple
    dtypes: tuple = F + I + B
    grad: bool = True
    exact: bool = True  # index work only: bit-equal values

    def __repr__(self):
        return self.name


def _draw(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return [rng.random(s) < 0.5 for s in shapes]
    if dtype.startswith("int"):
        return [rng.integers(-5, 6, s).astype(dtype) for s in shapes]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


CASES = [
    # pad
    Case("pad_constant", lambda a: np.pad(a, ((1, 2), (0, 3))), ((3, 4),)),
    Case("pad_constant_values", lambda a: np.pad(a, 2, constant_values=((1, 2), (3, 4))),
         ((3, 4),), F + I),
    Case("pad_traced_value", lambda a, v: np.pad(a, ((1, 0), (2, 1)), constant_values=v),
         ((3, 4), ()), F + I),
    Case("pad_edge", lambda a: np.pad(a, ((2, 1), (1, 3)), mode="edge"), ((3, 4),)),
    Case("pad_reflect_wide", lambda a: np.pad(a, ((5, 7), (2, 9)), mode="reflect"), ((3, 4),)),
    Case("pad_symmetric_wide", lambda a: np.pad(a, ((5, 7), (2, 9)), mode="symmetric"),
         ((3, 4),)),
    Case("pad_wrap_wide", lambda a: np.pad(a, ((5, 7), (2, 9)), mode="wrap"), ((3, 4),)),
    Case("pad_reflect_odd", lambda a: np.pad(a, ((2, 3), (1, 0)), "reflect", reflect_type="odd"),
         ((3, 4),), F, exact=False),
    Case("pad_symmetric_odd", lambda a: np.pad(a, 2, "symmetric", reflect_type="odd"),
         ((3, 4),), F, exact=False),
    Case("pad_linear_ramp", lambda a: np.pad(a, ((2, 3), (1, 2)), "linear_ramp",
                                             end_values=((1, -2), (0.5, 3))), ((3, 4),), F + I,
         exact=False),
    Case("pad_maximum", lambda a: np.pad(a, ((1, 2), (2, 1)), "maximum"), ((3, 4),), F + I),
    Case("pad_minimum_stat", lambda a: np.pad(a, 2, "minimum", stat_length=((1, 2), (3, 1))),
         ((3, 4),), F + I),
    Case("pad_mean_stat", lambda a: np.pad(a, 2, "mean", stat_length=2), ((3, 4),), F + I,
         exact=False),
    Case("pad_median", lambda a: np.pad(a, ((1, 2), (2, 1)), "median"), ((3, 4),), F + I,
         exact=False),
    Case("pad_median_stat", lambda a: np.pad(a, 2, "median", stat_length=((1, 2), (3, 2))),
         ((3, 4),), F, exact=False),
    Case("pad_0d", lambda a: np.pad(a, 3), ((),)),
    Case("pad_empty_axis", lambda a: np.pad(a, 1), ((0, 3),)),
    Case("pad_1d_int_width", lambda a: np.pad(a, 2, mode="reflect"), ((5,),)),
    # tile, repeat, resize
    Case("tile", lambda a: np.tile(a, (2, 1, 3)), ((2, 3),)),
    Case("tile_0d", lambda a: np.tile(a, 3), ((),)),
    Case("tile_zero", lambda a: np.tile(a, (0, 2)), ((2, 3),)),
    Case("repeat_int", lambda a: np.repeat(a, 3, axis=1), ((2, 3),)),
    Case("repeat_counts", lambda a: np.repeat(a, [2, 0, 1], axis=-1), ((2, 3),)),
    Case("repeat_flat", lambda a: np.repeat(a, 2), ((2, 3),)),
    Case("repeat_many_counts", lambda a: np.repeat(a, np.arange(40) % 3, axis=1), ((2, 40),)),
    Case("repeat_0d", lambda a: np.repeat(a, 4), ((),)),
    Case("resize_grow", lambda a: np.resize(a, (4, 5)), ((2, 3),)),
    Case("resize_shrink", lambda a: np.resize(a, 4), ((2, 3),)),
    # flips and rotations
    Case("flip_all", lambda a: np.flip(a), ((2, 3, 4),)),
    Case("flip_axes", lambda a: np.flip(a, (0, 2)), ((2, 3, 4),)),
    Case("flip_0d", lambda a: np.flip(a), ((),)),
    Case("fliplr", lambda a: np.fliplr(a), ((2, 3),)),
    Case("flipud", lambda a: np.flipud(a), ((2, 3),)),
    Case("rot90_1", lambda a: np.rot90(a), ((2, 3),)),
    Case("rot90_2", lambda a: np.rot90(a, 2), ((2, 3),)),
    Case("rot90_3_axes", lambda a: np.rot90(a, -1, axes=(2, 1)), ((2, 3, 4),)),
    Case("roll_flat", lambda a: np.roll(a, 5), ((2, 3),)),
    Case("roll_axes", lambda a: np.roll(a, (1, -5), axis=(0, 1)), ((2, 3),)),
    Case("roll_same_axis_twice", lambda a: np.roll(a, (1, 1), axis=(1, 1)), ((2, 3),)),
    Case("roll_empty", lambda a: np.roll(a, 2, axis=0), ((0, 3),)),
    # split and stacks
    Case("split_sections", lambda a: np.split(a, 3, axis=1), ((2, 6),)),
    Case("split_indices", lambda a: np.split(a, [1, -2, 10], axis=1), ((2, 6),)),
    Case("array_split", lambda a: np.array_split(a, 4), ((7,),)),
    Case("hsplit", lambda a: np.hsplit(a, 2), ((2, 4),)),
    Case("vsplit", lambda a: np.vsplit(a, [1]), ((3, 2),)),
    Case("dsplit", lambda a: np.dsplit(a, 2), ((1, 2, 4),)),
    Case("vstack", lambda a, b: np.vstack([a, b]), ((2, 3), (3,))),
    Case("hstack", lambda a, b: np.hstack([a, b]), ((2, 3), (2, 1))),
    Case("hstack_1d", lambda a, b: np.hstack((a, b)), ((2,), ())),
    Case("dstack", lambda a, b: np.dstack([a, b]), ((2, 3), (2, 3))),
    Case("column_stack", lambda a, b: np.column_stack([a, b]), ((3,), (3, 2))),
    Case("block", lambda a, b, c: np.block([[a, b], [c]]), ((2, 2), (2, 3), (1, 5))),
    Case("block_1d", lambda a, b: np.block([a, b, a]), ((2,), (3,))),
    Case("atleast_1d", lambda a: np.atleast_1d(a), ((),)),
    Case("atleast_2d", lambda a, b: np.atleast_2d(a, b), ((), (3,))),
    Case("atleast_3d", lambda a, b, c: np.atleast_3d(a, b, c), ((), (3,), (2, 3))),
    Case("unstack", lambda a: np.unstack(a, axis=1), ((2, 3),)),
    Case("rollaxis", lambda a: np.rollaxis(a, 2, 1), ((2, 3, 4),)),
    Case("append_flat", lambda a, b: np.append(a, b), ((2, 3), (2,))),
    Case("append_axis", lambda a, b: np.append(a, b, axis=0), ((2, 3), (1, 3))),
    Case("insert_scalar", lambda a: np.insert(a, 1, 7, axis=1), ((2, 3),)),
    Case("insert_list", lambda a, v: np.insert(a, [1, 3, 1], v, axis=1), ((2, 3), (3,))),
    Case("insert_rows", lambda a, v: np.insert(a, 2, v), ((2, 3), (2,))),
    Case("insert_column_values", lambda a, v: np.insert(a, 1, v, axis=1), ((3, 2), (3, 1))),
    Case("delete_list", lambda a: np.delete(a, [0, 2], axis=1), ((2, 4),)),
    Case("delete_slice", lambda a: np.delete(a, slice(1, None, 2)), ((2, 3),)),
    Case("delete_mask", lambda a: np.delete(a, np.array([True, False, True]), axis=0),
         ((3, 2),)),
    # triangles, grids, broadcasting
    Case("triu", lambda a: np.triu(a, 1), ((3, 4),)),
    Case("tril_batched", lambda a: np.tril(a, -1), ((2, 3, 4),)),
    Case("tril_1d", lambda a: np.tril(a), ((3,),)),
    Case("meshgrid_xy", lambda a, b, c: np.meshgrid(a, b, c), ((3,), (2,), (4,))),
    Case("meshgrid_ij_sparse", lambda a, b: np.meshgrid(a, b, indexing="ij", sparse=True),
         ((3,), (2,))),
    Case("broadcast_arrays", lambda a, b: np.broadcast_arrays(a, b), ((3, 1), (4,))),
    # differences
    Case("diff", lambda a: np.diff(a), ((2, 5),), F + I + B),
    Case("diff_n2_axis0", lambda a, p: np.diff(a, 2, axis=0, prepend=p), ((4, 3), (1, 3)),
         F + I),
    Case("diff_append_scalar", lambda a: np.diff(a, append=0), ((2, 3),), F + I),
    Case("diff_n_past_length", lambda a: np.diff(a, 5), ((3,),), F + I),
    Case("ediff1d", lambda a, b: np.ediff1d(a, to_end=b, to_begin=3), ((2, 3), (2,)), F + I),
    # diagonals
    Case("diag_from_vector", lambda a: np.diag(a, 1), ((3,),)),
    Case("diag_from_vector_below", lambda a: np.diag(a, -2), ((3,),)),
    Case("diag_of_matrix", lambda a: np.diag(a, -1), ((3, 4),)),
    Case("diag_empty", lambda a: np.diag(a, 2), ((0,),)),
    Case("diagonal_axes", lambda a: np.diagonal(a, 1, 2, 0), ((2, 3, 4),)),
    Case("diagonal_past_end", lambda a: np.diagonal(a, 5), ((3, 4),)),
    Case("diagflat", lambda a: np.diagflat(a, -1), ((2, 2),)),
    Case("trace", lambda a: np.trace(a), ((3, 4),)),
    Case("trace_axes", lambda a: np.trace(a, -1, 1, 2), ((2, 3, 4),)),
    # copies and ranges
    Case("copy", lambda a: np.copy(a), ((2, 3),)),
    Case("ascontiguousarray_0d", lambda a: tnp.ascontiguousarray(a) if tnp.is_boxed(a)
         else np.ascontiguousarray(a), ((),)),
    Case("linspace_traced", lambda a, b: np.linspace(a, b, 5), ((), ()), F, exact=False),
    Case("linspace_arrays_axis", lambda a, b: np.linspace(a, b, 4, endpoint=False, axis=-1),
         ((2,), (3, 1)), F, exact=False),
    Case("linspace_retstep", lambda a, b: np.linspace(a, b, 3, retstep=True), ((), ()), F,
         exact=False),
    Case("logspace_traced", lambda a, b: np.logspace(a, b, 4, base=2.0), ((), ()), F,
         exact=False),
    Case("geomspace_traced", lambda a, b: np.geomspace(np.abs(a) + 1, np.abs(b) + 2, 5),
         ((), ()), F, exact=False),
    # named contractions
    Case("tensordot_int", lambda a, b: np.tensordot(a, b, 1), ((2, 3), (3, 4)), F + I,
         exact=False),
    Case("tensordot_pairs", lambda a, b: np.tensordot(a, b, ([0, 2], [2, 1])),
         ((2, 3, 4), (5, 4, 2)), F + I, exact=False),
    Case("tensordot_zero", lambda a, b: np.tensordot(a, b, 0), ((2,), (3,)), F, exact=False),
    Case("kron", lambda a, b: np.kron(a, b), ((2, 3), (3, 2)), F + I, exact=False),
    Case("kron_ranks", lambda a, b: np.kron(a, b), ((2,), (3, 2)), F + I, exact=False),
    Case("cross3", lambda a, b: np.cross(a, b), ((4, 3), (3,)), F + I, exact=False),
    Case("cross2", lambda a, b: np.cross(a, b), ((4, 2), (4, 2)), F + I, exact=False),
    Case("cross23", lambda a, b: np.cross(a, b), ((2,), (3,)), F + I, exact=False),
    Case("cross_axes", lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0),
         ((3, 2), (2, 3)), F + I, exact=False),
    Case("vecdot", lambda a, b: np.vecdot(a, b), ((2, 3), (3,)), F + I, exact=False),
    Case("matvec", lambda a, b: np.matvec(a, b), ((2, 3, 4), (4,)), F, exact=False),
    Case("vecmat", lambda a, b: np.vecmat(a, b), ((3,), (2, 3, 4)), F, exact=False),
    Case("inner_nd", lambda a, b: np.inner(a, b), ((2, 3, 4), (5, 4)), F + I, exact=False),
    Case("matrix_transpose", lambda a: np.matrix_transpose(a), ((2, 3, 4),)),
    Case("convolve_full", lambda a, v: np.convolve(a, v), ((5,), (3,)), F + I, exact=False),
    Case("convolve_same_swapped", lambda a, v: np.convolve(a, v, "same"), ((3,), (6,)), F + I,
         exact=False),
    Case("correlate_valid", lambda a, v: np.correlate(a, v), ((6,), (4,)), F + I, exact=False),
    Case("correlate_full_swapped", lambda a, v: np.correlate(a, v, "full"), ((2,), (5,)),
         F + I, exact=False),
    Case("correlate_same_single", lambda a, v: np.correlate(a, v, "same"), ((1,), (1,)), F + I,
         exact=False),
    # numerical derivatives and integrals
    Case("gradient_all_axes", lambda a: np.gradient(a), ((4, 3),), F + I, exact=False),
    Case("gradient_step_edge2", lambda a: np.gradient(a, 0.5, axis=0, edge_order=2),
         ((4, 3),), F + I, exact=False),
    Case("gradient_coordinates", lambda a, x: np.gradient(a, np.cumsum(np.abs(x)) + 1,
                                                          axis=-1), ((2, 5), (5,)), F,
         exact=False),
    Case("gradient_coordinates_edge2", lambda a: np.gradient(a, [0.0, 0.5, 1.5, 2.0], 1.0,
                                                             edge_order=2), ((4, 3),), F,
         exact=False),
    Case("trapezoid", lambda a: np.trapezoid(a, dx=0.5), ((3, 4),), F + I, exact=False),
    Case("trapezoid_points", lambda a, x: np.trapezoid(a, np.cumsum(np.abs(x)), axis=0),
         ((4, 3), (4,)), F, exact=False),
    Case("vander", lambda a: np.vander(a, 4), ((3,),), F + I + B, exact=False),
    Case("vander_increasing", lambda a: np.vander(a, increasing=True), ((3,),), F,
         exact=False),
    # functions applied along axes, in-place writes (a copy is written)
    Case("apply_along_axis", lambda a: np.apply_along_axis(lambda r: np.stack([r.sum(),
                                                                               r[0]]), 1, a),
         ((2, 3),), F, exact=False),
    Case("apply_along_axis_matrix", lambda a: np.apply_along_axis(np.diag, 0, a), ((2, 3),)),
    Case("apply_over_axes", lambda a: np.apply_over_axes(np.sum, a, [0, 2]), ((2, 3, 4),), F,
         exact=False),
    Case("fill_diagonal", lambda a: _written(np.fill_diagonal, a, [7, 8]), ((3, 4),), F + I),
    Case("fill_diagonal_wrap", lambda a: _written(np.fill_diagonal, a, 5, wrap=True), ((7, 3),),
         F + I),
    Case("fill_diagonal_large", lambda a: _written(np.fill_diagonal, a, 2), ((40, 40),), F),
    Case("fill_diagonal_cube", lambda a: _written(np.fill_diagonal, a, 1), ((2, 2, 2),), F + I),
    Case("put", lambda a: _written(np.put, a, [0, -1, 3, 3], [1, 2, 5]), ((2, 3),), F + I),
    Case("put_clip", lambda a: _written(np.put, a, [10, -10], 4, mode="clip"), ((2, 3),), F + I),
    Case("copyto_where", lambda a, b: _written(np.copyto, a, b, where=np.array([True, False, True])),
         ((2, 3), (3,)), F + I),
    Case("reshape_fortran", lambda a: np.reshape(a, (4, 6), order="F"), ((2, 3, 4),)),
    Case("ravel_fortran", lambda a: np.ravel(a, order="F"), ((2, 3, 4),)),
    Case("place", lambda a: _written(np.place, a, np.arange(6).reshape(2, 3) % 2 == 0, [3, 4]),
         ((2, 3),), F + I),
]


def _written(f, a, *args, **kwargs):
    """NumPy's in-place functions on a copy of `a` (tensors and traced values update too)."""
    b = np.copy(a)
    f(b, *args, **kwargs)
    return b


def _leaves(out):
    return [np.asarray(getattr(x, "data", x)) for x in tree_flatten(out)[0]]


def _check(got, want, exact, dtype):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        if exact or w.dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            tol = 1e-5 if dtype == "float32" else 1e-12
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


def _value_cases():
    return [pytest.param(c, d, id=f"{c.name}-{d}") for c in CASES for d in c.dtypes]


@pytest.mark.parametrize("case,dtype", _value_cases())
def test_eager_values_match_numpy(case, dtype):
    xs = _draw(case.shapes, dtype)
    want = _leaves(case.fn(*xs))
    _check(_leaves(case.fn(*[tensor(x) for x in xs])), want, case.exact, dtype)


@pytest.mark.parametrize("case,dtype", _value_cases())
def test_compiled_values_match_numpy(case, dtype):
    xs = _draw(case.shapes, dtype)
    want = _leaves(case.fn(*xs))
    got = tracegrad.jit(lambda *a: tuple(tree_flatten(case.fn(*a))[0]))(*xs)
    _check(_leaves(got), want, case.exact, dtype)


@pytest.mark.parametrize("case", [c for c in CASES if "float64" in c.dtypes and c.grad],
                         ids=repr)
def test_gradients_match_finite_differences(case):
    check_vjp(case.fn, _draw(case.shapes, "float64", seed=1), rtol=1e-6, atol=1e-9)


def _weighted_loss(fn, weights):
    def loss(*a):
        return sum((leaf * w).sum() for leaf, w in zip(tree_flatten(fn(*a))[0], weights))
    return loss


@pytest.mark.parametrize("case", [c for c in CASES if "float64" in c.dtypes and c.grad],
                         ids=repr)
def test_compiled_gradients_match_eager(case):
    xs = _draw(case.shapes, "float64", seed=2)
    rng = np.random.default_rng(3)
    weights = [rng.standard_normal(w.shape) for w in _leaves(case.fn(*xs))]
    tracegrad.testing.assert_compiled_matches_eager(_weighted_loss(case.fn, weights), *xs,
                                                    rtol=1e-12, atol=1e-12)


def test_traced_graph_uses_structural_primitives_only():
    """Index work lowers to slices/concatenate/broadcast (fusion sees through them)."""
    prog = tracegrad.trace(lambda a: np.pad(np.roll(np.flip(a), 1, 0), 2, mode="reflect"))(
        np.ones((3, 4)))
    prims = {e.prim.name for e in prog.graph.eqns}
    assert prims <= {"slice", "concatenate", "broadcast", "reshape"}, prims


def test_index_maps_with_many_runs_are_one_gather():
    """Graph size does not grow with the array: many runs of a static index map gather."""
    prog = tracegrad.trace(lambda a: np.repeat(a, np.arange(400) % 3))(np.ones(400))
    assert [e.prim.name for e in prog.graph.eqns] == ["gather"]


def test_diag_is_one_pad_and_diagonal_one_slice():
    prog = tracegrad.trace(lambda v: np.diag(v, 1))(np.ones(3))
    assert [e.prim.name for e in prog.graph.eqns] == ["pad", "reshape"]
    prog = tracegrad.trace(lambda m: np.diagonal(m))(np.ones((3, 3)))
    assert [e.prim.name for e in prog.graph.eqns] == ["reshape", "slice"]


# ---- functions NumPy does not dispatch (no array arguments, or plain type queries) --------

def test_constructors_without_array_arguments():
    assert tnp.tri(3, 4, 1).tolist() == np.tri(3, 4, 1).tolist()
    assert tnp.identity(3, np.int32).dtype == np.int32
    np.testing.assert_array_equal(tnp.empty((2, 3)), np.zeros((2, 3)))
    assert tnp.empty_like(tensor(np.ones(2, np.int32))).dtype == np.int32
    np.testing.assert_array_equal(tnp.linspace(0, 1, 5), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(tnp.logspace(0, 2, 3), np.logspace(0, 2, 3))
    np.testing.assert_array_equal(tnp.geomspace(1, 8, 4), np.geomspace(1, 8, 4))
    assert tnp.broadcast_shapes((3, 1), (4,)) == (3, 4)


def test_linspace_integer_dtype_floors():
    got = tnp.linspace(tensor(-3.0), tensor(2.0), 7, dtype=np.int64)
    np.testing.assert_array_equal(got.data, np.linspace(-3.0, 2.0, 7, dtype=np.int64))


def test_fromfunction_and_windows():
    got = tnp.fromfunction(lambda i, j: i * 10 + j, (2, 3), dtype=int)
    np.testing.assert_array_equal(got, np.fromfunction(lambda i, j: i * 10 + j, (2, 3), dtype=int))
    t = tensor(2.0)
    assert tnp.fromfunction(lambda i: i * t, (3,)).tolist() == [0.0, 2.0, 4.0]
    assert tnp.fromiter((t * k for k in range(3)), float).tolist() == [0.0, 2.0, 4.0]
    assert tnp.fromiter(range(3), np.int32).dtype == np.int32
    for name in ("bartlett", "blackman", "hamming", "hanning"):
        np.testing.assert_array_equal(getattr(tnp, name)(5), getattr(np, name)(5))
    np.testing.assert_array_equal(tnp.kaiser(5, 2.0), np.kaiser(5, 2.0))


def test_place_with_a_traced_mask_is_refused():
    t = tensor(np.ones(3))
    with pytest.raises(TypeError, match="static"):
        tnp.place(t, t > 0, [1.0])


def test_array_ndmin_and_full_with_traced_value():
    assert tnp.array(tensor(3.0), ndmin=3).shape == (1, 1, 1)
    assert tnp.array([1, 2], ndmin=2).shape == (1, 2)
    out = tracegrad.jit(lambda v: tnp.full((2, 3), v))(np.float32(2))
    assert out.dtype == np.float32 and out.tolist() == [[2.0] * 3] * 2


def test_type_queries():
    t = tensor(np.ones(3, np.float32))
    assert tnp.result_type(t, 1.0) == np.float32
    assert tnp.result_type(t, np.int64) == np.float64
    assert tnp.promote_types(np.int32, np.float32) == np.float64
    assert tnp.can_cast(t, np.float64) and not tnp.can_cast(t, np.int32)
    assert not tnp.isscalar(t) and tnp.isscalar(1.0) and not tnp.iscomplexobj(t)
    assert tnp.isrealobj(t) and not tnp.iscomplex(t).any() and tnp.isreal(t).all()
    assert tnp.row_stack([t, t]).shape == (2, 3)


def test_array_methods():
    x = np.arange(6.0).reshape(2, 3)
    t = tensor(x)
    assert t.repeat(2, axis=1).tolist() == x.repeat(2, axis=1).tolist()
    assert t.diagonal(1).tolist() == x.diagonal(1).tolist()
    assert float(t.trace()) == x.trace()
    assert t.mT.shape == (3, 2) and t.copy() is not t


def test_fill_and_put_methods_update_in_place_traced_too():
    def f(a):
        b = a * 1.0
        b.fill(0.0)
        b.put([1, -1], [5.0, 6.0])
        return b * a
    x = np.arange(1.0, 5.0).reshape(2, 2)
    want = np.array([[0.0, 10.0], [0.0, 24.0]])
    np.testing.assert_array_equal(f(tensor(x)).data, want)
    np.testing.assert_array_equal(tracegrad.jit(f)(x), want)


def test_copy_is_a_new_tensor_that_setitem_leaves_alone():
    t = tensor(np.zeros(3))
    c = np.copy(t)
    c[0] = 5.0
    assert t.tolist() == [0.0, 0.0, 0.0] and c.tolist() == [5.0, 0.0, 0.0]


@pytest.mark.parametrize("call,exc,match", [
    (lambda t: np.pad(t, 1, mode="circular"), ValueError, "not supported"),
    (lambda t: np.pad(t, -1), ValueError, "negative"),
    (lambda t: np.pad(t, 1, mode="edge", constant_values=2), ValueError, "unsupported keyword"),
    (lambda t: np.repeat(t, [1, 2]), ValueError, "cannot be broadcast"),
    (lambda t: np.split(t, 4), ValueError, "equal division"),
    (lambda t: np.tile(t, tensor(2)), TypeError, "static"),
    (lambda t: np.diagonal(t[0]), ValueError, "two dimensions"),
    (lambda t: np.rot90(t, axes=(0, 0)), ValueError, "different"),
    (lambda t: np.diff(t[0, 0]), ValueError, "at least one dimensional"),
    (lambda t: tnp.arange(t[0, 0]), TypeError, "static"),
    (lambda t: np.pad(np.ones((0, 2)) + t[:0, :2], 1, mode="edge"), ValueError, "empty axis"),
    (lambda t: np.cross(t, t), ValueError, "dimension must be 2 or 3"),
    (lambda t: np.block([(t, t)]), TypeError, "tuple"),
])
def test_errors_name_the_problem(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tensor(np.ones((3, 4))))


@pytest.mark.parametrize("src,dst", [([0, 1], [-1, 0]), ((0, 1), (-1, 0)), (0, 2), ([2, 0], [0, 1]), ([], [])])
def test_moveaxis_takes_sequences(src, dst):
    x = np.arange(24.0).reshape(2, 3, 4)
    want = np.moveaxis(x, src, dst)
    for got in (tnp.moveaxis(x, src, dst), np.moveaxis(tensor(x), src, dst).numpy(),
                tracegrad.jit(lambda v: np.moveaxis(v, src, dst))(x)):
        np.testing.assert_array_equal(got, want)


def test_vecdot_takes_axis_through_numpy_dispatch():
    u = tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    x = u.detach().numpy()
    np.testing.assert_array_equal(np.vecdot(u, u, axis=0).detach().numpy(), np.vecdot(x, x, axis=0))


def test_pad_linear_ramp_differentiates_traced_end_values():
    def f(c):
        return tnp.sum(tnp.pad(np.arange(6.0).reshape(2, 3), ((1, 2), (3, 0)), mode="linear_ramp",
                               end_values=((c, 2 * c),)) ** 2)
    fd = (f(1.5 + 1e-6) - f(1.5 - 1e-6)) / 2e-6
    np.testing.assert_allclose(tracegrad.grad(f)(1.5), fd, rtol=1e-7)
    np.testing.assert_allclose(tracegrad.compile_grad(f)(np.float64(1.5))[1][0], fd, rtol=1e-7)
    c = tensor(np.array(1.5), requires_grad=True)
    f(c).backward()
    np.testing.assert_allclose(c.grad.numpy(), fd, rtol=1e-7)

