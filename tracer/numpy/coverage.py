"""Coverage of the NumPy API: `python -m tracegrad.tracer.numpy.coverage` writes docs/ops.md.

The denominators are data kept here: the callables of jax.numpy (functions and
ufuncs, not dtypes or classes; 344 names) and of jax.numpy.linalg (31), read
once from jax 0.10.2 with

    [n for n in dir(jnp) if not n.startswith("_") and callable(getattr(jnp, n))
     and not inspect.isclass(getattr(jnp, n)) and not inspect.ismodule(getattr(jnp, n))]

The rest comes from the registry: `tracegrad.numpy.__all__` (what is offered),
the dispatch table (whether plain `np.X(tensor)` reaches it), each function's
docstring, and one probe trace per function, which gives the primitives it
lowers to (with their docs) and whether a gradient flows through it.
`--check` exits with status 1 when the file on disk differs (tests run it).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

JAX_NUMPY = """
    abs absolute acos acosh add all allclose amax amin angle any append apply_along_axis
    apply_over_axes arange arccos arccosh arcsin arcsinh arctan arctan2 arctanh argmax argmin
    argpartition argsort argwhere around array array_equal array_equiv array_repr array_split
    array_str asarray asin asinh astype atan atan2 atanh atleast_1d atleast_2d atleast_3d
    average bartlett bincount bitwise_and bitwise_count bitwise_invert bitwise_left_shift
    bitwise_not bitwise_or bitwise_right_shift bitwise_xor blackman block broadcast_arrays
    broadcast_shapes broadcast_to can_cast cbrt ceil choose clip column_stack compress concat
    concatenate conj conjugate convolve copy copysign corrcoef correlate cos cosh count_nonzero
    cov cross cumprod cumsum cumulative_prod cumulative_sum deg2rad degrees delete diag
    diag_indices diag_indices_from diagflat diagonal diff digitize divide divmod dot dsplit
    dstack ediff1d einsum einsum_path empty empty_like equal exp exp2 expand_dims expm1 extract
    eye fabs fill_diagonal flatnonzero flip fliplr flipud float_power floor floor_divide fmax
    fmin fmod frexp from_dlpack frombuffer fromfile fromfunction fromiter frompyfunc fromstring
    full full_like gcd geomspace get_printoptions gradient greater greater_equal hamming hanning
    heaviside histogram histogram2d histogram_bin_edges histogramdd hsplit hstack hypot i0
    identity imag indices inner insert interp intersect1d invert isclose iscomplex iscomplexobj
    isdtype isfinite isin isinf isnan isneginf isposinf isreal isrealobj isscalar issubdtype
    iterable ix_ kaiser kron lcm ldexp left_shift less less_equal lexsort linspace load log
    log10 log1p log2 logaddexp logaddexp2 logical_and logical_not logical_or logical_xor
    logspace mask_indices matmul matrix_transpose matvec max maximum mean median meshgrid min
    minimum mod modf moveaxis multiply nan_to_num nanargmax nanargmin nancumprod nancumsum
    nanmax nanmean nanmedian nanmin nanpercentile nanprod nanquantile nanstd nansum nanvar ndim
    negative nextafter nonzero not_equal ones ones_like outer packbits pad partition percentile
    permute_dims piecewise place poly polyadd polyder polydiv polyfit polyint polymul polysub
    polyval positive pow power printoptions prod promote_types ptp put put_along_axis quantile
    rad2deg radians ravel ravel_multi_index real reciprocal remainder repeat reshape resize
    result_type right_shift rint roll rollaxis roots rot90 round save savez searchsorted select
    set_printoptions setdiff1d setxor1d shape sign signbit sin sinc sinh size sort sort_complex
    spacing split sqrt square squeeze stack std subtract sum swapaxes take take_along_axis tan
    tanh tensordot tile trace transpose trapezoid tri tril tril_indices tril_indices_from
    trim_zeros triu triu_indices triu_indices_from true_divide trunc union1d unique unique_all
    unique_counts unique_inverse unique_values unpackbits unravel_index unstack unwrap vander
    var vdot vecdot vecmat vectorize vsplit vstack where zeros zeros_like
""".split()

JAX_LINALG = """
    cholesky cond cross det diagonal eig eigh eigvals eigvalsh inv lstsq matmul matrix_norm
    matrix_power matrix_rank matrix_transpose multi_dot norm outer pinv qr slogdet solve svd
    svdvals tensordot tensorinv tensorsolve trace vecdot vector_norm
""".split()

DOC = Path(__file__).resolve().parents[2] / "docs" / "ops.md"


# ---- the registry ----------------------------------------------------------------------------

def namespace():
    import tracegrad.tracer.numpy as tnp
    return tnp


def offered() -> dict:
    """name -> function for every function of tracegrad.numpy (`linalg.X` for linalg)."""
    tnp, out = namespace(), {}
    for name in tnp.__all__:
        obj = getattr(tnp, name)
        sub = getattr(obj, "__all__", None)
        if sub is not None and not callable(obj):
            out.update({f"{name}.{n}": getattr(obj, n) for n in sub})
        elif callable(obj) and not isinstance(obj, type):
            out[name] = obj
    return out


def dispatched() -> set:
    """Names `np.X(tensor)` reaches through `__array_function__`/`__array_ufunc__`."""
    from .dispatch import TABLE
    names = set()
    for f in TABLE:
        module = getattr(f, "__module__", "") or ""
        prefix = "linalg." if module.startswith("numpy.linalg") else ""
        names.add(prefix + getattr(f, "__name__", ""))
    return names


def first_line(f) -> str:
    doc = (getattr(f, "__doc__", None) or "").strip()
    line = doc.split("\n\n")[0].replace("\n", " ")
    line = " ".join(line.split())
    return line.replace("|", "\\|")


# ---- one probe trace per function ----------------------------------------------------------------

def _probe_inputs():
    rng = np.random.default_rng(0)
    a = rng.uniform(-0.5, 0.5, (3, 3))
    return a @ a.T + 3 * np.eye(3)  # symmetric positive definite: valid for every linalg routine


def _attempts(x):
    """Argument lists a function is tried with, in order (the first that traces wins)."""
    y, i = x + 0.5, np.arange(9).reshape(3, 3)
    return [("ij,jk", x, y), (x,), (x, y), ([x, y],), (x, 1), (x, (9,)), (x[0], y[0]), (x > 3, x, y), (i,),
            (i, i), (i, [x, y, x]), (x, i), (x, [0, 1]), (x[0],), (x, 0.5),
            (np.sum, 0, x), (np.sum, x, 0), (i[0], x[0]), (3,), ((2, 3),), (0.0, 1.0, 5),
            (x, 0, 1), (x, (3, 3)), ([x > 3, x < 3], [x, y]), (x > 3, x), (x, 1, 0.5),
            (5, 2.0), ((2, 3), 1.5)]


def probe(f):
    """The traced graph of `f` on the first argument list that traces, or None."""
    from .. import make_graph
    x = _probe_inputs()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for args in _attempts(x):
            try:
                return make_graph(lambda *a, args=args: f(*a), [a for a in args]).graph
            except Exception:  # noqa: PERF203 (a probe: the next argument list is tried)
                continue
    return None


def gradient_note(graph) -> str:
    """"yes" when a float output depends on a float input through differentiable primitives
    only; "zero" when float outputs do not (floor, sign, comparisons); "none" for bool and
    integer results; "-" when no output depends on an input (a constant)."""
    from tracegrad.ir import Var
    live = {v for v in graph.invars if np.issubdtype(v.aval.dtype, np.floating)}
    depends = set(graph.invars)
    for eqn in graph.eqns:
        reads = [v for v in eqn.inputs if isinstance(v, Var)]
        if any(v in depends for v in reads):
            depends.update(eqn.outs)
        if eqn.prim.differentiable and any(v in live for v in reads):
            live.update(o for o in eqn.outs if np.issubdtype(o.aval.dtype, np.floating))
    outs = [v for v in graph.outvars if isinstance(v, Var)]
    if not any(v in depends for v in outs):
        return "-"
    if not any(np.issubdtype(v.aval.dtype, np.floating) for v in outs):
        return "none"
    return "yes" if any(v in live for v in outs) else "zero"


# ---- the page ------------------------------------------------------------------------------------

LEGEND = """\
Columns: **np.X** says whether a plain numpy call on tensors and traced values
(`np.X(t)`) dispatches to tracegrad (through `__array_function__` /
`__array_ufunc__`); otherwise call `tracegrad.numpy.X`.  **gradient** comes from
one probe trace of the function: *yes* (a float output depends on a float input
through differentiable primitives), *zero* (float outputs with a zero gradient:
rounding, `sign`, masks), *none* (bool or integer results), *-* (the result does
not depend on the array arguments), *?* (the probe arguments did not fit; see
tests/opinfo.py for its samples).  Every listed function is run eager, traced
and compiled, in float32 and float64, with gradients checked against finite
differences and jax.numpy, by tests/test_opinfo.py.

Inside a traced function (`trace`, `grad`, `jit`, `compile_grad`):
* `np.asarray`, `np.array`, `np.asanyarray` and `np.ascontiguousarray` reach tracegrad
  only with `like=` (their *np.X* column): otherwise NumPy converts through
  `__array__`, which a traced value refuses, as JAX's tracers do.  Write
  `tracegrad.numpy.asarray(x)`, or leave `x` as it is;
* a numpy function tracegrad does not offer raises `UnsupportedFunctionError`
  (a TypeError) naming it, the user's line and the nearest supported functions;
* ufunc methods: `.reduce` and `.accumulate` of the ufuncs that have them here,
  `.outer` of every two-operand ufunc, and `.at(a, indices, b)` of `add`, `subtract`,
  `multiply`, `divide`, `maximum`, `minimum` and `power` on a tracegrad array `a`
  (updated in place, as NumPy's; repeated indices accumulate for `add` and `subtract`,
  and raise for the others, as `a.at[indices]` does);
* `np.random` sampling runs once, at trace time: the sample is frozen into the
  program as a constant.  Tracing warns once per function (`RandomSampleFrozenWarning`)
  when the legacy global generator (`np.random.seed`, `np.random.normal`, ...)
  advanced while the function was traced.  Samples drawn from a
  `np.random.default_rng()` Generator are frozen the same way but are not detected:
  pass random arrays as arguments instead.  The check watches the process-wide
  generator, so another thread drawing from it during the trace also triggers the
  warning.
"""


def _row(name, f, note, graph, numpy_names):
    prims = sorted({e.prim.name for e in graph.eqns}) if graph is not None else []
    shown = ", ".join(prims[:6]) + (", ..." if len(prims) > 6 else "")
    return (f"| `{name}` | {'yes' if f is not None else '-'} | "
            f"{'yes' if name in numpy_names else '-'} | {note} | {shown} | "
            f"{first_line(f) if f is not None else ''} |")


HEADER = ("| function | tracegrad | np.X | gradient | primitives | note |\n"
          "|---|---|---|---|---|---|")


def _table(names, funcs, numpy_names) -> list:
    rows = [HEADER]
    for name in names:
        f = funcs.get(name)
        graph = probe(f) if f is not None else None
        note = gradient_note(graph) if graph is not None else ("?" if f is not None else "")
        rows.append(_row(name, f, note, graph, numpy_names))
    return rows


def _lowering(p, native_extern) -> str:
    """How codegen computes primitive `p` (read from codegen's tables: the docs generator
    only; the pipeline never imports codegen from here)."""
    if p.kind == "extern":
        return "native (LLVM)" if p.name in native_extern else "host callback (numpy impl)"
    return {"reduce": "vectorized reduction loop", "structural": "index map, fused (no copy)",
            "dot": "BLAS gemm/gemv/dot (inline loops when small)",
            "control": "native loop or branch; bodies are kernel programs"}.get(
        p.kind, "polynomial (mathlib), vectorized" if p.transcendental else "inline, vectorized")


def _ulp(name, max_ulp) -> str:
    name = {"round": "rint"}.get(name, name)
    bounds = [max_ulp.get((name, tag)) for tag in ("f32", "f64")]
    return "" if bounds == [None, None] else " / ".join(f"{b:g}" for b in bounds)


def _primitives() -> list:
    from tracegrad.codegen import extern, mathlib
    from tracegrad.ir import PRIMITIVES
    rows = ["Each primitive: the NumPy function it is, whether it is differentiable, how "
            "compiled code computes it, and the accuracy bound of its polynomial in ULPs "
            "(float32 / float64; tests/test_mathlib.py asserts them).", "",
            "| primitive | kind | numpy | differentiable | lowering | max ULP | doc |",
            "|---|---|---|---|---|---|---|"]
    for name in sorted(PRIMITIVES):
        p = PRIMITIVES[name]
        doc = " ".join((p.doc or "").split()).replace("|", "\\|")
        numpy_name = p.numpy_name or (name if callable(getattr(np, name, None)) else "")
        rows.append(f"| `{name}` | {p.kind} | {numpy_name} | "
                    f"{'yes' if p.differentiable else 'no'} | {_lowering(p, extern.NATIVE)} | "
                    f"{_ulp(name, mathlib.MAX_ULP)} | {doc} |")
    return rows


def render() -> str:
    funcs, numpy_names = offered(), dispatched()
    linalg = [f"linalg.{n}" for n in JAX_LINALG]
    extra = sorted(n for n in funcs if n not in set(JAX_NUMPY) | set(linalg))
    n_np = sum(n in funcs for n in JAX_NUMPY)
    n_la = sum(n in funcs for n in linalg)
    n_linalg = sum(n.startswith("linalg.") for n in funcs)
    lines = [
        "# NumPy coverage", "",
        "Generated by `python -m tracegrad.tracer.numpy.coverage` from the registry "
        "(tracegrad.numpy's `__all__`, its dispatch table, the primitives' docs); do not edit.",
        "",
        f"* **{n_np} of the {len(JAX_NUMPY)}** functions and ufuncs of jax.numpy "
        "(jax 0.10.2) are in tracegrad.numpy;",
        f"* **{n_la} of the {len(JAX_LINALG)}** functions of jax.numpy.linalg are in "
        "tracegrad.numpy.linalg;",
        f"* tracegrad.numpy has {len(funcs)} functions in all ({len(funcs) - n_linalg} at its top "
        f"level, {n_linalg} in `linalg`); plain `np.X` calls on "
        f"tracegrad arrays reach {len(numpy_names)} numpy functions and ufuncs.", "",
        LEGEND,
        "## jax.numpy", "", *_table(JAX_NUMPY, funcs, numpy_names), "",
        "## jax.numpy.linalg", "", *_table(linalg, funcs, numpy_names), "",
        "## tracegrad.numpy functions beyond jax.numpy", "", *_table(extra, funcs, numpy_names),
        "", "## Primitives", "", *_primitives(), "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    text = render()
    path = Path(next((a for a in argv if not a.startswith("-")), DOC))
    if "--check" in argv:
        current = path.read_text() if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run python -m tracegrad.tracer.numpy.coverage")
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
