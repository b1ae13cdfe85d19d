"""Compiling small ir.ops programs for the extern-kernel tests (one helper for the
cumulative, indexing and sorting lowerings)."""
from __future__ import annotations

import numpy as np

from tracegrad.codegen import compile_program, extern
from tracegrad.ir import GraphBuilder, ShapedArray
from tracegrad.passes.fusion import fuse


def compile_ops(fn, *args):
    """fn (written with ir.ops) traced on avals of `args`, fused, compiled and run:
    (kernel program, compiled program, outputs)."""
    b = GraphBuilder()
    xs = [b.new_input(ShapedArray(np.shape(a), np.asarray(a).dtype)) for a in args]
    out = fn(*xs)
    graph = b.build(list(out) if isinstance(out, (tuple, list)) else [out])
    kp = fuse(graph)
    cp = compile_program(kp, disk_cache=False)
    return kp, cp, cp(*args)


def compiled(fn, *args):
    """The first output of `compile_ops`, and whether the program calls back into Python."""
    _, cp, outs = compile_ops(fn, *args)
    return outs[0], extern.HOST_SYMBOL in cp.llvm_ir()
