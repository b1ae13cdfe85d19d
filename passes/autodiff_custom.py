"""Forward mode through a custom_vjp function that reverse mode has differentiated.

JAX refuses `jvp` of a custom_vjp function, but not forward-over-reverse (`jvp(grad(f))`,
`hessian`): there the forward pass is differentiated as ordinary code.  A custom_call that
reverse mode re-bound is marked `linearized` (ir/custom.py); its JVP, when it has no JVP
rule of its own, is the JVP of its forward rule `fwd` (registered here: ir/ cannot import
the autodiff passes).  A plain `jvp` of the function still raises, as in JAX.
"""
from __future__ import annotations

from tracegrad.ir import ops
from tracegrad.ir.custom import _jvp as _rule_jvp
from tracegrad.ir.interpreter import eval_graph_bind
from tracegrad.ir.primitives import PRIMITIVES

from .autodiff import jvp_graph


def _custom_call_jvp(tangents, *primals, **params):
    if params["jvp"] is not None or not params.get("linearized"):
        return _rule_jvp(tangents, *primals, **params)
    fwd, n_out = params["fwd"], len(params["fun"].outvars)
    which = [t is not None for t in tangents]
    body = jvp_graph(fwd, which=which, out_which=[i < n_out for i in range(len(fwd.outvars))])
    results = eval_graph_bind(body, *primals, *[t for t in tangents if t is not None])
    outs = list(ops.bind("custom_call", *primals, **params))  # the call itself, as _vjp's
    return outs, list(results[len(fwd.outvars):])


PRIMITIVES["custom_call"].jvp = _custom_call_jvp
