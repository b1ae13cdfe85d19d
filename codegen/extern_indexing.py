"""Native lowerings of the indexing primitives (ir/indexing.py): gather, scatter,
scatter_add, dynamic_slice and dynamic_update_slice (extern.register_native), so that
`x[idx]`, `x[idx] = v` and `xs[i]` in compiled loops pay no host callback.

Index semantics are the primitives': a negative index of an axis of length d is
wrapped to i + d, then every index (and every window start, clamped into [0, d - size])
is clamped into range, so no load or store leaves its buffer.  Operands and results
are row-major.

gather/scatter view x as (x.shape[:k] flattened, inner) with inner = prod(x.shape[k:]):
update b of B reads (or writes) the `inner` contiguous elements at the row its k index
arrays name.  scatter copies x and then writes the updates in C order of B, so the last
write to a position wins, as the numpy reference; scatter_add adds them in that order
(as np.add.at).  Kernels with a zero-length indexed axis take the host callback (the
reference's rule: reads give zeros, writes are dropped).
"""
from __future__ import annotations

import math

import numpy as np

from . import extern
from .irutil import Loop, i64
from .scalar_ops import storage_type

I64_DTYPE = np.dtype(np.int64)


def _index(b, ptr, flat, dtype, d: int):
    """The index stored at ptr[flat], as i64, wrapped (negatives) and clamped into [0, d)."""
    ty = storage_type(dtype)
    v = b.load(b.gep(ptr, [flat], inbounds=True, source_etype=ty), typ=ty)
    v = b.sext(v, i64(0).type) if ty != i64(0).type else v
    v = b.select(b.icmp_signed("<", v, i64(0)), b.add(v, i64(d)), v)
    v = b.select(b.icmp_signed("<", v, i64(0)), i64(0), v)
    return b.select(b.icmp_signed(">", v, i64(d - 1)), i64(d - 1), v)


def _copy(b, src, dst, n: int, ty, src_at=None, dst_at=None, name="copy"):
    """dst[dst_at + j] = src[src_at + j] for j < n."""
    src_at, dst_at = src_at or i64(0), dst_at or i64(0)
    with Loop(b, i64(0), i64(n), name) as j:
        v = b.load(b.gep(src, [b.add(src_at, j)], inbounds=True, source_etype=ty), typ=ty)
        b.store(v, b.gep(dst, [b.add(dst_at, j)], inbounds=True, source_etype=ty))


def _row(b, idx_ptrs, idx_dtypes, lead, bflat):
    """The flat row of x.shape[:k] that update `bflat` names."""
    row = i64(0)
    for p, dt, d in zip(idx_ptrs, idx_dtypes, lead):
        row = b.add(b.mul(row, i64(d)), _index(b, p, bflat, dt, d))
    return row


def _gather_layout(kernel, n_idx_from):
    x = kernel.in_avals[0]
    idx_avals = kernel.in_avals[n_idx_from:]
    k = len(idx_avals)
    return (x.shape[:k], math.prod(x.shape[k:]), math.prod(idx_avals[0].shape),
            [np.dtype(a.dtype) for a in idx_avals], storage_type(x.dtype))


def _emit_gather(b, call):
    lead, inner, nb, idx_dtypes, ty = _gather_layout(call.kernel, 1)
    x, *idx = call.ins
    (out,) = call.outs
    if nb * inner == 0:
        return
    with Loop(b, i64(0), i64(nb), "update") as bi:
        row = _row(b, idx, idx_dtypes, lead, bi)
        _copy(b, x, out, inner, ty, b.mul(row, i64(inner)), b.mul(bi, i64(inner)), "row")


def _emit_scatter(b, call):
    k = call.kernel
    lead, inner, nb, idx_dtypes, ty = _gather_layout(k, 2)
    x, u, *idx = call.ins
    (out,) = call.outs
    _copy(b, x, out, math.prod(k.in_avals[0].shape), ty, name="init")
    if nb * inner == 0:
        return
    flt = np.dtype(k.in_avals[0].dtype).kind == "f"
    with Loop(b, i64(0), i64(nb), "update") as bi:
        row = b.mul(_row(b, idx, idx_dtypes, lead, bi), i64(inner))
        with Loop(b, i64(0), i64(inner), "row") as j:
            src = b.load(b.gep(u, [b.add(b.mul(bi, i64(inner)), j)], inbounds=True,
                               source_etype=ty), typ=ty)
            dst = b.gep(out, [b.add(row, j)], inbounds=True, source_etype=ty)
            if k.prim == "scatter_add":
                old = b.load(dst, typ=ty)
                src = b.fadd(old, src) if flt else b.add(old, src)
            b.store(src, dst)


def _starts(b, ptrs, dtypes, shape, sizes):
    """Window starts: loaded, each clamped into [0, d - size]."""
    out = []
    for p, dt, d, n in zip(ptrs, dtypes, shape, sizes):
        ty = storage_type(dt)
        v = b.load(p, typ=ty)
        v = b.sext(v, i64(0).type) if ty != i64(0).type else v
        v = b.select(b.icmp_signed("<", v, i64(0)), i64(0), v)
        out.append(b.select(b.icmp_signed(">", v, i64(d - n)), i64(d - n), v))
    return out


def _walk_window(b, shape, sizes, starts, visit, axis=0, x_at=None, w_at=None):
    """visit(x_flat, window_flat) for every element of the window at `starts`."""
    x_at, w_at = x_at or i64(0), w_at or i64(0)
    if axis == len(shape):
        visit(x_at, w_at)
        return
    with Loop(b, i64(0), i64(sizes[axis]), f"win{axis}") as t:
        xi = b.add(b.mul(x_at, i64(shape[axis])), b.add(starts[axis], t))
        wi = b.add(b.mul(w_at, i64(sizes[axis])), t)
        _walk_window(b, shape, sizes, starts, visit, axis + 1, xi, wi)


def _emit_dynamic_slice(b, call):
    k = call.kernel
    x_aval, sizes = k.in_avals[0], k.params["sizes"]
    if math.prod(sizes) == 0:
        return
    x, *starts = call.ins
    (out,) = call.outs
    ty = storage_type(x_aval.dtype)
    st = _starts(b, starts, [a.dtype for a in k.in_avals[1:]], x_aval.shape, sizes)

    def visit(xi, wi):
        v = b.load(b.gep(x, [xi], inbounds=True, source_etype=ty), typ=ty)
        b.store(v, b.gep(out, [wi], inbounds=True, source_etype=ty))
    _walk_window(b, x_aval.shape, sizes, st, visit)


def _emit_dynamic_update_slice(b, call):
    k = call.kernel
    x_aval, u_aval = k.in_avals[0], k.in_avals[1]
    x, u, *starts = call.ins
    (out,) = call.outs
    ty = storage_type(x_aval.dtype)
    _copy(b, x, out, math.prod(x_aval.shape), ty, name="init")
    if math.prod(u_aval.shape) == 0:
        return
    st = _starts(b, starts, [a.dtype for a in k.in_avals[2:]], x_aval.shape, u_aval.shape)

    def visit(xi, wi):
        v = b.load(b.gep(u, [wi], inbounds=True, source_etype=ty), typ=ty)
        b.store(v, b.gep(out, [xi], inbounds=True, source_etype=ty))
    _walk_window(b, x_aval.shape, u_aval.shape, st, visit)


def _indexed_axes_nonempty(kernel, n_idx_from) -> bool:
    k = len(kernel.in_avals) - n_idx_from
    return all(d > 0 for d in kernel.in_avals[0].shape[:k])


def _numeric(kernel) -> bool:
    return np.dtype(kernel.in_avals[0].dtype).kind in "fi"


extern.register_native("gather", _emit_gather, lambda k: _indexed_axes_nonempty(k, 1))
extern.register_native("scatter", _emit_scatter, lambda k: _indexed_axes_nonempty(k, 2))
extern.register_native("scatter_add", _emit_scatter,
                       lambda k: _indexed_axes_nonempty(k, 2) and _numeric(k))
extern.register_native("dynamic_slice", _emit_dynamic_slice)
extern.register_native("dynamic_update_slice", _emit_dynamic_update_slice)
