"""Building the `scan` that replaces a run's rolled iterations (see `reroll.py`).

The body is iteration 1 with fresh variables: operands made by the iteration
before read the body's carries, outer values its constants, and changing
literals, constants and `x[t]` slices its xs.  Each carry starts from the value
iteration 0 made.  The body's outputs are its carries (carried values, and the
values read after the run only from the last iteration) and then the ys (every
other value read after the run, stacked, each read back with a slice).
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import Eqn, Graph, Literal, ShapedArray, Var
from tracegrad.ir.primitives import PRIMITIVES

from .cse import Redirects
from .dce import dce


def new_eqn(name, inputs, src=None, **params) -> Eqn:
    """An equation of primitive `name` on `inputs`, its outputs typed by the shape rule."""
    prim = PRIMITIVES[name]
    avals = prim.shape_rule(*[a.aval for a in inputs], **params)
    outs = [Var(a) for a in avals] if prim.multiple_results else [Var(avals)]
    return Eqn(prim, list(inputs), params, outs, src)


def _outside_reads(graph, run, end) -> dict:
    """var -> (k, j, out) for each value of a rolled iteration read after the run."""
    mine = {v: (k, j, o) for k in range(1, run.length + 1) for j in range(run.period)
            for o, v in enumerate(run.eqn(graph.eqns, k, j).outs)}
    reads = [a for e in graph.eqns[end:] for a in e.inputs]
    reads += list(graph.outvars) + [g.var for g in graph.guards]
    return {a: mine[a] for a in reads if isinstance(a, Var) and a in mine}


class _Scan:
    """The pieces of one rolled run: body operands, carries, ys, new constants."""

    def __init__(self, graph, run, reads):
        self.graph, self.run, self.eqns = graph, run, graph.eqns
        self.carries = list(dict.fromkeys(r[1:] for roles in run.roles for r in roles
                                          if r[0] == "carry"))
        iters: dict = {}
        for k, j, o in reads.values():
            iters.setdefault((j, o), set()).add(k)
        last_only = [jo for jo, ks in iters.items() if ks == {run.length}]
        self.carries += [jo for jo in last_only if jo not in self.carries]
        self.ys = [jo for jo in iters if jo not in last_only]
        self.consts: dict = {}      # outer var -> body input
        self.xs: dict = {}          # ("slot", j, i) or ("slice", j) -> body input
        self.carry_in = {jo: Var(self._var(0, *jo).aval) for jo in self.carries}
        self.env: dict = {}
        self.constvals = dict(zip(graph.constvars, graph.constvals))  # changing constants: xs

    def _var(self, k, j, o):
        return self.run.eqn(self.eqns, k, j).outs[o]

    # -- the body ------------------------------------------------------------------------
    def body(self) -> Graph:
        eqns = [e for j in range(self.run.period) if (e := self._body_eqn(j)) is not None]
        invars = list(self.consts.values()) + list(self.carry_in.values()) + list(self.xs.values())
        outvars = [self.env[jo] for jo in self.carries] + [self.env[jo] for jo in self.ys]
        return Graph(invars, [], [], eqns, outvars)

    def _body_eqn(self, j):
        e1 = self.run.eqn(self.eqns, 1, j)
        if j in self.run.slices:  # x[t] is the body's xs input
            self.env[(j, 0)] = self.xs.setdefault(("slice", j), Var(e1.out.aval))
            return None
        inputs = [self._body_atom(j, i, a) for i, a in enumerate(e1.inputs)]
        outs = [Var(v.aval) for v in e1.outs]
        self.env.update({(j, o): v for o, v in enumerate(outs)})
        return Eqn(e1.prim, inputs, e1.params, outs, e1.src)

    def _body_atom(self, j, i, a):
        role = self.run.roles[j][i]
        if role[0] == "in":
            return self.env[role[1:]]
        if role[0] == "carry":
            return self.carry_in[role[1:]]
        if (j, i) in self.run.varying:
            return self.xs.setdefault(("slot", j, i), Var(a.aval))
        if isinstance(a, Literal):
            return a
        return self.consts.setdefault(a, Var(a.aval))

    # -- the outer operands ----------------------------------------------------------------
    def operands(self, prep: list, new_consts: list) -> list:
        """consts + initial carries + xs; `prep` gets the slicing equations and
        `new_consts` the stacked constants (var, value) the xs need."""
        inits = [self._var(0, *jo) for jo in self.carries]
        xs = [self._xs_operand(key, prep, new_consts) for key in self.xs]
        return list(self.consts) + inits + xs

    def _xs_operand(self, key, prep, new_consts):
        if key[0] == "slice":
            return self._strided(key[1], prep)
        _, j, i = key
        values = self._stacked(j, i)
        var = Var(ShapedArray(values.shape, values.dtype))
        new_consts.append((var, values))
        return var

    def _stacked(self, j, i) -> np.ndarray:
        """The values a changing literal or constant takes in iterations 1..length."""
        atoms = [self.run.eqn(self.eqns, k, j).inputs[i] for k in self._in_index_order()]
        return np.stack([a.value if isinstance(a, Literal) else np.asarray(self.constvals[a])
                         for a in atoms])

    def _in_index_order(self):
        """Iterations 1..length in the order of their xs and ys index."""
        ks = range(1, self.run.length + 1)
        return reversed(ks) if self.run.reverse else ks

    def _strided(self, j, prep):
        """x[t] for every rolled t: one strided slice, the moving axis put first."""
        first = self.run.eqn(self.eqns, next(iter(self._in_index_order())), j)
        axis, step = self.run.slices[j]
        steps, sizes = list(first.params["steps"]), list(first.params["sizes"])
        steps[axis], sizes[axis] = abs(step), self.run.length
        prep.append(new_eqn("slice", [first.inputs[0]], first.src,
                            starts=tuple(first.params["starts"]), steps=tuple(steps),
                            sizes=tuple(sizes)))
        e1 = self.run.eqn(self.eqns, 1, j)
        if axis != 0:
            perm = (axis,) + tuple(d for d in range(len(sizes)) if d != axis)
            prep.append(new_eqn("transpose", [prep[-1].out], e1.src, perm=perm))
        shape = (self.run.length,) + tuple(e1.out.aval.shape)
        prep.append(new_eqn("reshape", [prep[-1].out], e1.src, shape=shape))
        return prep[-1].out


def _read_back(scan_eqn, pieces, reads, redirects, rows) -> list:
    """Equations reading each value used after the run from the scan's outputs;
    `rows` gets each stacked read's row: its var -> (ys, index)."""
    n = len(pieces.carries)
    finals = dict(zip(pieces.carries, scan_eqn.outs[:n]))
    stacked = dict(zip(pieces.ys, scan_eqn.outs[n:]))
    eqns = []
    for var, (k, j, o) in reads.items():
        if (j, o) not in stacked:  # read only from the last iteration: a final carry
            redirects.set(var, finals[(j, o)])
            continue
        ys, shape, index = stacked[(j, o)], var.aval.shape, pieces.run.index(k)
        eqns.append(new_eqn("slice", [ys], scan_eqn.src, starts=(index,) + (0,) * len(shape),
                            steps=(1,) * (len(shape) + 1), sizes=(1,) + tuple(shape)))
        rows[eqns[-1].out] = (ys, index)
        eqns.append(new_eqn("reshape", [eqns[-1].out], scan_eqn.src, shape=tuple(shape)))
        rows[eqns[-1].out] = (ys, index)
        redirects.set(var, eqns[-1].out)
    return eqns


def _restacked(eqns, rows) -> list:
    """`np.stack` of the rolled values, read back row by row, is a slice of the ys:
    a concatenate along axis 0 of consecutive rows (reshaped to one row each)
    takes them as one slice."""
    out = []
    for e in eqns:
        if e.prim.name == "reshape" and e.inputs[0] in rows:
            rows[e.out] = rows[e.inputs[0]]  # same row, another shape
        if e.prim.name == "concatenate" and e.params["axis"] == 0:
            e = _merged_concat(e, rows, out)
        out.append(e)
    return out


def _is_row(a, rows) -> bool:
    """`a` is row `i` of a ys, shaped as one row of it."""
    return a in rows and tuple(a.aval.shape) == (1,) + tuple(rows[a][0].aval.shape[1:])


def _merged_concat(e, rows, out):
    """`e` with each run of consecutive rows of one ys replaced by one slice."""
    inputs, i = [], 0
    while i < len(e.inputs):
        n = _row_run(e.inputs, i, rows)
        if n < 2:
            inputs.append(e.inputs[i])
            i += 1
            continue
        (ys, first), step = rows[e.inputs[i]], rows[e.inputs[i + 1]][1] - rows[e.inputs[i]][1]
        rank = ys.aval.ndim
        out.append(new_eqn("slice", [ys], e.src, starts=(first,) + (0,) * (rank - 1),
                           steps=(step,) + (1,) * (rank - 1),
                           sizes=(n,) + tuple(ys.aval.shape[1:])))
        inputs.append(out[-1].out)
        i += n
    if len(inputs) == len(e.inputs):
        return e
    return Eqn(e.prim, inputs, e.params, e.outs, e.src)


def _row_run(atoms, i, rows) -> int:
    """How many atoms from `i` on are rows of one ys at indices moving by one."""
    if not _is_row(atoms[i], rows):
        return 0
    ys, first = rows[atoms[i]]
    n, step = 1, None
    while i + n < len(atoms) and _is_row(atoms[i + n], rows):
        ys2, index = rows[atoms[i + n]]
        if step is None and ys2 is ys and abs(index - first) == 1:
            step = index - first
        if ys2 is not ys or step is None or index != first + n * step:
            break
        n += 1
    return n


def roll(graph, run, reroll_body) -> Graph:
    """`graph` with iterations 1..run.length of `run` replaced by one `scan`."""
    begin, end = run.start + run.period, run.start + (run.length + 1) * run.period
    reads = _outside_reads(graph, run, end)
    pieces = _Scan(graph, run, reads)
    body = reroll_body(pieces.body())
    prep, new_consts = [], []
    operands = pieces.operands(prep, new_consts)
    src = graph.eqns[begin].src
    scan_eqn = new_eqn("scan", operands, src, body=body, num_consts=len(pieces.consts),
                       num_carry=len(pieces.carries), length=run.length, reverse=run.reverse)
    redirects, rows = Redirects(), {}
    back = _read_back(scan_eqn, pieces, reads, redirects, rows)
    after = _restacked([redirects.eqn(e) for e in graph.eqns[end:]], rows)
    eqns = graph.eqns[:begin] + prep + [scan_eqn] + back + after
    rolled = redirects.finish(graph, eqns,
                              constvars=list(graph.constvars) + [v for v, _ in new_consts],
                              constvals=list(graph.constvals) + [c for _, c in new_consts])
    return dce(rolled)  # the row reads a restacked concatenate no longer needs
