"""DCE rules of the control-flow primitives (`Primitive.dce_rule`, applied by `dce.py`).

`rule(eqn, used) -> (eqn', used_inputs)`: `used[i]` says whether output i is
read; `eqn'` binds only the outputs kept and reads only the inputs its
cleaned bodies still need (`used_inputs` is all True for them).

* `cond`: unused outputs leave every branch; an operand no branch reads goes.
* `scan`, `while`: a carry stays when its final value is read, or when a kept
  output (or, for `while`, the condition) reads it at some step: a fixed
  point over the body.  Unused ys leave the body; consts and xs nobody reads go.
"""
from __future__ import annotations

from tracegrad.ir import Eqn, Var
from tracegrad.ir.primitives import PRIMITIVES

from .dce import dce


def _keep_outputs(graph, keep):
    return dce(graph.replace(outvars=[v for v, k in zip(graph.outvars, keep) if k]))


def _reads(graph) -> list:
    """Which inputs a (dead-code-free) graph reads."""
    read = {a for e in graph.eqns for a in e.inputs if isinstance(a, Var)}
    read |= {v for v in graph.outvars if isinstance(v, Var)}
    read |= {g.var for g in graph.guards if isinstance(g.var, Var)}
    return [v in read for v in graph.invars]


def _keep_inputs(graph, keep):
    return graph.replace(invars=[v for v, k in zip(graph.invars, keep) if k])


def _select(items, keep):
    return [x for x, k in zip(items, keep) if k]


def _result(eqn, inputs, params, outs):
    new = Eqn(eqn.prim, inputs, params, outs, eqn.src)
    return new, [True] * len(inputs)


def _cond_dce(eqn, used):
    branches = [_keep_outputs(b, used) for b in eqn.params["branches"]]
    read = [any(r) for r in zip(*[_reads(b) for b in branches])]
    branches = tuple(_keep_inputs(b, read) for b in branches)
    inputs = eqn.inputs[:1] + _select(eqn.inputs[1:], read)
    return _result(eqn, inputs, dict(eqn.params, branches=branches), _select(eqn.outs, used))


def _carry_fixed_point(body, n_before, used_carry, used_rest):
    """Grow the kept carries until the cleaned body reads no other carry."""
    nk = len(used_carry)
    while True:
        cleaned = _keep_outputs(body, used_carry + used_rest)
        read = _reads(cleaned)
        grown = [u or r for u, r in zip(used_carry, read[n_before:n_before + nk])]
        if grown == used_carry:
            return cleaned, read, used_carry
        used_carry = grown


def _scan_dce(eqn, used):
    p = eqn.params
    nc, nk = p["num_consts"], p["num_carry"]
    body, read, carry = _carry_fixed_point(p["body"], nc, list(used[:nk]), list(used[nk:]))
    keep_in = read[:nc] + carry + read[nc + nk:]
    body = _keep_inputs(body, keep_in)
    params = dict(p, body=body, num_consts=sum(read[:nc]), num_carry=sum(carry))
    return _result(eqn, _select(eqn.inputs, keep_in), params,
                   _select(eqn.outs, carry + list(used[nk:])))


def _while_dce(eqn, used):
    p = eqn.params
    ncc, nbc = p["cond_nconsts"], p["body_nconsts"]
    test = dce(p["cond_graph"])
    test_read = _reads(test)
    carry = [u or r for u, r in zip(used, test_read[ncc:])]
    body, read, carry = _carry_fixed_point(p["body_graph"], nbc, carry, [])
    test = _keep_inputs(test, test_read[:ncc] + carry)
    body = _keep_inputs(body, read[:nbc] + carry)
    keep_in = test_read[:ncc] + read[:nbc] + carry
    params = dict(p, cond_graph=test, body_graph=body, cond_nconsts=sum(test_read[:ncc]),
                  body_nconsts=sum(read[:nbc]))
    return _result(eqn, _select(eqn.inputs, keep_in), params, _select(eqn.outs, carry))


for _name, _rule in (("cond", _cond_dce), ("scan", _scan_dce), ("while", _while_dce)):
    PRIMITIVES[_name].dce_rule = _rule
