"""The kernel program printer: a header of buffers, then one block per kernel.

The text depends only on the program, so it is stable across runs and usable
in golden tests::

    program (in0:f32[4]) -> (out0:f32[])
      input  in0:f32[4] (arg 0)
      output out0:f32[] (result 0)
    kernel k0 domain=(4,)
      %0 = load in0[0+[1]]
      %1 = tanh %0
      store out0[0+[0]] += %1
    dot k1: t2 = t0 @ in1.T [b=1 m=256 k=784 n=512]
    extern k2: (t3) = cumsum[axis=0 reverse=False](t2)

Loads and stores print their index map `offset+[strides]` (and `if [bounds]`);
reducing stores print `+=`, `*=`, `max=` or `min=`.  Control-flow steps print their
operand roles, then each body program nested one level deeper::

    scan k0 length=10 consts=(in2, in3) init=(in0) xs=(in1) -> carries=(t0) scratch=(t1) ys=(out1)
      body:
        program (in0:f64[6,6], ...) -> (out0:f64[6], out1:f64[])
        ...
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir.core import short_dtype
from tracegrad.passes.kernels import (REDUCTIONS, Const, CondStep, DotKernel, ExternKernel,
                                     KernelProgram, Load, LoopStep)

__all__ = ["format_program", "format_kernel"]


def _operator(reduce) -> str:
    return "=" if reduce is None else REDUCTIONS[reduce].operator



def _const(c: Const) -> str:
    return f"{c.value!r}:{short_dtype(c.dtype)}"


def _param(v) -> str:
    if isinstance(v, np.dtype):
        return short_dtype(v)
    if isinstance(v, type) and issubclass(v, np.generic):
        return short_dtype(np.dtype(v))
    return str(v)


def _arg(a) -> str:
    return _const(a) if isinstance(a, Const) else f"%{a}"


def _params(params) -> str:
    if not params:
        return ""
    return "[" + " ".join(f"{k}={_param(v)}" for k, v in sorted(params.items())) + "]"


def _instr(pos, ins) -> str:
    if isinstance(ins, Load):
        return f"%{pos} = load {ins.buffer.name}[{ins.index}]"
    return f"%{pos} = {ins.prim}{_params(ins.params)} " + " ".join(_arg(a) for a in ins.args)


def _extern(k: ExternKernel) -> str:
    outs = ", ".join(b.name for b in k.outputs)
    ins = ", ".join(b.name for b in k.inputs)
    return f"extern {k.name}: ({outs}) = {k.prim}{_params(k.params)}({ins})"


def _dot(k: DotKernel) -> str:
    a = k.a.name + (".T" if k.trans_a else "")
    b = k.b.name + (".T" if k.trans_b else "")
    return f"dot {k.name}: {k.out.name} = {a} @ {b} [b={k.batch} m={k.m} k={k.k} n={k.n}]"


def _names(role, buffers) -> str:
    return f"{role}=({', '.join(b.name for b in buffers)})"


def _roles(pairs) -> str:
    """The roles that have buffers (a scan has no cond_consts, a while no xs)."""
    return " ".join(_names(role, bufs) for role, bufs in pairs if bufs)


def _nested(label, kp, indent) -> list:
    body = format_program(kp).split("\n")
    return [f"{indent}{label}:"] + [indent * 2 + line for line in body]


def _loop_step(k: LoopStep, indent) -> list:
    kind = "while_vjp" if k.grad is not None else "while" if k.length is None else "scan"
    head = f"{kind} {k.name}" + (f" length={k.length}" if k.length is not None else "")
    head += " reverse" if k.reverse else ""
    head += f" groups={k.groups}" if k.groups else ""
    ins = _roles([("cond_consts", k.cond_consts), ("consts", k.consts), ("init", k.init),
                  ("xs", k.xs)])
    outs = _roles([("carries", k.carries), ("scratch", k.scratch), ("ys", k.ys)])
    if k.pred is not None:
        outs += f" pred={k.pred.name}"
    lines = [f"{head} {ins} -> {outs}"]
    if k.cond is not None:
        lines += _nested("cond", k.cond, indent)
    lines += _nested("body", k.body, indent)
    if k.merge is not None:
        lines += _nested("merge", k.merge, indent)
    if k.grad is not None:
        g = k.grad
        lines.append(f"{indent}reverse over the tape: acc={g.n_acc} "
                     + _roles([("consts", g.consts), ("cts", g.cts)]) + " -> "
                     + _roles([("outs", g.outs), ("scratch", g.scratch)]))
        lines += _nested("grad body", g.body, indent)
    return lines


def _cond_step(k: CondStep, indent) -> list:
    lines = [f"cond {k.name} index={k.index.name} "
             + _roles([("operands", k.operands)]) + " -> " + _roles([("outs", k.outs)])]
    for i, branch in enumerate(k.branches):
        lines += _nested(f"branch {i}", branch, indent)
    return lines


def format_kernel(k, indent: str = "  ") -> str:
    if isinstance(k, DotKernel):
        return _dot(k)
    if isinstance(k, ExternKernel):
        return _extern(k)
    if isinstance(k, LoopStep):
        return "\n".join(_loop_step(k, indent))
    if isinstance(k, CondStep):
        return "\n".join(_cond_step(k, indent))
    lines = [f"kernel {k.name} domain={tuple(k.domain)}"]
    lines += [indent + _instr(i, ins) for i, ins in enumerate(k.body)]
    lines += [f"{indent}store {s.buffer.name}[{s.index}] {_operator(s.reduce)} %{s.value}"
              for s in k.stores]
    return "\n".join(lines)


def _header(kp: KernelProgram) -> list:
    ins = ", ".join(str(b) for b in kp.inputs)
    outs = ", ".join(str(b) for b in kp.outputs)
    lines = [f"program ({ins}) -> ({outs})"]
    lines += [f"  input  {b} (arg {b.index})" for b in kp.inputs]
    lines += [f"  const  {b}" for b in kp.consts]
    lines += [f"  temp   {b}" for b in kp.temps]
    lines += [f"  output {b} (result {b.index})" for b in kp.outputs]
    return lines


def format_program(kp: KernelProgram) -> str:
    return "\n".join(_header(kp) + [format_kernel(k) for k in kp.kernels])
