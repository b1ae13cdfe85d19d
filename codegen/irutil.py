"""Small llvmlite helpers shared by the code generators (loops, constants, image walks)."""
from __future__ import annotations

from llvmlite import ir

I64 = ir.IntType(64)
PTR = ir.PointerType()


def i64(v) -> ir.Constant:
    return ir.Constant(I64, int(v))


class Loop:
    """`for iv in [lo, hi)` as a guarded do-while; constant bounds fold the guard away.

    >>> # with Loop(builder, i64(0), i64(n), "i") as iv: ...body using iv...
    """

    def __init__(self, b: ir.IRBuilder, lo, hi, name: str):
        self.b, self.lo, self.hi, self.name = b, lo, hi, name

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
        nxt = b.add(self.iv, i64(1), flags=("nuw", "nsw"))
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
