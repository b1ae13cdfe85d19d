"""Small llvmlite helpers shared by the code generators (loops, constants, image walks)."""
from __future__ import annotations

import ctypes
import functools

from llvmlite import ir


@functools.lru_cache(maxsize=None)
def libc_symbols(names: tuple) -> dict:
    """`tg_sys_<name>` -> address of each libc function in `names`, for the JIT's symbol
    table (generated code calls libc through these names)."""
    libc = ctypes.CDLL(None)
    return {f"tg_sys_{n}": ctypes.cast(getattr(libc, n), ctypes.c_void_p).value for n in names}

I64 = ir.IntType(64)
PTR = ir.PointerType()


def i64(v) -> ir.Constant:
    return ir.Constant(I64, int(v))


class Splat(ir.Constant):
    """`<lanes x T>` with every lane the scalar constant `elem`, printed in LLVM's short form
    `splat (T v)` instead of `lanes` copies: the mathlib's vector polynomials hold dozens of
    such constants, whose long form made up most of a vector kernel's text (W2's kernels:
    92,000 characters, 31,000 with splats), and of the LLVM IR a compiled function shows.

    >>> str(Splat(ir.Constant(ir.DoubleType(), 2.0), 4))
    '<4 x double> splat (double 0x4000000000000000)'
    """

    def __init__(self, elem: ir.Constant, lanes: int):
        super().__init__(ir.VectorType(elem.type, lanes), [elem] * lanes)
        self.elem = elem

    def _get_reference(self):
        return f"splat ({self.elem})"


def splat(c: ir.Constant, lanes: int | None) -> ir.Constant:
    """Scalar constant c, or a Splat of it if lanes is given."""
    return c if lanes is None else Splat(c, lanes)


class Loop:
    """`for iv in [lo, hi) step step` as a guarded do-while; constant bounds fold the guard away.

    >>> # with Loop(builder, i64(0), i64(n), "i") as iv: ...body using iv...
    """

    def __init__(self, b: ir.IRBuilder, lo, hi, name: str, step: int = 1):
        self.b, self.lo, self.hi, self.name, self.step = b, lo, hi, name, step

    def __enter__(self):
        b, fn = self.b, self.b.function
        self.header = fn.append_basic_block(self.name)
        self.exit = fn.append_basic_block(self.name + ".end")
        pre = b.block
        b.cbranch(b.icmp_signed("<", self.lo, self.hi), self.header, self.exit)
        b.position_at_end(self.header)
        self.iv = b.phi(I64, name=self.name)
        self.iv.add_incoming(self.lo, pre)
        return self.iv

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            return False
        b = self.b
        nxt = b.add(self.iv, i64(self.step), flags=("nuw", "nsw"))
        self.iv.add_incoming(nxt, b.block)
        b.cbranch(b.icmp_signed("<", nxt, self.hi), self.header, self.exit)
        b.position_at_end(self.exit)
        return False


def walk_image(b: ir.IRBuilder, offset, dims, visit, name="img"):
    """Call visit(index) for every offset + sum(i_d * stride_d); dims are ((lo, hi), stride)."""
    index = offset if isinstance(offset, ir.Value) else i64(offset)
    if not dims:
        visit(index)
        return
    ((lo, hi), s), rest = dims[0], dims[1:]
    with Loop(b, lo, hi, name) as iv:
        nxt = b.add(index, b.mul(iv, i64(s), flags=("nsw",)), flags=("nsw",))
        walk_image(b, nxt, rest, visit, name)


def declare(module: ir.Module, name: str, ret, args) -> ir.Function:
    """The module's function `name`, declared `ret name(args...)` on first use."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name)


def function(module: ir.Module, name: str, ret, args, internal: bool = True):
    """(a new function of `module`, a builder at its entry block); internal linkage
    unless asked otherwise."""
    fn = ir.Function(module, ir.FunctionType(ret, args), name)
    if internal:
        fn.linkage = "internal"
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def align_up(n: int, to: int) -> int:
    """The smallest multiple of `to` that is >= n."""
    return -(-n // to) * to


class Function(ir.Function):
    """An `ir.Function` that also prints LLVM string attributes (`"key"="value"`).

    llvmlite accepts only a fixed list of attribute names; LLVM also has string
    attributes (`"vector-function-abi-variant"`, `"prefer-vector-width"`) that no list
    covers.  They are printed after the known attributes of the prototype, where
    LLVM's grammar puts function attributes; a function with a section or metadata
    (printed after the attributes) is refused rather than printed out of order.

    >>> m = ir.Module()
    >>> fn = Function(m, ir.FunctionType(ir.VoidType(), []), "f")
    >>> fn.string_attributes["prefer-vector-width"] = 512
    >>> str(fn).splitlines()[0]
    'declare void @"f"() "prefer-vector-width"="512"'
    """

    def __init__(self, module, fnty, name):
        super().__init__(module, fnty, name)
        self.string_attributes = {}

    def descr_prototype(self, buf):
        super().descr_prototype(buf)
        if not self.string_attributes:
            return
        if self.section or self.metadata:
            raise ValueError(f"{self.name}: string attributes with a section or metadata")
        text = " ".join(f'"{k}"="{v}"' for k, v in self.string_attributes.items())
        buf[-1] = buf[-1].rstrip("\n") + " " + text + "\n"
