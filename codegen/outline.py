"""Out-of-line math: each mathlib function emitted once per module and called from kernels.

mathlib's functions are inline polynomials of 50-200 instructions each.  A kernel with
many of them (W7: 100 sin and 100 cos in one loop body) becomes ~12k instructions, and
LLVM's O3 time (the loop vectorizer above all) and code generation grow with that size
(docs/codegen.md, "Compile time").  For such kernels (more than `OUTLINE_MIN_CALLS` transcendental ops) each
transcendental op becomes a call of a module-internal `noinline` function instead:

    double @tg_m_sin_f64(double)              the scalar version (remainder iterations)
    <8 x double> @tg_m_sin_v8f64(<8 x double>) the vector version, one register wide

and the scalar function carries LLVM's `vector-function-abi-variant` attribute
(`_ZGV_LLVM_N8v_tg_m_sin_f64(tg_m_sin_v8f64)`, the vector function ABI mangling: N =
unmasked, 8 lanes, one `v`ector argument per operand), through which the loop vectorizer
widens each scalar call (LLVM reads a call's function attributes from its callee too)
into one call of the vector version per vector iteration.  The
vector versions are listed in `llvm.compiler.used`: nothing references them before
vectorization, and O3 deletes unreferenced internal functions early.

The vector width is the host's widest float register (`llvm_util.vector_bits`); every
function of a module that calls out of line carries
`"prefer-vector-width"` with that width, so the vectorizer
picks exactly the lane count the variant exists for, on every x86 tuning.  A loop that is
not vectorized (a remainder, a short domain, a non-vectorizable kernel) calls the scalar
version: results are the same either way (same mathlib code, same rounding).
"""
from __future__ import annotations

from llvmlite import ir

from tracegrad.ir import PRIMITIVES
from tracegrad.passes.kernels import Op

from . import llvm_util, mathlib
from .irutil import Function
from .scalar_ops import is_float

# The transcendental primitives (`Primitive.transcendental`): each inlines a mathlib polynomial.
OUTLINED = tuple(p.name for p in PRIMITIVES.values() if p.transcendental)
# a kernel with more transcendental ops than this calls them out of line (W7 has 200)
OUTLINE_MIN_CALLS = 8


def transcendental_count(kernel) -> int:
    """How many ops of a LoopKernel's body would inline a mathlib polynomial."""
    return sum(1 for ins in kernel.body
               if isinstance(ins, Op) and ins.prim in OUTLINED and is_float(ins.dtype))


def wants_outline(kernel) -> bool:
    return transcendental_count(kernel) > OUTLINE_MIN_CALLS


def _tag(ty) -> str:
    return "f32" if isinstance(ty, ir.FloatType) else "f64"


class MathFunctions:
    """The out-of-line math functions of one module, each made on first use."""

    def __init__(self, module: ir.Module, vector_bits: int | None = None):
        self.module = module
        self.bits = vector_bits or llvm_util.vector_bits()
        self.vector_fns = []  # widened through the ABI attribute: kept by llvm.compiler.used

    def lanes(self, ty) -> int:
        return self.bits // (32 if _tag(ty) == "f32" else 64)

    def call(self, b: ir.IRBuilder, name: str, args):
        """`name(*args)` for float/double args, or vectors of them (an explicit vector loop,
        simd.py, calls the vector function directly).  A scalar callee names its vector
        variant for the loop vectorizer."""
        if name not in OUTLINED:
            raise ValueError(f"outline: {name!r} is not an out-of-line function ({OUTLINED})")
        ty = args[0].type
        if isinstance(ty, ir.VectorType):
            return b.call(self.function(name, ty, len(args)), args)
        scalar = self.function(name, ty, len(args))
        vector = self.function(name, ir.VectorType(ty, self.lanes(ty)), len(args))
        if vector not in self.vector_fns:
            self.vector_fns.append(vector)
            # on the callee: LLVM reads a call's function attributes from the function too
            abi = f"_ZGV_LLVM_N{self.lanes(ty)}{'v' * len(args)}_{scalar.name}({vector.name})"
            scalar.string_attributes["vector-function-abi-variant"] = abi
        return b.call(scalar, args)

    def sincos(self, b: ir.IRBuilder, x):
        """(sin(x), cos(x)) of a vector x through one call that shares the reduction."""
        fname = f"tg_m_sincos_v{x.type.count}{_tag(x.type.element)}"
        fn = self.module.globals.get(fname)
        if fn is None:
            pair = ir.LiteralStructType([x.type, x.type])
            fn = self._new(fname, ir.FunctionType(pair, [x.type]))
            fb = ir.IRBuilder(fn.append_basic_block("entry"))
            sin, cos = mathlib.emit_sincos(fb, fn.args[0])
            fb.ret(fb.insert_value(fb.insert_value(ir.Constant(pair, ir.Undefined), sin, 0), cos, 1))
        both = b.call(fn, [x])
        return b.extract_value(both, 0), b.extract_value(both, 1)

    def function(self, name, ty, arity):
        """`tg_m_<name>_<f32|f64|v8f64...>`, defined in the module on first use."""
        suffix = f"v{ty.count}{_tag(ty.element)}" if isinstance(ty, ir.VectorType) else _tag(ty)
        fname = f"tg_m_{name}_{suffix}"
        fn = self.module.globals.get(fname)
        if fn is None:
            fn = self._define(fname, name, ty, arity)
        return fn

    def _new(self, fname, fnty):
        fn = Function(self.module, fnty, fname)
        fn.linkage = "internal"
        for attr in ("noinline", "nounwind", "readnone"):
            fn.attributes.add(attr)
        return fn

    def _define(self, fname, name, ty, arity):
        fn = self._new(fname, ir.FunctionType(ty, [ty] * arity))
        b = ir.IRBuilder(fn.append_basic_block("entry"))
        if arity == 2:
            b.ret(mathlib.emit_binary(b, name, *fn.args))
        else:
            b.ret(mathlib.emit_unary(b, name, fn.args[0]))
        return fn

    def finish(self):
        """After all kernels: keep the vector versions alive and pin the vector width.

        Every function defined in the module (irutil.Function: the kernel and the math)
        gets the width the variants exist for.
        """
        if not any(f.name.startswith("tg_m_") for f in self.module.functions):
            return
        for fn in self.module.functions:
            if fn.blocks:
                fn.string_attributes.update({"prefer-vector-width": self.bits,
                                             "min-legal-vector-width": self.bits})
        if not self.vector_fns:
            return
        ty = ir.ArrayType(ir.PointerType(), len(self.vector_fns))
        used = ir.GlobalVariable(self.module, ty, "llvm.compiler.used")
        used.linkage = "appending"
        used.section = "llvm.metadata"
        used.initializer = ir.Constant(ty, self.vector_fns)
