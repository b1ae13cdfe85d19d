"""Automatic differentiation as graph transforms: `Graph -> Graph`.

Each transform replays the input graph's equations into a fresh
`GraphBuilder` and then applies the primitives' VJP/JVP rules (`ir/rules.py`)
to the replayed *traced* values through `ir.ops`.  The rules are the same
functions eager autograd runs on numpy arrays; here they record equations, so
the derivative is itself an ordinary graph and the transforms compose
(`grad_graph(grad_graph(g, has_value=False))`, `vjp_graph(jvp_graph(g))`).

Conventions:
  * only float values carry cotangents/tangents; integer and bool values, the
    outputs of non-differentiable primitives (comparisons, `stop_gradient`)
    and `where`'s condition get none;
  * an input the outputs do not depend on gets zeros of its shape and dtype;
  * guards of the input graph are kept, re-pointed at the replayed values;
  * no dead-code elimination happens here: the result keeps every forward
    equation (guards may read them); the DCE pass cleans up afterwards;
  * the verifier checks the results only when asked: `verify=True`, or with
    `verify=None` (the default) in debug mode (`ir.debug_checks()`,
    `$TRACEGRAD_DEBUG=1`).  Tests verify every graph they build.

Primitives with several outputs (control flow, `passes/autodiff_control.py`)
record their primal computation themselves, so that a loop is not run once
for the value and again for the derivative:
  * `jvp(tangents, *primals, **params) -> (outs, out_tangents)`: one
    equation computing outputs and tangents (None: zero);
  * `vjp(active, *primals, **params) -> (outs, pullback)`: `active[i]` says
    whether input i needs a cotangent; the forward equation may keep extra
    residual outputs; `pullback(cts) -> input cotangents` (None: zero) takes
    one cotangent per output (None: zero).
"""
from __future__ import annotations

import warnings

import numpy as np

from tracegrad.ir import ops
from tracegrad.ir.builder import GraphBuilder
from tracegrad.ir.core import Graph, Guard, Literal, Var, debug_checks, is_float
from tracegrad.ir.interpreter import read, write
from tracegrad.ir.primitives import PRIMITIVES
from tracegrad.ir.verifier import verify as verify_graph

__all__ = ["MissingRuleError", "vjp_graph", "grad_graph", "jvp_graph", "vjp_split"]


class MissingRuleError(NotImplementedError):
    """A primitive on the differentiated path has no VJP (or JVP) rule."""


# ---- replaying a graph into a fresh builder --------------------------------------

class _Replay:
    """A fresh builder plus `env`: each var of the source graph -> its replayed value.

    Constants become constants of the new graph and are wrapped as traced
    values, so that no equation is constant-folded away while replaying.
    """

    def __init__(self, graph: Graph, extra_inputs=()):
        self.graph = graph
        # Sources are copied from the equations we replay (see `_stamp`), not
        # taken from the stack, which here is ours and not the user's.
        self.builder = GraphBuilder(record_source=False)
        b = self.builder
        self.env = {v: b.new_input(v.aval) for v in graph.invars}
        self.extra = [b.new_input(aval) for aval in extra_inputs]
        for var, val in zip(graph.constvars, graph.constvals):
            self.env[var] = b.value_cls(b, b.const(val))

    def read(self, atom):
        return read(self.env, atom)

    def eqn(self, eqn):
        """Re-record one forward equation exactly (same primitive, params, source)."""
        start = len(self.builder.eqns)
        args = [self.read(a) for a in eqn.inputs]
        write(self.env, eqn, self.builder.process(eqn.prim, args, eqn.params))
        _stamp(self.builder, start, eqn.src)

    def all_eqns(self, active=None):
        """Replay every equation; with `active` (reverse mode), a multi-output
        equation reading an active value records its forward form and keeps its
        pullback in `self.pullbacks`."""
        self.pullbacks = {}
        for eqn in self.graph.eqns:
            flags = [isinstance(a, Var) and a in active for a in eqn.inputs] if active else ()
            if eqn.prim.multiple_results and any(flags) and eqn.prim.differentiable:
                self.pullbacks[eqn] = self.forward_rule(eqn, flags)
            else:
                self.eqn(eqn)

    def forward_rule(self, eqn, flags):
        rule = eqn.prim.vjp
        if rule is None:
            raise MissingRuleError(f"no VJP rule for {_where(eqn)}: cannot differentiate through it")
        start = len(self.builder.eqns)
        outs, pullback = rule(flags, *[self.read(a) for a in eqn.inputs], **eqn.params)
        _stamp(self.builder, start, eqn.src)
        self.env.update(zip(eqn.outs, outs))
        return pullback

    def finish(self, outputs, verify) -> Graph:
        """Copy the guards over and build the new graph (verified if `verify` asks)."""
        _copy_guards(self.builder, self.env, self.graph.guards)
        return _checked(self.builder.build(outputs), verify)


def _checked(graph: Graph, verify) -> Graph:
    """`graph`, verified when `verify` is True, or None and debugging is on."""
    if verify or (verify is None and debug_checks()):
        verify_graph(graph)
    return graph


def _stamp(builder, start, src):
    """Equations recorded since `start` come from the source line of `src`'s equation."""
    for eqn in builder.eqns[start:]:
        if eqn.src is None:
            eqn.src = src


def _copy_guards(builder, env, guards):
    for g in guards:
        if isinstance(g.var, Literal):  # a decision on a constant: still true, keep it as is
            builder.guards.append(Guard(g.var, g.expected, g.kind, g.src))
        else:
            builder.add_guard(env[g.var], g.expected, g.kind, g.src)


def _fill(builder, aval, value):
    """`value` broadcast to `aval`, recorded as an equation of the new graph.

    A numpy array here would make the rules applied to it run eagerly and
    capture their (possibly large) results as constants; an equation keeps
    that work in the graph, where fusion makes it free.
    """
    scalar = np.asarray(value, aval.dtype)
    if aval.shape == ():
        return scalar  # becomes a literal
    return builder.process(PRIMITIVES["broadcast"], (scalar,), {"shape": aval.shape})


def _differentiable_value(atom) -> bool:
    return isinstance(atom, Var) and is_float(atom.aval.dtype)


def _where(eqn) -> str:
    return f"primitive '{eqn.prim.name}'" + (f" at {eqn.src}" if eqn.src else "")


def _check_rule_result(eqn, atom, value, kind):
    """A rule result must have its operand's (VJP) or output's (JVP) shape and dtype."""
    got = ops.aval(value)
    if got.shape != atom.aval.shape or got.dtype != atom.aval.dtype:
        raise TypeError(f"the {kind} rule of {_where(eqn)} returned {got} for a {atom.aval} value")


def _check_indices(graph, indices, what):
    n = len(graph.invars)
    out = []
    for i in indices:
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise ValueError(f"{what}={tuple(indices)!r}: index {i!r} is not one of the "
                             f"graph's {n} inputs")
        out.append(int(i) % n)
    return out


# ---- reverse mode ----------------------------------------------------------------

def _active_vars(graph, wrt_vars) -> set:
    """Float values that depend differentiably on `wrt_vars` (the only ones needing
    cotangents); every float output of a multi-output equation reading one counts."""
    active = {v for v in wrt_vars if is_float(v.aval.dtype)}
    for eqn in graph.eqns:
        if eqn.prim.differentiable and any(isinstance(a, Var) and a in active for a in eqn.inputs):
            active.update(v for v in eqn.outs if is_float(v.aval.dtype))
    return active


class CutDerivativeWarning(UserWarning):
    """A value being differentiated went through float() (math.exp(x), float(x)): Python
    computes on the number, so no derivative flows through it."""


def _warn_cut(graph, active):
    """Warn once per source line where `float()` read an active value (JAX raises there:
    the derivative silently misses whatever the number fed)."""
    for g in graph.guards:
        if g.kind == "float" and g.var in active:
            message = ("float() of a value being differentiated: no derivative flows "
                       "through a Python number; if it feeds the result, compute with the "
                       "array instead (np.exp(x), not math.exp(x)); writing it into a NumPy "
                       "array (buf[i] = v, with buf = np.zeros(n)) does this too: start "
                       "the array from a traced value (buf = np.zeros_like(x)); so does "
                       "plain numpy's np.array([a, b]) of float arguments: write "
                       "np.stack([a, b])")
            file, _, line = (g.src or "").rpartition(":")
            if file and line.isdigit():  # shown at the user's line, once per line
                warnings.warn_explicit(message, CutDerivativeWarning, file, int(line))
            else:
                warnings.warn(message, CutDerivativeWarning, stacklevel=3)


def active_outputs(graph, on) -> list:
    """Which outputs of `graph` depend differentiably on the inputs flagged in `on`."""
    active = _active_vars(graph, [v for v, f in zip(graph.invars, on) if f])
    return [isinstance(v, Var) and v in active for v in graph.outvars]


def _accumulate(cts, var, ct):
    """A value used several times receives the sum of its uses' cotangents."""
    cts[var] = ct if var not in cts else ops.add(cts[var], ct)


def _run_rule(rep, eqn, kind: str, first):
    """Apply the VJP or JVP rule of `eqn` to the replayed primals; new equations keep
    the source line of the forward equation they differentiate."""
    rule = eqn.prim.vjp if kind == "VJP" else eqn.prim.jvp
    if rule is None:
        raise MissingRuleError(f"no {kind} rule for {_where(eqn)}: cannot differentiate through it")
    start = len(rep.builder.eqns)
    primals = [rep.read(a) for a in eqn.inputs]
    result = rule(first, rep.env[eqn.out], *primals, **eqn.params)
    _stamp(rep.builder, start, eqn.src)
    return result


def _vjp_eqn(rep, eqn, g, cts, active):
    if eqn.prim.multiple_results:
        start = len(rep.builder.eqns)
        results = rep.pullbacks[eqn](g)
        _stamp(rep.builder, start, eqn.src)
    else:
        results = _run_rule(rep, eqn, "VJP", g)
    if len(results) != len(eqn.inputs):
        raise TypeError(f"the VJP rule of {_where(eqn)} returned {len(results)} cotangents "
                        f"for {len(eqn.inputs)} operands")
    for atom, ct in zip(eqn.inputs, results):
        if ct is not None and isinstance(atom, Var) and atom in active:
            _check_rule_result(eqn, atom, ct, "VJP")
            _accumulate(cts, atom, ct)


def _backward(rep, out_cts, wrt_vars, active):
    """Cotangents of `wrt_vars` given one cotangent per graph output (None = zero)."""
    graph = rep.graph
    cts = {}
    for var, ct in zip(graph.outvars, out_cts):
        if ct is not None and isinstance(var, Var) and var in active:
            _accumulate(cts, var, ct)
    for eqn in reversed(graph.eqns):
        # Every value is assigned once, so its cotangent is complete once the
        # walk reaches the equation that produced it.
        if eqn.prim.multiple_results:
            g = [cts.pop(v, None) for v in eqn.outs]
            if eqn in rep.pullbacks and any(c is not None for c in g):
                _vjp_eqn(rep, eqn, g, cts, active)
            continue
        g = cts.pop(eqn.out, None)
        if g is not None:
            _vjp_eqn(rep, eqn, g, cts, active)
    return [cts[v] if v in cts else _fill(rep.builder, v.aval, 0) for v in wrt_vars]


def _wrt_and_active(graph, wrt):
    wrt = range(len(graph.invars)) if wrt is None else wrt
    wrt = [wrt] if isinstance(wrt, (int, np.integer)) else list(wrt)
    wrt_vars = [graph.invars[i] for i in _check_indices(graph, wrt, "wrt")]
    active = _active_vars(graph, wrt_vars)
    _warn_cut(graph, active)
    return wrt_vars, active


def vjp_graph(graph: Graph, wrt=None, verify=None, cts=None) -> Graph:
    """Reverse mode: `(inputs..., out_cts...) -> (outputs..., input_cts[wrt]...)`.

    The new graph takes the original inputs followed by one cotangent per
    output (same shape and dtype as that output; ignored for non-float
    outputs) and returns the original outputs followed by the cotangents of
    the inputs listed in `wrt` (indices into `graph.invars`, default all).
    `cts` (one bool per output) limits the cotangent inputs to the flagged
    outputs; the others have zero cotangent.
    `verify`: whether to run the verifier on the result (see the module docstring).

    >>> import numpy as np
    >>> from tracegrad.ir import GraphBuilder, ShapedArray, ops, eval_graph
    >>> b = GraphBuilder()
    >>> x = b.new_input(ShapedArray((3,), np.float64))
    >>> g = vjp_graph(b.build([ops.sin(x)]))
    >>> [str(a) for a in g.in_avals], [str(a) for a in g.out_avals]
    (['f64[3]', 'f64[3]'], ['f64[3]', 'f64[3]'])
    >>> out, ct = eval_graph(g, np.zeros(3), np.ones(3))
    >>> ct.tolist()
    [1.0, 1.0, 1.0]
    """
    wrt_vars, active = _wrt_and_active(graph, wrt)
    on = [True] * len(graph.outvars) if cts is None else [bool(c) for c in cts]
    rep = _Replay(graph, extra_inputs=[v.aval for v, f in zip(graph.outvars, on) if f])
    rep.all_eqns(active)
    extra = iter(rep.extra)
    out_cts = [next(extra) if f else None for f in on]
    out_cts = [ct if _differentiable_value(v) else None for v, ct in zip(graph.outvars, out_cts)]
    grads = _backward(rep, out_cts, wrt_vars, active)
    return rep.finish([rep.read(v) for v in graph.outvars] + grads, verify)


def _known_eqns(graph, known: set):
    """Split equations into those computable from `known` vars alone and the rest."""
    known = set(known)
    first, rest = [], []
    for eqn in graph.eqns:
        if all(isinstance(a, Literal) or a in known for a in eqn.inputs):
            known.update(eqn.outs)
            first.append(eqn)
        else:
            rest.append(eqn)
    return first, rest, known


def _read_vars(eqns, outvars):
    return {a for e in eqns for a in e.inputs if isinstance(a, Var)} | {
        v for v in outvars if isinstance(v, Var)}


def vjp_split(graph: Graph, wrt=None, verify=None, cts=None) -> tuple[Graph, Graph]:
    """`vjp_graph` split into a forward graph and a backward graph (partial evaluation).

    `forward: inputs -> (outputs..., residuals...)` does all the work that does
    not depend on the output cotangents and holds the guards;
    `backward: (residuals..., out_cts...) -> input_cts[wrt]...` does the rest.
    So the forward pass runs once however often the pullback is applied.  The
    two graphs share Var objects; each is well formed on its own.

    >>> import numpy as np
    >>> from tracegrad.ir import GraphBuilder, ShapedArray, ops, eval_graph
    >>> b = GraphBuilder()
    >>> x = b.new_input(ShapedArray((2,), np.float64))
    >>> fwd, bwd = vjp_split(b.build([ops.sin(x)]))
    >>> out, *residuals = eval_graph(fwd, np.zeros(2))
    >>> [ct.tolist() for ct in eval_graph(bwd, *residuals, np.array([1.0, 2.0]))]
    [[1.0, 2.0]]
    """
    full = vjp_graph(graph, wrt, verify, cts)
    n_in, n_out = len(graph.invars), len(graph.outvars)
    ct_vars, grads = full.invars[n_in:], full.outvars[n_out:]
    first, rest, known = _known_eqns(full, set(full.invars[:n_in]) | set(full.constvars))
    assert all(not isinstance(v, Var) or v in known for v in full.outvars[:n_out])
    assert all(not isinstance(g.var, Var) or g.var in known for g in full.guards)
    consts = set(full.constvars)
    needed = _read_vars(rest, grads)
    # Primal inputs, then forward values in order: a deterministic residual order.
    candidates = list(full.invars[:n_in]) + [v for e in first for v in e.outs]
    residuals = [v for v in candidates if v in needed and v not in consts]
    forward = _with_used_consts(full.replace(invars=full.invars[:n_in], eqns=first,
                                             outvars=full.outvars[:n_out] + residuals))
    backward = _with_used_consts(full.replace(invars=residuals + ct_vars, eqns=rest,
                                              outvars=grads, guards=[]))
    return _checked(forward, verify), _checked(backward, verify)


def _with_used_consts(graph):
    used = _read_vars(graph.eqns, graph.outvars) | {
        g.var for g in graph.guards if isinstance(g.var, Var)}
    keep = [i for i, v in enumerate(graph.constvars) if v in used]
    return graph.replace(constvars=[graph.constvars[i] for i in keep],
                         constvals=[graph.constvals[i] for i in keep])


def _scalar_output(graph):
    if len(graph.outvars) != 1:
        shapes = ", ".join(str(v.aval) for v in graph.outvars)
        raise TypeError(f"grad needs a graph with one scalar output, it has {len(graph.outvars)} "
                        f"outputs ({shapes})")
    out = graph.outvars[0]
    if out.aval.shape != () or not is_float(out.aval.dtype):
        raise TypeError(f"grad needs a scalar float output, got {out.aval} "
                        f"(shape {out.aval.shape}); use vjp_graph for other outputs")
    return out


def grad_graph(graph: Graph, argnums=(0,), has_value=True, verify=None, aux=0) -> Graph:
    """Gradient of a scalar-output graph: `inputs -> (value, grads[argnums]...)`.

    With `aux`, the graph's last `aux` outputs are auxiliary (JAX's `has_aux`): not
    differentiated, returned after the value: `inputs -> (value, aux..., grads...)`.
    The cotangent is seeded with 1.0; `has_value=False` drops the value, so
    that for a function of one scalar `grad_graph(grad_graph(g, has_value=False),
    has_value=False)` is its second derivative.

    >>> import numpy as np
    >>> from tracegrad.ir import GraphBuilder, ShapedArray, ops, eval_graph
    >>> b = GraphBuilder()
    >>> x = b.new_input(ShapedArray((), np.float64))
    >>> g = grad_graph(b.build([ops.mul(x, ops.mul(x, x))]), has_value=False)
    >>> [float(v) for v in eval_graph(g, 2.0)]
    [12.0]
    >>> [float(v) for v in eval_graph(grad_graph(g, has_value=False), 2.0)]
    [12.0]
    """
    aux_outs = graph.outvars[len(graph.outvars) - aux:] if aux else []
    out = _scalar_output(graph.replace(outvars=graph.outvars[:len(graph.outvars) - aux]))
    argnums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    wrt_vars = [graph.invars[i] for i in _check_indices(graph, argnums, "argnums")]
    active = _active_vars(graph, wrt_vars)
    _warn_cut(graph, active)
    rep = _Replay(graph)
    rep.all_eqns(active)
    # The seed is an equation, not a numpy 1.0 (see `_fill`).
    seed = rep.builder.process(PRIMITIVES["broadcast"], (np.asarray(1.0, out.aval.dtype),),
                               {"shape": ()})
    grads = _backward(rep, [seed], wrt_vars, active)
    value = [rep.read(out)] if has_value else []
    return rep.finish(value + [rep.read(a) for a in aux_outs] + grads, verify)


# ---- forward mode ----------------------------------------------------------------

def _jvp_eqn(rep, eqn, tangents):
    """Replay `eqn` and record its tangent (a multi-output rule does both at once)."""
    ins = [tangents.get(a) if _differentiable_value(a) else None for a in eqn.inputs]
    if all(t is None for t in ins) or not eqn.prim.differentiable:
        rep.eqn(eqn)
        return
    if eqn.prim.multiple_results:
        _jvp_multi(rep, eqn, ins, tangents)
        return
    rep.eqn(eqn)
    if not is_float(eqn.out.aval.dtype):
        return
    t = _run_rule(rep, eqn, "JVP", ins)
    if t is not None:
        _check_rule_result(eqn, eqn.out, t, "JVP")
        tangents[eqn.out] = t


def _jvp_multi(rep, eqn, ins, tangents):
    if eqn.prim.jvp is None:
        raise MissingRuleError(f"no JVP rule for {_where(eqn)}: cannot differentiate through it")
    start = len(rep.builder.eqns)
    outs, touts = eqn.prim.jvp(ins, *[rep.read(a) for a in eqn.inputs], **eqn.params)
    _stamp(rep.builder, start, eqn.src)
    rep.env.update(zip(eqn.outs, outs))
    for var, t in zip(eqn.outs, touts):
        if t is not None and is_float(var.aval.dtype):
            _check_rule_result(eqn, var, t, "JVP")
            tangents[var] = t


def jvp_graph(graph: Graph, verify=None, which=None, out_which=None) -> Graph:
    """Forward mode: `(primals..., tangents...) -> (outputs..., output_tangents...)`.

    Tangents have their primal's shape and dtype (those of non-float inputs
    are ignored); outputs that do not depend differentiably on the inputs get
    zero tangents.  `which` (one bool per input) limits the tangent inputs to
    the flagged inputs, `out_which` (one bool per output) the tangent outputs
    to the flagged outputs.

    >>> import numpy as np
    >>> from tracegrad.ir import GraphBuilder, ShapedArray, ops, eval_graph
    >>> b = GraphBuilder()
    >>> x = b.new_input(ShapedArray((2,), np.float64))
    >>> g = jvp_graph(b.build([ops.mul(x, x)]))
    >>> out, tangent = eval_graph(g, np.array([1.0, 3.0]), np.array([1.0, 1.0]))
    >>> tangent.tolist()
    [2.0, 6.0]
    """
    which = [True] * len(graph.invars) if which is None else list(which)
    out_which = [True] * len(graph.outvars) if out_which is None else list(out_which)
    rep = _Replay(graph, extra_inputs=[v.aval for v, f in zip(graph.invars, which) if f])
    tangents = {v: t for v, t in zip([v for v, f in zip(graph.invars, which) if f], rep.extra)
                if is_float(v.aval.dtype)}
    _warn_cut(graph, _active_vars(graph, list(tangents)))
    for eqn in graph.eqns:
        _jvp_eqn(rep, eqn, tangents)
    outs = [rep.read(v) for v in graph.outvars]
    out_tangents = [tangents[v] if isinstance(v, Var) and v in tangents
                    else _fill(rep.builder, v.aval, 0)
                    for v, f in zip(graph.outvars, out_which) if f]
    return rep.finish(outs + out_tangents, verify)


from . import autodiff_control  # noqa: E402,F401  (registers the control-flow rules)
from . import autodiff_custom  # noqa: E402,F401  (forward-over-reverse of custom_vjp)
