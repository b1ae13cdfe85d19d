"""Fusion planning: which values become buffers, and which loop nests compute them.

`fuse(graph)` turns a graph into a `KernelProgram`, whose exact semantics
`passes/kernels.py` defines.  Fusion is a decision about which values are
stored in memory; everything between stored values is computed inside the
loop nests that need it.

The package, one concern per module, in pipeline order: `views` (the view
algebra), `body` (kernel bodies: SSA instructions, CSE, folding), `expand`
(values at views into a body), `state` (which values are stored), `tasks`
(the stores kernels make), `merge` (horizontal fusion), `recompute` (the
recompute policy), `frontier` (analysis rounds for long chains), `planning`
(the rounds), `emission` (kernels, names, liveness), `control` (control-flow
equations as steps with sub-programs), `extern` (extern equations as kernels of
their own).

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((8,), np.float32))
>>> y = ops.sin(x)
>>> kp = fuse(b.build([ops.reduce_sum(y, (0,)), ops.slice(y, (1,), (1,), (7,))]))
>>> print(kp)  # doctest: +NORMALIZE_WHITESPACE
program (in0:f32[8]) -> (out0:f32[], out1:f32[7])
  input  in0:f32[8] (arg 0)
  output out0:f32[] (result 0)
  output out1:f32[7] (result 1)
kernel k0 domain=(8,)
  %0 = load in0[0+[1]]
  %1 = sin %0
  store out0[0+[0]] += %1
kernel k1 domain=(7,)
  %0 = load in0[1+[1]]
  %1 = sin %0
  store out1[0+[1]] = %1

Policy
------
Buffers.  Inputs, constants and outputs are buffers; so are the results of
reductions, dots, concatenations and extern routines (always), the operands of
extern routines (`extern`: read in place, as control-flow operands are), dot
operands a DotKernel cannot read in place, operands of reshapes no affine index
map expresses, strided
pads, and the values the recompute policy below decides to store.

Control flow.  The operands and outputs of `cond`, `while`, `scan` and
`while_vjp` are buffers (a reshape of a buffer is read in place, a literal is
filled into a temp); each becomes a LoopStep or CondStep whose bodies are
planned once, recursively, by this planner (`control`).

Views.  A loop kernel iterates over a domain; inside it a value is needed at
an affine function of the domain index, a `View`: one row `c + sum_k a_k i_k`
per dim of the value, plus the `box` of domain indices where the value
matters.  Structural primitives only change the view of their operand:
broadcast zeroes rows, transpose permutes them, slice scales and shifts them,
reshape re-splits the flat index (refused where that is not exact: the
operand is then stored; a reshape of a buffer is always a flat load), pad
narrows the box.  Views push through elementwise ops down to the loads, so
`sin(x)[1:]` loads x at i+1 and computes sin there: a cheap elementwise
subtree is recomputed at every index where a consumer needs it.

Pad.  Loads under a pad carry the pad's bounds on the domain dims they move
along, so no address outside a buffer is ever formed.  A pad of a load is
that load with the pad's bounds (it yields 0 outside); a pad of a computed
value is `where(mask, value, 0)`, `mask` being a load of the constant bool
buffer `mask` (shape (), value True) with the pad's bounds.  A pad of step s
fuses only where the index moves in multiples of s (a strided slice of it);
otherwise it is stored: a zero fill, then a scatter of its operand.

Recompute vs store.  A kernel evaluates each (value, view) once, however many
of its stores need it.  A value evaluated in several (kernel, view) instances
is recomputed in each unless (instances - 1) * cost > RECOMPUTE_BUDGET, cost
being the weighted op count of its subtree down to buffers (each primitive's
`cost`: transcendentals weigh 8 simple ops); then it becomes a temp buffer.
Values are decided outermost first, and planning re-runs until nothing
changes (see `recompute` and `planning`).

Kernels.  Every stored value gets tasks: elementwise values a store over
their own shape; reductions a reducing store over their input's shape
(reduced dims stride 0; a reduction read only by a reduction of the same kind
folds into it: sum(sum(x, 1), 0) is one sum over both axes); concatenations
one task per operand writing its region; dots a DotKernel (an operand that is
a buffer, or a buffer transposed over its last two axes, is read in place
with trans_a/trans_b).  Tasks with equal domains and no path between them
merge into one LoopKernel (horizontal fusion): `sum(f(x))` and its gradient
`f'(x)` take one pass over x.  A task that reads an elementwise temp computed
by the kernel it could join, at that kernel's own index, recomputes the temp
instead (the kernel computes it once anyway) and joins.

Buffers seen from codegen: a constant whose elements are all equal (bit for
bit) is read as a literal; a DotKernel may read or write a buffer under
another shape of the same size (a reshape keeps the memory layout; a dot
whose result is only reshaped into an output writes the output directly); a
reducing store always targets a whole buffer; several kernels may write
disjoint parts of one buffer (concatenate regions, strided pad fill then
scatter), in kernel order.

Outputs are always fresh memory: an output that is an input, a constant, a
literal or a value already returned gets a copy (or fill) store.  Temps are
listed in the order of their first write; `liveness(program)` gives each
temp's first and last kernel.
"""
from __future__ import annotations

from tracegrad.passes.halo import pad_sums
from tracegrad.passes.kernels import KernelProgram

from . import planning
from .emission import KernelSizeError, emit, liveness
from .expand import STEP_RULES
from .recompute import RECOMPUTE_BUDGET
from .views import View

__all__ = ["fuse", "liveness", "KernelSizeError", "View", "RECOMPUTE_BUDGET", "STEP_RULES"]


def fuse(graph) -> KernelProgram:
    """Plan the buffers and loop kernels computing `graph` (see the package docstring);
    sums a halo short of their neighbours' domain are planned padded (passes/halo.py)."""
    state, groups = planning.plan(pad_sums(graph))
    return emit(state, groups)
