"""Define-by-run autograd: grad mode, backward nodes and the backward engine.

Each differentiable eager operation on a tensor that requires grad records a
node holding the primitive, its parameters and the saved operands.  Backward
runs the primitive's VJP rule (`Primitive.vjp`) on numpy arrays (plain
backward) or on tensors (create_graph=True, so the gradient is itself
differentiable).  Node classes carry PyTorch's names (`Primitive.torch_name`).

>>> from tracegrad.tracer import tensor
>>> a = tensor(2.0, requires_grad=True)
>>> y = a * a
>>> y.grad_fn  # doctest: +ELLIPSIS
<MulBackward0 object at 0x...>
>>> y.grad_fn.next_functions[0][0].name()
'AccumulateGrad'
"""
from __future__ import annotations

import functools
import inspect
import threading
import weakref

import numpy as np

from tracegrad.ir.primitives import PRIMITIVES


# ---- grad mode ----------------------------------------------------------------------------

class GradMode(threading.local):
    """Whether eager operations record backward nodes (per thread, like PyTorch)."""

    def __init__(self):
        self.enabled = True

    def reset(self):
        self.enabled = True


GRAD_MODE = GradMode()


def is_grad_enabled() -> bool:
    return GRAD_MODE.enabled


class _SetGradMode:
    """Context manager (and decorator) setting grad mode; restores it on exit."""

    mode = True

    def __new__(cls, func=None):
        # `@no_grad` (bare) decorates at once; `no_grad()` is the context manager.
        self = super().__new__(cls)
        return self(func) if callable(func) else self

    def __enter__(self):
        self._prev = GRAD_MODE.enabled
        GRAD_MODE.enabled = self.mode
        return self

    def __exit__(self, *exc):
        GRAD_MODE.enabled = self._prev
        return False

    def __call__(self, fn):
        return _decorated(fn, type(self))


def _decorated(fn, mode):
    """`fn` run with grad mode set by the context manager `mode()`; a generator function's
    body runs in it at each resumption (as PyTorch's decorators), not only at creation."""
    if inspect.isgeneratorfunction(fn):
        def wrapped(*args, **kwargs):
            return (yield from _in_mode(fn(*args, **kwargs), mode))
    else:
        def wrapped(*args, **kwargs):
            with mode():
                return fn(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = fn.__name__, fn.__doc__
    return wrapped


def _in_mode(gen, mode):
    """Drive `gen`, each of its steps under `mode()`; sends, throws and close pass through."""
    send, value = gen.send, None
    while True:
        try:
            with mode():
                out = send(value)
        except StopIteration as stop:
            return stop.value
        try:
            value, send = (yield out), gen.send
        except GeneratorExit:
            with mode():
                gen.close()
            raise
        except BaseException as e:  # thrown in: the generator handles it, in its mode
            value, send = e, gen.throw


class no_grad(_SetGradMode):
    """Operations inside record nothing (the SGD update `w -= lr * w.grad` goes here).

    >>> from tracegrad.tracer import no_grad, tensor
    >>> w = tensor([1.0], requires_grad=True)
    >>> with no_grad():
    ...     print((w * 2).requires_grad)
    False
    """

    mode = False


class enable_grad(_SetGradMode):
    """Re-enable recording inside a `no_grad` block."""

    mode = True


class inference_mode(_SetGradMode):
    """PyTorch's `inference_mode(mode=True)`: no_grad inside (tracegrad has no separate
    inference tensors); `inference_mode(False)` turns grad mode on, as PyTorch's does.

    >>> from tracegrad import inference_mode, tensor
    >>> with inference_mode():
    ...     print((tensor([1.0], requires_grad=True) * 2).requires_grad)
    False
    """

    enabled = True  # bare `@inference_mode` decorates before any __init__

    def __init__(self, mode: bool = True):
        self.enabled = bool(mode)

    def __enter__(self):
        self._prev = GRAD_MODE.enabled
        GRAD_MODE.enabled = not self.enabled
        return self

    def __call__(self, fn):
        return _decorated(fn, functools.partial(inference_mode, self.enabled))


class set_grad_enabled(_SetGradMode):
    """PyTorch's `set_grad_enabled(mode)`: sets grad mode at once (as a call), and restores
    the previous mode on leaving when used as a context manager or decorator.

    >>> from tracegrad.tracer import set_grad_enabled, tensor
    >>> with set_grad_enabled(False):
    ...     print((tensor([1.0], requires_grad=True) * 2).requires_grad)
    False
    """

    def __init__(self, mode: bool):
        self.mode = bool(mode)
        self._prev = GRAD_MODE.enabled
        GRAD_MODE.enabled = self.mode

    def __enter__(self):
        return self

    def __call__(self, fn):
        GRAD_MODE.enabled = self._prev  # as a decorator it applies per call only
        return _decorated(fn, functools.partial(set_grad_enabled, self.mode))


# ---- version counters ---------------------------------------------------------------------

class Version:
    """An in-place modification counter, shared by tensors sharing one buffer."""

    __slots__ = ("value",)

    def __init__(self):
        self.value = 0

    def bump(self):
        self.value += 1


# ---- backward nodes -------------------------------------------------------------------------

_FREED = ("Trying to backward through the graph a second time (or directly access saved "
          "tensors after they have already been freed). Saved intermediate values of the graph "
          "are freed when you call .backward() or autograd.grad(). Specify retain_graph=True if "
          "you need to backward through the graph a second time or if you need to access saved "
          "tensors after calling backward.")


class Node:
    """The backward function of one eager operation (single output)."""

    __slots__ = ("prim", "params", "edges", "saved", "versions", "retained", "reads",
                 "hooks", "__weakref__")

    def __init__(self, prim, params, saved, versions, edges):
        self.prim, self.params = prim, params
        self.saved = saved          # operands (tensors or arrays) and the output's data, last
        self.versions = versions    # [(Version, value at save time)] of saved tensors
        self.edges = edges          # per operand: Node, AccumulateGrad or None
        self.retained = None        # weakref to the output tensor if it retains its grad
        self.reads = True           # whether backward reads saved values (saved.reads)
        self.hooks = None           # the output tensor's hooks (`register_hook`): {id: fn}

    def name(self) -> str:
        return type(self).__name__

    def __repr__(self):
        return f"<{type(self).__name__} object at {hex(id(self))}>"

    @property
    def next_functions(self):
        return tuple((e, 0) for e in self.edges)

    def _check_saved(self):
        if self.saved is None:
            raise RuntimeError(_FREED)
        for version, seen in self.versions:
            if version.value != seen:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: it is used by {self.name()} and is at version "
                    f"{version.value}; expected version {seen} instead. Hint: do not modify "
                    "tensors in place (even under no_grad) between the forward pass and "
                    "backward().")

    def apply(self, g, create_graph: bool, box, edges=None):
        """Cotangents of the operands given the output cotangent `g` (None = zero).
        `edges` (default: the node's) are the operands' consumers: a rule that can
        (`selective_vjp`) skips the cotangents of operands whose edge is None."""
        if self.saved is None:
            self._check_saved()
        for version, seen in self.versions:
            if version.value != seen:
                self._check_saved()  # raises
        *operands, out = self.saved
        prim, edges = self.prim, self.edges if edges is None else edges
        if create_graph:
            out = box(out, self)
        else:
            # eager tensors' buffers (`_data`; numpy arrays and scalars have none)
            operands = [getattr(x, "_data", x) for x in operands]
            plain = PLAIN_VJPS.get(prim)
            if plain is not None:
                token = fp_quiet()
                try:
                    cts = plain(g, out, operands, [e is not None for e in edges], self.params)
                finally:
                    fp_restore(token)
                if cts is not None:
                    return cts
        if getattr(prim, "selective_vjp", False):  # skip cotangents no one needs
            needed = tuple([e is not None for e in edges])
            cts = prim.vjp(g, out, *operands, needed=needed, **self.params)
        else:
            cts = prim.vjp(g, out, *operands, **self.params)
        return _attached(cts, self, edges, box) if create_graph and self.reads else cts

    def release(self):
        """Free the saved values after a backward without retain_graph.  A node whose
        backward reads none (a sum, an addition) stays usable, as in PyTorch, where
        only a freed saved tensor makes a second backward fail."""
        if self.reads:
            self.saved = None


class ZeroDerivativeBackward(Node):
    """The node of a gradient that a rule computed from its operands' values through
    piecewise-constant functions alone (|x|'s sign): its derivative is zero, but it
    depends on them, so it requires grad, as PyTorch's (whose rules record `sgn`)."""

    __slots__ = ()

    def apply(self, g, create_graph: bool, box, edges=None):
        return (None,) * len(self.edges)


def _attached(cts, node, edges, box):
    """A create_graph backward's cotangents, those that a rule reading its operands left
    detached from them attached with a zero derivative (see ZeroDerivativeBackward)."""
    if not any(e is not None for e in edges) or not _reads_dependent(node, edges):
        return cts
    out = []
    for ct, e in zip(cts, edges):
        if ct is not None and e is not None and not getattr(ct, "requires_grad", False):
            ct = box(getattr(ct, "_data", ct),
                     ZeroDerivativeBackward(node.prim, {}, None, [], list(edges)))
        out.append(ct)
    return type(cts)(out) if isinstance(cts, tuple) else out


def _reads_dependent(node, edges) -> bool:
    """Whether the node's backward read a value that depends on a differentiable input:
    an operand with an edge, or the output (versions: the values read).  A cotangent
    computed from constants alone (`a * 2`'s) does not require grad, as PyTorch's."""
    constant = {id(getattr(x, "_version", None)) for x, e in zip(node.saved[:-1], edges)
                if e is None}
    return any(id(v) not in constant for v, _ in node.versions)


# ---- plain backward rules ---------------------------------------------------------------------
# A plain (not create_graph) backward differentiates numpy arrays: for the commonest
# primitives a rule on the arrays themselves skips the layers of the primitive's own VJP
# (bind, the numpy impl's promotion and errstate per operation) with the same values.
# PLAIN_VJPS[prim](g, out, operands, needed, params) returns the cotangents (None where
# not `needed`), or None where it does not apply (then `prim.vjp` runs).  tracer.fast_ops
# registers them; they run with numpy's floating-point warnings off, as the impls do.
PLAIN_VJPS: dict = {}


class Fresh(tuple):
    """Cotangents a plain rule returns when each is a new array that no one else holds (a
    product's result): the engine owns them, so a leaf keeps one without a copy and later
    contributions are summed into it in place."""

    __slots__ = ()

try:  # numpy's per-context error state: setting it directly costs a tenth of np.errstate
    from numpy._core._ufunc_config import _extobj_contextvar as _FP_STATE
    with np.errstate(all="ignore"):
        _FP_IGNORE = _FP_STATE.get()
except (ImportError, AttributeError):  # another numpy: the public context manager
    _FP_STATE = None


if _FP_STATE is not None:
    # fp_quiet() turns numpy's floating-point warnings off (as np.errstate(all="ignore"))
    # and returns the token fp_restore(token) takes: two C calls, no Python frame
    fp_quiet, fp_restore = functools.partial(_FP_STATE.set, _FP_IGNORE), _FP_STATE.reset
else:
    def fp_quiet():
        state = np.errstate(all="ignore")
        state.__enter__()
        return state

    def fp_restore(token):
        token.__exit__(None, None, None)


class Absent(tuple):
    """Cotangents where None means no gradient at all, not a zero derivative: a leaf
    reached only through such a None keeps `.grad` None (a custom Function's backward
    returning None, as PyTorch's)."""

    __slots__ = ()


def _node_class(name: str):
    return type(name, (Node,), {"__slots__": ()})


class NodeClasses(dict):
    """PyTorch's backward node classes, one per name, made on first use."""

    def __missing__(self, name):
        return self.setdefault(name, _node_class(name))  # setdefault: one class even if threads race


NODE_CLASSES = NodeClasses()


_FIXED_CLASS = {}  # primitive -> its node class, where the name depends on nothing else


def node_class(prim, first_ndim: int, params):
    """The backward node class named as PyTorch names it (`Primitive.torch_name`)."""
    cls = _FIXED_CLASS.get(prim)
    if cls is not None:
        return cls
    name = prim.backward_name(first_ndim, params)
    if name is None:
        raise NotImplementedError(f"no backward node for primitive {prim.name!r}")
    if prim.torch_variant is None:
        _FIXED_CLASS[prim] = NODE_CLASSES[name]
    return NODE_CLASSES[name]


class AccumulateGrad:
    """The sink of a leaf tensor: adds the incoming gradient to `variable.grad`."""

    __slots__ = ("variable", "hooks", "post_hooks", "__weakref__")
    edges = ()  # a sink: the engine's graph walks stop here

    def __init__(self, variable):
        self.variable = variable
        self.hooks = None  # the leaf's gradient hooks, run before accumulation: {id: fn}
        self.post_hooks = None  # run with the leaf after accumulation: {id: fn}

    def name(self) -> str:
        return "AccumulateGrad"

    @property
    def next_functions(self):
        return ()

    def __repr__(self):
        return f"<AccumulateGrad object at {hex(id(self))}>"


# ---- the engine -------------------------------------------------------------------------------

def _dependencies(roots):
    """For every node reachable from `roots`, how many edges point at it (iterative DFS)."""
    deps = dict.fromkeys(roots, 0)
    stack = list(deps)
    while stack:
        for nxt in stack.pop().edges:  # Node or AccumulateGrad (edges: ())
            if nxt is None:
                continue
            if nxt in deps:
                deps[nxt] += 1
            else:
                deps[nxt] = 1
                stack.append(nxt)
    return deps


def _leading_to(roots, targets):
    """The nodes from which a node of `targets` can be reached (targets included),
    by an iterative post-order walk: a node is decided after all its successors."""
    useful, seen = set(targets), set()
    stack = [(r, False) for r in roots]
    while stack:
        node, finished = stack.pop()
        edges = [e for e in node.edges if e is not None]
        if finished:
            if any(e in useful for e in edges):
                useful.add(node)
        elif node not in seen:
            seen.add(node)
            stack.append((node, True))
            stack.extend((e, False) for e in edges if e not in seen)
    return useful


_ADD = PRIMITIVES["add"]


class _Buffers:
    """The cotangent summed so far for each node that has not run yet.

    A sum the engine made itself (`prev + ct`, a fresh array) is held by nobody
    else until its node takes it: later contributions are added into it in place,
    and a leaf may keep it as its gradient without a copy.  The engine's loop takes
    a node's sum itself (popping `sums`, and `owned`: ownership ends there).
    """

    __slots__ = ("sums", "owned")

    def __init__(self):
        self.sums, self.owned = {}, {}  # owned: id -> array (kept alive: ids stay unique)

    def add(self, node, ct):
        prev = self.sums.get(node)
        if prev is None:
            self.sums[node] = ct
        elif (id(prev) in self.owned and type(ct) is np.ndarray and ct.dtype == prev.dtype
              and ct.shape == prev.shape and prev.size < _NATIVE_SUM_MIN):
            prev += ct  # in place: numpy's loop on one thread, which is fine while small
        else:
            total = self.sums[node] = _sum(prev, ct)
            self.owned.pop(id(prev), None)  # replaced: its memory can go
            if type(total) is np.ndarray:
                self.owned[id(total)] = total


# A sum of two large arrays of one dtype and shape goes through the primitive's `run`
# (the native eager kernel, on the worker pool, where one is installed): the same IEEE
# sums as numpy's `+`, on every core.
_NATIVE_SUM_MIN = 1 << 16


def _sum(prev, ct):
    if (type(prev) is np.ndarray and type(ct) is np.ndarray and prev.size >= _NATIVE_SUM_MIN
            and prev.dtype == ct.dtype and prev.shape == ct.shape):
        return _ADD.run(prev, ct)
    return prev + ct


def run_backward(roots, seeds, *, retain_graph: bool, create_graph: bool, box, sink,
                 inputs=None, capture=None, accumulates=True):
    """Propagate `seeds` (cotangents of the `roots` nodes) through the graph.

    Nodes run in topological order (Kahn's algorithm: 10k-deep graphs need no
    recursion); cotangents of a node used several times are summed before it runs.
    `sink(acc, g, owned)` receives the total gradient of each leaf (`owned`: no one
    else holds `g`, so the leaf may keep it without a copy).  Given `inputs`
    (AccumulateGrad nodes, as autograd.grad has them), only the nodes on a path to
    one of them run, as in PyTorch's engine.  `capture` maps nodes to a callback
    that gets the node's total cotangent (a non-leaf input's gradient).  Leaves'
    post-accumulate hooks run only where the sink `accumulates` into `.grad` (not for
    autograd.grad)."""
    useful = None if inputs is None else _leading_to(roots, inputs)
    if useful is not None:
        kept = [i for i, r in enumerate(roots) if r in useful]
        roots, seeds = [roots[i] for i in kept], [seeds[i] for i in kept]
    deps, buffers = _dependencies(roots), _seeded(roots, seeds)
    ready = [r for r in dict.fromkeys(roots) if deps[r] == 0]
    sums, add, ours = buffers.sums, buffers.add, buffers.owned
    absent = set()  # leaves reached through an Absent None
    while ready:  # one loop, calls kept out of it: small graphs are all overhead
        node = ready.pop()
        g = sums.pop(node, None)  # the node takes its sum (and its ownership)
        owned = bool(ours) and ours.pop(id(g), None) is not None
        if type(node) is AccumulateGrad:
            # Reached through a zero derivative (sign, integer_pow[y=0]): PyTorch
            # still accumulates zeros, so the leaf's .grad is a tensor, not None.
            if g is not None or node not in absent:
                _to_leaf(node, g, owned, sink, box, accumulates)
            continue
        edges = node.edges if useful is None else [e if e in useful else None
                                                   for e in node.edges]
        if node.hooks or node.retained is not None or capture is not None:
            g, done = _prepared(node, g, box, capture, useful is not None and not any(edges))
            if done:
                continue
        cts = node.apply(g, create_graph, box, edges) if g is not None else (None,) * len(edges)
        if not retain_graph:
            node.release()
        fresh = type(cts) is Fresh
        if type(cts) is Absent:
            absent.update(e for e, c in zip(edges, cts) if c is None and type(e) is AccumulateGrad)
        for nxt, ct in zip(edges, cts):
            if nxt is None:
                continue
            left = deps[nxt] = deps[nxt] - 1
            if ct is not None:
                if nxt in sums:
                    add(nxt, ct)
                elif not left and type(nxt) is AccumulateGrad and not (nxt.hooks or nxt.post_hooks):
                    sink(nxt, ct, fresh)  # a leaf's one contribution: no trip through `ready`
                    continue
                else:
                    sums[nxt] = ct
                    if fresh:
                        ours[id(ct)] = ct
            if not left:
                ready.append(nxt)


def _prepared(node, g, box, capture, nothing_below: bool):
    """A node's cotangent after its hooks, its retained grad and its capture, and whether
    the node need not run: a captured input's node that no other input needs (PyTorch
    runs it neither, nor frees it)."""
    if node.hooks and g is not None:
        g = run_hooks(node.hooks, g, box, np.shape(g))
    if node.retained is not None:
        _retain(node, g, box)
    if capture is not None and node in capture:
        capture[node](g)
        return g, nothing_below
    return g, False


def _to_leaf(node, g, owned, sink, box, accumulates=True):
    """Hand the leaf's total gradient (None: zeros) to `sink`, through its hooks (the
    post-accumulate ones where the sink `accumulates`)."""
    leaf = node.variable
    g = g if g is not None else np.zeros(leaf.shape, leaf.dtype)
    if node.hooks:
        g, owned = run_hooks(node.hooks, g, box, leaf.shape), False
    sink(node, g, owned)
    if node.post_hooks and accumulates:
        for hook in list(node.post_hooks.values()):
            if hook(leaf) is not None:
                raise RuntimeError("hooks registered with register_post_accumulate_grad_hook "
                                   "should return None")


def _seeded(roots, seeds) -> _Buffers:
    buffers = _Buffers()
    for node, g in zip(roots, seeds):
        if g is not None:
            buffers.add(node, g)
    return buffers


def _retain(node, g, box):
    target = node.retained() if node.retained is not None else None
    if target is not None and g is not None:
        # a copy: cotangents may be shared read-only (an operand passed through, a view)
        g = g.clone() if hasattr(g, "_tg_trace") else box(np.array(g), None)
        target.grad = g if target.grad is None else target.grad + g


# ---- hooks ------------------------------------------------------------------------------------

class RemovableHandle:
    """What `register_hook` returns: `remove()` takes the hook off (as PyTorch's)."""

    _next = iter(range(1, 1 << 62))

    def __init__(self, hooks: dict, fn):
        self.hooks_dict, self.id = hooks, next(RemovableHandle._next)
        hooks[self.id] = fn

    def remove(self):
        self.hooks_dict.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def run_hooks(hooks: dict, g, box, shape):
    """`g` after each hook in registration order: a hook gets the gradient as a tensor
    (a copy, unless it is a graph's tensor) and may return a replacement of its shape,
    or change the one it got in place and return None (as in PyTorch)."""
    for fn in list(hooks.values()):
        t = g if hasattr(g, "_tg_trace") else box(np.array(g), None)
        new = fn(t)
        if new is None:
            g = t if hasattr(g, "_tg_trace") else t._data
            continue
        if not (hasattr(new, "_tg_trace") or isinstance(new, (np.ndarray, np.generic))):
            raise TypeError(f"hook {getattr(fn, '__name__', fn)!r} returned a "
                            f"{type(new).__name__}: a hook returns a tensor or None")
        if tuple(np.shape(new)) != tuple(shape):
            raise RuntimeError(f"hook {getattr(fn, '__name__', fn)!r} has changed the size of "
                               f"value: it returned shape {tuple(np.shape(new))} for a gradient "
                               f"of shape {tuple(shape)}")
        if np.result_type(new) != np.result_type(g):
            raise RuntimeError(f"hook {getattr(fn, '__name__', fn)!r} has changed the type of "
                               f"value (was {np.result_type(g)} got {np.result_type(new)})")
        g = new if hasattr(g, "_tg_trace") else new._data if hasattr(new, "_data") else np.asarray(new)
    return g


def accumulator(tensor):
    """The (cached) AccumulateGrad node of a leaf, as PyTorch keeps one per leaf."""
    acc = tensor._accumulator() if tensor._accumulator is not None else None
    if acc is None:
        acc = AccumulateGrad(tensor)
        tensor._accumulator = weakref.ref(acc)
    return acc
