"""Contractions: einsum, tensordot, kron, cross, vecdot, lowered to transpose, reshape,
`dot` (batched matrix products, BLAS when compiled), `mul` and `reduce_sum`.

einsum works on labels (ints): every operand first loses its repeated labels
(diagonals, one strided slice each), its size-1 broadcast dimensions and the
labels no one else needs (summed); operands are then contracted pairwise, the
pair with the smallest result first (`optimize=False`: left to right), each
pair as one `dot` of (batch, free, contracted) layouts, or one broadcast `mul`
when nothing is contracted.
"""
from __future__ import annotations

import builtins
import itertools
import operator
import string

import numpy as np

from tracegrad.ir import ops

from .. import dtypes
from ._core import _convert, _dtype, _fail, _lift, _ndim, _norm_axis, _operand, _reject, _shape
from .elementwise import multiply, subtract
from .products import _batched_dot, matmul
from .shapes import moveaxis, stack, swapaxes
from .structure import diagonal

_LETTERS = string.ascii_letters

# ---- einsum: parsing -------------------------------------------------------------------------


def _parse_term(term: str, ndim: int, ellipsis: tuple, op: str):
    """Labels of one operand's term (letters -> their index in _LETTERS; '...' -> `ellipsis`
    labels, right-aligned)."""
    if term.count("...") > 1 or "." in term.replace("...", ""):
        raise ValueError(f"einsum: invalid ellipsis in {term!r}")
    head, dots, tail = term.partition("...")
    for ch in head + tail:
        if ch not in _LETTERS:
            raise ValueError(f"einsum: invalid subscript {ch!r} in {op!r}")
    named = [_LETTERS.index(c) for c in head], [_LETTERS.index(c) for c in tail]
    if not dots:
        if len(named[0]) != ndim:
            raise ValueError(f"einsum: subscripts {term!r} name {len(named[0])} dimensions of an "
                             f"operand with {ndim}")
        return named[0]
    k = ndim - len(named[0]) - len(named[1])
    if k < 0:
        raise ValueError(f"einsum: subscripts {term!r} name more dimensions than its operand has")
    return named[0] + list(ellipsis[len(ellipsis) - k:] if k else ()) + named[1]


def _parse(subscripts: str, ndims):
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, rhs = subscripts.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum: {len(terms)} terms in {subscripts!r} for {len(ndims)} operands")
    n_ell = builtins.max([nd - len(t.replace("...", "")) for t, nd in zip(terms, ndims)
                          if "..." in t], default=0)
    ellipsis = tuple(range(len(_LETTERS), len(_LETTERS) + n_ell))
    ins = [_parse_term(t, nd, ellipsis, subscripts) for t, nd in zip(terms, ndims)]
    if not arrow:
        counts = {}
        for lab in itertools.chain(*ins):
            counts[lab] = counts.get(lab, 0) + 1
        named = sorted(lab for lab, c in counts.items() if c == 1 and lab < len(_LETTERS))
        return ins, [e for e in ellipsis if e in counts] + named
    if "..." in rhs:
        out = _parse_term(rhs, len(rhs) - 3 + n_ell, ellipsis, subscripts)
    elif n_ell:
        raise ValueError("einsum: the inputs have broadcast ('...') dimensions, so the output "
                         f"subscripts of {subscripts!r} need a '...' too")
    else:
        out = [_LETTERS.index(c) if c in _LETTERS else _bad_output(c, subscripts) for c in rhs]
    _check_output(out, ins, subscripts)
    return ins, out


def _bad_output(ch, op):
    raise ValueError(f"einsum: invalid subscript {ch!r} in the output of {op!r}")


def _check_output(out, ins, op):
    if len(set(out)) != len(out):
        raise ValueError(f"einsum: output subscript appears more than once in {op!r}")
    seen = set(itertools.chain(*ins))
    for lab in out:
        if lab not in seen:
            raise ValueError(f"einsum: output subscript {_name(lab)!r} does not appear in the "
                             f"inputs of {op!r}")


def _name(lab):
    return _LETTERS[lab] if lab < len(_LETTERS) else "..."


def _sublist_term(sub):
    parts = []
    for s in sub:
        if s is Ellipsis:
            parts.append("...")
        else:
            i = operator.index(s)
            if not 0 <= i < len(_LETTERS):
                raise ValueError(f"einsum: sublist label {i} out of range [0, {len(_LETTERS)})")
            parts.append(_LETTERS[i])
    return "".join(parts)


def _interleaved(args):
    """einsum(op0, sub0, op1, sub1, ..., [subout]) as (subscripts, operands)."""
    ops_, terms = list(args[0::2][:len(args) // 2]), [_sublist_term(s) for s in args[1::2]]
    out = "->" + _sublist_term(args[-1]) if len(args) % 2 else ""
    return ",".join(terms) + out, ops_


# ---- einsum: lowering --------------------------------------------------------------------------

def _label_sizes(xs, labels, op):
    """Each label's size; a size-1 dimension broadcasts against the label's other sizes."""
    seen = {}
    for x, labs in zip(xs, labels):
        for lab, d in zip(labs, _shape(x)):
            seen.setdefault(lab, set()).add(d)
    sizes = {}
    for lab, ds in seen.items():
        big = ds - {1}
        if len(big) > 1:
            _fail("einsum", f"label {_name(lab)!r} has sizes {sorted(ds)} in {op!r}", xs,
                  ValueError)
        sizes[lab] = big.pop() if big else 1
    return sizes


def _diagonals(x, labs):
    """Repeated labels of one operand become one axis (its diagonal)."""
    labs = list(labs)
    while len(set(labs)) != len(labs):
        lab = next(lab for lab in labs if labs.count(lab) > 1)
        i = labs.index(lab)
        j = labs.index(lab, i + 1)
        if _shape(x)[i] != _shape(x)[j]:
            _fail("einsum", f"dimensions of the repeated label {_name(lab)!r} differ "
                  f"({_shape(x)[i]} != {_shape(x)[j]})", [x], ValueError)
        x = diagonal(x, 0, i, j)
        labs = [la for k, la in enumerate(labs) if k not in (i, j)] + [lab]
    return x, labs


def _drop_broadcast(x, labs, sizes):
    """Size-1 axes of labels that are larger elsewhere: the operand is constant along them."""
    keep = [k for k, lab in enumerate(labs) if not (_shape(x)[k] == 1 and sizes[lab] != 1)]
    if len(keep) == len(labs):
        return x, labs
    return ops.reshape(x, tuple(_shape(x)[k] for k in keep)), [labs[k] for k in keep]


def _sum_out(x, labs, needed):
    axes = tuple(k for k, lab in enumerate(labs) if lab not in needed)
    if not axes:
        return x, labs
    return ops.reduce_sum(x, axes), [lab for lab in labs if lab in needed]


def _permute(x, labs, order):
    return ops.transpose(x, tuple(labs.index(lab) for lab in order))


def _size(labs, sizes):
    return int(np.prod([sizes[lab] for lab in labs], dtype=np.int64))


def _contract_pair(a, la, b, lb, keep, sizes):
    """Contract two operands, keeping the labels in `keep` (one dot or one mul)."""
    a, la = _sum_out(a, la, set(lb) | keep)
    b, lb = _sum_out(b, lb, set(la) | keep)
    batch = [lab for lab in la if lab in lb and lab in keep]
    summed = [lab for lab in la if lab in lb and lab not in keep]
    fa = [lab for lab in la if lab not in lb]
    fb = [lab for lab in lb if lab not in la]
    out_labs = batch + fa + fb
    if not summed:
        ea = ops.reshape(_permute(a, la, batch + fa), tuple(sizes[x] for x in batch + fa)
                         + (1,) * len(fb))
        eb = ops.reshape(_permute(b, lb, batch + fb), tuple(sizes[x] for x in batch)
                         + (1,) * len(fa) + tuple(sizes[x] for x in fb))
        full = tuple(sizes[x] for x in out_labs)
        return ops.mul(ops.broadcast(ea, full), ops.broadcast(eb, full)), out_labs
    nb, m, k, n = (_size(s, sizes) for s in (batch, fa, summed, fb))
    a3 = ops.reshape(_permute(a, la, batch + fa + summed), (nb, m, k))
    b3 = ops.reshape(_permute(b, lb, batch + summed + fb), (nb, k, n))
    r = _batched_dot(a3, b3)
    return ops.reshape(r, tuple(sizes[x] for x in out_labs)), out_labs


def _pick_pair(terms, out, sizes, order):
    """The next pair to contract: the smallest intermediate (True), the first two
    (False), or the next step of an explicit path (['einsum_path', (i, j), ...])."""
    if order is False:
        return 0, 1
    if isinstance(order, list):
        step = tuple(sorted(order.pop(0)))
        if len(step) != 2 or not 0 <= step[0] < step[1] < len(terms):
            raise ValueError(f"einsum: path step {step} must name two of the {len(terms)} "
                             "operands left")
        return step
    best = None
    for i, j in itertools.combinations(range(len(terms)), 2):
        keep = _kept(terms, i, j, out)
        labs = (set(terms[i]) | set(terms[j])) & keep
        cost = _size(labs, sizes)
        if best is None or cost < best[0]:
            best = (cost, i, j)
    return best[1], best[2]


def _kept(terms, i, j, out):
    """Labels still needed after contracting terms i and j: the output's and the others'."""
    others = [t for k, t in enumerate(terms) if k not in (i, j)]
    return set(out).union(*others) if others else set(out)


def _contract_all(xs, labels, out, sizes, order):
    xs, labels = list(xs), [list(lab) for lab in labels]
    while len(xs) > 1:
        i, j = _pick_pair(labels, out, sizes, order)
        r, lr = _contract_pair(xs[i], labels[i], xs[j], labels[j], _kept(labels, i, j, out),
                               sizes)
        xs = [x for k, x in enumerate(xs) if k not in (i, j)] + [r]
        labels = [lab for k, lab in enumerate(labels) if k not in (i, j)] + [lr]
    return xs[0], labels[0]


def _finish(x, labs, out, sizes):
    x, labs = _sum_out(x, labs, set(out))
    present = [lab for lab in out if lab in labs]
    x = _permute(x, labs, present)
    shaped = ops.reshape(x, tuple(sizes[lab] if lab in labs else 1 for lab in out))
    return ops.broadcast(shaped, tuple(sizes[lab] for lab in out))


def einsum(*operands, out=None, optimize="greedy", dtype=None, casting="safe",
           precision=None, preferred_element_type=None):
    """Einstein summation: any subscripts (implicit or explicit output, ellipsis, repeated
    labels within an operand, labels summed away), and the interleaved sublist form.

    >>> import numpy as np
    >>> import tracegrad.numpy as tnp
    >>> tnp.einsum("ij,jk->ik", np.eye(2), np.arange(4.0).reshape(2, 2)).tolist()
    [[0.0, 1.0], [2.0, 3.0]]
    """
    _reject("einsum", out=out)
    if not operands:
        raise ValueError("einsum: no subscripts given")
    if isinstance(operands[0], str):
        subscripts, xs = operands[0], list(operands[1:])
    else:
        subscripts, xs = _interleaved(operands)
    dt = dtypes.check(dtype if dtype is not None else preferred_element_type) \
        if (dtype is not None or preferred_element_type is not None) else dtypes.result_type(*xs)
    xs = [_lift(x, dt) for x in xs]
    labels, out_labs = _parse(subscripts, [_ndim(x) for x in xs])
    return _einsum(xs, labels, out_labs, dt, _order(optimize, len(xs)), subscripts)


def _order(optimize, n):
    """False (left to right), True (order), or the pairwise steps of an explicit path."""
    if isinstance(optimize, (list, tuple)) and optimize and optimize[0] == "einsum_path":
        steps = [tuple(s) for s in optimize[1:]]
        if any(len(s) == 1 for s in steps):  # a single-operand step: nothing to contract
            steps = [s for s in steps if len(s) != 1]
        if any(len(s) != 2 for s in steps) or len(steps) != builtins.max(n - 1, 0):
            raise ValueError("einsum: an explicit path must contract pairs, down to one "
                             "operand (einsum_path gives one)")
        return steps
    return optimize is not False


def _einsum(xs, labels, out_labs, dt, order, subscripts):
    if dt == dtypes.BOOL:
        r = _einsum([_convert(x, dtypes.INT64) for x in xs], labels, out_labs, dtypes.INT64,
                    order, subscripts)
        return ops.ne(r, np.zeros((), dtypes.INT64))
    sizes = _label_sizes(xs, labels, subscripts)
    prepared = []
    for i, (x, labs) in enumerate(zip(xs, labels)):
        x, labs = _diagonals(x, labs)
        x, labs = _drop_broadcast(x, labs, sizes)
        others = set(out_labs).union(*(labels[:i] + labels[i + 1:]))
        prepared.append(_sum_out(x, labs, others))
    x, labs = _contract_all([p[0] for p in prepared], [p[1] for p in prepared], out_labs, sizes,
                            order)
    return _finish(x, labs, out_labs, sizes)


def einsum_path(subscripts, *operands, optimize="greedy", einsum_call=False):
    """NumPy's contraction path for operands of these shapes (the path is computed from
    shapes only; einsum itself contracts greedily by intermediate size)."""
    stand_ins = [np.broadcast_to(np.zeros((), _dtype(_operand(x))), _shape(_operand(x)))
                 for x in operands]
    return np.einsum_path(subscripts, *stand_ins, optimize=optimize)


# ---- tensordot, kron, cross, vecdot ----------------------------------------------------------

def _tensordot_axes(axes, na, nb):
    if isinstance(axes, (int, np.integer)):
        n = operator.index(axes)
        if n < 0 or n > builtins.min(na, nb):
            raise ValueError(f"tensordot: axes={n} out of range for {na}-d and {nb}-d arrays")
        return list(range(na - n, na)), list(range(n))
    try:
        xa, xb = axes
    except (TypeError, ValueError):
        raise ValueError("tensordot: axes must be an int or a pair of axis sequences") from None
    xa = [xa] if isinstance(xa, (int, np.integer)) else list(xa)
    xb = [xb] if isinstance(xb, (int, np.integer)) else list(xb)
    if len(xa) != len(xb):
        raise ValueError("tensordot: shape-mismatch for sum (axes of unequal length)")
    return [_norm_axis(x, na) for x in xa], [_norm_axis(x, nb) for x in xb]


def tensordot(a, b, axes=2):
    """Sum products over the given axes of `a` and `b` (one matrix product)."""
    dt = dtypes.result_type(a, b)
    a, b = _lift(a, dt), _lift(b, dt)
    sa, sb = _shape(a), _shape(b)
    xa, xb = _tensordot_axes(axes, len(sa), len(sb))
    if any(sa[i] != sb[j] for i, j in zip(xa, xb)):
        _fail("tensordot", "shape-mismatch for sum", [a, b], ValueError)
    fa = [i for i in range(len(sa)) if i not in xa]
    fb = [j for j in range(len(sb)) if j not in xb]
    m, k = _size(fa, dict(enumerate(sa))), _size(xa, dict(enumerate(sa)))
    n = _size(fb, dict(enumerate(sb)))
    a2 = ops.reshape(ops.transpose(a, fa + xa), (m, k))
    b2 = ops.reshape(ops.transpose(b, xb + fb), (k, n))
    return ops.reshape(matmul(a2, b2), tuple(sa[i] for i in fa) + tuple(sb[j] for j in fb))


def kron(a, b):
    """Kronecker product: blocks a[i] * b (one broadcast multiply and a reshape)."""
    dt = dtypes.result_type(a, b)
    a, b = _lift(a, dt), _lift(b, dt)
    n = builtins.max(_ndim(a), _ndim(b))
    sa = (1,) * (n - _ndim(a)) + _shape(a)
    sb = (1,) * (n - _ndim(b)) + _shape(b)
    ea = ops.reshape(a, tuple(x for d in sa for x in (d, 1)))
    eb = ops.reshape(b, tuple(x for d in sb for x in (1, d)))
    return ops.reshape(multiply(ea, eb), tuple(x * y for x, y in zip(sa, sb)))


def _component(v, i):
    shp = _shape(v)
    part = ops.slice(v, (0,) * (len(shp) - 1) + (i,), (1,) * len(shp), shp[:-1] + (1,))
    return ops.reshape(part, shp[:-1])


def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 2- or 3-vectors along the given axes (broadcasting the others)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    dt = dtypes.result_type(a, b)
    a = moveaxis(_lift(a, dt), axisa, -1)
    b = moveaxis(_lift(b, dt), axisb, -1)
    da, db = _shape(a)[-1], _shape(b)[-1]
    if da not in (2, 3) or db not in (2, 3):
        _fail("cross", "incompatible dimensions for cross product (dimension must be 2 or 3)",
              [a, b], ValueError)
    ca = [_component(a, i) for i in range(da)]
    cb = [_component(b, i) for i in range(db)]
    z = multiply(ca[0], cb[1]) - multiply(ca[1], cb[0])
    if da == 2 and db == 2:
        return z
    a2 = ca[2] if da == 3 else None
    b2 = cb[2] if db == 3 else None
    x = _term(ca[1], b2) if a2 is None else subtract(_term(ca[1], b2), multiply(a2, cb[1]))
    y = _neg_term(ca[0], b2) if a2 is None else subtract(multiply(a2, cb[0]), _term(ca[0], b2))
    parts = _broadcast_all([x, y, z])
    r = stack(parts, axis=-1)
    return moveaxis(r, -1, _norm_axis(axisc, _ndim(r)))


def _term(u, v):
    return multiply(u, v) if v is not None else multiply(u, 0)


def _neg_term(u, v):
    return subtract(0, multiply(u, v)) if v is not None else multiply(u, 0)


def _broadcast_all(xs):
    shape = np.broadcast_shapes(*(_shape(x) for x in xs))
    return [ops.broadcast(x, shape) for x in xs]


def vecdot(x1, x2, /, *, axis=-1):
    """Dot product of vectors along `axis`, the other axes broadcast (NumPy's dtype)."""
    dt = dtypes.result_type(x1, x2)
    p = multiply(_lift(x1, dt), _lift(x2, dt))
    ax = _norm_axis(axis, _ndim(p))
    r = ops.reduce_sum(_convert(p, dtypes.INT64) if dt == dtypes.BOOL else p, (ax,))
    return ops.ne(r, np.zeros((), dtypes.INT64)) if dt == dtypes.BOOL else r


def matrix_transpose(x, /):
    x = _operand(x)
    if _ndim(x) < 2:
        _fail("matrix_transpose", "input array must be at least 2-dimensional", [x], ValueError)
    return swapaxes(x, -1, -2)


def matvec(x1, x2, /):
    """Matrix-vector products over broadcast batch dimensions: (..., m, n) @ (..., n)."""
    r = matmul(x1, _expand_last(x2))
    return ops.reshape(r, _shape(r)[:-1])


def vecmat(x1, x2, /):
    """Vector-matrix products over broadcast batch dimensions: (..., n) @ (..., n, m)."""
    x1 = _operand(x1)
    r = matmul(ops.reshape(x1, _shape(x1)[:-1] + (1,) + _shape(x1)[-1:]), x2)
    return ops.reshape(r, _shape(r)[:-2] + _shape(r)[-1:])


def _expand_last(x):
    x = _operand(x)
    return ops.reshape(x, _shape(x) + (1,))


# ---- convolve, correlate ------------------------------------------------------------------

_MODES = {"valid": lambda m: (0, 0), "same": lambda m: (m // 2, m - m // 2 - 1),
          "full": lambda m: (m - 1, m - 1)}


# Up to this many taps a correlation is a sum of shifted slices, which fusion makes one
# pass over `a` (a 31-tap filter over 100k elements: 0.13 ms); longer ones are one
# `correlate` extern kernel (ir/correlate.py: numpy's direct loop, and derivatives that
# are correlations again), where each tap would be a term of one long kernel.
SHIFTED_TAPS = 64


def _correlate_long_short(a, v, mode):
    """NumPy's correlate for len(a) >= len(v): out[k] = sum_j a[k + j - left] * v[j]: the
    sum of `v[j]` times `a` shifted by j (short `v`), or the `correlate` primitive on the
    zero-padded `a`."""
    n, m = _shape(a)[0], _shape(v)[0]
    left, right = _MODES[mode](m)
    ap = ops.pad(a, (left,), (1,), (n + left + right,)) if left or right else a
    length = n + left + right - m + 1
    if m > SHIFTED_TAPS:
        return ops.correlate(ap, v)
    out = None
    for j in range(m):
        term = ops.mul(ops.slice(ap, (j,), (1,), (length,)),
                       ops.reshape(ops.slice(v, (j,), (1,), (1,)), ()))
        out = term if out is None else ops.add(out, term)
    return out


def _vectors(op, a, v, mode):
    if mode not in _MODES:
        raise ValueError(f"{op}: mode must be one of 'valid', 'same', 'full', got {mode!r}")
    dt = dtypes.result_type(a, v)
    a, v = _lift(a, dt), _lift(v, dt)
    if op == "convolve":  # a 0-d operand is a sequence of one (NumPy's convolve; not correlate)
        a, v = (x if _ndim(x) else ops.reshape(x, (1,)) for x in (a, v))
    if _ndim(a) != 1 or _ndim(v) != 1:
        _fail(op, "both operands must be one-dimensional", [a, v], ValueError)
    if not _shape(a)[0] or not _shape(v)[0]:
        _fail(op, "operands cannot be empty", [a, v], ValueError)
    return a, v


def _reverse(x):
    n = _shape(x)[0]
    return ops.slice(x, (n - 1,), (-1,), (n,)) if n > 1 else x


def correlate(a, v, mode="valid"):
    """Cross-correlation of two 1-D sequences (NumPy's modes, lengths and ordering)."""
    a, v = _vectors("correlate", a, v, mode)
    if _shape(a)[0] >= _shape(v)[0]:
        return _correlate_long_short(a, v, mode)
    return _reverse(_correlate_long_short(v, a, mode))


def convolve(a, v, mode="full"):
    """Discrete linear convolution of two 1-D sequences: correlate with `v` reversed."""
    a, v = _vectors("convolve", a, v, mode)
    if _shape(v)[0] > _shape(a)[0]:
        a, v = v, a
    return _correlate_long_short(a, _reverse(v), mode)


__all__ = ["convolve", "correlate", "einsum", "einsum_path", "tensordot", "kron", "cross", "vecdot", "matrix_transpose",
           "matvec", "vecmat"]

NUMPY = {getattr(np, name): globals()[name] for name in __all__ if hasattr(np, name)}
