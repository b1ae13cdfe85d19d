"""Python floats that remember the traced value they came from.

While tracing, `x.item()` of a float value returns a `TracedFloat`: a Python-float
stand-in (the example's value) that also carries the traced 0-d value.  How it is
used decides what the program depends on:

* as an operand of a tensor/traced operation (`y * a.item()`, `np.exp(s)`) it
  stays symbolic: the graph reads the traced value, no guard;
* compared with a number (`if a.item() > 0:`) it records a guard on the
  boolean outcome only, so the program is reused while the sign stays;
* any other use (arithmetic with Python numbers, formatting, hashing,
  indexing, `float()`, `math.sqrt(s)`, ...) records a guard that the value itself
  is unchanged.

A Python float *argument* of a compiled function or a transform is traced as a
`WeakFloat`: a weak-typed float64 scalar (JAX's weak type).  Its arithmetic with
Python numbers and other traced scalars stays symbolic and weak (`x_f32 * (s * 2.0)`
is float32, as in numpy), its comparisons guard their outcome, and every other use
goes through `__float__` & co., which guard the value.

Neither is a `float` subclass: C code reads a float subclass's value directly
(`math.sqrt`, `struct.pack` call no method), so a program could bake in the value of
its first trace without a guard and return stale results on later calls.  Both are
registered as `numbers.Real`, and C code that needs a float calls `__float__`.

Integers get no such class: CPython reads int subclasses directly for
indexing, `range` and `%d` (bypassing `__index__`), so a lazily guarded int
could specialize silently; `int()`/`.item()` of integer values therefore return
a plain int and record the value guard at once.
"""
from __future__ import annotations

import math
import numbers
import operator

import numpy as np

from tracegrad.ir import ops, user_source_location
from tracegrad.ir.primitives import SYMBOLIC_SCALARS

from . import numpy as tnp
from .dtypes import WeakScalar, weak_default


def _defer(other) -> bool:
    """Arrays (boxed or numpy) combine with a traced scalar symbolically, on their side."""
    return tnp.is_boxed(other) or isinstance(other, np.ndarray)




class TracedScalar:
    """Behaviour of a traced Python scalar; `_tg_symbolic` is the traced 0-d value."""

    __array_priority__ = 1000

    def _tg_plain(self):
        return self._tg_plain_value

    def _tg_value(self, kind="value"):
        """The plain value, recording (once) the guard that it does not change (`kind`
        "float" for float(): its derivative is cut there, which grad warns about)."""
        if not self._tg_guarded:
            sym = self._tg_symbolic
            sym._tg_trace.add_guard(sym, self._tg_plain(), kind, user_source_location())
            self._tg_guarded = True
        return self._tg_plain()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return tnp.dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return tnp.dispatch_function(func, args, kwargs)

    def __bool__(self):
        return bool(tnp.not_equal(self, 0))

    def __hash__(self):
        return hash(self._tg_value())

    @property
    def real(self):
        return self  # a real number is its own real part (no value use)

    @property
    def imag(self):
        return 0.0


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.number, np.bool_, TracedScalar))


def _plain(x):
    return x._tg_value() if isinstance(x, TracedScalar) else x


def _comparison(fn, base_op):
    def op(self, other):
        if _defer(other):
            return NotImplemented
        if not _is_number(other):  # the outcome does not depend on the value
            return base_op(self._tg_plain(), other)
        if isinstance(other, np.generic):  # numpy gives an np.bool_: a traced 0-d bool
            return fn(self, other)
        return bool(fn(self, other))  # bool() of a traced bool: a guard on the outcome
    return op


COMPARISONS = {
    "__lt__": (tnp.less, operator.lt), "__le__": (tnp.less_equal, operator.le),
    "__gt__": (tnp.greater, operator.gt), "__ge__": (tnp.greater_equal, operator.ge),
    "__eq__": (tnp.equal, operator.eq), "__ne__": (tnp.not_equal, operator.ne),
}

# Value uses: operators and methods evaluated on the plain value, after its guard.
BINARY_VALUE_USES = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "truediv": operator.truediv, "floordiv": operator.floordiv, "mod": operator.mod,
    "pow": pow, "divmod": divmod,
}
UNARY_VALUE_USES = {
    "__neg__": operator.neg, "__pos__": operator.pos, "__abs__": abs,
    "__int__": int, "__float__": float, "__trunc__": math.trunc, "__floor__": math.floor,
    "__ceil__": math.ceil, "__round__": round, "__str__": str, "__repr__": repr,
    "__format__": format, "__complex__": complex, "is_integer": lambda v: v.is_integer(),
    "hex": lambda v: v.hex(), "as_integer_ratio": lambda v: v.as_integer_ratio(),
    "conjugate": lambda v: v.conjugate(), "__getnewargs__": lambda v: (v,),
}


def _binary_use(fn, reflected):
    def op(self, other):
        if _defer(other):
            return NotImplemented
        a, b = self._tg_value(), _plain(other)
        return fn(b, a) if reflected else fn(a, b)
    return op


def _unary_use(fn):
    def op(self, *args):
        # float() cuts a derivative (grad warns), but `.item()` already did, as torch's
        kind = "float" if fn is float and not getattr(self, "_tg_detached", False) else "value"
        return fn(self._tg_value(kind), *args)
    return op


def _methods():
    body = {name: _comparison(*fns) for name, fns in COMPARISONS.items()}
    for name, fn in BINARY_VALUE_USES.items():
        body[f"__{name}__"], body[f"__r{name}__"] = _binary_use(fn, False), _binary_use(fn, True)
    body.update({name: _unary_use(fn) for name, fn in UNARY_VALUE_USES.items()})
    return body


class TracedFloat(TracedScalar, WeakScalar):
    """A Python float's stand-in carrying a traced value (see the module docstring)."""

    # `.item()` gives a Python number: a constant for autodiff, as an eager tensor's
    # `.item()` is (PyTorch), so every mode differentiates alike (`symbolic_value`).
    _tg_detached = True

    def __init__(self, value, symbolic):
        self._tg_plain_value = float(value)
        self._tg_symbolic, self._tg_guarded = symbolic, False

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self._tg_value(), dtype=dtype)  # a value use: guarded


for _name, _fn in _methods().items():
    setattr(TracedFloat, _name, _fn)


# ---- WeakFloat ---------------------------------------------------------------------

# Python's float // and % are numpy's floor_divide and remainder (the remainder takes the
# divisor's sign); divmod is the pair.  Kept symbolic so that gradients flow through them.
SYMBOLIC_BINARY = {"add": tnp.add, "sub": tnp.subtract, "mul": tnp.multiply,
                   "truediv": tnp.divide, "pow": tnp.power, "floordiv": tnp.floor_divide,
                   "mod": tnp.remainder, "divmod": lambda a, b: (tnp.floor_divide(a, b),
                                                                 tnp.remainder(a, b))}
SYMBOLIC_UNARY = {"__neg__": tnp.negative, "__pos__": tnp.positive, "__abs__": tnp.absolute}


def _is_python_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, np.generic)


class WeakFloat(TracedScalar, WeakScalar):
    """A traced Python float argument: a weak-typed float64 scalar (see the module docstring)."""

    def __init__(self, symbolic):
        self._tg_symbolic, self._tg_guarded = symbolic, False

    def _tg_plain(self):
        sym = self._tg_symbolic
        value = sym._tg_trace.example_value(sym)
        if value is None:  # abstract trace: `concrete` raises the explanatory error
            sym._concrete("float")
        return float(value)

    def __array__(self, dtype=None, copy=None):
        # A value use (plain numpy's np.array([a, b]) of float arguments): guarded, and,
        # as float(), a cut derivative that grad warns about (tracegrad.numpy.array or
        # np.stack keep it symbolic).
        return np.asarray(self._tg_value("float"), dtype=dtype)


def _symbolic_binary(fn, reflected):
    def op(self, other):
        if not (_is_python_number(other) or isinstance(other, WeakFloat)):
            return NotImplemented  # arrays and numpy scalars (strongly typed) decide
        out = fn(other, self) if reflected else fn(self, other)
        return tuple(map(WeakFloat, out)) if isinstance(out, tuple) else WeakFloat(out)
    return op


def _symbolic_unary(fn):
    def op(self):
        return WeakFloat(fn(self))
    return op


def _weak_round(self, ndigits=None):
    """round(x): a Python int, guarded on the rounded value only (half to even, as
    Python); round(x, n): a weak float rounded as numpy (and jax.numpy) round."""
    if ndigits is None:
        return int(tnp.rint(self))
    return WeakFloat(tnp.round(self, operator.index(ndigits)))


def _weak_methods():
    body = {name: _comparison(*fns) for name, fns in COMPARISONS.items()}
    for name, fn in BINARY_VALUE_USES.items():
        body[f"__{name}__"], body[f"__r{name}__"] = _binary_use(fn, False), _binary_use(fn, True)
    for name, fn in SYMBOLIC_BINARY.items():
        body[f"__{name}__"] = _symbolic_binary(fn, False)
        body[f"__r{name}__"] = _symbolic_binary(fn, True)
    body.update({name: _unary_use(fn) for name, fn in UNARY_VALUE_USES.items()})
    body.update({name: _symbolic_unary(fn) for name, fn in SYMBOLIC_UNARY.items()})
    body["__round__"] = _weak_round
    return body


for _name, _fn in _weak_methods().items():
    setattr(WeakFloat, _name, _fn)

numbers.Real.register(TracedFloat)
numbers.Real.register(WeakFloat)


# ---- direct ir.ops calls ---------------------------------------------------------------

def _traced_operand(x, like):
    """A traced scalar as an `ir.ops` operand: its traced value (detached for `.item()`
    floats), in `like` (the other operands' dtype) as a Python float would be."""
    sym = tnp.symbolic_value(x)
    dt = like if like is not None else weak_default(x)
    return sym if sym.dtype == dt else ops.convert(sym, dt)


SYMBOLIC_SCALARS.update({TracedFloat: _traced_operand, WeakFloat: _traced_operand})
