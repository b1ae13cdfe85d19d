"""`vmap`, `jacfwd`, `jacrev` and `hessian`, with JAX's semantics.

`vmap(f, in_axes, out_axes)` traces `f` once on one example (abstractly: shapes and
dtypes) and batches the graph with `passes.batching` (one rule per primitive); the
batched graph then runs on the whole batch, inlined into whatever is running:
eagerly on arrays or tensors (autograd records it), or inside `jit`, `grad` and
other vmaps.  So `vmap(grad(loss), in_axes=(None, 0, 0))` gives per-example
gradients as one program: compiled, one fused native call, no Python loop.

`jacfwd` is vmap of `jvp` over the input basis and `jacrev` vmap of the `vjp`
pullback over the output basis, as JAX builds them; `hessian` is
`jacfwd(jacrev(f))`.

>>> import numpy as np, tracegrad as tg
>>> tg.vmap(lambda x, w: np.sum(x * w), in_axes=(0, None))(np.eye(3), np.arange(3.0)).tolist()
[0.0, 1.0, 2.0]
>>> tg.jacrev(lambda x: x ** 2)(np.array([1.0, 2.0])).tolist()
[[2.0, 0.0], [0.0, 4.0]]
"""
from __future__ import annotations

import functools

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.ir import ConcretizationError, apply_graph, ops
from tracegrad.passes.batching import batch_graph
from tracegrad.tracer import Tensor, make_graph, tree_flatten, tree_unflatten

from .transforms import _argnums, _positions, check_callable, jvp, vjp


def _leaf_axes(arg, spec, what):
    """One axis (int or None) per leaf of `arg`; `spec` is an int, None, or a pytree
    prefix of `arg` (JAX's in_axes/out_axes)."""
    leaves, tree = tree_flatten(arg)
    if spec is None or isinstance(spec, (int, np.integer)):
        return [spec] * len(leaves)
    spec_leaves, spec_tree = tree_flatten(spec, is_leaf=lambda s: s is None)
    if spec_tree == tree:
        return spec_leaves
    if type(spec) is not type(arg) or len(spec) != len(arg):
        raise ValueError(f"vmap {what} specification {spec!r} does not match the structure "
                         f"{tree}")
    if isinstance(spec, dict):  # by key, in the argument's order (its leaves' order)
        if set(spec) != set(arg):
            raise ValueError(f"vmap {what} specification {spec!r} does not match the keys "
                             f"of {tree}")
        items = [(k, spec[k]) for k in arg]
    else:
        items = enumerate(spec)
    return [ax for k, s in items for ax in _leaf_axes(arg[k], s, what)]


def _in_axes(args, in_axes):
    if not isinstance(in_axes, (list, tuple)):
        specs = [in_axes] * len(args)
    elif len(in_axes) == len(args):
        specs = in_axes
    else:
        raise ValueError(f"vmap in_axes {in_axes!r} must be an int, None, or a tuple with one "
                         f"entry per positional argument ({len(args)})")
    return [ax for a, s in zip(args, specs) for ax in _leaf_axes(a, s, "in_axes")]


def _check_spec(spec, what):
    """JAX's check of an in_axes/out_axes specification: ints or None, in tuples, lists or
    dicts."""
    leaves = tree_flatten(spec, is_leaf=lambda s: s is None)[0]
    for leaf in leaves:
        if leaf is not None and (isinstance(leaf, bool) or not isinstance(leaf, (int, np.integer))):
            raise TypeError(f"vmap {what} must be an int, None, or a (nested) tuple, list or "
                            f"dict of them, got {what}={spec!r} (entry {leaf!r} of type "
                            f"{type(leaf).__name__})")


def _labels(args) -> list:
    """Per leaf of `args`, the argument it belongs to (for messages)."""
    return [f"argument {i}" for i, a in enumerate(args) for _ in tree_flatten(a)[0]]


def _normalize(ax, ndim, what):
    if ax is None:
        return None
    if not -ndim <= ax < ndim:
        raise ValueError(f"vmap {what}: axis {ax} is out of range for an argument of rank {ndim}")
    return ax % ndim


def _size(leaves, axes, labels, axis_size=None):
    found = [(ops.shape(x)[ax], label, ax) for x, ax, label in zip(leaves, axes, labels)
             if ax is not None]
    sizes = {n for n, _, _ in found} | ({axis_size} if axis_size is not None else set())
    if not sizes:
        raise ValueError("vmap needs at least one argument with a batch axis (in_axes not None) "
                         "or axis_size")
    if len(sizes) > 1:
        shown = "; ".join(f"{label} has size {n} along axis {ax}" for n, label, ax in found)
        extra = f"; axis_size is {axis_size}" if axis_size is not None else ""
        raise ValueError(f"vmap got inconsistent sizes for the mapped axes: {shown}{extra}")
    return sizes.pop()


def _example(x, ax):
    """A placeholder of one example's shape (only its shape and dtype are read)."""
    shape = ops.shape(x)
    return np.broadcast_to(np.zeros((), ops.dtype(x)), shape[:ax] + shape[ax + 1:])


def _is_array(x) -> bool:
    return hasattr(x, "_tg_trace") or isinstance(x, (np.ndarray, np.generic))


def vmap(fun, in_axes=0, out_axes=0, axis_name=None, axis_size=None, spmd_axis_name=None):
    """Vectorize `fun` over the axes `in_axes` of its arguments (module docstring).
    `axis_size` gives the batch size where no argument is mapped (JAX's); `axis_name` and
    `spmd_axis_name` are accepted for JAX's signature (tracegrad has no collectives or
    device meshes that would read them)."""
    check_callable(fun, "vmap")
    _check_spec(in_axes, "in_axes")
    _check_spec(out_axes, "out_axes")

    @functools.wraps(fun)
    def batched(*args, **kwargs):
        if kwargs:  # as JAX: keyword arguments are mapped over their axis 0
            n = len(args)
            specs = list(in_axes) if isinstance(in_axes, (list, tuple)) else [in_axes] * n
            return vmap(lambda *a: fun(*a[:n], **a[n]), tuple(specs) + (0,), out_axes,
                        axis_size=axis_size)(*args, kwargs)
        leaves, tree = tree_flatten(tuple(args))
        axes = _in_axes(args, in_axes)
        for x, ax in zip(leaves, axes):
            if ax is not None and not _is_array(x):
                raise TypeError(f"vmap: an argument mapped over (in_axes {ax}) must be an array, "
                                f"got {type(x).__name__}")
        axes = [_normalize(ax, len(ops.shape(x)), "in_axes") if ax is not None else None
                for x, ax in zip(leaves, axes)]
        size = _size(leaves, axes, _labels(args), axis_size)
        # Unmapped values are closed over, as JAX passes them through unchanged: a Python
        # `if` on one works (on a value of an enclosing trace, as a guard there).  Unmapped
        # eager tensors are captured (capture_tensors), so autograd records the batched
        # graph on them and their values stay readable.
        kept = [ax is not None for ax in axes]
        closed = _with_fixed(fun, tree, leaves, kept)
        inputs = [(x, ax) for x, ax, k in zip(leaves, axes, kept) if k]
        examples = [_example(x, ax) if ax is not None else x for x, ax in inputs]
        try:
            prog = make_graph(closed, tuple(examples), concrete=False, capture_tensors=True)
        except ConcretizationError as e:
            if str(e).startswith("vmap:"):  # an inner vmap said it already
                raise
            raise ConcretizationError(
                "vmap: under vmap an array holds the whole batch, so Python control flow "
                "(if, int(), float(), .item()) cannot decide for each example; use "
                "tracegrad.numpy.where or tracegrad.cond, or pass the value unmapped "
                f"(in_axes None).\n{e}") from None
        flags = [ax is not None for x, ax in inputs if _is_array(x)]
        graph, out_flags = batch_graph(prog.graph, flags + [False] * len(prog.captured), size)
        values = [tnp.moveaxis(x, ax, 0) if ax is not None else x
                  for x, ax in inputs if _is_array(x)]
        outs = apply_graph(graph, values + list(prog.captured))
        if any(isinstance(x, Tensor) for x in leaves):  # tensors in, tensors out (torch.vmap's),
            outs = [o if isinstance(o, Tensor) else Tensor(o) for o in outs]  # unmapped ones too
        out_value = tree_unflatten(prog.out_tree, outs)
        out_axes_ = _leaf_axes(out_value, out_axes, "out_axes")
        return tree_unflatten(prog.out_tree, [_place(o, f, ax, size)
                                              for o, f, ax in zip(outs, out_flags, out_axes_)])
    return batched


def _with_fixed(fun, tree, leaves, kept):
    """`fun` as a function of the `kept` leaves of its arguments, the others fixed."""
    def closed(*given):
        given = iter(given)
        full = [next(given) if k else x for x, k in zip(leaves, kept)]
        return fun(*tree_unflatten(tree, full))
    return closed


def _place(out, batched, ax, size):
    """A batched output (batch at 0) moved to `ax`; an unbatched one broadcast first."""
    if ax is None:
        if batched:
            raise ValueError("vmap: an output depends on the mapped inputs but its out_axes "
                             "is None")
        return out
    if not batched:
        out = ops.broadcast(ops.reshape(out, (1,) + ops.shape(out)), (size,) + ops.shape(out))
    return tnp.moveaxis(out, 0, _normalize(ax, len(ops.shape(out)), "out_axes"))


# ---- Jacobians ------------------------------------------------------------------------------

def _basis(x):
    n = int(np.prod(ops.shape(x), dtype=np.int64))
    return np.eye(n, dtype=ops.dtype(x)).reshape((n,) + tuple(ops.shape(x)))


def _with(args, nums, xs):
    args = list(args)
    for n, x in zip(nums, xs):
        args[n] = x
    return args


class _Leaves:
    """The differentiated arguments (pytrees) as one flat list of array leaves, and
    back: Jacobians are computed per leaf and regrouped into each argument's structure,
    as JAX's jacrev and jacfwd return them."""

    def __init__(self, args, nums, name: str):
        nums = tuple(_positions(nums, len(args), "jacobian"))
        self.args, self.nums = args, nums
        flat = [tree_flatten(args[n]) for n in nums]
        self.trees = [tree for _, tree in flat]
        self.leaves = [leaf for leaves, _ in flat for leaf in leaves]
        for n, (leaves, _) in zip(nums, flat):
            _need_floats(leaves, f"{name}: argument {n}", "arguments")

    def call(self, fun):
        """`fun` as a function of the flat leaves."""
        return lambda *leaves: fun(*_with(self.args, self.nums, self.regroup(leaves)))

    def regroup(self, leaves):
        """Per argument, its pytree rebuilt from its run of `leaves`."""
        out, start = [], 0
        for tree in self.trees:
            out.append(tree_unflatten(tree, list(leaves[start:start + tree.num_leaves])))
            start += tree.num_leaves
        return out

    def result(self, blocks, single: bool):
        grouped = self.regroup(blocks)
        return grouped[0] if single else tuple(grouped)


def _need_floats(values, what: str, kind: str) -> None:
    """A TypeError, as JAX's, for an int or bool value among `values`: it has no derivative
    (grad says the same in transforms.py)."""
    for value in values:
        dtype = np.dtype(ops.dtype(value))
        if dtype.kind != "f":
            raise TypeError(f"{what} has dtype {dtype}; derivatives need float32 or float64 "
                            f"{kind}")


def _name(fun) -> str:
    return getattr(fun, "__qualname__", repr(fun))


def jacrev(fun, argnums=0, has_aux=False):
    """The Jacobian by reverse mode: per output leaf, the differentiated arguments'
    structure with blocks of shape out.shape + leaf.shape (a tuple of them for a tuple
    `argnums`), as `jax.jacrev`; `has_aux=True`: `fun` returns `(out, aux)`, the
    result is `(jacobian, aux)`.

    >>> import numpy as np
    >>> from tracegrad import jacrev
    >>> jac = jacrev(lambda p: np.sin(p["w"]) * p["b"])({"w": np.zeros(2), "b": np.ones(2)})
    >>> jac["w"].shape, float(jac["b"][0, 0])
    ((2, 2), 0.0)
    """
    check_callable(fun, "jacrev")
    single, nums = _argnums(argnums)

    def jac(*args):
        flat = _Leaves(args, nums, f"jacrev of {_name(fun)}")
        out, pullback, *aux = vjp(flat.call(fun), *flat.leaves, has_aux=has_aux)
        outs, out_tree = tree_flatten(out)
        _need_floats(outs, f"jacrev of {_name(fun)}: an output", "outputs")

        def row(i):
            def pull(ct):
                cts = [ct if j == i else tnp.zeros_like(o) for j, o in enumerate(outs)]
                return pullback(tree_unflatten(out_tree, cts))
            rows = vmap(pull)(_basis(outs[i]))
            blocks = [ops.reshape(r, tuple(ops.shape(outs[i])) + tuple(ops.shape(x)))
                      for r, x in zip(rows, flat.leaves)]
            return flat.result(blocks, single)
        jacobian = tree_unflatten(out_tree, [row(i) for i in range(len(outs))])
        return (jacobian, aux[0]) if has_aux else jacobian
    return jac


def jacfwd(fun, argnums=0, has_aux=False):
    """The Jacobian by forward mode, in `jacrev`'s layout (as `jax.jacfwd`, `has_aux`
    too)."""
    check_callable(fun, "jacfwd")
    single, nums = _argnums(argnums)

    def jac(*args):
        flat = _Leaves(args, nums, f"jacfwd of {_name(fun)}")
        xs, call = flat.leaves, flat.call(fun)
        columns = []
        for k, x in enumerate(xs):
            def push(t, k=k):
                ts = [t if j == k else tnp.zeros_like(v) for j, v in enumerate(xs)]
                return jvp(call, xs, ts, has_aux=has_aux)[1]
            columns.append(vmap(push)(_basis(x)))
        leaves, out_tree = tree_flatten(columns[0])
        per_out = []
        for i in range(len(leaves)):
            blocks = [_column_block(tree_flatten(c)[0][i], x) for c, x in zip(columns, xs)]
            per_out.append(flat.result(blocks, single))
        jacobian = tree_unflatten(out_tree, per_out)
        return (jacobian, jvp(call, xs, xs, has_aux=True)[2]) if has_aux else jacobian
    return jac


def _column_block(stacked, x):
    """(n_x, *out_shape) tangents -> the Jacobian block out_shape + x.shape."""
    out_shape = tuple(ops.shape(stacked))[1:]
    moved = tnp.moveaxis(stacked, 0, -1)
    return ops.reshape(moved, out_shape + tuple(ops.shape(x)))


def hessian(fun, argnums=0, has_aux=False):
    """`jacfwd(jacrev(fun, argnums), argnums)`; `has_aux=True`: `fun` returns `(out, aux)`,
    the result is `(hessian, aux)`, as `jax.hessian`."""
    return jacfwd(jacrev(fun, argnums, has_aux=has_aux), argnums, has_aux=has_aux)
