"""Sorting, searching, cumulative and order statistics: sort, argsort, argmax,
searchsorted, cumsum, median, quantile, histogram, bincount, unique and their
nan* variants.

Order statistics are gathers from the sorted values: the gradient of
`median`/`quantile` flows through the gather into `sort` and through sort's
permutation back to the input (and into `q` where `q` is traced).  NaNs sort
last, so a lane with a NaN gives NaN (as NumPy), and the nan* variants count
only the leading non-NaN entries of each sorted lane.

Differences from NumPy, by design: `partition`/`argpartition` return the fully
sorted order (a valid partition for every `kth`); `digitize` with traced bins
cannot check that they are monotonic (it takes their direction from the first and
last bins, at run time); `bincount` and `unique` of traced values need a
static `length`/`size`, as in JAX.
"""
from __future__ import annotations


import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import (
    _convert, _dtype, _fail, _kept_shape, _ndim, _norm_axes, _norm_axis, _operand, _reduced_shape,
    _reject, _shape, _zero_d_axis, concrete_value, is_boxed, symbolic_value,
)
from .elementwise import clip, divide, subtract, where
from .reductions import _isnan, _without_nan
from .reductions import sum as _sum

INDEX = np.dtype(np.int64)


def _along(a, axis, zero_d=False):
    """(operand, axis): `axis=None` flattens, as NumPy's sort family does; with `zero_d`, a
    0-d operand also takes axis 0 or -1 as one element (NumPy's argmax and cumsum do, its
    sort does not)."""
    a = _operand(a)
    if axis is None or (zero_d and _zero_d_axis(axis, _ndim(a))):
        return ops.reshape(a, (int(np.prod(_shape(a), dtype=np.int64)),)), 0
    return a, _norm_axis(axis, _ndim(a))


# ---- sort, argsort, partition, lexsort ----------------------------------------------------

def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Stable sort along `axis` (None: flattened), NaNs last; differentiable.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.sort(np.array([3.0, np.nan, 1.0])).tolist()
    [1.0, 3.0, nan]
    """
    _reject("sort", order=order)
    a, ax = _along(a, axis)
    return ops.sort(a, ax)


def argsort(a, axis=-1, kind=None, order=None, *, stable=None):
    """Indices (int64) that stably sort along `axis`; no gradient."""
    _reject("argsort", order=order)
    a, ax = _along(a, None if _ndim(_operand(a)) == 0 else axis)  # 0-d: as 1-d, as NumPy
    return ops.argsort(a, ax)


def _check_kth(a, kth, axis):
    n = _shape(a)[axis]
    for k in np.atleast_1d(np.asarray(kth)):
        if not -n <= int(k) < n:
            raise ValueError(f"kth(={int(k)}) out of bounds ({n})")


def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A partition around `kth`: the fully sorted order, which is one (NumPy leaves
    the order within the two sides unspecified)."""
    _reject("partition", order=order)
    a, ax = _along(a, axis)
    _check_kth(a, kth, ax)
    return ops.sort(a, ax)


def argpartition(a, kth, axis=-1, kind="introselect", order=None):
    """Indices of a partition around `kth` (the stable sorting order)."""
    _reject("argpartition", order=order)
    a, ax = _along(a, axis)
    _check_kth(a, kth, ax)
    return ops.argsort(a, ax)


def _keys(keys):
    """The sort keys: a sequence of arrays, or the rows of one array."""
    if isinstance(keys, (list, tuple)):
        return [_operand(k) for k in keys]
    keys = _operand(keys)
    if _ndim(keys) == 0:
        raise TypeError("lexsort needs a sequence of keys or an array of rank >= 1")
    rest, nd = _shape(keys)[1:], _ndim(keys)
    return [ops.reshape(ops.slice(keys, (i,) + (0,) * (nd - 1), (1,) * nd, (1,) + rest), rest)
            for i in range(_shape(keys)[0])]


def lexsort(keys, axis=-1):
    """Indices sorting by the last key, ties broken by the keys before it (stable
    sorts by each key, from the first to the last)."""
    keys = _keys(keys)
    if not keys:
        raise TypeError("need sequence of keys with len > 0 in lexsort")
    shape = np.broadcast_shapes(*(_shape(k) for k in keys))
    keys = [ops.broadcast(k, shape) for k in keys]
    ax = _norm_axis(axis, len(shape))
    perm = ops.argsort(keys[0], ax)
    for k in keys[1:]:
        perm = ops.take_along(perm, ops.argsort(ops.take_along(k, perm, ax), ax), ax)
    return perm


# ---- argmax, argmin ---------------------------------------------------------------------------

def _arg_extremum(name):
    def f(a, axis=None, out=None, *, keepdims=False):
        _reject(name, out=out)
        a0 = _operand(a)
        a, ax = _along(a0, axis, zero_d=True)
        if _shape(a)[ax] == 0:
            _fail(name, f"attempt to get {name} of an empty sequence", [a], ValueError)
        r = ops.bind(name, a, axis=ax)
        if keepdims:
            axes = tuple(range(_ndim(a0))) if axis is None else (ax,)
            r = ops.reshape(r, _kept_shape(_shape(a0), axes))
        return r
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Index (int64) of the first {name[3:]}imum along `axis` (None: of the "
                 "flattened array); a NaN counts as the extremum.  No gradient.")
    return f


argmax = _arg_extremum("argmax")
argmin = _arg_extremum("argmin")


def _nan_arg(arg, fill):
    def f(a, axis=None, out=None, *, keepdims=False):
        data = a if isinstance(a, (np.ndarray, list, tuple)) else getattr(a, "_data", None)
        if data is not None and np.isnan(np.asarray(data)).all(axis=axis).any():
            raise ValueError("All-NaN slice encountered")  # NumPy's, where the data is known
        return arg(_without_nan(a, fill), axis=axis, out=out, keepdims=keepdims)
    f.__name__ = f.__qualname__ = f"nan{arg.__name__}"
    f.__doc__ = (f"`{arg.__name__}` ignoring NaNs.  A lane of NaNs only raises NumPy's "
                 "ValueError on concrete data (arrays, tensors); traced, it gives 0 (traced "
                 "code cannot raise on data).")
    return f


nanargmax = _nan_arg(argmax, -np.inf)
nanargmin = _nan_arg(argmin, np.inf)


# ---- searchsorted, digitize ----------------------------------------------------------------------

def searchsorted(a, v, side="left", sorter=None):
    """Insertion indices (int64) of `v` into the sorted 1-D `a`; no gradient."""
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right' (got {side!r})")
    a, v = _operand(a), _operand(v)
    if _ndim(a) != 1:
        _fail("searchsorted", "the sorted array must be 1-D", [a], ValueError)
    if sorter is not None:
        a = ops.gather(a, _convert(_operand(sorter), INDEX))
    dt = dtypes.result_type(a, v)
    return ops.searchsorted(_convert(a, dt), _convert(v, dt), side)


def _monotonic(bins) -> int:
    """+1 increasing, -1 decreasing (NumPy's test, on the values of concrete bins and
    eager tensors); 0 for traced bins, whose direction is only known at run time."""
    b = concrete_value(bins)
    if b is None:
        return 0
    if np.all(b[1:] >= b[:-1]):
        return 1
    if np.all(b[1:] <= b[:-1]):
        return -1
    raise ValueError("bins must be monotonically increasing or decreasing")


def digitize(x, bins, right=False):
    """Bin index of each `x` (NumPy's conventions for increasing and decreasing bins).

    Traced bins have no values to check: the direction is chosen at run time, increasing
    where bins[0] <= bins[-1] and decreasing otherwise (both are computed, one selected).
    Traced bins that are not monotonic raise nothing: they give the searchsorted indices
    of that direction (NumPy raises ValueError)."""
    bins = _operand(bins)
    if _ndim(bins) != 1:
        _fail("digitize", "bins must be 1-dimensional", [bins], ValueError)
    side = "left" if right else "right"
    n = _shape(bins)[0]
    direction = _monotonic(bins) if n > 1 else 1
    if direction == 1:
        return searchsorted(bins, x, side)
    flipped = ops.slice(bins, (n - 1,), (-1,), (n,))
    down = subtract(np.int64(n), searchsorted(flipped, x, side))
    if direction == -1:
        return down
    first, last = (ops.reshape(ops.slice(bins, (i,), (1,), (1,)), ()) for i in (0, n - 1))
    return where(ops.le(first, last), searchsorted(bins, x, side), down)


# ---- quantiles --------------------------------------------------------------------------------------

METHODS = ("linear", "lower", "higher", "nearest", "midpoint")
_PICKS = ("lower", "higher", "nearest")  # methods that take one element
_MEDIAN = "_median"  # median's own rule (not a quantile method of NumPy's)


def _lanes(a, axis):
    """`a` with the reduced axes moved last and flattened: (lanes..., n), and the axes."""
    axes = _norm_axes(axis, _ndim(a))
    shape = _shape(a)
    rest = tuple(i for i in range(len(shape)) if i not in axes)
    moved = ops.transpose(a, rest + axes)
    n = int(np.prod([shape[i] for i in axes], dtype=np.int64))
    return ops.reshape(moved, _reduced_shape(shape, axes) + (n,)), axes


def _floor(x):
    """floor of a non-negative float (truncation toward zero is the floor there)."""
    return ops.convert(ops.convert(x, INDEX), _dtype(x))


def _is_odd(f):
    half = _floor(ops.mul(f, np.asarray(0.5, _dtype(f))))
    return ops.ne(f, ops.mul(half, np.asarray(2.0, _dtype(f))))


def _positions(vi, method):
    """(lower index, gamma in [0, 1]) of the virtual index `vi` (NumPy's methods)."""
    dt = _dtype(vi)
    zero, one = np.asarray(0.0, dt), np.asarray(1.0, dt)
    lo = _floor(vi)
    gamma = ops.sub(vi, lo)
    if method == "linear":
        return lo, gamma
    if method == "lower":
        return lo, ops.mul(gamma, zero)
    if method == "higher":
        return lo, ops.convert(ops.gt(gamma, zero), dt)
    if method == "midpoint":
        return lo, ops.mul(ops.convert(ops.gt(gamma, zero), dt), np.asarray(0.5, dt))
    half = np.asarray(0.5, dt)  # nearest: round half to even, as np.around
    up = ops.logical_or(ops.gt(gamma, half), ops.logical_and(ops.eq(gamma, half), _is_odd(lo)))
    return lo, ops.where(up, one, zero)


def _take_lanes(x, idx):
    """x[..., idx[q, ...]] for sorted lanes x (L..., n) and int64 idx (Q..., L...)."""
    lead = _shape(x)[:-1]
    n = _shape(x)[-1]
    lanes = int(np.prod(lead, dtype=np.int64))
    offsets = (np.arange(lanes, dtype=INDEX) * n).reshape(lead)
    pos = ops.add(idx, ops.broadcast(offsets, _shape(idx)))
    return ops.gather(ops.reshape(x, (lanes * n,)), pos)


def _lerp(a, b, t):
    """NumPy's interpolation a + (b - a) t, computed from the nearer end."""
    diff = ops.sub(b, a)
    near_b = ops.sub(b, ops.mul(diff, ops.sub(np.asarray(1.0, _dtype(t)), t)))
    return ops.where(ops.ge(t, np.asarray(0.5, _dtype(t))), near_b, ops.add(a, ops.mul(diff, t)))


def _order_statistic(s, q, count, method):
    """Quantiles `q` (Q...) of the sorted lanes `s` (L..., n) whose first `count` (L...)
    entries are the data: shape Q... + L..."""
    dt = _dtype(q)  # positions in q's float dtype; the data may be of another (picks)
    out_shape = _shape(q) + _shape(s)[:-1]
    qb = ops.broadcast(ops.reshape(q, _shape(q) + (1,) * (_ndim(s) - 1)), out_shape)
    last = ops.max(ops.sub(ops.broadcast(count, out_shape), np.asarray(1.0, dt)),
                   np.asarray(0.0, dt))
    lo, gamma = _positions(ops.mul(qb, last), "linear" if method == _MEDIAN else method)
    lo_i = ops.convert(lo, INDEX)
    hi_i = ops.min(ops.add(lo_i, np.int64(1)), ops.convert(last, INDEX))
    if method in _PICKS:  # one element, as NumPy takes it (no blend: an inf stays an inf)
        return _take_lanes(s, ops.min(ops.add(lo_i, ops.convert(gamma, INDEX)),
                                      ops.convert(last, INDEX)))
    a, b = _take_lanes(s, lo_i), _take_lanes(s, hi_i)
    if method == _MEDIAN:  # NumPy's median: the middle element, or the mean of the two
        two = np.asarray(2.0, _dtype(s))
        return ops.where(ops.eq(gamma, np.asarray(0.0, dt)), a, ops.div(ops.add(a, b), two))
    return _lerp(a, b, gamma)


def _check_q(q, scale):
    """`q` scaled into [0, 1]: concrete values outside raise NumPy's ValueError; traced ones
    are clamped into it, as JAX's (the minimum or maximum, never an extrapolation)."""
    if is_boxed(q) or symbolic_value(q) is not None:
        q = _operand(q)
        q = q if scale == 1 else divide(q, float(scale))
        return clip(q, 0.0, 1.0)
    qa = np.asarray(q, np.float64) / scale
    if not np.all((qa >= 0) & (qa <= 1)):
        raise ValueError("Quantiles must be in the range [0, 1]"
                         if scale == 1 else "Percentiles must be in the range [0, 100]")
    return qa if not dtypes.is_weak(q) else float(qa)


def _quantile(a, q, axis, method, keepdims, skip_nan, scale=1):
    if method not in METHODS and method != _MEDIAN:
        raise ValueError(f"method {method!r} is not supported; supported: {', '.join(METHODS)}")
    a = _operand(a)
    q = _check_q(q, scale)
    dt = dtypes.float_result(dtypes.result_type(a, q))  # a Python float q keeps float32
    # methods that pick an element keep the data's dtype, as NumPy's (ints too)
    lanes, axes = _lanes(a if method in _PICKS else _convert(a, dt), axis)
    q = np.asarray(q, dt) if isinstance(q, (float, np.ndarray)) else _convert(q, dt)
    r = _lanes_quantile(lanes, q, method, skip_nan)
    if keepdims:
        r = ops.reshape(r, _shape(q) + _kept_shape(_shape(a), axes))
    return r


def _lanes_quantile(lanes, q, method, skip_nan):
    dt = _dtype(q)  # a float dtype (the data's own for a float quantile)
    shape, n = _shape(lanes)[:-1], _shape(lanes)[-1]
    if n == 0:
        return np.full(_shape(q) + shape, np.nan, dt)
    s = ops.sort(lanes, len(shape))
    count = np.full(shape, float(n), dt)
    if _dtype(lanes).kind != "f":
        return _order_statistic(s, q, count, method)
    nan_lane = _isnan(ops.slice(s, (0,) * len(shape) + (n - 1,), (1,) * (len(shape) + 1),
                                shape + (1,)))
    nan_lane = ops.reshape(nan_lane, shape)
    if skip_nan:
        count = _sum(ops.convert(ops.logical_not(_isnan(lanes)), dt), axis=-1)
        nan_lane = ops.eq(count, np.asarray(0.0, dt))
    r = _order_statistic(s, q, count, method)
    return where(ops.broadcast(nan_lane, _shape(r)), np.asarray(np.nan, _dtype(r)), r)


def quantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
             keepdims=False, *, weights=None, interpolation=None):
    """The `q`-th quantiles (q in [0, 1], static or traced) along `axis`: shape
    q.shape + reduced shape; a lane with a NaN gives NaN.  Differentiable in `a` and `q`.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.quantile(np.array([4.0, 1.0, 3.0, 2.0]), [0.0, 0.5, 1.0]).tolist()
    [1.0, 2.5, 4.0]
    """
    _reject("quantile", out=out, weights=weights, interpolation=interpolation)
    return _quantile(a, q, axis, method, keepdims, skip_nan=False)


def percentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
               keepdims=False, *, weights=None, interpolation=None):
    """The `q`-th percentiles (q in [0, 100]) along `axis`."""
    _reject("percentile", out=out, weights=weights, interpolation=interpolation)
    return _quantile(a, q, axis, method, keepdims, skip_nan=False, scale=100)


def median(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """The median along `axis` (the mean of the two middle values for even counts)."""
    _reject("median", out=out)
    return _quantile(a, 0.5, axis, _MEDIAN, keepdims, skip_nan=False)


def nanquantile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                keepdims=False, *, weights=None, interpolation=None):
    """`quantile` of the non-NaN entries (NaN for a lane of NaNs only)."""
    _reject("nanquantile", out=out, weights=weights, interpolation=interpolation)
    return _quantile(a, q, axis, method, keepdims, skip_nan=True)


def nanpercentile(a, q, axis=None, out=None, overwrite_input=False, method="linear",
                  keepdims=False, *, weights=None, interpolation=None):
    """`percentile` of the non-NaN entries."""
    _reject("nanpercentile", out=out, weights=weights, interpolation=interpolation)
    return _quantile(a, q, axis, method, keepdims, skip_nan=True, scale=100)


def nanmedian(a, axis=None, out=None, overwrite_input=False, keepdims=False):
    """`median` of the non-NaN entries."""
    _reject("nanmedian", out=out)
    return _quantile(a, 0.5, axis, _MEDIAN, keepdims, skip_nan=True)


# ---- cumulative -------------------------------------------------------------------------------------

def _cumulative(name, prim, fill=None):
    def f(a, axis=None, dtype=None, out=None):
        _reject(name, out=out)
        a = _operand(a) if fill is None else _without_nan(a, fill)
        dt = dtypes.check(dtype) if dtype is not None else dtypes.sum_result(_dtype(a))
        if dt == np.bool_:  # NumPy's bool add and multiply are `or` and `and`: 0/1 in int64
            a = _convert(_convert(a, dt), dtypes.INT64)
            a, ax = _along(a, axis, zero_d=True)
            return ops.ne(getattr(ops, prim)(a, ax), np.zeros((), dtypes.INT64))
        a, ax = _along(_convert(a, dt), axis, zero_d=True)
        return getattr(ops, prim)(a, ax)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = (f"Running {prim[3:]} along `axis` (None: of the flattened array)"
                 + ("" if fill is None else f", NaNs counted as {fill}") + "; bool and int "
                 "inputs accumulate in int64, as in NumPy.")
    return f


cumsum = _cumulative("cumsum", "cumsum")
cumprod = _cumulative("cumprod", "cumprod")
nancumsum = _cumulative("nancumsum", "cumsum", 0)
nancumprod = _cumulative("nancumprod", "cumprod", 1)


def _cumulative_2(name, running, identity):
    def f(x, /, *, axis=None, dtype=None, out=None, include_initial=False):
        x = _operand(x)
        if axis is None and _ndim(x) > 1:
            raise ValueError(f"{name}: axis must be given for arrays of more than one dimension")
        r = running(x, axis=0 if axis is None else axis, dtype=dtype, out=out)
        if not include_initial:
            return r
        ax = _norm_axis(0 if axis is None else axis, _ndim(r))
        first = tuple(1 if i == ax else d for i, d in enumerate(_shape(r)))
        return ops.concatenate([np.full(first, identity, _dtype(r)), r], ax)
    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"NumPy 2's `{name}`: `{running.__name__}` with `include_initial`."
    return f


cumulative_sum = _cumulative_2("cumulative_sum", cumsum, 0)
cumulative_prod = _cumulative_2("cumulative_prod", cumprod, 1)


# ---- counting: bincount, histogram, unique -----------------------------------------------------------

def _count_into(idx, length, updates):
    """Sum of `updates` per index in [0, length); other indices are dropped (a spare slot)."""
    idx = ops.where(ops.logical_or(ops.lt(idx, np.int64(0)), ops.ge(idx, np.int64(length))),
                    np.int64(length), idx)
    total = ops.scatter_add(np.zeros(length + 1, _dtype(updates)), updates, idx)
    return ops.slice(total, (0,), (1,), (length,))


def bincount(x, weights=None, minlength=0, *, length=None):
    """Occurrences (or summed `weights`) of each non-negative int; traced `x` needs a
    static `length` (as JAX), concrete `x` gives NumPy's length.  Differentiable in weights."""
    x = _operand(x)
    if _ndim(x) != 1 or _dtype(x).kind not in "iub":
        _fail("bincount", "x must be a 1-D array of non-negative ints", [x], ValueError)
    if length is None:
        length = _bincount_length(x, minlength)
    x = _convert(x, INDEX)
    if weights is None:
        return _count_into(x, length, np.ones(_shape(x), INDEX))
    w = _operand(weights)
    # NumPy sums weights in float64 whatever their dtype (float32 included).
    return _count_into(x, length, _convert(w, np.dtype(np.float64)))


def _bincount_length(x, minlength) -> int:
    """NumPy's length: from the values of a concrete array or eager tensor; a traced `x`
    has none, so it needs `length=`."""
    data = concrete_value(x)
    if data is None:
        _fail("bincount", "a traced input has no values to size the result by: call "
              "tracegrad.numpy.bincount(x, weights, length=n) with a static length n (NumPy's "
              "np.bincount has no length argument)", [x], ValueError)
    if data.size and np.min(data) < 0:
        raise ValueError("'list' argument must have no negative elements")
    return max(int(np.max(data)) + 1 if data.size else 0, minlength)


def _linspace(lo, hi, num, dt):
    """np.linspace(lo, hi, num) in float64, cast to `dt`; lo and hi may be traced."""
    lo64, hi64 = (_convert(_operand(v), np.dtype(np.float64)) for v in (lo, hi))
    step = ops.div(ops.sub(hi64, lo64), np.float64(num - 1))
    ramp = np.arange(num - 1, dtype=np.float64)
    inner = ops.add(ops.mul(ops.broadcast(step, (num - 1,)), ramp), ops.broadcast(lo64, (num - 1,)))
    return _convert(ops.concatenate([inner, ops.reshape(hi64, (1,))], 0), dt)


def _estimated_edges(op, a, bins, range_, weights):
    """NumPy's edges for a bin estimator ("auto", "fd", ...): from a's values, so only for
    concrete data (arrays, eager tensors)."""
    data = concrete_value(a)
    if data is None:
        _fail(op, f"bins={bins!r} (an estimator of the bin count) needs concrete data, not "
              "a traced value; pass an int or the edges", [a], NotImplementedError)
    if weights is not None:
        raise TypeError("Automated estimation of the number of bins is not supported for "
                        "weighted data")
    return np.histogram_bin_edges(data, bins, range_)


def _bin_edges(a, bins, range_):
    """NumPy's bin edges: explicit, or `bins` equal bins over `range_` (else a's range,
    widened by 0.5 each way when empty)."""
    if not isinstance(bins, (int, np.integer)):
        edges = _operand(bins)
        if _ndim(edges) != 1:
            _fail("histogram", "bins must be an int or a 1-D array", [edges], ValueError)
        if not is_boxed(edges) and np.any(np.diff(edges) < 0):
            raise ValueError("bins must increase monotonically, when an array")
        return edges
    if bins < 1:
        raise ValueError("`bins` must be positive, when an integer")
    dt = dtypes.float_result(_dtype(a))
    if range_ is None and not is_boxed(a):
        return np.histogram_bin_edges(np.asarray(a), bins)
    if range_ is None and 0 in _shape(a):
        range_ = (0.0, 1.0)  # NumPy's range for no data
    if range_ is not None:
        lo, hi = float(range_[0]), float(range_[1])
        if lo > hi:
            raise ValueError("max must be larger than min in range parameter.")
        lo, hi = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
        return np.linspace(lo, hi, bins + 1, dtype=dt)
    lo, hi = (ops.stop_gradient(ops.bind(p, a, axes=tuple(range(_ndim(a)))))
              for p in ("reduce_min", "reduce_max"))
    _check_finite_range(lo, hi)
    same = ops.eq(lo, hi)
    half = np.asarray(0.5, _dtype(a))
    lo, hi = ops.where(same, ops.sub(lo, half), lo), ops.where(same, ops.add(hi, half), hi)
    return _linspace(lo, hi, bins + 1, dt)


def _check_finite_range(lo, hi):
    """NumPy's ValueError for an autodetected range that is not finite (NaN or inf in the
    data), where the data are known (an eager tensor); traced data give NaN edges."""
    known = [concrete_value(v) for v in (lo, hi)]
    if all(k is not None for k in known) and not np.all(np.isfinite(known)):
        raise ValueError(f"autodetected range of [{known[0]}, {known[1]}] is not finite")


def histogram(a, bins=10, range=None, density=None, weights=None):
    """(counts, edges) as np.histogram; the bins are static (an int or edges), the
    counts have no gradient, weighted sums do (in the weights).  A string `bins` (NumPy's
    estimators, "auto" ...) needs concrete values (arrays, eager tensors)."""
    a, _ = _along(a, None)
    if _dtype(a) == np.bool_:  # NumPy bins bools as the numbers 0 and 1
        a = ops.convert(a, INDEX)
    edges = _estimated_edges("histogram", a, bins, range, weights) if isinstance(bins, str) \
        else _bin_edges(a, bins, range)
    n = _shape(edges)[0] - 1
    idx = ops.sub(searchsorted(edges, a, "right"), np.int64(1))
    last = ops.slice(_operand(edges), (n,), (1,), (1,))
    at_end = ops.eq(_convert(a, _dtype(edges)), ops.broadcast(ops.reshape(last, ()), _shape(a)))
    idx = ops.where(at_end, np.int64(n - 1), idx)
    if weights is None:
        counts = _count_into(idx, n, np.ones(_shape(a), INDEX))
    else:
        w = ops.reshape(_operand(weights), _shape(a))
        counts = _count_into(idx, n, w)
    if density:
        widths = ops.sub(ops.slice(_operand(edges), (1,), (1,), (n,)),
                         ops.slice(_operand(edges), (0,), (1,), (n,)))
        counts = divide(divide(counts, _sum(counts)), widths)
    return counts, edges


def _first_of_runs(s, equal_nan):
    """Bool: sorted entry i differs from entry i - 1 (NaNs equal when `equal_nan`)."""
    n = _shape(s)[0]
    if n == 0:
        return np.zeros(0, bool)
    cur, prev = ops.slice(s, (1,), (1,), (n - 1,)), ops.slice(s, (0,), (1,), (n - 1,))
    new = ops.ne(cur, prev)
    if equal_nan and dtypes.is_float(_dtype(s)):
        new = ops.logical_and(new, ops.logical_not(ops.logical_and(_isnan(cur), _isnan(prev))))
    return ops.concatenate([np.ones(1, bool), new], 0)


def _scatter_first(size, values, slot, fill):
    """out[k] = the first of `values` whose slot is k (fill where none): slots beyond
    `size` go to a spare entry; reversed, so that the first write is the last."""
    n = _shape(values)[0]
    slot = ops.min(slot, np.int64(size))
    rev = (lambda v: ops.slice(v, (n - 1,), (-1,), (n,))) if n else (lambda v: v)
    base = ops.broadcast(ops.reshape(_convert(fill, _dtype(values)), (1,)), (size + 1,))
    out = ops.scatter(base, rev(values), rev(slot))
    return ops.slice(out, (0,), (1,), (size,))


def _unique_traced(x, size, fill_value, equal_nan, want):
    perm = ops.argsort(x, 0)
    s = ops.take_along(x, perm, 0)
    slot = ops.sub(ops.cumsum(ops.convert(_first_of_runs(s, equal_nan), INDEX), 0), np.int64(1))
    fill = ops.slice(s, (0,), (1,), (1,)) if fill_value is None else _operand(fill_value)
    out = [_scatter_first(size, s, slot, fill)]
    if want[0]:
        out.append(_scatter_first(size, perm, slot, np.int64(0)))
    if want[1]:
        out.append(ops.take_along(slot, ops.argsort(perm, 0), 0))
    if want[2]:
        out.append(_count_into(slot, size, np.ones(_shape(x), INDEX)))
    return out


def unique(ar, return_index=False, return_inverse=False, return_counts=False, axis=None, *,
           equal_nan=True, size=None, fill_value=None):
    """The sorted unique values (and first indices, inverse, counts).  Concrete numpy
    input gives np.unique (`axis` too); tensors and traced values need a static `size`
    (as JAX), and take no `axis`:
    the result is padded with `fill_value` (default: the smallest value) or cut."""
    want = (return_index, return_inverse, return_counts)
    if not is_boxed(ar) and symbolic_value(ar) is None and size is None:
        return np.unique(np.asarray(ar), *want, axis=axis, equal_nan=equal_nan)
    _reject("unique", axis=axis)
    if size is None:
        _fail("unique", "tensors and traced values need a static size= (the number of "
              "unique values depends on the data)", [_operand(ar)], ValueError)
    x, _ = _along(ar, None)
    if _shape(x)[0] == 0:
        _fail("unique", "size= needs a non-empty array", [x], ValueError)
    out = _unique_traced(x, int(size), fill_value, equal_nan, want)
    if return_inverse:
        k = 1 + bool(return_index)
        out[k] = ops.reshape(out[k], _shape(_operand(ar)))
    return out[0] if len(out) == 1 else tuple(out)


__all__ = ["sort", "argsort", "partition", "argpartition", "lexsort", "argmax", "argmin",
           "nanargmax", "nanargmin", "searchsorted", "digitize", "quantile", "percentile",
           "median", "nanquantile", "nanpercentile", "nanmedian", "cumsum", "cumprod",
           "nancumsum", "nancumprod", "cumulative_sum", "cumulative_prod", "bincount",
           "histogram", "unique"]

NUMPY = {np.sort: sort, np.argsort: argsort, np.partition: partition,
         np.argpartition: argpartition, np.lexsort: lexsort, np.argmax: argmax,
         np.argmin: argmin, np.nanargmax: nanargmax, np.nanargmin: nanargmin,
         np.searchsorted: searchsorted, np.digitize: digitize, np.quantile: quantile,
         np.percentile: percentile, np.median: median, np.nanquantile: nanquantile,
         np.nanpercentile: nanpercentile, np.nanmedian: nanmedian, np.cumsum: cumsum,
         np.cumprod: cumprod, np.nancumsum: nancumsum, np.nancumprod: nancumprod,
         np.cumulative_sum: cumulative_sum, np.cumulative_prod: cumulative_prod,
         np.bincount: bincount, np.histogram: histogram, np.unique: unique}
