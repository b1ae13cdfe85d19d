"""Every function of `tracegrad.numpy`, from the OpInfo table (tests/opinfo.py).

For each entry, in every dtype it lists (float32 and float64 at least):
  * eager:    Tensors in, values (dtype, shape, numbers) == numpy;
  * traced:   one trace of all samples, run by the IR interpreter, == numpy;
  * compiled: one `tracegrad.jit` program per entry (all samples, all dtypes, and the
              float64 gradient) == numpy;
  * grad:     eager backward passes the dot-product test against central differences
              of the numpy reference in float64: <t, vjp(c)> == <jvp_fd(t), c>;
              a non-differentiable entry must give a zero (or absent) gradient;
  * grad_traced / grad_compiled: the IR autodiff pass, interpreted and compiled,
              == the eager gradient;
  * jax:      values and gradients == jax.numpy's (float64), when jax is installed
              (marked slow: `python -m pytest -m slow tests/test_opinfo.py -k jax`).
A check named in an entry's `xfail` is a strict expected failure.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad import ir
from tracegrad.tracer import Tensor, tensor

from opinfo import EXEMPT, OPS, Sample, call, cast, is_float, outputs, seed_of, split_inputs

# Primitives no tracegrad.numpy function lowers to, and why.
NOT_FRONT_END = {
    "optimization_barrier": "tracegrad.custom's rematerialization orders recomputation with it",
}

CHECKS = ("eager", "traced", "compiled", "grad", "grad_traced", "grad_compiled", "jax")
GRAD_CHECKS = {"grad", "grad_traced", "grad_compiled"}


def _differentiated(op) -> bool:
    """Whether the entry has a float64 run with float inputs and float outputs (something
    to differentiate); bool and integer outputs have no gradient at all."""
    return "float64" in op.dtypes and any(split_inputs(s)[0] for s in op.samples()) \
        and any(c is not None for cs in cotangents(op) for c in cs)


def _params(check):
    out = []
    for op in OPS:
        if check in GRAD_CHECKS and not _safely(_differentiated, op):
            continue
        marks = ([pytest.mark.xfail(strict=True, reason=op.xfail[check])]
                 if check in op.xfail else [])
        out.append(pytest.param(op, id=op.key, marks=marks))
    return out


def _safely(predicate, op) -> bool:
    """`predicate(op)` at collection time; an entry whose samples or reference fail is
    collected anyway, so that its tests report the error."""
    try:
        return predicate(op)
    except Exception:
        return True


# ---- running an entry ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def cast_samples(op, dtype) -> tuple:
    return tuple(cast(s, dtype) for s in op.samples())


def to_numpy(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def reference(op, sample: Sample) -> list:
    floats, others = split_inputs(sample)
    return [np.asarray(o) for o in outputs(call(op, op.reference(), sample, floats, others))]


def run_all(op, groups):
    """Outputs of every sample of every dtype; `groups[dtype] = (floats, others)` per sample."""
    fn = op.resolve()
    return {dt: [outputs(call(op, fn, s, f, o))
                 for s, f, o in zip(cast_samples(op, dt), *groups[dt])]
            for dt in groups}


def input_groups(op, wrap=lambda x: x):
    """`{dtype: (floats per sample, others per sample)}` with every leaf passed to `wrap`."""
    groups = {}
    for dt in op.dtypes:
        split = [split_inputs(s) for s in cast_samples(op, dt)]
        groups[dt] = ([[wrap(x) for x in f] for f, _ in split],
                      [[wrap(x) for x in o] for _, o in split])
    return groups


def assert_outputs(op, got, want, dtype, where):
    assert len(got) == len(want), f"{where}: {len(got)} outputs, numpy gives {len(want)}"
    tol = op.rtol if np.dtype(dtype) == np.float32 else op.rtol64
    for k, (g, w) in enumerate(zip(got, want)):
        g = to_numpy(g)
        what = f"{where}, output {k}"
        assert g.dtype == w.dtype, f"{what}: dtype {g.dtype}, numpy gives {w.dtype}"
        assert g.shape == w.shape, f"{what}: shape {g.shape}, numpy gives {w.shape}"
        if is_float(w):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol, equal_nan=True, err_msg=what)
        else:
            np.testing.assert_array_equal(g, w, err_msg=what)


def check_values(op, results, mode):
    for dt, per_sample in results.items():
        for s, got in zip(cast_samples(op, dt), per_sample):
            assert_outputs(op, got, reference(op, s), dt, f"{op.key} {mode} {dt} {s}")


# ---- gradients ----------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def cotangents(op) -> tuple:
    """A random cotangent for every float output of every float64 sample."""
    if "float64" not in op.dtypes:
        return ()
    rng = np.random.default_rng(seed_of(op.key) + 1)
    return tuple([rng.standard_normal(w.shape) if is_float(w) else None
                  for w in reference(op, s)] for s in cast_samples(op, "float64"))


def float_cotangents(op) -> list:
    """The cotangents of the float outputs only (what a program takes as arguments)."""
    return [[c for c in cs if c is not None] for cs in cotangents(op)]


def loss(op, floats, others, cs):
    """sum over samples and float outputs of <output, c>: a scalar whose gradient is the VJP;
    `cs` holds the cotangents of the float outputs (`float_cotangents`)."""
    fn, total = op.resolve(), 0.0
    for s, f, o, c, full in zip(cast_samples(op, "float64"), floats, others, cs, cotangents(op)):
        float_outs = [out for out, ck in zip(outputs(call(op, fn, s, f, o)), full)
                      if ck is not None]
        for out, ck in zip(float_outs, c):
            total = total + tnp.sum(tnp.multiply(out, ck))
    return total


def f64_inputs(op):
    floats, others = input_groups(op)["float64"]
    return floats, others, float_cotangents(op)


def eager_grads(op):
    floats, others, cs = f64_inputs(op)
    ts = [[tensor(x, requires_grad=True) for x in f] for f in floats]
    value = loss(op, ts, [[tensor(x) for x in o] for o in others], cs)
    if isinstance(value, Tensor) and value.requires_grad:
        value.backward()
    return [[to_numpy(t.grad) if t.grad is not None else np.zeros_like(t.data) for t in f]
            for f in ts]


def assert_grads(op, got, want, what, rtol=1e-9):
    for i, (gs, ws) in enumerate(zip(got, want)):
        for j, (g, w) in enumerate(zip(gs, ws)):
            g = to_numpy(g)
            assert g.shape == w.shape and g.dtype == w.dtype, \
                f"{what}: sample {i} input {j}: {g.dtype}{g.shape} for {w.dtype}{w.shape}"
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol,
                                       err_msg=f"{what}: sample {i} input {j}")


def fd_directional(op, sample, ts, cs, eps=1e-6) -> float:
    """<(ref(x + eps t) - ref(x - eps t)) / 2 eps, c> for the sample's float inputs."""
    floats, others = split_inputs(sample)
    ref = op.reference()

    def at(sign):
        xs = [x + sign * eps * t for x, t in zip(floats, ts)]
        return [np.asarray(o) for o in outputs(call(op, ref, sample, xs, others))]
    return sum(float(np.sum((p - m) / (2 * eps) * c))
               for p, m, c in zip(at(1), at(-1), cs) if c is not None)


@functools.lru_cache(maxsize=None)
def traced(op):
    """The trace of every sample of every dtype (one program per entry)."""
    return tg.trace(lambda g: run_all(op, g))(input_groups(op))


@functools.lru_cache(maxsize=None)
def traced_gradient(op):
    """The float64 gradient program (the IR autodiff pass), traced once per entry."""
    return tg.trace(tg.grad(lambda f, o, c: loss(op, f, o, c), argnums=0))(*f64_inputs(op))


def grad_traced(op):
    return traced_gradient(op)(*f64_inputs(op))


@functools.lru_cache(maxsize=None)
def compiled(op):
    """(values per dtype, float64 gradients or None) from one compiled program."""
    with_grad = _differentiated(op) and "grad_compiled" not in op.xfail \
        and "compiled" not in op.xfail
    groups = input_groups(op)

    def program(groups, cs):
        values = run_all(op, groups)
        if not with_grad:
            return values, None
        f, o = groups["float64"]
        return values, tg.grad(lambda f, o, c: loss(op, f, o, c), argnums=0)(f, o, cs)
    values, grads = tg.jit(program)(groups, float_cotangents(op))
    if grads is None and _differentiated(op):  # a separate program: the combined one xfails
        f, o, cs = f64_inputs(op)
        grads = tg.jit(tg.grad(lambda f, o, c: loss(op, f, o, c), argnums=0))(f, o, cs)
    return values, grads


# ---- the checks -------------------------------------------------------------------------------

@pytest.mark.parametrize("op", _params("eager"))
def test_eager(op):
    results = run_all(op, input_groups(op, tensor))
    check_values(op, results, "eager")
    for dt, per_sample in results.items():  # float tensors in, tensors out (for gradients)
        for s, outs in zip(cast_samples(op, dt), per_sample):
            if any(np.size(x) for x in split_inputs(s)[0]):
                plain = [o for k, o in enumerate(outs) if not isinstance(o, Tensor)
                         and is_float(o) and np.size(o) and k not in op.constant_outputs]
                assert not plain, f"{op.key}: {s} gave numpy arrays, not tensors: {plain}"


@pytest.mark.parametrize("op", _params("traced"))
def test_traced(op):
    check_values(op, traced(op)(input_groups(op)), "traced")


@pytest.mark.parametrize("op", _params("compiled"))
def test_compiled(op):
    check_values(op, compiled(op)[0], "compiled")


@pytest.mark.parametrize("op", _params("grad"))
def test_grad(op):
    """Eager backward against central differences of numpy (float64, dot-product test)."""
    if op.grad and not op.fd:
        pytest.skip(f"{op.key}: its samples repeat values on purpose (central differences "
                    "would cross ties); the other gradient checks still run")
    grads = eager_grads(op)
    rng = np.random.default_rng(seed_of(op.key) + 2)
    for i, (s, g, c) in enumerate(zip(cast_samples(op, "float64"), grads, cotangents(op))):
        if not op.grad:
            for gj in g:
                np.testing.assert_array_equal(gj, 0, err_msg=f"{op.key}: nonzero gradient")
            continue
        ts = [rng.standard_normal(x.shape) for x in split_inputs(s)[0]]
        if op.key in SYMMETRIC_OPERAND:  # their derivatives are a symmetric operand's
            ts = [(t + np.swapaxes(t, -1, -2)) / 2 for t in ts]
        lhs = sum(float(np.sum(t * gj)) for t, gj in zip(ts, g))
        rhs = fd_directional(op, s, ts, c)
        np.testing.assert_allclose(lhs, rhs, rtol=op.fd_rtol, atol=op.fd_rtol,
                                   err_msg=f"{op.key}: sample {i} {s}")


# Derivatives defined for a symmetric operand, as JAX's and PyTorch's (the values read the
# lower triangle, as numpy's): checked along symmetric directions.
SYMMETRIC_OPERAND = {"linalg.cholesky", "linalg.eigh", "linalg.eigvalsh"}


@pytest.mark.parametrize("op", _params("grad_traced"))
def test_grad_traced(op):
    assert_grads(op, grad_traced(op), eager_grads(op), f"{op.key} traced gradient")


@pytest.mark.parametrize("op", _params("grad_compiled"))
def test_grad_compiled(op):
    assert_grads(op, compiled(op)[1], eager_grads(op), f"{op.key} compiled gradient", 1e-8)


# ---- jax.numpy as a second reference ------------------------------------------------------

def _arrays_for_jax(x):
    """jax.numpy takes arrays where numpy takes lists of numbers (indices, q, obj)."""
    if isinstance(x, list) and x and all(isinstance(v, (int, float)) for v in x):
        return np.asarray(x)
    return x


def _jax_outputs(op, jfn, sample, floats, others):
    import jax.numpy as jnp

    def f(*args, **kwargs):
        return jfn(*map(_arrays_for_jax, args),
                   **{k: _arrays_for_jax(v) for k, v in kwargs.items()})
    return [jnp.asarray(o) for o in outputs(call(op, f, sample, floats, others))]


@pytest.mark.slow  # jax compiles every primitive it meets: minutes (python -m pytest -m slow)
@pytest.mark.parametrize("op", _params("jax"))
def test_jax(op):
    """Values (float64) and gradients agree with jax.numpy's."""
    jax = pytest.importorskip("jax")
    if op.jax_fn() is None:
        pytest.skip(f"{op.key}: no jax.numpy counterpart")
    with jax.enable_x64(True):
        _check_jax(op, jax)


def _check_jax(op, jax):
    import jax.numpy as jnp
    jfn, grads = op.jax_fn(), eager_grads(op) if _differentiated(op) else None
    for i, (s, c) in enumerate(zip(cast_samples(op, "float64"), cotangents(op))):
        floats, others = split_inputs(s)
        others = [jnp.asarray(x) for x in others]
        want = reference(op, s)
        got = _jax_outputs(op, jfn, s, [jnp.asarray(x) for x in floats], others)
        for k, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-9, atol=1e-9,
                                       err_msg=f"{op.key}: jax value, sample {i} output {k}")
        if grads is None or not floats:
            continue

        def f(*xs, s=s, others=others, c=c):
            outs = _jax_outputs(op, jfn, s, list(xs), others)
            return sum(jnp.sum(o * ck) for o, ck in zip(outs, c) if ck is not None)
        want_g = jax.grad(f, argnums=tuple(range(len(floats))))(*floats)
        for j, (g, w) in enumerate(zip(grads[i], want_g)):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-8, atol=1e-8,
                                       err_msg=f"{op.key}: jax gradient, sample {i} input {j}")


# ---- the table itself ---------------------------------------------------------------------------

def _functions(namespace, prefix=""):
    names = set()
    for name in namespace.__all__:
        obj = getattr(namespace, name)
        if callable(obj) and not isinstance(obj, type):
            names.add(prefix + name)
        elif getattr(obj, "__all__", None) is not None and not prefix:  # tnp.linalg
            names |= _functions(obj, prefix=f"{name}.")
    return names


def test_every_function_has_an_entry():
    """A function added to tracegrad.numpy.__all__ needs an OpInfo entry (tests/opinfo.py)."""
    missing = _functions(tnp) - {op.name for op in OPS} - set(EXEMPT)
    assert not missing, f"tracegrad.numpy functions without an OpInfo entry: {sorted(missing)}"


def test_entries_name_functions_of_the_namespace():
    stale = ({op.name for op in OPS if op.fn is None} | set(EXEMPT)) - _functions(tnp)
    assert not stale, f"entries for names tracegrad.numpy does not have: {sorted(stale)}"


def test_every_primitive_is_reached():
    """Every primitive reachable from the front end appears in some entry's trace or in its
    traced gradient (control flow has its own tests: tests/test_control_flow*.py)."""
    seen = set()
    for op in OPS:
        if "traced" not in op.xfail:
            seen |= {e.prim.name for e in traced(op).graph.eqns}
        if _differentiated(op) and not GRAD_CHECKS & set(op.xfail):
            seen |= {e.prim.name for e in traced_gradient(op).graph.eqns}
    missing = ({n for n, p in ir.PRIMITIVES.items() if p.kind != "control"} - seen
               - set(NOT_FRONT_END))
    assert not missing, f"primitives no OpInfo entry reaches: {sorted(missing)}"


def test_docs_ops_md_is_up_to_date():
    """docs/ops.md is generated from the registry; regenerate it after adding a function:
    python -m tracegrad.tracer.numpy.coverage"""
    from tracegrad.tracer.numpy import coverage
    assert coverage.DOC.read_text() == coverage.render(), \
        "docs/ops.md is out of date: run python -m tracegrad.tracer.numpy.coverage"
