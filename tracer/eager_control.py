"""Control-flow equations applied to eager tensors: Python loops that record autograd.

A graph holding `cond`, `while` or `scan` (a traced or loaded program, `TracedProgram`)
called on tensors evaluates each equation here rather than with its numpy impl: the
body graphs are applied to the tensors (`apply_graph`, which binds their equations on
them), so that `.backward()` reaches the tensors through the loop, as the public
`tracegrad.scan` & co. do on tensors.  The values are the impl's: the same bodies, in the
same order.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import apply_graph
from tracegrad.ir.control_flow import split_scan, split_while

from . import numpy as tnp


def _value(x):
    return np.asarray(getattr(x, "_data", x))


def _cond(index, *operands, branches):
    k = int(np.clip(int(_value(index)), 0, len(branches) - 1))
    return apply_graph(branches[k], list(operands))


def _while(*args, cond_graph, body_graph, cond_nconsts, body_nconsts):
    cc, bc, carry = split_while(args, cond_nconsts, body_nconsts)
    while bool(_value(apply_graph(cond_graph, cc + carry)[0])):
        carry = apply_graph(body_graph, bc + carry)
    return carry


def _scan(*args, body, num_consts, num_carry, length, reverse):
    consts, carry, xs = split_scan(args, num_consts, num_carry)
    ys = [[] for _ in body.out_avals[num_carry:]]
    for i in (range(length - 1, -1, -1) if reverse else range(length)):
        outs = apply_graph(body, consts + carry + [x[i] for x in xs])
        carry = list(outs[:num_carry])
        for y, value in zip(ys, outs[num_carry:]):
            y.append(value)
    return carry + [_stacked(y[::-1] if reverse else y, aval, length)
                    for y, aval in zip(ys, body.out_avals[num_carry:])]


def _stacked(values, aval, length):
    return tnp.stack(values) if length else np.zeros((0,) + tuple(aval.shape), aval.dtype)


RULES = {"cond": _cond, "while": _while, "scan": _scan}
# Multi-output primitives that record a backward node of their own when a tensor requires
# grad: name -> rule(args, params) -> outputs (tracegrad/custom_eager.py adds custom_call).
GRAD_RULES = {}


def run(prim, args, params, wrap):
    """The outputs (tensors, through `wrap` where a value came back as an array) of a
    control-flow equation on tensors; other multi-output primitives run their impl on
    the data, which is refused where a tensor requires grad (nothing would record it)."""
    rule = RULES.get(prim.name)
    if rule is not None:
        return [wrap(o) for o in rule(*args, **params)]
    if any(getattr(a, "requires_grad", False) for a in args):
        recorded = GRAD_RULES.get(prim.name)
        if recorded is not None:
            return [wrap(o) for o in recorded(args, params)]
        raise NotImplementedError(f"{prim.name} on tensors that require grad: eager autograd "
                                  "does not record it; differentiate the program with "
                                  "tracegrad.grad or compile_grad instead")
    return [wrap(o) for o in prim.run(*[_value(a) for a in args], **params)]
