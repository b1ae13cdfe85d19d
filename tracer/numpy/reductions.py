"""Reductions: sum, prod, mean, var, std, max, min (with NumPy's `initial=` and
`where=`), any, all, count_nonzero, ptp, average, the nan* reductions, cov and
corrcoef.

`prod` is a balanced tree of multiplies over the reduced entries (the axes
moved last and flattened, halved log2(n) times): only `mul`, `slice`,
`reshape`, `transpose` and `concatenate`, so it fuses and compiles like any
elementwise chain and its gradient is exact where entries are zero (no
division by the product).  The nan* variants replace NaNs by the reduction's
identity (or mask them out), so NaNs get no gradient.
"""
from __future__ import annotations

import builtins
import warnings

import numpy as np

from tracegrad.ir import ops, user_source_location

from .. import dtypes
from ._core import (
    _convert, _dtype, _fail, _kept_shape, _ndim, _norm_axes, _norm_axis, _operand, _reduction_axes,
    _reduced_shape, _reject, _shape, concrete_value, zero_safe_root,
)
from .elementwise import divide, logical_and, maximum, minimum, multiply, subtract, uf
from .elementwise import where as _select


def _keep(r, shape, axes, keepdims):
    return ops.reshape(r, _kept_shape(shape, axes)) if keepdims else r


def _count(shape, axes) -> int:
    return int(np.prod([shape[i] for i in axes], dtype=np.int64))


def _isnan(a):
    """Elementwise NaN test (ints and bools have none)."""
    if not dtypes.is_float(_dtype(a)):
        return ops.broadcast(np.asarray(False), _shape(a))
    return ops.ne(a, a)


def _masked(a, where, fill):
    """`a` with the entries outside the `where` mask replaced by `fill`."""
    if where is None:
        return a
    return ops.where(_broadcast_mask(where, _shape(a)), a, np.asarray(fill, _dtype(a)))


def _broadcast_mask(where, shape):
    mask = _operand(where)
    if _dtype(mask) != np.bool_:
        mask = ops.ne(mask, np.asarray(0, _dtype(mask)))
    try:
        np.broadcast_shapes(_shape(mask), shape)
    except ValueError:
        _fail("where", f"mask of shape {_shape(mask)} does not broadcast to {shape}", [mask])
    return ops.broadcast(mask, shape) if _shape(mask) != shape else mask


def _mask_count(where, shape, axes, dt, keepdims=False):
    """How many entries of each reduced lane the `where` mask keeps, in dtype `dt`."""
    ones = ops.convert(_broadcast_mask(where, shape), dt)
    return _keep(ops.reduce_sum(ones, axes), shape, axes, keepdims)


def _prepared(a, dtype, default):
    a = _operand(a)
    dt = dtypes.check(dtype) if dtype is not None else default(_dtype(a))
    return _convert(a, dt)


# ---- sum, prod -------------------------------------------------------------------------

def sum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum over `axis` (None, int or tuple; negatives allowed); `where` masks entries out
    and `initial` is added, as in NumPy.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.sum(np.arange(6.0).reshape(2, 3), axis=-1, keepdims=True).tolist()
    [[3.0], [12.0]]
    """
    _reject("sum", out=out)
    a = _prepared(a, dtype, dtypes.sum_result)
    axes = _reduction_axes(axis, _ndim(a))
    r = ops.reduce_sum(_masked(a, where, 0), axes)
    if not axes and _dtype(a).kind == "f":  # NumPy's sum starts at +0.0, even over no axes
        r = ops.add(r, np.zeros((), _dtype(a)))
    if initial is not None:
        r = ops.add(r, np.asarray(initial, _dtype(a)))
    return _keep(r, _shape(a), axes, keepdims)


def _reduce_prod(a, axes):
    if not axes:
        return a
    dt = _dtype(a)
    # Narrow floats multiply in float64 and round once, as their sums accumulate (1e6
    # float32 factors near 1 drift by 1e-5 to 1e-3 relative when multiplied in float32).
    wide = dt.kind == "f" and dt.itemsize < 8
    x = ops.convert(a, np.dtype(np.float64)) if wide else a
    r = ops.reduce_prod(x, axes)
    return ops.convert(r, dt) if wide else r


def prod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product over `axis`; its gradient is exact at zero entries (no division).

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.prod(np.array([[1.0, 2.0], [3.0, 4.0]]), axis=0).tolist()
    [3.0, 8.0]
    """
    _reject("prod", out=out)
    a = _prepared(a, dtype, dtypes.sum_result)
    axes = _reduction_axes(axis, _ndim(a))
    r = _reduce_prod(_masked(a, where, 1), axes)
    if initial is not None:
        r = ops.mul(r, np.asarray(initial, _dtype(a)))
    return _keep(r, _shape(a), axes, keepdims)


# ---- mean, var, std ---------------------------------------------------------------------

def mean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Arithmetic mean; integer inputs give float64, as in NumPy.  An integer or bool
    `dtype` sums in that dtype and truncates the quotient to it, as NumPy's does."""
    _reject("mean", out=out)
    if dtype is not None and dtypes.check(dtype).kind != "f":
        return _integral_mean(_operand(a), axis, dtypes.check(dtype), keepdims, where)
    a = _prepared(a, dtype, dtypes.float_result)
    axes = _norm_axes(axis, _ndim(a))  # NumPy's mean takes no axis 0 of a 0-d array
    total = sum(a, axis=axes, keepdims=keepdims, where=where)
    if where is None:
        return divide(total, float(_count(_shape(a), axes)))
    return divide(total, _mask_count(where, _shape(a), axes, _dtype(a), keepdims))


def _integral_mean(a, axis, dtype, keepdims, where):
    axes = _norm_axes(axis, _ndim(a))
    total = sum(a, axis=axes, dtype=dtype, keepdims=keepdims, where=where)
    if where is None:
        return _convert(divide(total, float(_count(_shape(a), axes))), dtype)
    return _convert(divide(total, _mask_count(where, _shape(a), axes, dtypes.FLOAT64, keepdims)),
                    dtype)


_mean = mean  # `var` and `std` take a parameter named `mean`, as in NumPy


def var(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Variance, mean((a - mean(a))**2) with `ddof` (or `correction`) degrees of freedom
    removed; `where` masks entries out."""
    _reject("var", out=out, mean=mean)
    ddof = correction if correction is not None else ddof
    a = _prepared(a, dtype, dtypes.float_result)
    a = _masked(a, where, 0)  # masked-out NaNs and infs must not reach the gradient
    axes = _norm_axes(axis, _ndim(a))  # NumPy's mean takes no axis 0 of a 0-d array
    d = subtract(a, _mean(a, axis=axes, keepdims=True, where=where))
    squares = sum(ops.integer_pow(d, 2), axis=axes, keepdims=keepdims, where=where)
    if where is None:
        return divide(squares, float(builtins.max(_count(_shape(a), axes) - ddof, 0)))
    n = _mask_count(where, _shape(a), axes, _dtype(a), keepdims)
    return divide(squares, maximum(subtract(n, float(ddof)), 0.0))


def std(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
        correction=None):
    """Standard deviation, sqrt(var), with gradient 0 where var is 0 (a constant row), as
    torch's, where sqrt's would be NaN."""
    return zero_safe_root(var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                       where=where, mean=mean, correction=correction))


# ---- max, min, ptp ----------------------------------------------------------------------------

def _extremum(name, prim, combine):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        _reject(name, out=out)
        a = _operand(a)
        axes = _reduction_axes(axis, _ndim(a))
        if where is not None and initial is None:
            raise ValueError(f"reduction operation '{name}' does not have an identity, so to "
                             "use a where mask one has to specify 'initial'")
        r = _extreme(name, prim, _masked(a, where, initial), axes, initial)
        if initial is not None:
            r = combine(r, np.asarray(initial, _dtype(a)))
        return _keep(r, _shape(a), axes, keepdims)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Reduce with `{name}` over `axis` (NumPy's `initial=` and `where=`); the "
                 "gradient is shared evenly by the entries that attain it.")
    return f


def _extreme(name, prim, a, axes, initial):
    shape = _shape(a)
    if axes and _count(shape, axes) == 0:
        if initial is None:
            _fail(name, f"zero-size array to reduction operation {name} which has no identity",
                  [a], ValueError)
        return _constant_of_empty(a, axes, np.full(_reduced_shape(shape, axes),
                                                  np.asarray(initial, _dtype(a))))
    return ops.bind(prim, a, axes=axes) if axes else a


def _constant_of_empty(a, axes, value):
    """`value`, the result of reducing the empty `axes` of `a`, as a value computed from
    `a` (a tensor stays a tensor with a history, whose gradient is empty): value minus the
    zero its empty sum is, which keeps every value's bits, -0.0 included."""
    empty_sum = ops.reduce_sum(a, tuple(axes))
    return ops.sub(value, ops.mul(empty_sum, np.zeros((), _dtype(a))))


max = amax = _extremum("max", "reduce_max", maximum)
min = amin = _extremum("min", "reduce_min", minimum)


def ptp(a, axis=None, out=None, keepdims=False):
    """Range of values, max - min."""
    _reject("ptp", out=out)
    return subtract(max(a, axis=axis, keepdims=keepdims), min(a, axis=axis, keepdims=keepdims))


# ---- any, all, count_nonzero --------------------------------------------------------------------

def _nonzero(a):
    a = _operand(a)
    return a if _dtype(a) == np.bool_ else ops.ne(a, np.asarray(0, _dtype(a)))


def count_nonzero(a, axis=None, *, keepdims=False):
    """The number of nonzero entries (int64)."""
    a = _nonzero(a)
    return sum(ops.convert(a, dtypes.INT64), axis=axis, keepdims=keepdims)


def any(a, axis=None, out=None, keepdims=False, *, where=None):
    """Whether any entry is nonzero (NaN counts as nonzero); False for none."""
    _reject("any", out=out)
    hits = sum(ops.convert(_nonzero(a), dtypes.INT64), axis=axis, keepdims=keepdims, where=where)
    return ops.gt(hits, np.asarray(0, dtypes.INT64))


def all(a, axis=None, out=None, keepdims=False, *, where=None):
    """Whether every entry is nonzero; True for none."""
    _reject("all", out=out)
    misses = sum(ops.convert(ops.logical_not(_nonzero(a)), dtypes.INT64), axis=axis,
                 keepdims=keepdims, where=where)
    return ops.eq(misses, np.asarray(0, dtypes.INT64))


# ---- average ------------------------------------------------------------------------------------

def _weights_along(w, a, axis):
    """1-D weights with an int axis are laid out along it; others must match `a`'s shape."""
    shape, wshape = _shape(a), _shape(w)
    if wshape == shape:
        return w
    if axis is None or isinstance(axis, (tuple, list)) or len(wshape) != 1:
        _fail("average", "axis must be an int when the shapes of a and weights differ", [a, w],
              TypeError)
    ax = _norm_axis(axis, len(shape))
    if wshape[0] != shape[ax]:
        _fail("average", "length of weights differs from that of a along axis", [a, w],
              ValueError)
    w = ops.reshape(w, tuple(d if i == ax else 1 for i, d in enumerate(shape)))
    return ops.broadcast(w, shape)


def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Weighted mean sum(a * w) / sum(w); with `returned`, also the sum of weights.
    Weights summing to zero raise NumPy's ZeroDivisionError where they are concrete
    (arrays, eager tensors); traced, they give inf or NaN (traced code cannot raise on data)."""
    a = _operand(a)
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        n = np.asarray(_count(_shape(a), _reduction_axes(axis, _ndim(a))), _dtype(avg))
        return (avg, ops.broadcast(n, _shape(avg))) if returned else avg
    w = _operand(weights)
    dt = dtypes.float_result(dtypes.result_type(a, w))
    a, w = _convert(a, dt), _weights_along(_convert(w, dt), _convert(a, dt), axis)
    total = sum(w, axis=axis, keepdims=keepdims)
    known = concrete_value(total)
    if known is not None and np.any(known == 0.0):
        raise ZeroDivisionError("Weights sum to zero, can't be normalized")
    avg = divide(sum(multiply(a, w), axis=axis, keepdims=keepdims), total)
    return (avg, total) if returned else avg


# ---- nan* ---------------------------------------------------------------------------------------

def _without_nan(a, fill):
    a = _operand(a)
    if not dtypes.is_float(_dtype(a)):
        return a
    return ops.where(_isnan(a), np.asarray(fill, _dtype(a)), a)


def _not_nan(a):
    return ops.logical_not(_isnan(_operand(a)))


def nansum(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Sum treating NaNs as zero."""
    return sum(_without_nan(a, 0), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
               initial=initial, where=where)


def nanprod(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None):
    """Product treating NaNs as one."""
    return prod(_without_nan(a, 1), axis=axis, dtype=dtype, out=out, keepdims=keepdims,
                initial=initial, where=where)


def _and_mask(a, where):
    keep = _not_nan(a)
    return keep if where is None else logical_and(keep, where)


def _warn_small_lanes(mask, axes, at_most, message):
    """NumPy's RuntimeWarning for a lane keeping at most `at_most` entries of `mask`, where
    the mask's values are known (numpy operands, eager tensors); a traced value's are not
    read (that would add a guard), so it never warns, as JAX."""
    known = concrete_value(mask)
    if known is not None and np.any(np.sum(known, axis=axes) <= at_most):
        filename, _, line = (user_source_location() or "<unknown>:0").rpartition(":")
        warnings.warn_explicit(message, RuntimeWarning, filename, int(line))


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, *, where=None):
    """Mean of the non-NaN entries (NaN where there are none, with NumPy's warning)."""
    a = _operand(a)  # (unlike mean, NumPy's nanmean takes axis 0 of a 0-d array)
    mask, axis = _and_mask(a, where), _reduction_axes(axis, _ndim(a))
    _warn_small_lanes(mask, axis, 0, "Mean of empty slice")
    return mean(a, axis=axis, dtype=dtype, out=out, keepdims=keepdims, where=mask)


def nanvar(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """Variance of the non-NaN entries; NaN where `ddof` is at least their count (NumPy's
    nanvar, where `var` gives inf)."""
    a = _operand(a)
    mask, axis = _and_mask(a, where), _reduction_axes(axis, _ndim(a))
    v = var(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims, where=mask,
            mean=mean, correction=correction)
    ddof = correction if correction is not None else ddof
    _warn_small_lanes(mask, axis, ddof, "Degrees of freedom <= 0 for slice.")
    n = _mask_count(mask, _shape(a), axis, _dtype(v), keepdims)
    return _select(ops.le(n, np.asarray(ddof, _dtype(v))), np.nan, v)


def nanstd(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, *, where=None, mean=None,
           correction=None):
    """Standard deviation of the non-NaN entries."""
    return uf.sqrt(nanvar(a, axis=axis, dtype=dtype, out=out, ddof=ddof, keepdims=keepdims,
                          where=where, mean=mean, correction=correction))


def _nan_extremum(name, reduce, fill):
    def f(a, axis=None, out=None, keepdims=False, initial=None, where=None):
        a = _operand(a)
        r = reduce(_without_nan(a, fill), axis=axis, out=out, keepdims=keepdims,
                   initial=initial, where=where)
        if not dtypes.is_float(_dtype(a)) or initial is not None:
            return r
        none = all(_isnan(a), axis=axis, keepdims=keepdims, where=where)
        return _select(none, np.asarray(np.nan, _dtype(a)), r)  # an all-NaN lane is NaN
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"`{reduce.__name__}` ignoring NaNs (NaN for a lane of NaNs only)."
    return f


nanmax = _nan_extremum("nanmax", max, -np.inf)
nanmin = _nan_extremum("nanmin", min, np.inf)


# ---- cov, corrcoef ------------------------------------------------------------------------------

def _observations(m, y, rowvar, dt):
    """Variables as rows (2-D), `y`'s rows appended."""
    xs = []
    for v in (m, y):
        if v is None:
            continue
        v = _convert(_operand(v), dt)
        if _ndim(v) > 2:
            _fail("cov", "m and y have more than 2 dimensions", [v], ValueError)
        v = ops.reshape(v, (1,) * (2 - _ndim(v)) + _shape(v))
        if not rowvar and _shape(v)[0] != 1:
            v = ops.transpose(v, (1, 0))
        xs.append(v)
    return xs[0] if len(xs) == 1 else ops.concatenate(xs, 0)


def cov(m, y=None, rowvar=True, bias=False, ddof=None, fweights=None, aweights=None, *,
        dtype=None):
    """Covariance matrix of the variables (rows, or columns when not `rowvar`), with
    NumPy's integer frequency weights and observation weights."""
    dt = dtypes.check(dtype) if dtype is not None else dtypes.float_result(
        dtypes.result_type(*(v for v in (m, y, np.float64(0)) if v is not None)))
    x = _observations(m, y, rowvar, dt)
    n = _shape(x)[1]
    ddof = (0 if bias else 1) if ddof is None else ddof
    w, a = _cov_weights(fweights, aweights, n, dt)
    from .products import matmul  # a sibling family
    if w is None:
        xc = subtract(x, mean(x, axis=1, keepdims=True))
        c = divide(matmul(xc, ops.transpose(xc, (1, 0))), float(builtins.max(n - ddof, 0)))
    else:
        avg, w_sum = average(x, axis=1, weights=w, returned=True)
        w_sum = ops.reshape(ops.slice(w_sum, (0,), (1,), (1,)), ())
        fact = w_sum if ddof == 0 else subtract(w_sum, float(ddof)) if a is None else \
            subtract(w_sum, divide(multiply(float(ddof), sum(multiply(w, a))), w_sum))
        xc = subtract(x, ops.reshape(avg, (_shape(x)[0], 1)))
        c = divide(matmul(multiply(xc, w), ops.transpose(xc, (1, 0))), maximum(fact, 0.0))
    return ops.reshape(c, ()) if _shape(c) == (1, 1) else c


def _cov_weight(name, v, n, dt, integral):
    v = _operand(v)
    if _ndim(v) == 0 or _ndim(v) > 1:
        _fail("cov", f"cannot handle multidimensional {name}" if _ndim(v) else
              f"{name} must be one-dimensional", [v], RuntimeError)
    if _shape(v)[0] != n:
        _fail("cov", f"incompatible numbers of samples and {name}", [v], RuntimeError)
    known = concrete_value(v)  # NumPy checks values: integral float fweights are accepted
    if integral and known is not None and not np.all(known == np.around(known)):
        raise TypeError("fweights must be integer")
    if known is not None and np.any(known < 0):
        raise ValueError(f"{name} cannot be negative")
    return _convert(v, dt)


def _cov_weights(fweights, aweights, n, dt):
    """(the product of the weights given, the observation weights), each None if absent."""
    f = None if fweights is None else _cov_weight("fweights", fweights, n, dt, True)
    a = None if aweights is None else _cov_weight("aweights", aweights, n, dt, False)
    w = f if a is None else a if f is None else multiply(f, a)
    return w, a


def corrcoef(x, y=None, rowvar=True, *, dtype=None):
    """Pearson correlation coefficients, cov / sqrt(outer(var, var)), clipped to [-1, 1]."""
    c = cov(x, y, rowvar, dtype=dtype)
    if _ndim(c) == 0:
        return divide(c, c)
    k = _shape(c)[0]
    d = uf.sqrt(ops.reduce_sum(ops.mul(c, np.eye(k, dtype=_dtype(c))), (1,)))
    c = divide(divide(c, ops.reshape(d, (k, 1))), ops.reshape(d, (1, k)))
    return minimum(maximum(c, -1.0), 1.0)


__all__ = ["sum", "prod", "mean", "var", "std", "max", "amax", "min", "amin", "ptp", "any", "all",
           "count_nonzero", "average", "nansum", "nanprod", "nanmean", "nanvar", "nanstd",
           "nanmax", "nanmin", "cov", "corrcoef"]

NUMPY = {np.sum: sum, np.prod: prod, np.mean: mean, np.var: var, np.std: std, np.max: max,
         np.amax: max, np.min: min, np.amin: min, np.ptp: ptp, np.any: any, np.all: all,
         np.count_nonzero: count_nonzero, np.average: average, np.nansum: nansum,
         np.nanprod: nanprod, np.nanmean: nanmean, np.nanvar: nanvar, np.nanstd: nanstd,
         np.nanmax: nanmax, np.nanmin: nanmin, np.cov: cov, np.corrcoef: corrcoef}

# ufunc.reduce methods we offer, as the reductions they are.
UFUNC_REDUCE = {np.add: sum, np.multiply: prod, np.maximum: max, np.minimum: min,
                np.logical_or: any, np.logical_and: all}
