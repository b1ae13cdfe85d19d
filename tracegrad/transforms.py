"""Composable function transforms: `grad`, `value_and_grad`, `jvp`, `vjp`.

Each transform traces the user's function to a graph (`tracegrad.tracer.make_graph`),
differentiates the graph (`tracegrad.passes.autodiff`) and applies the result
to the arguments:

* concrete arguments (numpy arrays, eager Tensors, Python numbers being
  differentiated) are traced with their values and the derivative graph is
  evaluated by the reference interpreter; results are numpy arrays;
* eager Tensors that require grad (arguments, or closed over by the function) are
  the exception, while grad mode is on: the derivative graph is applied to them
  eagerly, so the results are Tensors that autograd recorded (a gradient penalty
  `loss + sum(grad(f)(w) ** 2)` differentiates through `grad`, as with torch.func);
* traced arguments (the call happens inside `tracegrad.trace`, `jit` or another
  transform) make the function be traced on fresh inputs, with the outer
  values' example values when the outer trace has them; the derivative graph
  is then inlined into the outer trace (`ir.eval_graph_bind`), and
  the guards the inner trace recorded are re-registered there.  That is what
  makes the transforms nest: `grad(grad(f))`, `jvp(grad(f), ...)`,
  `tracegrad.trace(grad(f))`.

Arguments are pytrees (tuples, lists, dicts) flattened as `make_graph` does:
array leaves (numpy arrays and scalars, Tensors, traced values) become graph
inputs, other leaves (Python numbers, strings, ...) are static, passed to the
function as they are.  Every leaf of an argument being differentiated is an
array (a Python float becomes a float64 array); its derivative has the
argument's structure.
"""
from __future__ import annotations

import functools

import numpy as np

import tracegrad.tracer as tracer
from tracegrad.ir import TracedValue, apply_graph, ops
from tracegrad.ir.core import ShapedArray, is_float, native
from tracegrad.passes.autodiff import grad_graph, jvp_graph, vjp_split
from tracegrad.passes.manager import cleanup
from tracegrad.tracer.dtypes import MASKED_HINT, WeakScalar, is_masked
from tracegrad.tracer.loop_types import leaf_paths
from tracegrad.tracer.scalars import TracedScalar, WeakFloat
from tracegrad.tracer.trace import is_array_leaf
from tracegrad.tracer.tree import flatten_like

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "linearize"]


# ---- one call of a transformed function -------------------------------------------

def _as_array_leaf(leaf, where: str):
    """A leaf of an argument being differentiated: it must be (or become) an array."""
    if isinstance(leaf, TracedScalar):  # `.item()` of a traced value, a traced float argument
        return leaf._tg_symbolic
    if is_masked(leaf):
        raise TypeError(f"{where}: cannot differentiate with respect to a numpy masked array: "
                        f"{MASKED_HINT}")
    if isinstance(leaf, np.ndarray) and not leaf.dtype.isnative:  # '>f8' on x86
        return leaf.astype(native(leaf.dtype))
    if is_array_leaf(leaf):
        return leaf
    if isinstance(leaf, (bool, int, float)):
        return np.asarray(leaf)
    raise TypeError(f"{where}: cannot differentiate with respect to a "
                    f"{type(leaf).__name__}; pass arrays or numbers")


def _input_value(leaf):
    """What the graph input of an array leaf is bound to: traced values stay, and so do
    Tensors that require grad (autograd records the transformed function on them, as
    torch.func's transforms compose with `.backward()`); other Tensors unbox."""
    if isinstance(leaf, TracedValue):
        return leaf
    if isinstance(leaf, tracer.Tensor):
        return leaf if leaf.requires_grad and tracer.is_grad_enabled() else leaf.data
    return np.asarray(leaf)


class _Call:
    """One call's positional arguments, flattened the way `make_graph` flattens them.

    `values` binds the graph inputs (one per array leaf, in order); `spans[i]`
    is the range of those inputs that positional argument `i` holds, and
    `trees[i]` its structure (to give gradients the argument's structure).
    """

    def __init__(self, fun, args, differentiated=(), numbers=None):
        self.fun = fun
        # how messages number the arguments: grad passes only the differentiated ones
        self.numbers = tuple(numbers) if numbers is not None else tuple(range(len(args)))
        self.weak = _weak_leaves(args, differentiated)
        self.args = tuple(
            tracer.tree_map(lambda l, i=i: _as_array_leaf(
                l, f"{self.name()}: argument {self.numbers[i]}"), a)
            if i in differentiated else a for i, a in enumerate(args))
        self.values, self.spans, self.trees = [], [], []
        for a in self.args:
            leaves, tree = tracer.tree_flatten(a)
            start = len(self.values)
            self.values += [_input_value(l) for l in leaves if is_array_leaf(l)]
            self.spans.append(range(start, len(self.values)))
            self.trees.append(tree)

    def name(self) -> str:
        return getattr(self.fun, "__qualname__", repr(self.fun))

    def trace(self):
        """Trace `fun` on fresh inputs: with example values when every one is known."""
        concrete = all(_example(v) is not None for v in self.values)
        fun = _with_weak_floats(self.fun, self.weak) if self.weak else self.fun
        prog = tracer.make_graph(fun, self.args, concrete=concrete, capture_tensors=True)
        if len(prog.graph.invars) != len(self.values) + len(prog.captured):  # flattenings agree
            raise AssertionError(f"{self.name()}: traced {len(prog.graph.invars)} inputs for "
                                 f"{len(self.values)} array arguments")
        return prog

    def inputs_of(self, position: int) -> list:
        """Indices of the graph inputs of positional argument `position`; all must be float."""
        for k, i in enumerate(self.spans[position]):
            dtype = ops.dtype(self.values[i])
            if not is_float(dtype):
                raise TypeError(f"{self.name()}: argument {self.numbers[position]}"
                                f"{self._leaf_path(position, k)} has dtype {dtype}; "
                                "derivatives need float32 or float64 arguments")
        return list(self.spans[position])

    def _leaf_path(self, position: int, k: int) -> str:
        """Where the k-th array leaf of argument `position` is (`['i']`), for messages."""
        leaves, tree = tracer.tree_flatten(self.args[position])
        try:
            paths = leaf_paths(tree, "")
        except AttributeError:  # a registered node type has no field names to show
            return ""
        paths = [p for p, leaf in zip(paths, leaves) if is_array_leaf(leaf)]
        return paths[k] if k < len(paths) else ""

    def unflatten(self, position: int, flat: list):
        return tracer.tree_unflatten(self.trees[position], flat)


def _weak_leaves(args, differentiated) -> frozenset:
    """Indices (among all leaves of `args`) of the Python floats being differentiated."""
    weak, offset = set(), 0
    for i, a in enumerate(args):
        leaves = tracer.tree_flatten(a)[0]
        if i in differentiated:
            weak.update(offset + k for k, leaf in enumerate(leaves)
                        if isinstance(leaf, (float, WeakScalar)) and not isinstance(leaf, np.generic))
        offset += len(leaves)
    return frozenset(weak)


def _with_weak_floats(fun, weak):
    """`fun` receiving the traced inputs of Python floats as weak-typed `WeakFloat`s,
    so that they promote as the floats would (`x_f32 * s` stays float32)."""
    @functools.wraps(fun)
    def weak_fun(*args):
        leaves, tree = tracer.tree_flatten(args)
        return fun(*tracer.tree_unflatten(tree, [WeakFloat(leaf) if i in weak else leaf
                                                  for i, leaf in enumerate(leaves)]))
    return weak_fun


def _example(value):
    """The concrete value behind `value`, or None when an abstract trace holds it."""
    if isinstance(value, TracedValue):
        return value._tg_trace.example_value(value)
    return value


def _like(x, aval: ShapedArray, what: str):
    """`x` as a value of `aval`: its shape and dtype must match, as JAX checks, except that
    a Python number (weakly typed) for a float value takes that value's dtype."""
    weak = isinstance(x, (int, float)) and not isinstance(x, (bool, np.generic))
    x = _input_value(_as_array_leaf(x, what))
    if ops.shape(x) != aval.shape:
        raise ValueError(f"{what} has shape {ops.shape(x)}, expected {aval.shape}")
    dtype = np.dtype(ops.dtype(x))
    if dtype != aval.dtype and not (weak and aval.dtype.kind == "f"):
        hint = (": an integer or bool input has no tangent (pass np.zeros_like of it)"
                if aval.dtype.kind != "f" else f" (cast it: .astype(np.{aval.dtype}))")
        raise TypeError(f"{what} has dtype {dtype}, expected {aval.dtype}{hint}")
    return x if isinstance(x, TracedValue) else x.astype(aval.dtype, copy=False)


def _argnums(argnums):
    """(whether `argnums` is one int, the positions as a tuple); an empty tuple selects
    nothing to differentiate, an error (JAX fails there too, less clearly)."""
    single = isinstance(argnums, (int, np.integer))
    nums = (int(argnums),) if single else tuple(int(a) for a in argnums)
    if not nums:
        raise ValueError("argnums=() selects no argument to differentiate: give an int or a "
                         "non-empty tuple of ints")
    return single, nums


def _positions(argnums, n_args, name):
    out = []
    for a in argnums:
        if not -n_args <= a < n_args:
            raise TypeError(f"{name}: argnums asks for argument {a}, but the call has "
                            f"{n_args} arguments")
        out.append(a % n_args)
    return out


def _leaves_like(tree_of, tree, what):
    """The leaves of `tree`, which must have the structure `tree_of` (dict entries matched
    by key, in `tree_of`'s order)."""
    try:
        return flatten_like(tree, tree_of)
    except ValueError as e:
        raise ValueError(f"{what} has structure {tracer.tree_flatten(tree)[1]}, expected "
                         f"{tree_of} ({e})") from None


# ---- the transforms ----------------------------------------------------------------

def value_and_grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """`fun` returning `(fun(*args), gradient)`; `fun` must return one float scalar.

    With `has_aux=True`, `fun` returns `(value, aux)` (aux any pytree of arrays, not
    differentiated) and the result is `((value, aux), gradient)`, as in JAX.

    `argnums` is an int (one gradient) or a tuple of ints (a tuple of
    gradients).  An argument may be a pytree (tuple, list, dict) of arrays; its
    gradient has the same structure.

    >>> import numpy as np
    >>> from tracegrad import grad, value_and_grad
    >>> value, g = value_and_grad(lambda x: np.sum(x * x))(np.array([1.0, 2.0]))
    >>> float(value), g.tolist()
    (5.0, [2.0, 4.0])
    >>> _, (gx, gy) = value_and_grad(lambda x, y: x * y, argnums=(0, 1))(3.0, 4.0)
    >>> float(gx), float(gy)
    (4.0, 3.0)
    >>> loss = lambda p, x: np.sum(np.tanh(x @ p["w"] + p["b"]))
    >>> g = grad(loss)({"w": np.zeros((3, 2)), "b": np.zeros(2)}, np.ones((4, 3)))
    >>> sorted(g), g["w"].tolist()[0]
    (['b', 'w'], [4.0, 4.0])

    The arguments not in `argnums` are passed to `fun` as they are (as JAX's): a concrete
    one stays concrete, so a Python `if` on it works under `vmap` too.  `holomorphic` is
    accepted for JAX's signature; True raises (tracegrad has no complex numbers).
    """
    check_callable(fun, "value_and_grad")
    _check_holomorphic(holomorphic, "value_and_grad")
    return _value_and_grad(fun, argnums, has_value=True, has_aux=has_aux)


def check_callable(fun, name: str) -> None:
    """A TypeError at once, as JAX's, for a transform of something that is not a function
    (it would only fail when called)."""
    if not callable(fun):
        raise TypeError(f"{name}: expected a function, got {type(fun).__name__} {fun!r:.60}")


def _check_holomorphic(holomorphic, name):
    if holomorphic:
        raise TypeError(f"{name}: holomorphic=True differentiates complex functions, and "
                        "tracegrad supports no complex dtypes (float32, float64, bool, int32, "
                        "int64 only); use holomorphic=False with real arguments")


def _value_and_grad(fun, argnums, has_value, has_aux=False):
    """value_and_grad, or (None, grads) without the value, so that `grad` inlines
    no dead forward output into an outer trace."""
    single, nums = _argnums(argnums)

    @functools.wraps(fun)
    def value_and_grad_fun(*args, **kwargs):
        positions = _positions(nums, len(args), getattr(fun, "__qualname__", "fun"))
        wanted = sorted(set(positions))
        local = {p: k for k, p in enumerate(wanted)}  # argument position -> index in the call
        call = _Call(_others_fixed(_keywords_bound(fun, kwargs), args, wanted),
                     tuple(args[p] for p in wanted), set(local.values()), numbers=wanted)
        wrt = [call.inputs_of(local[p]) for p in positions]
        prog = call.trace()
        if prog.out_tree.kind is None:
            raise TypeError(f"grad of {call.name()}: the function returned None; it must "
                            "return one float scalar (is a `return` missing?)")
        n_aux = aux_count(prog.out_tree, call.name(), scalar=True) if has_aux else 0
        _check_scalar_output(prog.graph, call.name(), n_aux)
        try:
            graph = grad_graph(prog.graph, argnums=[i for w in wrt for i in w],
                               has_value=has_value, aux=n_aux)
        except TypeError as e:
            raise TypeError(f"grad of {call.name()}: {e}") from None
        outs = apply_graph(cleanup(graph, keep_calls=True), call.values + prog.captured)
        n_value = int(has_value) + n_aux
        value, flat = outs[:n_value], outs[n_value:]
        grads, start = [], 0
        for p, w in zip(positions, wrt):
            grads.append(call.unflatten(local[p], flat[start:start + len(w)]))
            start += len(w)
        if has_value or has_aux:
            value = tracer.tree_unflatten(prog.out_tree, ([] if has_value else [None]) + value)
        return value, (grads[0] if single else tuple(grads))

    return value_and_grad_fun


def _others_fixed(fun, args, wanted):
    """`fun` of the arguments at positions `wanted` only; the others are passed as they are
    (JAX's grad closes over them too): not graph inputs, so a concrete one stays concrete
    where the differentiated ones are traced abstractly (`vmap(grad(f), in_axes=(0, None))`
    with a Python `if` on the unmapped argument).  Traced ones are captured values."""
    if len(wanted) == len(args):
        return fun

    def fixed(*given):
        full = list(args)
        for p, value in zip(wanted, given):
            full[p] = value
        return fun(*full)
    fixed.__name__ = getattr(fun, "__name__", "fun")
    fixed.__qualname__ = getattr(fun, "__qualname__", fixed.__name__)
    return fixed


def _keywords_bound(fun, kwargs):
    """`fun` with its keyword arguments given (as jax.grad: they pass through, never
    differentiated; arrays among them are constants of the trace)."""
    if not kwargs:
        return fun

    def bound(*args):
        return fun(*args, **kwargs)
    bound.__name__ = getattr(fun, "__name__", "fun")
    bound.__qualname__ = getattr(fun, "__qualname__", bound.__name__)
    return bound


def aux_count(out_tree, name, scalar=False) -> int:
    """The number of aux leaves of a `has_aux` function's `(value, aux)` output; the value
    is any pytree (vjp, jvp, jacobians), or one array for `grad` (`scalar`)."""
    if out_tree.kind not in (tuple, list) or len(out_tree.children) != 2 \
            or (scalar and out_tree.children[0].kind != "leaf"):
        what = "(value, aux) with one scalar value" if scalar else "(value, aux)"
        raise TypeError(f"{name}: with has_aux=True the function must return a pair "
                        f"{what}, it returned {out_tree}")
    return out_tree.children[1].num_leaves


def _check_scalar_output(graph, name, n_aux=0):
    avals = graph.out_avals[:len(graph.out_avals) - n_aux]
    if len(avals) != 1 or avals[0].shape != () or not is_float(avals[0].dtype):
        shown = ", ".join(f"{a} of shape {a.shape}" for a in avals)
        raise TypeError(f"grad of {name}: the function must return one float scalar, it "
                        f"returned ({shown}); for other outputs use tracegrad.vjp (reverse mode) "
                        "or tracegrad.jvp (forward mode)")


def grad(fun, argnums=0, has_aux=False, holomorphic=False):
    """The gradient of a scalar-valued `fun` w.r.t. argument(s) `argnums`; with
    `has_aux=True` `fun` returns `(value, aux)` and the result is `(gradient, aux)`.

    Composable: `grad(grad(f))` is the second derivative, and inside
    `tracegrad.trace` the gradient is recorded into the traced graph.

    >>> import tracegrad.numpy as tnp
    >>> from tracegrad import grad
    >>> d2 = grad(grad(lambda x: x * x * x))
    >>> float(d2(2.0))
    12.0
    >>> float(grad(tnp.sin)(0.0))
    1.0

    Arguments not in `argnums` are passed as they are, never traced (as JAX's);
    `holomorphic=True` raises: tracegrad has no complex numbers.
    """
    check_callable(fun, "grad")
    _check_holomorphic(holomorphic, "grad")
    value_and_grad_fun = _value_and_grad(fun, argnums, has_value=False, has_aux=has_aux)

    @functools.wraps(fun)
    def grad_fun(*args, **kwargs):
        value, grads = value_and_grad_fun(*args, **kwargs)
        return (grads, value[1]) if has_aux else grads

    return grad_fun


def jvp(fun, primals, tangents, has_aux=False):
    """Forward mode: `(fun(*primals), d fun(primals) . tangents)`.

    `primals` and `tangents` are sequences of arrays (or pytrees of arrays) of
    the same structure, shapes and dtypes; the results have the structure of
    `fun`'s output.  With `has_aux=True`, `fun` returns `(out, aux)` and the result
    is `(out, tangent, aux)`, as JAX's.

    >>> import numpy as np
    >>> from tracegrad import jvp
    >>> out, tangent = jvp(lambda x: np.sin(x) * 2.0, (np.zeros(2),), (np.ones(2),))
    >>> out.tolist(), tangent.tolist()
    ([0.0, 0.0], [2.0, 2.0])
    """
    if not (isinstance(primals, (tuple, list)) and isinstance(tangents, (tuple, list))):
        raise TypeError("jvp: primals and tangents must be tuples or lists (one entry per "
                        f"argument of the function); got {type(primals).__name__} and "
                        f"{type(tangents).__name__}: write jvp(f, (x,), (t,))")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    lin = _Linearized(fun, primals, has_aux)
    outs = lin.apply(tangents)
    n, n_aux = lin.n, lin.n_aux
    result = (tracer.tree_unflatten(lin.out_tree, outs[:n - n_aux]),
              tracer.tree_unflatten(lin.out_tree, outs[n:]))
    if has_aux:
        return result + (tracer.tree_unflatten(lin.prog.out_tree.children[1], outs[n - n_aux:n]),)
    return result


class _Linearized:
    """`fun` traced once at `primals`, with its JVP graph: `apply(tangents)` gives the
    outputs, then the output tangents (jvp, linearize)."""

    def __init__(self, fun, primals, has_aux):
        self.call = _Call(fun, primals, differentiated=set(range(len(primals))))
        self.prog = prog = self.call.trace()
        # Closed-over values of an enclosing trace are inputs with zero tangent here.
        self.zero_tangents = [ops.full_like(v, 0.0) for v in prog.captured]
        self.n = n = len(prog.graph.outvars)
        self.n_aux = n_aux = aux_count(prog.out_tree, self.call.name()) if has_aux else 0
        self.graph = jvp_graph(prog.graph, out_which=[True] * (n - n_aux) + [False] * n_aux)
        self.out_tree = prog.out_tree.children[0] if has_aux else prog.out_tree

    def apply(self, tangents) -> list:
        call, flat = self.call, []
        for p, t in enumerate(tangents):
            leaves = _leaves_like(call.trees[p], t, f"tangent {p}")
            flat += [_like(leaf, ops.aval(call.values[i]), f"tangent {p}")
                     for leaf, i in zip(leaves, call.spans[p])]
        return apply_graph(self.graph, call.values + self.prog.captured + flat
                           + self.zero_tangents)


def linearize(fun, *primals, has_aux=False):
    """`(fun(*primals), f_jvp)`, `f_jvp(*tangents)` giving `jvp(fun, primals, tangents)[1]`,
    as JAX's `linearize`; with `has_aux=True`, `(out, f_jvp, aux)`.  `fun` is traced and
    differentiated once, here; each `f_jvp` call evaluates the JVP graph at the fixed
    primals (its primal part runs again: JAX's partial evaluation, which keeps only the
    linear part, is not done).

    >>> import numpy as np
    >>> from tracegrad import linearize
    >>> out, f_jvp = linearize(lambda x: np.sin(x) * 2.0, np.zeros(2))
    >>> out.tolist(), f_jvp(np.ones(2)).tolist()
    ([0.0, 0.0], [2.0, 2.0])
    """
    lin = _Linearized(fun, tuple(primals), has_aux)
    zeros = [tracer.tree_map(lambda v: np.zeros(np.shape(v), np.result_type(v)), p)
             for p in primals]
    outs = lin.apply(zeros)
    n, n_aux = lin.n, lin.n_aux

    def f_jvp(*tangents):
        if len(tangents) != len(primals):
            raise TypeError(f"linearize: the function takes {len(primals)} tangents (one per "
                            f"primal), got {len(tangents)}")
        return tracer.tree_unflatten(lin.out_tree, lin.apply(tangents)[n:])

    value = tracer.tree_unflatten(lin.out_tree, outs[:n - n_aux])
    if has_aux:
        return value, f_jvp, tracer.tree_unflatten(lin.prog.out_tree.children[1],
                                                   outs[n - n_aux:n])
    return value, f_jvp


def vjp(fun, *primals, has_aux=False):
    """Reverse mode: `(fun(*primals), vjp_fun)`, `vjp_fun(cotangent)` -> a cotangent per primal.

    The cotangent has the structure of `fun`'s output; each result has the
    structure of its primal (integer and bool primals get zeros).  The
    forward pass runs once, here; `vjp_fun` runs only the backward part,
    however often it is called.  With `has_aux=True`, `fun` returns `(out, aux)` and
    the result is `(out, vjp_fun, aux)`, as JAX's (aux is not differentiated).

    >>> import numpy as np
    >>> from tracegrad import vjp
    >>> out, vjp_fun = vjp(lambda x, y: x * y, np.array([1.0, 2.0]), np.array([3.0, 4.0]))
    >>> gx, gy = vjp_fun(np.ones(2))
    >>> gx.tolist(), gy.tolist()
    ([3.0, 4.0], [1.0, 2.0])
    """
    call = _Call(fun, primals, differentiated=set(range(len(primals))))
    prog = call.trace()
    n = len(prog.graph.outvars)
    n_aux = aux_count(prog.out_tree, call.name()) if has_aux else 0
    out_tree = prog.out_tree.children[0] if has_aux else prog.out_tree
    forward, backward = vjp_split(prog.graph, cts=[True] * (n - n_aux) + [False] * n_aux)
    results = apply_graph(forward, call.values + prog.captured)
    outs, residuals = results[:n], results[n:]

    def vjp_fun(cotangent):
        leaves = _leaves_like(out_tree, cotangent, f"the cotangent of {call.name()}")
        cts = [_like(c, aval, f"cotangent {i}")
               for i, (c, aval) in enumerate(zip(leaves, prog.graph.out_avals))]
        flat = apply_graph(backward, residuals + cts)
        return tuple(call.unflatten(p, [flat[i] for i in call.spans[p]])
                     for p in range(len(primals)))

    value = tracer.tree_unflatten(out_tree, outs[:n - n_aux])
    if has_aux:
        return value, vjp_fun, tracer.tree_unflatten(prog.out_tree.children[1], outs[n - n_aux:])
    return value, vjp_fun
