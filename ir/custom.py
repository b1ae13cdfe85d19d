"""`custom_call`: a function with derivative rules of its own (JAX's custom_vjp and
custom_jvp, PyTorch's autograd.Function: one mechanism).

`custom_call[fun, fwd, bwd, jvp, num_consts, fn_name, fwd_calls](*consts, *args)` computes
`fun(*consts, *args)`; its bodies are closed graphs:
  * `fun`: consts + args -> outs (the primal computation);
  * `fwd`: consts + args -> outs + residuals, `bwd`: consts + residuals + out
    cotangents -> arg cotangents (reverse mode);
  * `jvp`: consts + args + arg tangents -> outs + out tangents (forward mode; None
    for a custom_vjp function, as JAX refuses forward mode there).
`fwd_calls` (None, or a bool per output) says which of `fwd`'s outputs are a call of the
function itself (a custom_vjp's `fwd` returning `f(x)`): reverse mode's rule below.
The consts are values of enclosing traces the functions closed over; they must
not be differentiated (a custom rule has no cotangent for them).  After
differentiation `passes/inline.py` replaces the call by `fun`'s equations, so
fusion and codegen never see it.
"""
from __future__ import annotations

import numpy as np

from . import ops
from .interpreter import eval_graph, eval_graph_bind
from .elementwise import ZERO, binary
from .primitives import Primitive, fail, register

__all__ = ["custom_call", "optimization_barrier"]


def _shape_rule(*avals, fun, fwd=None, bwd=None, jvp=None, num_consts=0, fn_name="custom",
                linearized=False, fwd_calls=None):
    """`fun`'s outputs, once the bodies fit the operands and one another (a tampered
    program text must not load: docs/inspect.md)."""
    for name, body in (("fun", fun), ("fwd", fwd), ("bwd", bwd), ("jvp", jvp)):
        if not (body is None and name != "fun") and not hasattr(body, "outvars"):
            fail("custom_call", f"{name} must be a graph {{ lambda ... }}, got {body!r}", *avals)
    n_in, n_out = len(avals), len(fun.outvars)
    if fwd_calls is not None and (not isinstance(fwd_calls, tuple) or len(fwd_calls) != n_out
                                  or not all(isinstance(c, bool) for c in fwd_calls)):
        fail("custom_call", f"fwd_calls={fwd_calls!r}: one bool per output ({n_out})", *avals)
    if not 0 <= num_consts <= n_in:
        fail("custom_call", f"num_consts={num_consts} for {n_in} operands", *avals)
    _takes("fun", fun, list(avals), avals)
    if fwd is not None:
        _takes("fwd", fwd, list(avals), avals)
        if list(fwd.out_avals[:n_out]) != list(fun.out_avals):
            fail("custom_call", "fwd's first outputs are not fun's outputs", *avals)
    if bwd is not None:
        n_res = len(fwd.outvars) - n_out if fwd is not None else 0
        _takes("bwd", bwd, list(avals[:num_consts]) + list(fwd.out_avals[n_out:] if fwd else [])
               + list(fun.out_avals), avals, n_res)
        if len(bwd.outvars) != n_in - num_consts:
            fail("custom_call", f"bwd returns {len(bwd.outvars)} cotangents for "
                 f"{n_in - num_consts} arguments", *avals)
    if jvp is not None:
        _takes("jvp", jvp, list(avals) + list(avals[num_consts:]), avals)
        if len(jvp.outvars) != 2 * n_out:
            fail("custom_call", f"jvp returns {len(jvp.outvars)} values, not {2 * n_out}",
                 *avals)
    return list(fun.out_avals)


def _takes(name, body, expected, avals, n_res=None):
    got = [v.aval for v in body.invars]
    if [(a.shape, a.dtype) for a in got] != [(a.shape, a.dtype) for a in expected]:
        what = f" (with {n_res} residuals from fwd)" if n_res is not None else ""
        fail("custom_call", f"{name} takes {len(got)} inputs of types {got}, but the call "
             f"gives it {len(expected)}{what}: {expected}", *avals)


def _impl(*args, fun, **_):
    return eval_graph(fun, *args)


def _closure_error(name, what):
    return TypeError(f"{name}: the function closes over a value that is being differentiated "
                     f"({what}); pass it as an argument of the custom function instead")


def _zeros_like(x):
    return ops.full_like(x, 0)


def _vjp(flags, *primals, fun, fwd, bwd, jvp, num_consts, fn_name, linearized=False,
         fwd_calls=None):
    """Reverse mode: run `fwd` (outs and residuals), pull back through `bwd`.  Each output
    is, as in JAX, what `fwd` returns: where that is a call of the function itself
    (`fwd_calls[i]`; None: every output, as for custom_jvp and autograd.Function), the
    call again, marked `linearized`, so differentiating the gradient again uses the custom
    rule (forward mode then differentiates `fwd`, passes/autodiff_custom.py); otherwise
    `fwd`'s own equations, differentiated as the code they are (a rule that is not the
    true derivative then gives JAX's second derivative in every mode)."""
    if any(flags[:num_consts]):
        raise _closure_error(fn_name, "reverse mode")
    params = dict(fun=fun, fwd=fwd, bwd=bwd, jvp=jvp, num_consts=num_consts, fn_name=fn_name,
                  linearized=True, fwd_calls=fwd_calls)
    results = eval_graph_bind(fwd, *primals)
    n_out = len(fun.outvars)
    calls = _primal(primals, params) if fwd_calls is None or any(fwd_calls) else None
    outs = [calls[i] if fwd_calls is None or fwd_calls[i] else results[i] for i in range(n_out)]
    residuals = results[n_out:]

    def pullback(cts):
        cts = [_zeros_like(o) if c is None else c for c, o in zip(cts, outs)]
        consts = primals[:num_consts]
        return [None] * num_consts + list(eval_graph_bind(bwd, *consts, *residuals, *cts))
    return outs, pullback


def _jvp(tangents, *primals, fun, fwd, bwd, jvp, num_consts, fn_name, linearized=False,
         fwd_calls=None):
    """Forward mode through the user's JVP rule."""
    if jvp is None:
        raise TypeError(f"{fn_name}: forward-mode differentiation (jvp) of a custom_vjp "
                        "function is not supported, as in JAX: define a custom_jvp rule")
    if any(t is not None for t in tangents[:num_consts]):
        raise _closure_error(fn_name, "forward mode")
    args = primals[num_consts:]
    ts = [_zeros_like(a) if t is None else t for t, a in zip(tangents[num_consts:], args)]
    results = eval_graph_bind(jvp, *primals, *ts)
    params = dict(fun=fun, fwd=fwd, bwd=bwd, jvp=jvp, num_consts=num_consts, fn_name=fn_name,
                  linearized=linearized, fwd_calls=fwd_calls)
    return _primal(primals, params), results[len(fun.outvars):]


def _primal(primals, params):
    """The outputs of a differentiated call as the call itself, not as its rule's
    equations: differentiating them again (grad of grad, jacfwd of jacfwd) then uses the
    custom rule, not the function's body.  The rule's own outputs, the same values, are
    left unused (dead code)."""
    return list(ops.bind("custom_call", *primals, **params))


custom_call_p = register(Primitive(
    "custom_call", "control", _shape_rule, _impl, vjp=_vjp, jvp=_jvp, multiple_results=True,
    doc="a function with its own derivative rules (custom_vjp, custom_jvp, autograd.Function)"))


def custom_call(*operands, fun, fwd=None, bwd=None, jvp=None, num_consts=0, fn_name="custom",
                fwd_calls=None):
    return ops.bind("custom_call", *operands, fun=fun, fwd=fwd, bwd=bwd, jvp=jvp,
                    num_consts=num_consts, fn_name=fn_name, fwd_calls=fwd_calls)


# `optimization_barrier(x, after)` is x, computed after the 0-d value `after` (of x's
# dtype), and no pass sees through it (unlike stop_gradient).  `checkpoint`'s backward
# recomputes from barrier(inputs, a cotangent element): CSE cannot merge the
# recomputation with the forward pass, and no schedule can hoist it into the forward
# pass, so the forward intermediates need not stay alive.
optimization_barrier = binary(
    "optimization_barrier", lambda x, after: np.array(np.broadcast_to(x, np.shape(x))),
    lambda x, after, out: None, ZERO, torch_name="CloneBackward0",
    doc="x, ordered after a 0-d value, opaque to simplification and CSE")
