"""Loops and branches that stay loops: `cond`, `switch`, `while_loop`, `fori_loop`,
`scan`, with JAX's signatures and semantics (`jax.lax.scan` -> `tracegrad.scan`).

Two modes, one meaning:

* **eager** (no trace is running): the functions run as Python loops and
  branches on the values given, so eager Tensors record their `grad_fn`s and
  `.backward()` works through them, as in PyTorch;
* **traced** (inside `trace`, `grad`, `jit`, ... or another loop body): each
  body is traced once, abstractly (shapes and dtypes only), into a closed
  sub-graph, and ONE equation (`cond`, `while` or `scan` of `ir/control_flow.py`)
  is recorded: the IR does not grow with the trip count.  A Python decision
  on a traced value inside a body raises ConcretizationError (use `cond`).

Bodies may close over outer arrays (they become constants of the body) and
over traced values of enclosing traces (they become explicit operands).

>>> import numpy as np
>>> import tracegrad as tg
>>> def cumsum(xs):
...     def step(total, x):
...         total = total + x
...         return total, total
...     return tg.scan(step, 0.0, xs)[1]
>>> cumsum(np.arange(4.0)).tolist()
[0.0, 1.0, 3.0, 6.0]
>>> print(tg.trace(cumsum)(np.arange(4.0)))
{ lambda a:f64[4] . let
    e:f64[] f:f64[4] = scan[length=4 num_carry=1 num_consts=0 reverse=False
      body={ lambda b:f64[] c:f64[] . let
          d:f64[] = add b c
        in (d, d) }
    ] 0.0:f64[] a
  in (f) }
"""
import functools
import operator

import numpy as np

from tracegrad.ir import ShapedArray, ops

from . import dtypes
from . import branches
from .loop_body import Body, pair, record, trace_of
from .loop_types import (CarryType, as_dtype, as_weak_output, leaf_aval, leaf_value, owned, plain,
                         type_name, unshared, with_at)
from .tree import conform, tree_flatten, tree_unflatten

__all__ = ["cond", "switch", "while_loop", "fori_loop", "scan"]


# ---- cond, switch: branch outputs matched by key ------------------------------------------

def _keyed(funs):
    """`funs` returning their dicts in the key order of the first one that returns (JAX
    sorts dict keys, so its branches may build their dicts in any order); the first
    output's structure is held per call, for the branches traced after it."""
    first = []

    def keyed(fun):
        @functools.wraps(fun)
        def call(*operands):
            out = fun(*operands)
            if not first:
                first.append(tree_flatten(out)[1])
                return out
            return conform(out, first[0])
        return call
    return [keyed(f) if callable(f) else f for f in funs]


def cond(pred, true_fun, false_fun, *operands, operand=branches._NO_OPERAND):
    return branches.cond(pred, *_keyed([true_fun, false_fun]), *operands, operand=operand)


def switch(index, funs, *operands):
    try:
        funs = _keyed(list(funs))
    except TypeError:  # not a sequence: switch's own check says so
        pass
    return branches.switch(index, funs, *operands)


cond.__doc__, switch.__doc__ = branches.cond.__doc__, branches.switch.__doc__


# ---- scan -----------------------------------------------------------------------------------

def _scan_length(xs_leaves, length):
    if length is not None:
        length = _int_length(length)
    if any(leaf_aval(x).shape == () for x in xs_leaves):
        raise ValueError("scan got a value with no leading axis to scan over: "
                         + ", ".join(type_name(leaf_aval(x)) for x in xs_leaves))
    lengths = {ops.shape(x)[0] for x in xs_leaves}
    if len(lengths) > 1:
        raise ValueError(f"scan got values with different leading axis sizes: "
                         f"{', '.join(str(ops.shape(x)[0]) for x in xs_leaves)}")
    if length is None:
        if not lengths:
            raise ValueError("scan got no values to scan over and `length` not provided")
        return lengths.pop()
    if lengths and lengths != {length}:
        raise ValueError(f"scan got `length` argument of {length} which disagrees with the "
                         f"leading axis size {lengths.pop()} of xs")
    if length < 0:
        raise ValueError(f"scan: length must be >= 0, got {length}")
    return length


def _int_length(length) -> int:
    """`length` as an int: an integer, or a float with an integral value (JAX takes 3.0)."""
    try:
        return operator.index(length)
    except TypeError:
        if isinstance(length, (float, np.floating)) and float(length).is_integer():
            return int(length)
        raise TypeError(f"scan: length must be a Python int, got {length!r}") from None


def scan(f, init, xs=None, length=None, reverse=False, unroll=1):
    """Loop `f(carry, x) -> (carry, y)` over the leading axis of `xs`, like
    `jax.lax.scan`; returns `(final carry, stacked ys)`.

    `init`, `xs` and the ys are pytrees of arrays; `xs` may be None when
    `length` is given (then x is None).  With `reverse=True` the loop runs from
    the last index down, and ys[i] is still the y of the step that read xs[i].
    `unroll` (JAX's code-size hint: a non-negative int or a bool) is checked and
    otherwise left to the compiler, which picks its own loop form.

    >>> import numpy as np
    >>> from tracegrad import scan
    >>> carry, ys = scan(lambda c, x: (c * x, c), 1.0, np.array([2.0, 3.0, 4.0]))
    >>> float(carry), ys.tolist()
    (24.0, [1.0, 2.0, 6.0])
    """
    _check_unroll(unroll, "scan")
    xs_raw, xs_tree = tree_flatten(xs)
    xs_leaves = [leaf_value(x) for x in xs_raw]
    length = _scan_length(xs_leaves, length)
    carry = CarryType.of("scan body function", init, "carry")
    trace = trace_of(carry.values + xs_leaves)
    run = _eager_scan if trace is None else _traced_scan
    return run(trace, f, carry, xs_tree, xs_leaves, length, bool(reverse))


def _check_unroll(unroll, name):
    if unroll is None or isinstance(unroll, bool):
        return
    if not isinstance(unroll, (int, np.integer)) or unroll < 0:
        raise ValueError(f"{name}: unroll must be a non-negative int or a bool, got {unroll!r}")


def _scan_body(f, carry, xs_tree, x_avals):
    """Trace `f` for the carry type; weak initial leaves are promoted (and traced again)."""
    for _ in range(2):
        body = Body.trace(lambda c, x: _conformed_pair(carry, f(c, x)),
                          [(carry.tree, carry.avals), (xs_tree, x_avals)], "scan body function")
        carry_tree = body.out_tree.children[0]
        carry.check_structure(carry_tree)
        promotions = carry.promotions(body.out_avals[:len(carry.avals)])
        if not promotions:
            break
        carry.promote(promotions)
    body.retype_weak(0, carry.avals)
    carry.check_types(body.out_avals[:len(carry.avals)])
    return body


def _conformed_pair(carry, out):
    new_carry, y = pair(out, "scan body function")
    return carry.conform(new_carry), y


def _traced_scan(trace, f, carry, xs_tree, xs_leaves, length, reverse):
    x_avals = [ShapedArray(leaf_aval(x).shape[1:], leaf_aval(x).dtype) for x in xs_leaves]
    body = _scan_body(f, carry, xs_tree, x_avals)
    outs = record(trace, "scan", body.captured + carry.arrays() + xs_leaves, body=body.graph,
                   num_consts=len(body.captured), num_carry=len(carry.avals), length=length,
                   reverse=reverse)
    n = len(carry.avals)
    carry_tree, y_tree = body.out_tree.children
    return tree_unflatten(carry_tree, outs[:n]), tree_unflatten(y_tree, outs[n:])


def _eager_step(f, carry, values, x):
    """One eager step: (carry leaves, y, y tree); the carry type is checked."""
    out_carry, y = _conformed_pair(carry, f(tree_unflatten(carry.tree, values), x))
    leaves, tree = tree_flatten(out_carry)
    carry.check_structure(tree)
    leaves = [leaf_value(v) for v in leaves]
    return leaves, y


def _eager_carry(carry, values, leaves):
    """Check output leaves against the carry; returns (leaves, promotions)."""
    out_avals = [leaf_aval(v) for v in leaves]
    promotions = carry.promotions(out_avals)
    if promotions:
        return leaves, promotions
    leaves = [as_weak_output(v, a.dtype) if dtypes.is_weak(v) else v
              for v, a in zip(leaves, carry.avals)]
    carry.check_types([leaf_aval(v) for v in leaves])
    return leaves, None


def _unshared_tree(value, others):
    leaves, tree = tree_flatten(value)
    return tree_unflatten(tree, unshared(leaves, others))


def _eager_scan(trace, f, carry, xs_tree, xs_leaves, length, reverse):
    values, ys = owned(carry.arrays()), []
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        # x[i, ...]: a 0-d array (as JAX's x), not a NumPy scalar, for a one-dim xs
        x = tree_unflatten(xs_tree, with_at([leaf[i, ...] for leaf in xs_leaves]))
        while True:
            leaves, y = _eager_step(f, carry, with_at(values), x)
            leaves, promotions = _eager_carry(carry, values, leaves)
            if promotions is None:
                break
            carry.promote(promotions)  # only possible on the first step
            values = owned(carry.arrays())
        values = leaves
        ys.append(_unshared_tree(y, values))
    if reverse:
        ys.reverse()
    return tree_unflatten(carry.tree, plain(values)), _stack_ys(f, carry, xs_tree, xs_leaves, ys)


def _stack_ys(f, carry, xs_tree, xs_leaves, ys):
    from . import numpy as tnp

    if ys:
        per_step = [tree_flatten(y) for y in ys]
        tree = per_step[0][1]
        for _, t in per_step[1:]:
            if t != tree:
                raise TypeError(f"scan body function returned ys of structure {t}, "
                                f"then {tree}: every step must return the same structure")
        columns = zip(*[leaves for leaves, _ in per_step])
        return tree_unflatten(tree, [tnp.stack([leaf_value(v) for v in col]) for col in columns])
    # Zero steps: the ys' types come from tracing the body once, abstractly.
    x_avals = [ShapedArray(leaf_aval(x).shape[1:], leaf_aval(x).dtype) for x in xs_leaves]
    body = _scan_body(f, carry, xs_tree, x_avals)
    y_avals = body.out_avals[len(carry.avals):]
    empty = [np.zeros((0,) + a.shape, a.dtype) for a in y_avals]
    from .tensor import Tensor  # (tensor.py imports this module's package)

    if any(isinstance(v, Tensor) for v in list(carry.values) + list(xs_leaves)):
        empty = [Tensor._make(e) for e in empty]  # tensors in, tensors out (as for steps)
    return tree_unflatten(body.out_tree.children[1], empty)


# ---- while_loop, fori_loop ------------------------------------------------------------------

def _check_pred(avals, what="while_loop cond_fun"):
    if len(avals) != 1 or avals[0].shape != () or avals[0].dtype != np.bool_:
        raise TypeError(f"{what} must return a boolean scalar, but got output type(s) "
                        f"[{', '.join(type_name(a) for a in avals)}]")


def while_loop(cond_fun, body_fun, init_val):
    """`while cond_fun(val): val = body_fun(val)`, like `jax.lax.while_loop`.

    `val` is a pytree of arrays whose type (structure, shapes, dtypes) the body
    keeps.  Unlike JAX, reverse-mode derivatives work through it (see
    docs/control_flow.md for the memory this costs).

    >>> from tracegrad import while_loop
    >>> int(while_loop(lambda i: i < 10, lambda i: i * 2, 1))
    16
    """
    carry = CarryType.of("while_loop body_fun", init_val, "val")
    trace = trace_of(carry.values)
    if trace is None:
        return _eager_while(cond_fun, body_fun, carry)
    return _traced_while(trace, cond_fun, body_fun, carry)


def _eager_pred(cond_fun, value):
    pred = leaf_value(cond_fun(value))
    _check_pred([leaf_aval(pred)])
    return bool(pred)


def _eager_while(cond_fun, body_fun, carry):
    values = owned(carry.arrays())
    while _eager_pred(cond_fun, tree_unflatten(carry.tree, with_at(values))):
        out = body_fun(tree_unflatten(carry.tree, with_at(values)))
        leaves, tree = tree_flatten(carry.conform(out))
        carry.check_structure(tree)
        leaves, promotions = _eager_carry(carry, values, [leaf_value(v) for v in leaves])
        if promotions is not None:  # first iteration from a weak initial value: redo it
            carry.promote(promotions)
            values = owned(carry.arrays())
            continue
        values = leaves
    return tree_unflatten(carry.tree, plain(values))


def _while_bodies(cond_fun, body_fun, carry):
    for _ in range(2):
        body = Body.trace(lambda c: carry.conform(body_fun(c)), [(carry.tree, carry.avals)],
                          "while_loop body_fun")
        carry.check_structure(body.out_tree)
        promotions = carry.promotions(body.out_avals)
        if not promotions:
            break
        carry.promote(promotions)
    body.retype_weak(0, carry.avals)
    carry.check_types(body.out_avals)
    test = Body.trace(cond_fun, [(carry.tree, carry.avals)], "while_loop cond_fun")
    _check_pred(test.out_avals)
    return test, body


def _traced_while(trace, cond_fun, body_fun, carry):
    test, body = _while_bodies(cond_fun, body_fun, carry)
    outs = record(trace, "while", test.captured + body.captured + carry.arrays(),
                   cond_graph=test.graph, body_graph=body.graph,
                   cond_nconsts=len(test.captured), body_nconsts=len(body.captured))
    return tree_unflatten(carry.tree, outs)


def _static_int(x):
    """A loop bound as a Python int (a float truncated, as JAX's `int(bound)`), or None when
    it is a traced value."""
    x = leaf_value(x)
    if hasattr(x, "_tg_trace") and not hasattr(x, "_tg_concrete"):
        return None
    value = np.asarray(x._tg_concrete() if hasattr(x, "_tg_concrete") else x)
    if value.shape != ():
        raise TypeError(f"fori_loop bounds must be scalars, got {type_name(leaf_aval(x))}")
    return int(value)


def _bounds_dtype(lower, upper):
    """The index dtype: both bounds integers (their result type), or both floats (JAX
    accepts float bounds: concrete ones count as `int(bound)`, traced ones make a float
    index); one of each raises, as in JAX."""
    kinds = [np.dtype(leaf_aval(leaf_value(b)).dtype).kind for b in (lower, upper)]
    if not all(k in "biuf" for k in kinds) or ("f" in kinds and kinds != ["f", "f"]):
        raise TypeError("fori_loop: lower and upper must both be integers or both floats, got "
                        f"{type_name(leaf_aval(leaf_value(lower)))} and "
                        f"{type_name(leaf_aval(leaf_value(upper)))}")
    return dtypes.result_type(leaf_value(lower), leaf_value(upper))


def fori_loop(lower, upper, body_fun, init_val, *, unroll=None):
    """`for i in range(lower, upper): val = body_fun(i, val)`, like `jax.lax.fori_loop`
    (`unroll` as in `scan`).

    With Python-int (concrete) bounds it is a `scan` of `upper - lower` steps
    (reverse mode then stores each step's residuals); with traced bounds, a
    `while` loop.  `i` is an integer scalar array of the bounds' dtype.  Float
    bounds, as in JAX: concrete ones are truncated (`int(bound)`, an int64 `i`),
    traced ones give a float `i` counting from `lower` while `i < upper`.

    >>> from tracegrad import fori_loop
    >>> int(fori_loop(0, 5, lambda i, total: total + i, 0))
    10
    """
    _check_unroll(unroll, "fori_loop")
    index_dtype = _bounds_dtype(lower, upper)
    lo, hi = _static_int(lower), _static_int(upper)
    if lo is None or hi is None:
        return _fori_while(lower, upper, body_fun, init_val, index_dtype)
    if index_dtype.kind == "f":
        index_dtype = np.dtype(np.int64)
    return _fori_scan(lo, hi, body_fun, init_val, index_dtype)


def _fori_scan(lo, hi, body_fun, init_val, index_dtype):
    """A scan carrying (i, val) with no xs: eagerly a Python loop, traced one `scan`."""
    carry = CarryType.of("fori_loop body_fun", init_val, "val")

    def step(c, _):
        i, val = c
        return (i + np.asarray(1, index_dtype), _fori_step(carry, body_fun, i, val)), None
    if hi <= lo and trace_of(carry.values) is None:  # eagerly, the body is never called
        return tree_unflatten(carry.tree, owned(carry.arrays()))
    start = np.asarray(lo, index_dtype)
    (_, out), _ = scan(step, (start, carry.tree_value()), None, length=max(hi - lo, 0))
    return out


def _fori_step(carry, body_fun, i, val):
    """`body_fun(i, val)`, its output checked against `val`'s type, named as the user's
    `val` (weak leaves are left to the enclosing loop's promotion)."""
    out = carry.conform(body_fun(i, val))
    leaves, tree = tree_flatten(out)
    carry.check_structure(tree)
    current = [leaf_aval(leaf_value(v)) for v in tree_flatten(val)[0]]
    outs = [leaf_value(v) for v in leaves]
    if any(a != leaf_aval(v) and not w and not dtypes.is_weak(v)
           for a, v, w in zip(current, outs, carry.weak)):
        try:
            carry.check_types([leaf_aval(v) for v in outs], current)
        except TypeError as exc:
            if any(_widened_by_index(a, leaf_aval(v)) for a, v in zip(current, outs)):
                raise TypeError(f"{exc}\n{_INDEX_HINT}") from None
            raise
    return out


# JAX's fori_loop index is weakly typed, so `c + i` keeps a float32 carry float32; here `i`
# is an int64 array and NumPy's promotion widens the carry.
_INDEX_HINT = ("fori_loop's index `i` is an int64 array, not weakly typed as in JAX: with "
               "a float32 or int32 carry, convert it first (`i.astype(val.dtype)`, "
               "`np.float32(i)`).")


def _widened_by_index(a, b) -> bool:
    wide = {(np.dtype(np.float32), np.dtype(np.float64)), (np.dtype(np.int32), np.dtype(np.int64))}
    return a.shape == b.shape and (np.dtype(a.dtype), np.dtype(b.dtype)) in wide


def _fori_while(lower, upper, body_fun, init_val, index_dtype):
    upper = leaf_value(upper)
    carry = CarryType.of("fori_loop body_fun", init_val, "val")

    def step(c):
        i, val = c
        return i + np.asarray(1, index_dtype), _fori_step(carry, body_fun, i, val)
    start = as_dtype(leaf_value(lower), index_dtype)
    _, out = while_loop(lambda c: c[0] < upper, step, (start, carry.tree_value()))
    return out

