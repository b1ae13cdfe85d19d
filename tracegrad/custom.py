"""Custom derivative rules: `custom_vjp`, `custom_jvp` (JAX's signatures) and
`autograd.Function` (PyTorch's), three spellings of one mechanism.

Each call becomes a `custom_call` (ir/custom.py) holding closed graphs of the
primal function, the forward pass with residuals and the backward pass (and,
for custom_jvp, the JVP rule; its reverse mode is the transpose of that JVP).
  * traced (`trace`, `jit`, `compile_grad`, `grad`): one `custom_call` equation,
    printed with its rules; differentiation uses them; afterwards the call is
    inlined (passes/inline.py) so its code is fused and compiled like any other;
  * eager tensors: the forward pass runs on the data and one backward node per
    output (named `<name>Backward`, as PyTorch names autograd.Function nodes)
    calls the backward rule;
  * plain arrays: the function is simply called.
A function may close over values of an enclosing trace, but not over values
being differentiated (the rule has no cotangent for them): that raises.

>>> import numpy as np, tracegrad as tg
>>> @tg.custom_vjp
... def clip_gradient(x):
...     return x
>>> clip_gradient.defvjp(lambda x: (x, None), lambda _, g: (np.clip(g, -1.0, 1.0),))
>>> tg.grad(lambda x: np.sum(clip_gradient(x) * 5.0))(np.ones(2)).tolist()
[1.0, 1.0]
"""
from __future__ import annotations

import functools

import numpy as np

import tracegrad.numpy as tnp
from tracegrad.ir import TracedValue, apply_graph, ops
from tracegrad.tracer import (Tensor, is_grad_enabled, make_graph, no_grad, tree_flatten,
                              tree_map, tree_unflatten)
from tracegrad.tracer.branches import union_captured, with_consts
from tracegrad.tracer.loop_body import CUSTOM_HINT, Body, record, trace_of
from tracegrad.tracer.loop_types import leaf_aval, leaf_value, value_name
from tracegrad.tracer.trace import is_array_leaf
from tracegrad.tracer.tree import conform, flatten_like

from . import custom_eager
from .transforms import jvp as _jvp_transform
from .transforms import vjp as _vjp_transform


class _Rules:
    """The three Python functions of a custom function: fun(*args) -> out,
    fwd(*args) -> (out, res), bwd(res, g) -> tuple of cotangents (one per arg),
    and optionally jvp(primals, tangents) -> (out, tangent_out)."""

    torch_style = False  # autograd.Function: PyTorch's checks and tensors in backward
    non_differentiable = frozenset()  # ids of outputs marked so (Function's ctx)
    materialize = True  # zeros, not None, for outputs that got no cotangent

    def __init__(self, name, fun, fwd, bwd, jvp=None, guard=None):
        self.name, self.fun, self.fwd, self.bwd, self.jvp = name, fun, fwd, bwd, jvp
        # guard.active > 0 while the rules run: a call of the function in them is plain
        # (shared by the rules made per call for nondiff_argnums)
        self.guard = guard if guard is not None else _Guard()


class _Guard:
    """Whether the function's rules are running (`active`), and the traced outputs of the
    function's own calls made meanwhile (`nested`: `fwd` returning `f(x)`, as JAX allows)."""

    __slots__ = ("active", "nested")

    def __init__(self):
        self.active, self.nested = 0, set()


def _call(rules: _Rules, args):
    guard = rules.guard
    if guard.active:  # `fwd` may call the function itself (as JAX allows): the primal
        out = rules.fun(*args)
        guard.nested.update(id(v) for v in tree_flatten(out)[0] if hasattr(v, "_tg_trace"))
        return out
    guard.active += 1
    try:
        return _dispatch(rules, args)
    finally:
        guard.active -= 1


def _dispatch(rules: _Rules, args):
    leaves, tree = tree_flatten(tuple(args))
    values = [leaf_value(x) for x in leaves]
    trace = trace_of(values)
    if trace is not None:
        return _traced(rules, args, tree, values, trace)
    if is_grad_enabled() and any(isinstance(v, Tensor) and v.requires_grad for v in values):
        return custom_eager.call(rules, tree, values)
    return rules.fun(*args)


# ---- traced: one custom_call equation --------------------------------------------------

def _arg_types(tree, avals):
    start, types = 0, []
    for child in tree.children:
        types.append((child, avals[start:start + child.num_leaves]))
        start += child.num_leaves
    return types


def _check_pair(body, what, name):
    t = body.out_tree
    if t.kind not in (tuple, list) or len(t.children) != 2:
        raise TypeError(f"{name}: {what} must return a pair, it returned {t}")
    return t.children


def _traced(rules, args, tree, values, trace):
    avals = [leaf_aval(v) for v in values]
    arrays = [np.asarray(v, a.dtype) if not hasattr(v, "_tg_trace") else v
              for v, a in zip(values, avals)]
    arg_types = _arg_types(tree, avals)
    fun = Body.trace(rules.fun, arg_types, rules.name, CUSTOM_HINT)
    returned = []
    fwd = Body.trace(_fwd_conformed(rules.fwd, fun.out_tree, rules.guard, returned), arg_types,
                     f"{rules.name} forward rule", CUSTOM_HINT)
    out_tree, res_tree = _check_pair(fwd, "the forward rule", rules.name)
    n_out = out_tree.num_leaves
    if out_tree != fun.out_tree or fwd.out_avals[:n_out] != fun.out_avals:
        raise TypeError(f"{rules.name}: the forward rule's output {out_tree} "
                        f"{fwd.out_avals[:n_out]} differs from the function's {fun.out_tree} "
                        f"{fun.out_avals}")
    bwd = Body.trace(_bwd_checked(rules, tree, avals),
                     [(res_tree, fwd.out_avals[n_out:]), (out_tree, fun.out_avals)],
                     f"{rules.name} backward rule", CUSTOM_HINT)
    bodies = [fun, fwd, bwd]
    jvp = _jvp_body(rules, tree, avals)
    if jvp is not None:
        bodies.append(jvp)
    captured = union_captured(bodies)
    graphs = [with_consts(b, captured) for b in bodies]
    fwd_calls = tuple(returned) if rules.jvp is None and not rules.torch_style else None
    outs = record(trace, "custom_call", captured + arrays, fun=graphs[0], fwd=graphs[1],
                  bwd=graphs[2], jvp=graphs[3] if jvp is not None else None,
                  num_consts=len(captured), fn_name=rules.name, fwd_calls=fwd_calls)
    return tree_unflatten(fun.out_tree, outs)


def _jvp_body(rules, tree, avals):
    """The JVP rule traced, or None without one (or, for a rule that may be missing,
    where its body has no forward mode: forward mode then raises when asked for)."""
    if rules.jvp is None:
        return None
    try:
        return Body.trace(lambda p, t: rules.jvp(tuple(p), tuple(t)),
                          [(tree, avals), (tree, avals)], f"{rules.name} jvp rule", CUSTOM_HINT)
    except TypeError:
        if getattr(rules, "optional_jvp", False):
            return None
        raise


def _fwd_conformed(fwd, out_tree, guard, returned):
    """`fwd` with its output's dicts in the function's key order (matched by key, as JAX's
    sorted treedefs match them); a pair of another structure is left to the check.
    `returned` gets, per output leaf, whether it is the output of a call of the function
    itself (a nested call: reverse mode keeps the custom rule for it, ir/custom.py)."""
    def conformed(*args):
        guard.nested.clear()
        result = fwd(*args)
        if isinstance(result, (tuple, list)) and len(result) == 2:
            result = conform(result[0], out_tree), result[1]
            returned[:] = [id(v) in guard.nested for v in tree_flatten(result[0])[0]]
        guard.nested.clear()
        return result
    return conformed


def _bwd_checked(rules, tree, avals):
    """bwd(res, g) with its result checked: one cotangent per argument (None: zeros)."""
    def bwd(res, g):
        cts = rules.bwd(res, g)
        if not isinstance(cts, (tuple, list)) or len(cts) != len(tree.children):
            raise TypeError(f"{rules.name}: the backward rule must return a tuple of "
                            f"{len(tree.children)} cotangents (one per argument), got "
                            f"{value_name(cts)}")
        flat = []
        for i, (ct, (child, child_avals)) in enumerate(zip(cts, _arg_types(tree, avals))):
            leaves = custom_eager.arg_cotangents(ct, child, rules.name, i)
            flat += [np.zeros(a.shape, a.dtype) if c is None else tnp.astype(c, a.dtype)
                     for c, a in zip(leaves, child_avals)]
        return tuple(flat)
    return bwd


# ---- the public spellings -----------------------------------------------------------------

class _Nondiff:
    """A custom function's `nondiff_argnums` (JAX's): per call, the function and its
    rules close over those arguments and take the others."""

    def __init__(self, argnums):
        self.argnums = tuple(sorted({int(i) for i in argnums}))
        if any(i < 0 for i in self.argnums):
            raise ValueError("nondiff_argnums must be non-negative")

    def split(self, args):
        """(the nondiff arguments, the others, the merge of new others with the former)."""
        if self.argnums and self.argnums[-1] >= len(args):
            raise TypeError(f"nondiff_argnums {self.argnums} out of range for {len(args)} "
                            "arguments")
        fixed = [args[i] for i in self.argnums]
        rest = [a for i, a in enumerate(args) if i not in self.argnums]

        def merged(values):
            values, out = iter(values), []
            for i in range(len(args)):
                out.append(args[i] if i in self.argnums else next(values))
            return out
        return fixed, rest, merged


class custom_vjp:
    """`jax.custom_vjp`: `f = custom_vjp(fun)`, then `f.defvjp(fwd, bwd)` with
    `fwd(*args) -> (out, residuals)` and `bwd(residuals, g) -> tuple of cotangents`
    (one per argument, None for zero).  Forward mode through it raises, as in JAX.
    `defvjp` returns None, as JAX's does.  `nondiff_argnums` (as JAX's): those
    arguments are passed to `bwd` first, `bwd(*nondiff, residuals, g)`, and get no
    cotangent."""

    _tg_static_callable = True  # a pure function of its arguments: static as an argument (signature.py)

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun, self._rules, self._guard = fun, None, _Guard()
        self._nondiff = _Nondiff(nondiff_argnums)

    def defvjp(self, fwd, bwd):
        name = getattr(self.fun, "__name__", "custom_vjp")
        self._fwd, self._bwd = fwd, bwd
        self._rules = _Rules(name, self.fun, fwd, bwd, guard=self._guard)

    def __call__(self, *args):
        if self._rules is None:
            raise TypeError(f"{self.__name__}: no rule yet: call defvjp(fwd, bwd) first")
        if not self._nondiff.argnums:
            return _call(self._rules, args)
        fixed, rest, merged = self._nondiff.split(args)
        fun, fwd, bwd = self.fun, self._fwd, self._bwd
        rules = _Rules(self._rules.name, lambda *a: fun(*merged(a)),
                       lambda *a: fwd(*merged(a)), lambda res, g: bwd(*fixed, res, g),
                       guard=self._guard)
        return _call(rules, tuple(rest))


class custom_jvp:
    """`jax.custom_jvp`: `f = custom_jvp(fun)`, then `f.defjvp(rule)` with
    `rule(primals, tangents) -> (out, tangent_out)`.  Reverse mode uses the
    transpose of the rule (it must be linear in the tangents, as JAX requires).
    `nondiff_argnums` (as JAX's): those arguments are passed to the rule first,
    `rule(*nondiff, primals, tangents)`, and are left out of primals and tangents."""

    _tg_static_callable = True  # a pure function of its arguments: static as an argument (signature.py)

    def __init__(self, fun, nondiff_argnums=()):
        functools.update_wrapper(self, fun)
        self.fun, self._rules, self._guard = fun, None, _Guard()
        self._nondiff = _Nondiff(nondiff_argnums)

    def defjvp(self, jvp):
        self._jvp = jvp
        self._rules = _jvp_rules(getattr(self.fun, "__name__", "custom_jvp"), self.fun, jvp,
                                 self._guard)
        return jvp

    def __call__(self, *args):
        if self._rules is None:
            raise TypeError(f"{self.__name__}: no rule yet: call defjvp(rule) first")
        if not self._nondiff.argnums:
            return _call(self._rules, args)
        fixed, rest, merged = self._nondiff.split(args)
        fun, jvp = self.fun, self._jvp
        rules = _jvp_rules(self._rules.name, lambda *a: fun(*merged(a)),
                           lambda primals, tangents: jvp(*fixed, primals, tangents), self._guard)
        return _call(rules, tuple(rest))


def _checked_jvp(name, jvp):
    """The JVP rule with its result checked: a pair whose tangent matches the output's
    structure, shapes and dtypes (JAX's checks), named in the error."""
    def rule(primals, tangents):
        result = jvp(primals, tangents)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError(f"{name}: the custom JVP rule must return a pair (primal output, "
                            f"tangent output), got {value_name(result)}"
                            + (f" of length {len(result)}" if isinstance(result, (tuple, list))
                               else ""))
        outs, out_tree = tree_flatten(result[0])
        try:  # dict entries matched by key: the tangent may list them in another order
            ts = flatten_like(result[1], out_tree)
        except ValueError:
            raise TypeError(f"{name}: the custom JVP rule's tangent output has structure "
                            f"{tree_flatten(result[1])[1]}, its primal output {out_tree}") from None
        for i, (o, t) in enumerate(zip(outs, ts)):
            if t is not None and tuple(ops.shape(t)) != tuple(ops.shape(o)):
                raise TypeError(f"{name}: the custom JVP rule's tangent output {i} is "
                                f"{value_name(t)}, but the primal output is {value_name(o)}")
        return result[0], tree_unflatten(out_tree, ts)
    return rule


def _jvp_rules(name, fun, jvp, guard):
    """A custom_jvp function's rules: reverse mode transposes the JVP rule."""
    jvp = _checked_jvp(name, jvp)

    def fwd(*args):
        return fun(*args), args

    def bwd(args, g):  # the transpose of the JVP at `args` (each a pytree of arrays)
        zeros = [tree_map(tnp.zeros_like, a) for a in args]
        _, pullback = _vjp_transform(lambda *t: jvp(tuple(args), t)[1], *zeros)
        return tuple(pullback(g))
    return _Rules(name, fun, fwd, bwd, jvp, guard=guard)


class FunctionCtx:
    """The `ctx` of `Function.forward`/`backward`: `save_for_backward`, `saved_tensors`,
    `needs_input_grad`, `mark_non_differentiable`, `set_materialize_grads`, and any
    attributes forward sets."""

    def __init__(self, needs_input_grad=()):
        self.needs_input_grad = needs_input_grad
        self.saved_tensors = ()
        self.non_differentiable, self.materialize_grads = set(), True

    def save_for_backward(self, *tensors):
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, (Tensor, np.ndarray)) and not hasattr(t, "_tg_trace"):
                raise TypeError(f"save_for_backward can only save tensors, but argument {i} is "
                                f"of type {type(t).__name__}; keep other values as ctx attributes")
        self.saved_tensors = tuple(tensors)

    def mark_non_differentiable(self, *outputs):
        """These outputs get no gradient (their tensors do not require grad)."""
        self.non_differentiable.update(id(o) for o in outputs)

    def set_materialize_grads(self, value: bool):
        """With False, backward gets None for outputs that got no gradient (not zeros)."""
        self.materialize_grads = bool(value)


class Function:
    """PyTorch's `torch.autograd.Function`: subclass it with static `forward(ctx, *args)`
    and `backward(ctx, *grads)` (one cotangent per forward output, one gradient or None
    per input), and call `MyFunction.apply(*args)`.

    >>> import numpy as np, tracegrad as tg
    >>> class Exp(tg.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         y = np.exp(x)
    ...         ctx.save_for_backward(y)
    ...         return y
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (y,) = ctx.saved_tensors
    ...         return g * y
    >>> x = tg.tensor([0.0, 1.0], requires_grad=True)
    >>> Exp.apply(x).sum().backward()
    >>> np.round(x.grad.numpy(), 6).tolist(), Exp.apply(x).grad_fn.name()
    ([1.0, 2.718282], 'ExpBackward')
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("subclasses of Function define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError("subclasses of Function define backward(ctx, *grads)")

    @classmethod
    def apply(cls, *args):
        needs = tuple(_needs_grad(a) for a in args)
        ctx = FunctionCtx(needs)

        def fun(*a):
            with no_grad():  # as PyTorch's: forward never records
                return cls.forward(FunctionCtx(needs), *a)

        def fwd(*a):
            ctx.saved_tensors = ()
            out = cls.forward(ctx, *a)
            rules.non_differentiable = ctx.non_differentiable
            rules.materialize = ctx.materialize_grads
            return out, tuple(ctx.saved_tensors)

        def bwd(res, g):
            ctx.saved_tensors = tuple(res)
            grads = cls.backward(ctx, *(g if isinstance(g, tuple) else (g,)))
            return grads if isinstance(grads, tuple) else (grads,)
        rules = _Rules(cls.__name__, fun, fwd, bwd)
        rules.torch_style = True
        return _call(rules, args)


def _needs_grad(a) -> bool:
    """PyTorch's `needs_input_grad` entry: a tensor that requires grad (with grad mode on);
    a traced value, which may be differentiated; never a plain array or number."""
    if isinstance(a, Tensor):
        return a.requires_grad and is_grad_enabled()
    return isinstance(a, TracedValue)


def checkpoint(fun=None, *, prevent_cse=True, policy=None, static_argnums=()):
    """`jax.checkpoint` (rematerialization): the same function and gradients, but reverse
    mode keeps only `fun`'s inputs and recomputes its intermediates in the backward pass,
    trading compute for memory (the compiled program's scratch arena shrinks on deep
    chains).  The recomputation reads its inputs through `optimization_barrier`, so
    that CSE cannot merge it with the forward pass.  Values `fun` closes over are
    differentiated like its arguments (they are made arguments first).  On eager
    tensors and plain arrays `fun` simply runs.  As JAX's: `static_argnums` are passed
    through as Python values, keyword arguments too; `prevent_cse` and `policy` are
    accepted (values never depend on them; everything but the inputs is recomputed).

    >>> import numpy as np, tracegrad as tg
    >>> layer = tg.checkpoint(lambda h, w: np.tanh(h @ w))
    >>> g = tg.grad(lambda w: np.sum(layer(layer(np.ones(2), w), w)))(np.eye(2) * 0.5)
    >>> g.shape
    (2, 2)
    """
    if fun is None:  # @checkpoint(static_argnums=...) as a decorator factory
        return functools.partial(checkpoint, prevent_cse=prevent_cse, policy=policy,
                                 static_argnums=static_argnums)
    name = f"checkpoint_{getattr(fun, '__name__', 'f').strip('<>')}"
    static = {static_argnums} if isinstance(static_argnums, int) else set(static_argnums)

    @functools.wraps(fun)
    def remat(*args, **kwargs):
        if static or kwargs:  # fixed per call: the checkpointed body closes over them
            _, dynamic, merged = _Nondiff(i for i in static if 0 <= i < len(args)).split(args)

            def body(*values):
                return fun(*merged(values), **kwargs)
            body.__name__ = getattr(fun, "__name__", "f")
            return checkpoint(body)(*dynamic)
        leaves, tree = tree_flatten(tuple(args))
        values = [leaf_value(x) for x in leaves]
        if trace_of(values) is None:
            return fun(*args)
        # Python scalars as 0-d arrays: traced here and in the call's bodies alike
        args = tree_unflatten(tree, [np.asarray(v, leaf_aval(v).dtype) if not hasattr(v, "_tg_trace")
                                     else v for v in values])
        closed, captured = _closure_converted(fun, args)
        return _call(_remat_rules(name, closed), (tuple(captured),) + tuple(args))
    return remat


def _closure_converted(fun, args):
    """(fun as a function of (captured values, *args), the captured values): the values of
    enclosing traces `fun` reads become an explicit first argument."""
    prog = make_graph(fun, args, concrete=False)
    n_args = len(prog.graph.invars) - len(prog.captured)

    def closed(captured, *a):
        flat = [x for x in tree_flatten(tuple(a))[0] if is_array_leaf(leaf_value(x))]
        if len(flat) != n_args:
            raise AssertionError(f"checkpoint: {len(flat)} array arguments for {n_args} inputs")
        return tree_unflatten(prog.out_tree, apply_graph(prog.graph, flat + list(captured)))
    return closed, list(prog.captured)


def _remat_rules(name, fun):
    def fwd(*args):
        return fun(*args), args

    def bwd(args, g):
        fenced = tree_unflatten(*_fenced(args, _first_element(g)))
        _, pullback = _vjp_transform(fun, *fenced)
        return tuple(pullback(g))

    def jvp(primals, tangents):
        return _jvp_transform(fun, primals, tangents)
    rules = _Rules(name, fun, fwd, bwd, jvp)
    rules.optional_jvp = True  # a body without forward mode (a custom_vjp call) still remats
    return rules


def _first_element(g):
    """A 0-d value of the cotangent `g` (the recomputation waits for it), or None."""
    leaf = next((x for x in tree_flatten(g)[0] if ops.aval(x).size), None)
    if leaf is None:
        return None
    shape = ops.shape(leaf)
    return ops.reshape(ops.slice(leaf, (0,) * len(shape), (1,) * len(shape), (1,) * len(shape)), ())


def _fenced(args, after):
    """The traced float leaves of `args` behind an optimization barrier ordered after
    `after`; the rest as they are."""
    leaves, tree = tree_flatten(tuple(args))
    if after is None:
        return tree, leaves
    fenced = [ops.optimization_barrier(x, ops.convert(after, ops.dtype(x)))
              if hasattr(x, "_tg_trace") and ops.dtype(x).kind == "f" else x for x in leaves]
    return tree, fenced


class _Policies:
    """`jax.checkpoint_policies`' names, so that `checkpoint(f, policy=...)` ports: each is a
    policy as JAX's (`policy(prim, *args, **params) -> bool`: whether to save a value), and
    `checkpoint` accepts any; tracegrad saves only the inputs whatever the policy
    (`nothing_saveable`'s behaviour), which changes memory and time, never values."""

    @staticmethod
    def everything_saveable(*_, **__):
        return True

    @staticmethod
    def nothing_saveable(*_, **__):
        return False

    dots_saveable = checkpoint_dots = staticmethod(lambda prim, *_, **__: "dot" in str(prim))
    dots_with_no_batch_dims_saveable = dots_saveable

    @staticmethod
    def save_only_these_names(*names):
        return lambda *_, **__: False

    @staticmethod
    def save_anything_except_these_names(*names):
        return lambda *_, **__: True

    @staticmethod
    def save_any_names_but_these(*names):
        return lambda *_, **__: True


checkpoint_policies = _Policies()

