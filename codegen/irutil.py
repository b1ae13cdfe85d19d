"""Small llvmlite helpers shared by the code generators (loops, constants, image walks)."""
from __future__ import annotations

from llvmlite import ir

I64 = ir.IntType(64)
PTR = ir.PointerType()


def i64(v) -> ir.Constant:
    return ir.Constant(I64, int(v))


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


class StringAttrs:
    """Mixin for llvmlite attribute sets that also print `"key"="value"` string attributes.

    llvmlite only accepts a fixed list of attribute names; LLVM also has string attributes
    (`"vector-function-abi-variant"`, `"prefer-vector-width"`) that no list covers.
    """

    def __init__(self, names=(), strings=None):
        super().__init__(names)
        self.strings = dict(strings or {})

    def __bool__(self):  # llvmlite prints the attribute list only if the set is truthy
        return bool(self.strings) or len(self) > 0

    def _to_list(self, typ):
        return super()._to_list(typ) + [f'"{k}"="{v}"' for k, v in self.strings.items()]


class _FnAttrs(StringAttrs, ir.values.FunctionAttributes):
    pass


class _CallAttrs(StringAttrs, ir.instructions.CallInstrAttributes):
    pass


def add_string_attributes(target, strings: dict):
    """Add string attributes to an `ir.Function` or a call instruction (keeps the others).

    >>> # add_string_attributes(fn, {"prefer-vector-width": "512"})
    """
    old = target.attributes
    strings = {**getattr(old, "strings", {}), **{k: str(v) for k, v in strings.items()}}
    cls = _FnAttrs if isinstance(target, ir.Function) else _CallAttrs
    new = cls(tuple(old), strings)
    if isinstance(old, ir.values.FunctionAttributes):
        new.alignstack, new.personality = old.alignstack, old.personality
    target.attributes = new
    return target
