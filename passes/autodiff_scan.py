"""Reverse mode through `scan`: a forward scan that stacks residuals, then one
reverse scan over the backward half of the body's VJP.

The body is split with `vjp_split` into a forward half (the body plus the
residuals its VJP reads) and a backward half (residuals + cotangents -> input
cotangents).  Each residual is fetched the cheapest way that stays exact:

  * `const` / `x`: it is a const or an x slice: the reverse scan reads the
    original operand;
  * `hoist`: it depends on consts only (a loop invariant such as `W.T`):
    computed once, outside both loops, and passed as a const;
  * `remat`: it depends on no carry and is made from consts and x slices by
    index-only primitives (reshape, transpose, ...): recomputed in the reverse
    step, which costs no arithmetic;
  * `stack`: anything else is an extra y of the forward scan, one per step.

The reverse scan runs in the opposite direction, carrying the cotangents of
the active carries and one running sum per differentiated const; its ys are
the cotangents of the xs.  Memory: `length` x the bytes of the stacked
residuals of one step.
"""
from __future__ import annotations

from tracegrad.ir import ops
from tracegrad.ir.core import ShapedArray, Var

from . import autodiff
from .control_graphs import (fixed_point, float_flags, graph_of, inline, relabel, split3,
                             spread, where, zeros)
from .dce import dce


def _roles(graph, nc, nk):
    """Per var: the input roles it depends on ('c', 'k', 'x'), and whether it is
    made from the inputs by index-only (structural) primitives alone."""
    roles, cheap = {}, {}
    for i, v in enumerate(graph.invars):
        roles[v], cheap[v] = {"c" if i < nc else "k" if i < nc + nk else "x"}, True
    for v in graph.constvars:
        roles[v], cheap[v] = set(), True
    for e in graph.eqns:
        ins = [a for a in e.inputs if isinstance(a, Var)]
        role = set().union(*[roles[a] for a in ins])
        structural = e.prim.kind == "structural" and all(cheap[a] for a in ins)
        for o in e.outs:
            roles[o], cheap[o] = role, structural
    return roles, cheap


def _cone(graph, invars, outvars):
    """The part of `graph` computing `outvars` from `invars` (which it must only read)."""
    return dce(graph.replace(invars=list(invars), outvars=list(outvars)))


def _reads(graph):
    read = {a for e in graph.eqns for a in e.inputs if isinstance(a, Var)}
    read |= {v for v in graph.outvars if isinstance(v, Var)}
    return [v in read for v in graph.invars]


class ScanVJP:
    """The reverse mode of one scan equation: the forward scan (with stacked
    residuals) is recorded on construction; `pullback` records the reverse scan."""

    def __init__(self, active, primals, body, nc, nk, length, reverse):
        self.nc, self.nk, self.length, self.reverse = nc, nk, length, reverse
        self.consts, self.init, self.xs = split3(primals, nc, nk)
        c_on, k_on, x_on = split3(active, nc, nk)
        k_on, out_on = fixed_point(body, c_on, float_flags(self.init, k_on), x_on, nk)
        self.on = [c_on, k_on, x_on]
        self.ct_on = k_on + out_on[nk:]  # the body outputs that receive cotangents
        wrt = [i for i, f in enumerate(c_on + k_on + x_on) if f]
        fwd, self.bwd = autodiff.vjp_split(body, wrt=wrt, cts=self.ct_on)
        n_out = len(body.outvars)
        self._classify(fwd, n_out)
        fwd_body = relabel(fwd.replace(outvars=fwd.outvars[:n_out] + self.by_kind["stack"]))
        outs = ops.scan(self.consts, self.init, self.xs, fwd_body, length, reverse)
        self.outs, self.stacks = outs[:n_out], outs[n_out:]

    def _classify(self, fwd, n_out):
        self._positions = position = {v: i for i, v in enumerate(fwd.invars)}
        roles, cheap = _roles(fwd, self.nc, self.nk)
        self.residuals = fwd.outvars[n_out:]
        self.by_kind = {k: [] for k in ("const", "x", "hoist", "remat", "stack")}
        self.sources = []  # per residual: (kind, index within its kind)
        for r in self.residuals:
            kind = self._kind(position.get(r), roles[r], cheap[r])
            self.sources.append((kind, len(self.by_kind[kind])))
            self.by_kind[kind].append(r)
        nc, nk = self.nc, self.nk
        self.hoist = _cone(fwd, fwd.invars[:nc], self.by_kind["hoist"])
        remat = _cone(fwd, fwd.invars[:nc] + fwd.invars[nc + nk:], self.by_kind["remat"])
        reads = _reads(remat)
        self.remat = remat.replace(invars=where(reads, remat.invars))
        self.remat_consts = [i for i in range(nc) if reads[i]]
        self.remat_xs = [j for j, r in enumerate(reads[nc:]) if r]
        self.const_res = sorted({position[r] for r in self.by_kind["const"]}
                                | set(self.remat_consts))
        self.x_res = sorted({position[r] - nc - nk for r in self.by_kind["x"]}
                            | set(self.remat_xs))

    def _kind(self, pos, roles, cheap):
        if pos is not None:
            return "const" if pos < self.nc else "stack" if pos < self.nc + self.nk else "x"
        if roles <= {"c"}:
            return "hoist"
        return "remat" if "k" not in roles and cheap else "stack"

    def pullback(self, cts):
        c_on, k_on, x_on = self.on
        nk = self.nk
        ct_k = [c if c is not None else ops.full_like(p, 0.0)
                for c, p, f in zip(cts[:nk], self.init, k_on) if f]
        # cotangents of the ys that have one; the others are zeros inside the body
        y_cts = where(self.ct_on[nk:], cts[nk:])
        y_given = [c is not None for c in y_cts]
        hoisted = inline(ops.find_trace(self.consts + self.init + self.xs), self.hoist,
                          self.consts)
        consts = [self.consts[i] for i in self.const_res] + hoisted
        acc = [ops.full_like(p, 0.0) for p in where(c_on, self.consts)]
        xs = self.stacks + [self.xs[j] for j in self.x_res] + [c for c in y_cts if c is not None]
        body = graph_of(lambda b, *ins: self._reverse_step(b, list(ins), y_given),
                         [ops.aval(v) for v in consts + ct_k + acc]
                         + [ShapedArray(ops.shape(x)[1:], ops.dtype(x)) for x in xs])
        outs = ops.scan(consts, ct_k + acc, xs, body, self.length, not self.reverse)
        n_k, n_c = len(ct_k), len(acc)
        ct_init, ct_consts, ct_xs = outs[:n_k], outs[n_k:n_k + n_c], outs[n_k + n_c:]
        return spread(c_on, ct_consts) + spread(k_on, ct_init) + spread(x_on, ct_xs)

    def _reverse_step(self, b, ins, y_given):
        """consts: const residuals, hoisted values; carries: carry cts, const ct sums;
        xs: stacked residuals, x slices, given ys' cts -> carry cts, const ct sums;
        ys: the xs' cts."""
        n_k, n_c = sum(self.on[1]), sum(self.on[0])
        take = _Taker(ins)
        consts, hoisted = take(len(self.const_res)), take(len(self.by_kind["hoist"]))
        ct_k, acc = take(n_k), take(n_c)
        stacked, x_vals = take(len(self.stacks)), take(len(self.x_res))
        given = iter(take(sum(y_given)))
        const_of = dict(zip(self.const_res, consts))
        x_of = dict(zip(self.x_res, x_vals))
        values = {"hoist": hoisted, "stack": stacked,
                  "remat": inline(b, self.remat, [const_of[i] for i in self.remat_consts]
                                   + [x_of[j] for j in self.remat_xs]),
                  "const": [const_of[self.position_of(r)] for r in self.by_kind["const"]],
                  "x": [x_of[self.position_of(r) - self.nc - self.nk] for r in self.by_kind["x"]]}
        res = [values[kind][k] for kind, k in self.sources]
        y_avals = self.bwd.in_avals[len(self.residuals) + n_k:]
        ct_ys = [next(given) if g else zeros(b, a) for a, g in zip(y_avals, y_given)]
        grads = inline(b, self.bwd, res + ct_k + ct_ys)
        g_c, g_k, g_x = grads[:n_c], grads[n_c:n_c + n_k], grads[n_c + n_k:]
        return g_k + [ops.add(a, g) for a, g in zip(acc, g_c)] + g_x

    def position_of(self, var):
        return self._positions[var]


class _Taker:
    """Consecutive slices of a list."""

    def __init__(self, items):
        self.items, self.at = items, 0

    def __call__(self, n):
        self.at += n
        return self.items[self.at - n:self.at]


def scan_vjp(active, *primals, body, num_consts, num_carry, length, reverse):
    rule = ScanVJP(active, primals, body, num_consts, num_carry, length, reverse)
    return rule.outs, rule.pullback
