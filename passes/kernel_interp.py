"""The reference interpreter of kernel programs: numpy, exactly per passes/kernels.py.

It is the oracle fusion is tested against and codegen is compared with.  Every
address is checked before it is read or written: an index outside a buffer
raises `KernelIndexError` instead of wrapping around.  Temps start filled with
a poison value (NaN, or the dtype's largest value), so a kernel that forgets
to write an element shows up in the results.  A reducing store first folds
the dims its address does not move along with numpy's reductions (pairwise
sums), so the oracle is at least as accurate as any reassociated sum.
An `ExternKernel` runs its primitive's numpy `impl` on copies of its operands
(`extern_results`, which checks the results' shapes and dtypes; codegen's host
callback runs the same function).
Control-flow steps run their bodies with `run_program` itself, on flat views of
the step's buffers (`xs[t]` and `ys[t]` are row t of the stacked buffer); a
`while_vjp` step keeps its tape as a Python list.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> from tracegrad.passes.fusion import fuse
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float64))
>>> kp = fuse(b.build([ops.reduce_sum(ops.mul(x, x), (0,))]))
>>> [float(v) for v in run_program(kp, np.array([1.0, 2.0, 3.0]))]
[14.0]
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.passes.kernels import (REDUCTIONS, Const, CondStep, DotKernel, ExternKernel,
                                     KernelProgram, Load, LoopKernel, LoopStep, Op)

__all__ = ["run_program", "KernelIndexError", "domain_indices", "flat_index", "extern_results"]


class KernelIndexError(IndexError):
    """A kernel formed an address outside its buffer."""


def _poison(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind == "b":
        return True
    return np.iinfo(dtype).max


def domain_indices(domain):
    """One int64 array per domain dim, shaped to broadcast over the domain."""
    n = len(domain)
    return [np.arange(d, dtype=np.int64).reshape((1,) * k + (d,) + (1,) * (n - k - 1))
            for k, d in enumerate(domain)]


def flat_index(index, domain):
    """(flat addresses, mask or None), both of the domain's shape."""
    idx = np.full(tuple(domain), index.offset, dtype=np.int64)
    mask = None
    for i, stride in zip(domain_indices(domain), index.strides):
        idx = idx + i * stride
    if index.bounds is not None:
        mask = np.ones(tuple(domain), dtype=bool)
        for i, (lo, hi, step) in zip(domain_indices(domain), index.bounds):
            mask = mask & (lo <= i) & (i < hi) & ((i - lo) % step == 0)
    return idx, mask


def _checked(buffer, idx, mask, what):
    """The addresses actually formed, verified to lie inside the buffer."""
    live = idx if mask is None else idx[mask]
    if live.size and (live.min() < 0 or live.max() >= buffer.size):
        raise KernelIndexError(f"{what} of {buffer.name} (size {buffer.size}) at addresses "
                               f"[{live.min()}, {live.max()}]")
    return idx if mask is None else np.where(mask, idx, 0)


def _load(env, ins: Load, domain):
    data = env[id(ins.buffer)]
    idx, mask = flat_index(ins.index, domain)
    safe = _checked(ins.buffer, idx, mask, "load")
    if safe.size == 0 or data.size == 0:  # nothing to read (checked: nothing is live)
        return np.zeros(tuple(domain), ins.dtype)
    out = data[safe].astype(ins.dtype, copy=False)
    return out if mask is None else np.where(mask, out, np.zeros((), ins.dtype))


def _op(vals, ins: Op):
    args = [np.asarray(a.value, a.dtype) if isinstance(a, Const) else vals[a] for a in ins.args]
    out = np.asarray(PRIMITIVES[ins.prim].impl(*args, **ins.params))
    if out.dtype != ins.dtype:
        raise TypeError(f"op {ins.prim} produced {out.dtype}, the kernel says {ins.dtype}")
    return out


def _store(env, store, value, domain):
    data = env[id(store.buffer)]
    idx, _ = flat_index(store.index, domain)
    _checked(store.buffer, idx, None, "store")
    value = np.broadcast_to(np.asarray(value, store.buffer.dtype), tuple(domain))
    if store.reduce is None:
        data[idx.reshape(-1)] = value.reshape(-1)
        return
    if value.size == 0:
        return
    # Dims the address does not move along are reduced with numpy first (pairwise
    # sums: an accurate oracle); whatever still collides is combined element-wise.
    axes = tuple(d for d, s in enumerate(store.index.strides) if s == 0 and domain[d] > 1)
    value = np.asarray(REDUCTIONS[store.reduce].ufunc.reduce(value, axis=axes), store.buffer.dtype)
    idx = idx[tuple(0 if d in axes else slice(None) for d in range(len(domain)))]
    REDUCTIONS[store.reduce].ufunc.at(data, idx.reshape(-1), value.reshape(-1))


def _run_loop(env, k: LoopKernel):
    for s in k.stores:  # the reduction targets start at the identity
        if s.reduce is not None:
            env[id(s.buffer)][:] = REDUCTIONS[s.reduce].identity(s.buffer.dtype)
    vals = []
    for ins in k.body:
        vals.append(_load(env, ins, k.domain) if isinstance(ins, Load) else _op(vals, ins))
    for s in k.stores:
        _store(env, s, vals[s.value], k.domain)


def _operand(env, buf, batch, rows, cols, trans):
    """The (batch, rows, cols) operand; stored as (batch, cols, rows) when transposed."""
    data = env[id(buf)]
    if data.size != batch * rows * cols:
        raise KernelIndexError(f"dot operand {buf.name} holds {data.size} elements, "
                               f"not {batch}x{rows}x{cols}")
    if trans:
        return data.reshape(batch, cols, rows).transpose(0, 2, 1)
    return data.reshape(batch, rows, cols)


def _run_dot(env, k: DotKernel):
    a = _operand(env, k.a, k.batch, k.m, k.k, k.trans_a)
    b = _operand(env, k.b, k.batch, k.k, k.n, k.trans_b)
    out = env[id(k.out)]
    if out.size != k.batch * k.m * k.n:
        raise KernelIndexError(f"dot output {k.out.name} holds {out.size} elements")
    out[:] = np.matmul(a, b).astype(k.out.dtype, copy=False).reshape(-1)


def extern_results(prim_name, params, args, out_avals) -> list:
    """The results of extern primitive `prim_name` on `args` (arrays of the operand
    shapes), checked against `out_avals` and returned C-contiguous; codegen's host
    callback runs the same function."""
    prim = PRIMITIVES[prim_name]
    outs = prim.impl(*args, **params)
    outs = list(outs) if prim.multiple_results else [outs]
    if len(outs) != len(out_avals):
        raise TypeError(f"extern {prim_name} returned {len(outs)} results, "
                        f"expected {len(out_avals)}")
    checked = []
    for out, aval in zip(outs, out_avals):
        out = np.asarray(out)
        if out.shape != tuple(aval.shape) or out.dtype != aval.dtype:
            raise TypeError(f"extern {prim_name} returned {out.dtype}{list(out.shape)}, "
                            f"expected {aval}")
        checked.append(np.ascontiguousarray(out))
    return checked


def _run_extern(env, k: ExternKernel):
    args = []
    for buf, aval in zip(k.inputs, k.in_avals):
        data = env[id(buf)]
        if data.size != buf.size or buf.size != aval.size:
            raise KernelIndexError(f"extern operand {buf.name} holds {data.size} elements, "
                                   f"the primitive reads {aval}")
        args.append(data.reshape(aval.shape).copy())  # impls may not write their operands
    outs = extern_results(k.prim, k.params, args, k.out_avals)
    for buf, out in zip(k.outputs, outs):
        if buf.size != out.size:
            raise KernelIndexError(f"extern output {buf.name} holds {buf.size} elements, "
                                   f"the result has {out.size}")
        env[id(buf)][:] = out.reshape(-1)


# ---- control flow: bodies are programs, run on flat views of the step's buffers ----------

def _call(kp: KernelProgram, args) -> list:
    """Run a body on flat arrays (each of its input's size); its outputs, flat."""
    shaped = []
    for buf, arr in zip(kp.inputs, args):
        if arr.size != buf.size:
            raise KernelIndexError(f"body input {buf.name} needs {buf.size} elements, "
                                   f"the step binds {arr.size}")
        shaped.append(arr.reshape(buf.shape))
    return [out.reshape(-1) for out in run_program(kp, *shaped)]


def _slices(env, buffers, length) -> list:
    """Each stacked buffer as (length, slice size) rows: row t is trip t's slice."""
    out = []
    for b in buffers:
        data = env[id(b)]
        if length == 0 or data.size % length:
            if data.size:
                raise KernelIndexError(f"{b.name} (size {data.size}) has no {length} slices")
            length = max(length, 1)  # nothing to read or write: any shape of size 0
        out.append(data.reshape(length, data.size // length))
    return out


def _write(env, buffers, values):
    for b, v in zip(buffers, values):
        if v.size != b.size:
            raise KernelIndexError(f"{b.name} holds {b.size} elements, the step writes {v.size}")
        env[id(b)][:] = v.astype(b.dtype, copy=False)


def _while_trips(env, k: LoopStep, carry):
    """Yield the trip indices of a while loop while `cond` holds (the carries in `carry`)."""
    consts = [env[id(b)] for b in k.cond_consts]
    t = 0
    while True:
        pred = _call(k.cond, consts + list(carry))[0]
        env[id(k.pred)][:] = pred
        if not bool(pred[0]):
            return
        yield t
        t += 1


def _run_groups(env, k: LoopStep):
    """A scan over `groups` ranges of trips, each from `init`, folded in order by `merge`."""
    consts = [env[id(b)] for b in k.consts]
    xs, ys, n = _slices(env, k.xs, k.length), _slices(env, k.ys, k.length), len(k.carries)
    total = None
    for g in range(k.groups):
        carry = [env[id(b)].copy() for b in k.init]
        for t in range(k.length * g // k.groups, k.length * (g + 1) // k.groups):
            outs = _call(k.body, consts + carry + [x[t] for x in xs])
            carry = outs[:n]
            for y, value in zip(ys, outs[n:]):
                y[t] = value
        total = carry if total is None else _call(k.merge, list(total) + list(carry))
    _write(env, k.carries, total)


def _run_loop_step(env, k: LoopStep):
    if k.groups:
        return _run_groups(env, k)
    carry = [env[id(b)].copy() for b in k.init]
    consts = [env[id(b)] for b in k.consts]
    n = len(k.carries)
    if k.length is None:
        trips = _while_trips(env, k, carry)
    else:
        trips = range(k.length - 1, -1, -1) if k.reverse else range(k.length)
    xs = _slices(env, k.xs, k.length) if k.xs else []
    ys = _slices(env, k.ys, k.length) if k.ys else []
    tape = []
    for t in trips:
        if k.grad is not None:
            tape.append(list(carry))
        outs = _call(k.body, consts + list(carry) + [x[t] for x in xs])
        carry[:] = outs[:n]
        for y, value in zip(ys, outs[n:]):
            y[t] = value
    _write(env, k.carries, carry)
    if k.grad is not None:
        _run_tape(env, k.grad, tape)


def _run_tape(env, g, tape):
    consts = [env[id(b)] for b in g.consts]
    carry = [np.zeros(b.size, b.dtype) for b in g.outs[:g.n_acc]]
    carry += [env[id(b)].copy() for b in g.cts]
    for step in reversed(tape):
        carry = _call(g.body, consts + step + carry)
    _write(env, g.outs, carry)


def _run_cond(env, k: CondStep):
    index = int(env[id(k.index)][0])
    branch = k.branches[min(max(index, 0), len(k.branches) - 1)]
    _write(env, k.outs, _call(branch, [env[id(b)] for b in k.operands]))


RUNNERS = {LoopKernel: _run_loop, DotKernel: _run_dot, LoopStep: _run_loop_step,
           CondStep: _run_cond, ExternKernel: _run_extern}


def _bind(kp: KernelProgram, inputs):
    if len(inputs) != len(kp.inputs):
        raise TypeError(f"program takes {len(kp.inputs)} inputs, got {len(inputs)}")
    env = {}
    for buf in kp.inputs:
        arr = np.asarray(inputs[buf.index])
        if arr.shape != tuple(buf.shape) or arr.dtype != buf.dtype:
            raise TypeError(f"input {buf.index} is {arr.dtype}{list(arr.shape)}, "
                            f"expected {buf}")
        env[id(buf)] = arr.reshape(-1).copy()
    for buf in kp.consts:
        env[id(buf)] = np.asarray(buf.value, buf.dtype).reshape(-1).copy()
    for buf in list(kp.temps) + list(kp.outputs):
        env.setdefault(id(buf), np.full(buf.size, _poison(buf.dtype), buf.dtype))
    return env


def run_program(kp: KernelProgram, *inputs) -> list:
    """Execute `kp` on numpy arrays; returns one fresh array per output."""
    env = _bind(kp, inputs)
    for k in kp.kernels:
        RUNNERS[type(k)](env, k)
    return [env[id(b)].reshape(b.shape).copy() for b in kp.outputs]
