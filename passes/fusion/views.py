"""View algebra: where a loop kernel needs a value, as an affine map of its domain index.

A loop kernel iterates over a domain; inside it a value is needed at an
affine function of the domain index, a `View`: one row `c + sum_k a_k i_k`
per dim of the value, plus the `box` of domain indices where the value
matters.  Structural primitives only change the view of their operand:
broadcast zeroes rows, transpose permutes them, slice scales and shifts them,
reshape re-splits the flat index (None where that is not exact), pad narrows
the box (`ZERO` where the operand is never read).  The load bounds below keep
every address a kernel forms inside its buffer.

>>> v = identity_view((2, 3))
>>> transpose_view(v, (1, 0)).rows
((0, (0, 1)), (0, (1, 0)))
>>> flat_map(slice_view(v, (0, 1), (1, 2)), (2, 6))
(1, (6, 2))
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

class View(NamedTuple):
    """Value index j[d] = rows[d][0] + sum_k rows[d][1][k] * i[k], needed for i in `box`.

    Invariant: every domain dim k occurs in at most one row, and for i in `box`
    the rows give an index inside the value's shape.  (A named tuple: views key
    the expander's memo, and tuples hash and compare without Python calls.)
    """

    rows: tuple  # per value dim: (const, coefs), coefs one int per domain dim
    box: tuple  # per domain dim: (lo, hi)


class _Zero:
    """The type of `ZERO`."""

    def __repr__(self):
        return "ZERO"


ZERO = _Zero()  # a pad view result: the value is statically 0 wherever it is needed


def row_major_strides(shape) -> tuple:
    out, acc = [], 1
    for d in reversed(shape):
        out.append(acc)
        acc *= d
    return tuple(reversed(out))


def _unit(n, k) -> tuple:
    return tuple(1 if j == k else 0 for j in range(n))


@functools.lru_cache(maxsize=1024)
def identity_view(shape) -> View:
    n = len(shape)
    return View(tuple((0, _unit(n, k)) for k in range(n)), tuple((0, d) for d in shape))


def broadcast_view(view: View, x_shape) -> View:
    lead = len(view.rows) - len(x_shape)
    zero = (0, (0,) * len(view.box))
    return View(tuple(zero if d == 1 else view.rows[lead + e] for e, d in enumerate(x_shape)),
                view.box)


def transpose_view(view: View, perm) -> View:
    rows = [None] * len(perm)
    for k, p in enumerate(perm):
        rows[p] = view.rows[k]
    return View(tuple(rows), view.box)


def slice_view(view: View, starts, steps) -> View:
    return View(tuple((s + p * c, tuple(p * a for a in coefs))
                      for (c, coefs), s, p in zip(view.rows, starts, steps)), view.box)


def flat_map(view: View, shape) -> tuple:
    """(offset, strides): the row-major flat index of `shape` as an affine map of i."""
    st = row_major_strides(shape)
    offset = sum(s * c for s, (c, _) in zip(st, view.rows))
    strides = tuple(sum(s * coefs[k] for s, (_, coefs) in zip(st, view.rows))
                    for k in range(len(view.box)))
    return offset, strides


def _digit(a, sx, x_shape):
    """The x dim whose place value range [sx, sx * n) holds the flat step `a`."""
    for e, (s, n) in enumerate(zip(sx, x_shape)):
        if n > 1 and s <= a < s * n:
            return e
    return None


def reshape_view(view: View, v_shape, x_shape):
    """The view of reshape's operand, or None where it is not affine over the box.

    The flat index is base + sum f_k (i_k - lo_k).  Each domain dim must step
    by a multiple of one x dim's place value, and each x digit must stay in
    range over the whole box (no carries): then the digits are exact.
    """
    n = len(view.box)
    if any(hi <= lo for lo, hi in view.box) or math.prod(x_shape) == 0:
        return View(tuple((0, (0,) * n) for _ in x_shape), view.box)  # never evaluated
    f0, f = flat_map(view, v_shape)
    lo = [b[0] for b in view.box]
    ext = [b[1] - b[0] - 1 for b in view.box]
    base = f0 + sum(fk * lk for fk, lk in zip(f, lo))
    sx = row_major_strides(x_shape)
    groups = [[] for _ in x_shape]
    for k, fk in enumerate(f):
        if fk == 0 or ext[k] == 0:
            continue
        e = _digit(abs(fk), sx, x_shape)
        if e is None or fk % sx[e]:
            return None
        groups[e].append((k, fk // sx[e]))
    if not 0 <= base < math.prod(x_shape):
        return None
    rows = []
    for e, group in enumerate(groups):
        row = _digit_row(base // sx[e] % x_shape[e], group, lo, ext, x_shape[e], n)
        if row is None:
            return None
        rows.append(row)
    return View(tuple(rows), view.box)


def _digit_row(c, group, lo, ext, size, n):
    low = c + sum(min(0, q * ext[k]) for k, q in group)
    high = c + sum(max(0, q * ext[k]) for k, q in group)
    if low < 0 or high >= size:
        return None
    coefs = [0] * n
    for k, q in group:
        coefs[k] = q
    return (c - sum(q * lo[k] for k, q in group), tuple(coefs))


def _ceil_div(a, b):
    return -((-a) // b)


def _solve(c, a, lo, hi):
    """The half-open range of integers i with lo <= c + a*i <= hi (a != 0)."""
    if a > 0:
        return _ceil_div(lo - c, a), (hi - c) // a + 1
    return _ceil_div(c - hi, -a), (c - lo) // (-a) + 1


def _pad_row(row, start, step, nx, box):
    """x's row under pad (narrowing `box` in place), ZERO, or None (not affine)."""
    c, coefs = row
    if nx == 0:
        return ZERO
    lo_j, hi_j = sorted((start, start + (nx - 1) * step))
    moving = [k for k, a in enumerate(coefs) if a]
    if not moving:
        inside = lo_j <= c <= hi_j and (c - start) % step == 0
        return ((c - start) // step, coefs) if inside else ZERO
    if len(moving) > 1 or coefs[moving[0]] % step:
        return None
    if (c - start) % step:
        return ZERO  # the index never lands on a stored element
    k = moving[0]
    lo_i, hi_i = _solve(c, coefs[k], lo_j, hi_j)
    lo_i, hi_i = max(lo_i, box[k][0]), min(hi_i, box[k][1])
    if lo_i >= hi_i:
        return ZERO
    box[k] = (lo_i, hi_i)
    return ((c - start) // step, tuple(a // step for a in coefs))


def pad_view(view: View, starts, steps, x_shape, v_shape):
    """The view of pad's operand (with the box narrowed to where it is stored), ZERO or None."""
    box, rows = list(view.box), []
    for row, s, p, nx, nv in zip(view.rows, starts, steps, x_shape, v_shape):
        if s == 0 and p == 1 and nx == nv:
            rows.append(row)  # this dim is not padded
            continue
        out = _pad_row(row, s, p, nx, box)
        if out is None or out is ZERO:
            return out
        rows.append(out)
    return View(tuple(rows), tuple(box))


def full_bounds(box, domain):
    if all(b == (0, d) for b, d in zip(box, domain)):
        return None
    return tuple((lo, hi, 1) for lo, hi in box)


def address_bounds(box, domain, offset, strides, size):
    """Bounds enough to keep a load's address inside its buffer (its value outside the
    box does not matter): none if the whole domain stays inside, else the box's bounds
    on the dims the address moves along."""
    span = [(0, 0) if d == 0 else (min(0, s * (d - 1)), max(0, s * (d - 1)))
            for d, s in zip(domain, strides)]
    if 0 <= offset + sum(lo for lo, _ in span) and offset + sum(hi for _, hi in span) < size:
        return None
    if all(b == (0, d) or s == 0 for b, d, s in zip(box, domain, strides)):
        return None
    return tuple((lo, hi, 1) if s else (0, d, 1) for (lo, hi), d, s in zip(box, domain, strides))


def intersect_bounds(bounds, box, domain):
    """Load bounds narrowed to `box` as well (a load that yields 0 outside both)."""
    old = bounds or tuple((0, d, 1) for d in domain)
    new = tuple((max(lo, b_lo), min(hi, b_hi), 1) for (lo, hi, _), (b_lo, b_hi) in zip(old, box))
    return full_bounds([(lo, hi) for lo, hi, _ in new], domain)
