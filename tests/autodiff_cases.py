"""The autodiff test helpers and op table shared by the test_autodiff_* files:
finite differences, input domains, and every differentiable primitive and
composite with the domain its derivative is checked on."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tracegrad.ir import (GraphBuilder, ShapedArray, eval_graph,
                          ops, verify)
from tracegrad.tracer import numpy as tnp

F64 = np.float64


# ---- helpers -----------------------------------------------------------------------

def build(fn, args, concrete=False):
    """Trace `fn` (written with ir.ops) on fresh inputs shaped like `args`."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(np.shape(a), np.asarray(a).dtype), a if concrete else None)
          for a in args]
    out = fn(*xs)
    return verify(b.build(list(out) if isinstance(out, (tuple, list)) else [out]))


def run(graph, *args):
    return eval_graph(graph, *args)


def checked(graph):
    """Every produced graph must be well formed."""
    return verify(graph)


def fd_jacobian(graph, args, out_index=0, h=1e-6):
    """Central-difference Jacobian of one output w.r.t. each input: (out size, in size) arrays."""
    jacs = []
    for i, a in enumerate(args):
        a = np.asarray(a)
        out_size = np.asarray(run(graph, *args)[out_index]).size
        if not np.issubdtype(a.dtype, np.floating):
            jacs.append(np.zeros((out_size, a.size)))
            continue
        jac = np.zeros((out_size, a.size))
        for k in range(a.size):
            step = np.zeros(a.size)
            step[k] = h
            plus = list(args)
            minus = list(args)
            plus[i] = (a.ravel() + step).reshape(a.shape).astype(a.dtype)
            minus[i] = (a.ravel() - step).reshape(a.shape).astype(a.dtype)
            diff = (np.asarray(run(graph, *plus)[out_index], F64)
                    - np.asarray(run(graph, *minus)[out_index], F64))
            jac[:, k] = diff.ravel() / (2 * h)
        jacs.append(jac)
    return jacs


def fd_directional(graph, args, tangents, h=1e-6):
    """Central difference of every output along `tangents`."""
    plus = [np.asarray(a) + h * t if np.issubdtype(np.asarray(a).dtype, np.floating) else a
            for a, t in zip(args, tangents)]
    minus = [np.asarray(a) - h * t if np.issubdtype(np.asarray(a).dtype, np.floating) else a
             for a, t in zip(args, tangents)]
    return [(np.asarray(p, F64) - np.asarray(m, F64)) / (2 * h)
            for p, m in zip(run(graph, *plus), run(graph, *minus))]


def random_like(rng, x):
    x = np.asarray(x)
    return rng.standard_normal(x.shape).astype(x.dtype) if np.issubdtype(x.dtype, np.floating) \
        else np.zeros_like(x)


def vdot(a, b):
    return float(np.sum(np.asarray(a, F64) * np.asarray(b, F64)))


# ---- input domains -----------------------------------------------------------------

def real(*shape):
    return lambda rng: rng.standard_normal(shape)


def positive(*shape):
    return lambda rng: rng.uniform(0.5, 2.0, shape)


def nonzero(*shape):
    return lambda rng: rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    """Entries at least 0.3 apart: away from the ties of max/min/reduce_max."""
    n = int(np.prod(shape, dtype=int))
    return lambda rng: (rng.permutation(n) * 0.3 + rng.uniform(0, 0.1, n)).reshape(shape)


def with_zeros(*shape):
    """Normal entries with some exact zeros (two in a row too): cumprod's derivative there."""
    def gen(rng):
        x = rng.standard_normal(shape)
        x.reshape(-1)[[1, 2, 5]] = 0.0
        return x
    return gen


def apart_from(dom):
    """A pair (x, y) with |x - y| >= 0.3 everywhere: away from max/min kinks."""
    def gen(rng):
        x = dom(rng)
        return x, x + rng.choice([-1.0, 1.0], np.shape(x)) * rng.uniform(0.3, 1.0, np.shape(x))
    return gen


def well_conditioned(*shape):
    """Random matrices plus n * identity: far from singular (solve, inv, slogdet)."""
    return lambda rng: rng.standard_normal(shape) + shape[-1] * np.eye(shape[-1])


def symmetric_part(a):
    """(a + a^T) / 2 over the last two axes, in ir.ops."""
    n = len(ops.shape(a))
    perm = tuple(range(n - 2)) + (n - 1, n - 2)
    return ops.mul(ops.add(a, ops.transpose(a, perm)), 0.5)


def spd(*shape):
    """Symmetric positive definite matrices (cholesky)."""
    def gen(rng):
        x = rng.standard_normal(shape)
        return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])
    return gen


@dataclass
class Case:
    name: str
    fn: Callable
    domains: list  # one generator per input, or a single generator giving a tuple
    tol: float = 1e-6  # against finite differences
    fd_step: float = 1e-6
    dot_tol: float = 1e-10  # forward vs reverse rules: rounding only

    def args(self, rng):
        if callable(self.domains):
            return list(self.domains(rng))
        return [d(rng) for d in self.domains]


def _where_fn(c, x, y):
    return ops.where(ops.gt(c, 0.0), x, y)


def _max_min_mix(x, y):
    return ops.add(ops.max(x, y), ops.mul(ops.min(x, y), 2.0))


_IDX = np.array([[2, 0], [-1, 2]])  # -1 and 2 name one row: duplicate targets


# The op table: every differentiable primitive, with its input domain.
OP_CASES = [
    Case("neg", ops.neg, [real(3)]),
    Case("exp", ops.exp, [real(3)]),
    Case("log", ops.log, [positive(3)]),
    Case("log1p", ops.log1p, [positive(3)]),
    Case("expm1", ops.expm1, [real(3)]),
    Case("sqrt", ops.sqrt, [positive(3)]),
    Case("sin", ops.sin, [real(2, 3)]),
    Case("cos", ops.cos, [real(2, 3)]),
    Case("tanh", ops.tanh, [real(4)]),
    Case("abs", ops.abs, [nonzero(4)]),
    Case("sign", lambda x: ops.mul(ops.sign(x), x), [nonzero(4)]),
    Case("integer_pow_0", lambda x: ops.integer_pow(x, 0), [real(3)]),
    Case("integer_pow_1", lambda x: ops.integer_pow(x, 1), [real(3)]),
    Case("integer_pow_2", lambda x: ops.integer_pow(x, 2), [real(3)]),
    Case("integer_pow_3", lambda x: ops.integer_pow(x, 3), [real(3)]),
    Case("integer_pow_-2", lambda x: ops.integer_pow(x, -2), [nonzero(3)]),
    Case("add", ops.add, [real(3), real(3)]),
    Case("sub", ops.sub, [real(3), real(3)]),
    Case("mul", ops.mul, [real(2, 2), real(2, 2)]),
    Case("div", ops.div, [real(3), nonzero(3)]),
    Case("pow", ops.pow, [positive(3), real(3)]),
    Case("max", ops.max, apart_from(real(4))),
    Case("min", ops.min, apart_from(real(4))),
    Case("max_min_scalar", _max_min_mix, lambda rng: (np.float64(0.1), distinct(5)(rng) - 0.65)),
    Case("mul_scalar_lhs", ops.mul, [real(), real(3)]),
    Case("sub_scalar_rhs", ops.sub, [real(2, 3), real()]),
    Case("div_scalar_rhs", ops.div, [real(3), nonzero()]),
    Case("pow_scalar_exponent", ops.pow, [positive(3), real()]),
    Case("atan", ops.atan, [real(3)]),
    Case("atan2", ops.atan2, [real(3), nonzero(3)]),
    Case("log2", ops.log2, [positive(3)]),
    Case("log10", ops.log10, [positive(3)]),
    Case("exp2", ops.exp2, [real(3)]),
    Case("erf", ops.erf, [real(3)]),
    Case("erfc", ops.erfc, [real(3)]),
    Case("lgamma", ops.lgamma, [real(3)]),
    Case("digamma", ops.digamma, [real(3)]),
    Case("copysign", ops.copysign, [nonzero(4), nonzero(4)]),
    Case("rem", ops.rem, lambda rng: (  # x / y kept away from the integers (rem's jumps)
        (rng.integers(-3, 3, 4) + rng.uniform(0.3, 0.7, 4)) * 1.3, np.full(4, 1.3))),
    Case("where", _where_fn, [nonzero(4), real(4), real(4)]),
    Case("where_scalar_branch", _where_fn, [nonzero(4), real(), real(4)]),
    Case("convert", lambda x: ops.convert(ops.mul(ops.convert(x, np.float32), 3.0), F64),
         [real(3)], tol=1e-3, fd_step=1e-2, dot_tol=1e-6),
    Case("reduce_sum", lambda x: ops.reduce_sum(x, (1,)), [real(2, 3)]),
    Case("reduce_sum_all", lambda x: ops.reduce_sum(x, (0, 1, 2)), [real(2, 3, 2)]),
    Case("reduce_prod", lambda x: ops.reduce_prod(x, (1,)), [real(2, 3)]),
    Case("reduce_prod_some", lambda x: ops.reduce_prod(x, (0, 2)), [real(2, 3, 2)]),
    Case("reduce_max", lambda x: ops.reduce_max(x, (0,)), [distinct(3, 2)]),
    Case("reduce_min", lambda x: ops.reduce_min(x, (0, 2)), [distinct(2, 2, 3)]),
    Case("broadcast_lead", lambda x: ops.broadcast(x, (2, 3)), [real(3)]),
    Case("broadcast_scalar", lambda x: ops.broadcast(x, (2, 2)), [real()]),
    Case("broadcast_ones", lambda x: ops.broadcast(x, (2, 3, 4)), [real(3, 1)]),
    Case("reshape", lambda x: ops.reshape(x, (3, 2)), [real(2, 3)]),
    Case("transpose", lambda x: ops.transpose(x, (2, 0, 1)), [real(2, 3, 2)]),
    Case("slice", lambda x: ops.slice(x, (1, 4), (1, -2), (2, 2)), [real(3, 5)]),
    Case("pad", lambda x: ops.pad(x, (0, 1), (2, 1), (4, 4)), [real(2, 2)]),
    Case("concatenate", lambda a, b, c: ops.concatenate([a, b, c], 1),
         [real(2, 1), real(2, 3), real(2, 2)]),
    Case("dot", ops.dot, [real(2, 3), real(3, 4)]),
    # indexing (ir/indexing.py): duplicate targets, a negative and a clamped index
    Case("gather", lambda x: ops.gather(x, _IDX, np.array([[0, 1], [1, 5]])), [real(3, 2, 2)]),
    Case("scatter_add", lambda x, u: ops.scatter_add(x, u, _IDX), [real(3, 2), real(2, 2, 2)]),
    Case("scatter", lambda x, u: ops.scatter(x, u, _IDX), [real(3, 2), real(2, 2, 2)]),
    Case("dynamic_slice", lambda x: ops.dynamic_slice(x, np.int64(1), np.int64(5), sizes=(2, 2)),
         [real(3, 3)]),
    Case("dynamic_update_slice",
         lambda x, u: ops.dynamic_update_slice(x, u, np.int64(-1), np.int64(1)),
         [real(3, 3), real(2, 2)]),
    Case("dot_batched", ops.dot, [real(2, 2, 3), real(2, 3, 2)]),
    # cumulative (extern): cumprod through exact zeros, cummax/cummin away from ties
    Case("cumsum", lambda x: ops.cumsum(x, 1), [real(2, 5)]),
    Case("correlate", ops.correlate, [real(7), real(3)]),
    Case("correlate_batched", ops.correlate, [real(2, 6), real(2, 6)]),
    Case("cumsum_reverse", lambda x: ops.cumsum(x, 0, reverse=True), [real(4, 2)]),
    Case("cumprod", lambda x: ops.cumprod(x, 1), [real(2, 6)]),
    Case("cumprod_zeros", lambda x: ops.cumprod(x, 0, reverse=True), [with_zeros(7, 2)]),
    Case("cummax", lambda x: ops.cummax(x, 1), [distinct(2, 6)]),
    Case("cummin_reverse", lambda x: ops.cummin(x, 0, reverse=True), [distinct(5, 2)]),
    # sorting (extern): sort's gradient through the permutation, inputs without ties
    Case("sort", lambda x: ops.sort(x, 1), [distinct(3, 4)]),
    Case("sort_axis0", lambda x: ops.sort(x, 0), [distinct(5, 2)]),
    # decompositions (extern, LAPACK): well-conditioned matrices, distinct spectra
    # cholesky/eigh: derivatives of a symmetric operand (JAX's and PyTorch's convention),
    # so the cases read one through (a + a^T) / 2 and every direction is a symmetric one
    Case("cholesky", lambda a: ops.cholesky(symmetric_part(a)), [spd(2, 3, 3)]),
    Case("triangular_solve", lambda a, b: ops.triangular_solve(a, b, lower=True),
         [well_conditioned(2, 3, 3), real(2, 3, 2)]),
    Case("triangular_solve_upper_t_unit", lambda a, b: ops.triangular_solve(
        a, b, lower=False, transpose_a=True, unit_diagonal=True), [real(3, 3), real(3, 2)]),
    Case("solve", ops.solve, [well_conditioned(2, 3, 3), real(2, 3, 2)]),
    Case("inv", ops.inv, [well_conditioned(3, 3)]),
    Case("slogdet", ops.slogdet, [well_conditioned(2, 3, 3)]),
    Case("eigh", lambda a: ops.eigh(symmetric_part(a)), [real(2, 3, 3)]),
    Case("eigvalsh", lambda a: ops.eigvalsh(symmetric_part(a)), [real(3, 3)]),
    Case("svd_tall", ops.svd, [real(2, 4, 3)]),
    Case("svd_wide", ops.svd, [real(3, 4)]),
    Case("svdvals", ops.svdvals, [real(4, 3)]),
    Case("qr_tall", ops.qr, [real(2, 4, 3)]),
    Case("qr_wide", ops.qr, [real(3, 5)]),
    Case("pinv", lambda a: ops.pinv(a, rcond=1e-15), [real(4, 3)]),
    # control flow (tracegrad.scan & co.: eager loops on tensors, one equation traced)
    Case("scan", lambda w, xs: _scan_case(w, xs), [real(3), real(4, 3)]),
    Case("scan_reverse", lambda w, xs: _scan_case(w, xs, reverse=True), [real(3), real(4, 3)]),
    Case("while", lambda x, y: _while_case(x, y), [real(2), real(2)]),
    Case("cond_true", lambda p, x, y: _cond_case(p, x, y), [positive(), real(3), real(3)]),
    Case("cond_false", lambda p, x, y: _cond_case(ops.neg(p), x, y),
         [positive(), real(3), real(3)]),
    Case("custom_call", lambda x, y: _custom_case(x, y), [real(3), real(3)]),
    Case("optimization_barrier", lambda x, t: ops.optimization_barrier(x, t), [real(3), real()]),
]


def _custom_case(x, y):
    """A custom_jvp function (its reverse mode is the rule's transpose) closing over nothing."""
    from tracegrad import custom_jvp

    f = custom_jvp(lambda a, b: ops.mul(ops.sin(a), b))
    f.defjvp(lambda p, t: (f(*p), ops.add(ops.mul(ops.mul(ops.cos(p[0]), p[1]), t[0]),
                                          ops.mul(ops.sin(p[0]), t[1]))))
    return f(x, y)


def _scan_case(w, xs, reverse=False):
    from tracegrad import scan

    def step(h, x):
        h = ops.tanh(ops.add(ops.mul(h, w), x))
        return h, ops.mul(h, x)
    return scan(step, w, xs, reverse=reverse)


def _while_case(x, y):
    from tracegrad import while_loop

    def body(c):
        return ops.add(c[0], 1), ops.add(ops.mul(ops.sin(c[1]), y), x)
    return while_loop(lambda c: ops.lt(c[0], 3), body, (np.int64(0), x))[1]


def _cond_case(p, x, y):
    from tracegrad import cond

    return cond(ops.gt(p, 0.0), lambda a, b: ops.mul(a, b), lambda a, b: ops.sin(ops.sub(a, b)),
                x, y)


def _softplus(x):
    return ops.log1p(ops.exp(x))


def _logsumexp(x):
    m = ops.reduce_max(x, (1,))
    shifted = ops.sub(x, ops.broadcast(ops.reshape(m, (2, 1)), (2, 4)))
    return ops.add(ops.log(ops.reduce_sum(ops.exp(shifted), (1,))), m)


def _mlp_loss(w, x, b):
    h = ops.tanh(ops.add(ops.dot(x, w), ops.broadcast(b, (4, 2))))
    return ops.div(ops.reduce_sum(ops.mul(h, h), (0, 1)), 8.0)


def _fan_out(x):
    # x is read by four equations; its cotangents must be summed
    y = ops.mul(x, x)
    return ops.add(ops.mul(ops.sin(x), y), ops.div(x, ops.add(y, 1.0)))


CONST = np.array([0.5, -1.0, 2.0])

COMPOSITE_CASES = [
    Case("softplus", _softplus, [real(5)]),
    Case("logsumexp", _logsumexp, [distinct(2, 4)]),
    Case("mlp_loss", _mlp_loss, [real(3, 2), real(4, 3), real(2)]),
    Case("fan_out", _fan_out, [real(4)]),
    Case("captured_constant", lambda x: ops.mul(ops.exp(x), CONST), [real(3)]),
    Case("sigmoid", lambda x: ops.div(1.0, ops.add(1.0, ops.exp(ops.neg(x)))), [real(3)]),
    Case("two_outputs", lambda x, y: (ops.mul(x, y), ops.reduce_sum(ops.sin(x), (0,))),
         [real(3), real(3)]),
]

def _attention(q, k, v):
    scores = tnp.divide(tnp.matmul(q, tnp.swapaxes(k, -1, -2)), 2.0)
    return tnp.matmul(tnp.softmax(scores, axis=-1), v)


def _layer_norm(x, gain):
    centered = tnp.subtract(x, tnp.mean(x, axis=-1, keepdims=True))
    scale = tnp.sqrt(tnp.add(tnp.var(x, axis=-1, keepdims=True), 1e-5))
    return tnp.multiply(tnp.divide(centered, scale), gain)


def _relu_mlp(w, x):
    return tnp.sum(tnp.square(tnp.relu(tnp.matmul(x, w))), axis=0)


def _broadcast_arith(x, y):
    num = tnp.maximum(tnp.subtract(tnp.multiply(x, y), 0.5), y)
    return tnp.divide(num, tnp.add(1.0, tnp.square(x)))


def _stack_transpose(x):
    rows = [tnp.squeeze(r, axis=0) for r in (ops.slice(x, (0, 0), (1, 1), (1, 4)),
                                              ops.slice(x, (2, 0), (1, 1), (1, 4)))]
    return tnp.transpose(tnp.stack([tnp.multiply(rows[0], rows[1]), rows[1]], axis=1))


# The same kind of functions written with the NumPy-like namespace (composites of
# primitives: broadcasting, keepdims reductions, stop_gradient inside logsumexp ...);
# without operators, so that they trace with plain ir values too.
TNP_CASES = [
    Case("tnp_logsumexp", lambda x: tnp.logsumexp(x, axis=1), [real(2, 5)]),
    Case("tnp_log_softmax", lambda x: tnp.log_softmax(x, axis=0), [real(4, 2)]),
    Case("tnp_softplus_sigmoid", lambda x: tnp.multiply(tnp.softplus(x), tnp.sigmoid(x)),
         [nonzero(5)]),
    Case("tnp_relu_mlp", _relu_mlp, [real(3, 2), real(4, 3)]),
    Case("tnp_attention", _attention, [real(2, 3, 4), real(2, 3, 4), real(2, 3, 2)]),
    Case("tnp_layer_norm", _layer_norm, [real(3, 4), real(4)]),
    Case("tnp_broadcast_arith", _broadcast_arith,
         lambda rng: (rng.standard_normal((3, 1)), 2.0 + 0.1 * rng.standard_normal(4))),
    Case("tnp_stack_transpose", _stack_transpose, [real(3, 4)]),
]

ALL_CASES = OP_CASES + COMPOSITE_CASES + TNP_CASES


def _ids(cases):
    return [c.name for c in cases]


# second derivative known in closed form (second-order tests)
def _smooth(x):
    """f(x) = sin(x) * x**3, f'' = -sin x * x**3 + 6 cos x * x**2 + 6 x sin x."""
    return ops.mul(ops.sin(x), ops.integer_pow(x, 3))


def _smooth_d2(x):
    return -np.sin(x) * x ** 3 + 6 * np.cos(x) * x ** 2 + 6 * x * np.sin(x)
