"""einsum against np.einsum over a seeded sweep of random subscripts (explicit and implicit
outputs, ellipses, repeated labels within an operand, labels summed away, size-1
broadcasting, one to four operands): eager, compiled and gradients; plus the lowering
(dot and mul primitives, so BLAS and fusion see it), dtypes, the sublist form and errors.
"""
from __future__ import annotations

import numpy as np
import pytest

import tracegrad
from tracegrad.testing import assert_compiled_matches_eager, check_vjp
from tracegrad.tracer import numpy as tnp
from tracegrad.tracer import tensor


def _term(rng, sizes, ell_shape, with_ell):
    letters = "abcdef"
    nd = int(rng.integers(0, 4))
    term = "".join(rng.choice(list(letters[:5]), nd))
    shape = [sizes[c] if rng.random() > 0.1 else 1 for c in term]  # size 1 broadcasts
    shape = [sizes[c] if term.count(c) > 1 else d for c, d in zip(term, shape)]
    if with_ell and rng.random() < 0.7:
        k, pos = int(rng.integers(0, len(ell_shape) + 1)), int(rng.integers(0, len(term) + 1))
        term = term[:pos] + "..." + term[pos:]
        shape = shape[:pos] + list(ell_shape[len(ell_shape) - k:]) + shape[pos:]
    return term, tuple(shape)


def _output(rng, terms):
    labels = sorted(set("".join(terms).replace(".", "")))
    out = "".join(rng.permutation(labels)[:int(rng.integers(0, len(labels) + 1))])
    if any("..." in t for t in terms):
        pos = int(rng.integers(0, len(out) + 1))
        out = out[:pos] + "..." + out[pos:]
    return "->" + out


def _spec(seed):
    """A random valid einsum: (subscripts, operand shapes)."""
    rng = np.random.default_rng(seed)
    sizes = {c: int(rng.integers(0 if rng.random() < 0.05 else 1, 4)) for c in "abcdef"}
    ell_shape = tuple(int(s) for s in rng.integers(1, 4, size=rng.integers(0, 3)))
    with_ell = rng.random() < 0.3
    n_ops = int(rng.integers(1, 5))
    terms, shapes = zip(*[_term(rng, sizes, ell_shape, with_ell) for _ in range(n_ops)])
    sub = ",".join(terms) + (_output(rng, terms) if rng.random() < 0.6 else "")
    return sub, shapes


def _valid_specs(n):
    specs, seed = [], 0
    while len(specs) < n:
        sub, shapes = _spec(seed)
        seed += 1
        try:
            np.einsum(sub, *[np.ones(s) for s in shapes])
        except ValueError:
            continue
        specs.append(pytest.param(sub, shapes, id=f"{sub}|{'x'.join(map(str, shapes))}"))
    return specs


SPECS = _valid_specs(150)
GRAD_SPECS = SPECS[::4]


def _draw(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return [rng.random(s) < 0.5 for s in shapes]
    if dtype.startswith("int"):
        return [rng.integers(-4, 5, s).astype(dtype) for s in shapes]
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


def _close(got, want, dtype):
    got = np.asarray(getattr(got, "data", got))
    assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype
    if dtype in ("float32", "float64"):
        tol = 1e-4 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
    else:
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("sub,shapes", SPECS)
def test_eager_matches_numpy(sub, shapes):
    xs = _draw(shapes, "float64")
    _close(np.einsum(sub, *[tensor(x) for x in xs]), np.einsum(sub, *xs), "float64")


@pytest.mark.parametrize("sub,shapes", SPECS)
def test_compiled_matches_numpy(sub, shapes):
    xs = _draw(shapes, "float64")
    _close(tracegrad.jit(lambda *a: np.einsum(sub, *a))(*xs), np.einsum(sub, *xs), "float64")


@pytest.mark.parametrize("dtype", ["float32", "int32", "int64", "bool"])
@pytest.mark.parametrize("sub,shapes", SPECS[::5])
def test_other_dtypes_match_numpy(sub, shapes, dtype):
    xs = _draw(shapes, dtype)
    _close(tnp.einsum(sub, *[tensor(x) for x in xs]), np.einsum(sub, *xs), dtype)


@pytest.mark.parametrize("sub,shapes", GRAD_SPECS)
def test_gradients_match_finite_differences(sub, shapes):
    check_vjp(lambda *a: np.einsum(sub, *a), _draw(shapes, "float64", seed=1),
              rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("sub,shapes", GRAD_SPECS)
def test_compiled_gradients_match_eager(sub, shapes):
    xs = _draw(shapes, "float64", seed=2)
    c = np.random.default_rng(3).standard_normal(np.shape(np.einsum(sub, *xs)))
    assert_compiled_matches_eager(lambda *a: (np.einsum(sub, *a) * c).sum(), *xs,
                                  rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("greedy_order", [False, True, "optimal", "greedy"])
def test_contraction_order_does_not_change_values(greedy_order):
    xs = _draw([(2, 3), (3, 4), (4, 5), (5, 2)], "float64")
    got = tnp.einsum("ab,bc,cd,da->", *xs, optimize=greedy_order)
    np.testing.assert_allclose(got, np.einsum("ab,bc,cd,da->", *xs), rtol=1e-12)


def test_explicit_path_from_einsum_path():
    xs = _draw([(2, 3), (3, 4), (4, 5), (5, 2)], "float64")
    path = np.einsum_path("ab,bc,cd,da->", *xs, optimize="optimal")[0]
    got = tnp.einsum("ab,bc,cd,da->", *[tensor(x) for x in xs], optimize=path)
    np.testing.assert_allclose(got.data, np.einsum("ab,bc,cd,da->", *xs), rtol=1e-12)
    with pytest.raises(ValueError, match="path"):
        tnp.einsum("ab,bc,cd,da->", *xs, optimize=["einsum_path", (0, 1)])


def _prims(f, *xs):
    return [e.prim.name for e in tracegrad.trace(f)(*xs).graph.eqns]


def test_lowering_is_dot_and_mul():
    a, b = np.ones((2, 3, 4)), np.ones((2, 4, 5))
    assert _prims(lambda x, y: np.einsum("bij,bjk->bik", x, y), a, b).count("dot") == 1
    assert "dot" not in _prims(lambda x, y: np.einsum("ij,ij->ij", x, y), a[0], a[0])
    prims = _prims(lambda x: np.einsum("ii->", x), np.ones((3, 3)))
    assert prims == ["reshape", "slice", "reduce_sum"], prims


def test_scalars_sublists_and_dtype_argument():
    assert float(tnp.einsum(",", tensor(2.0), 3.0)) == 6.0
    x, y = _draw([(2, 3), (3,)], "float64")
    got = np.einsum(tensor(x), [0, 1], tensor(y), [1], [0])
    np.testing.assert_allclose(got.data, np.einsum(x, [0, 1], y, [1], [0]), rtol=1e-12)
    got = np.einsum(tensor(x), [Ellipsis, 1], y, [1])
    np.testing.assert_allclose(got.data, np.einsum(x, [Ellipsis, 1], y, [1]), rtol=1e-12)
    assert tnp.einsum("ij->", x.astype(np.int32), dtype=np.float32).dtype == np.float32
    assert tnp.einsum("i,i", x[0], y).dtype == np.float64


def test_einsum_path_is_numpys():
    xs = _draw([(2, 3), (3, 4), (4, 5)], "float64")
    path, text = tnp.einsum_path("ij,jk,kl->il", *[tensor(x) for x in xs])
    assert path == np.einsum_path("ij,jk,kl->il", *xs)[0]


@pytest.mark.parametrize("sub,shapes,match", [
    ("ij,jk->ik", [(2, 3), (4, 5)], "sizes"),
    ("ii->i", [(2, 3)], "label .i."),
    ("ij->k", [(2, 3)], "does not appear"),
    ("ij->ii", [(2, 3)], "more than once"),
    ("ij,j", [(2, 3)], "terms"),
    ("ijk", [(2, 3)], "dimensions"),
    ("...i->i", [(2, 3)], r"'\.\.\.'"),
    ("i.j", [(2, 3)], "ellipsis"),
    ("i1", [(2, 3)], "invalid subscript"),
])
def test_errors_agree_with_numpy(sub, shapes, match):
    xs = [np.ones(s) for s in shapes]
    with pytest.raises(ValueError):
        np.einsum(sub, *xs)
    with pytest.raises(ValueError, match=match):
        tnp.einsum(sub, *[tensor(x) for x in xs])
