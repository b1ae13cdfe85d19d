"""Recording operations: `call` makes the op for one function call on symbolic
tensors and infers its outputs' static shapes and dtypes by tracing the same
call abstractly on probe shapes (shapes.py).

The op keeps the function and its arguments with the tensors taken out
(`leaves`, `tree`): its `compute` puts the tensors' values back and calls the
function, so graph construction, shape inference and `Session.run` all run
one piece of code, tracegrad's own.
"""
from __future__ import annotations

import numpy as np

from tracegrad.ir import ShapedArray
from tracegrad.tracer import make_graph, tree_flatten, tree_unflatten

from .graph import Operation, graph_of
from .shapes import TensorShape, WORLD_SIZES, merge, placeholder_array, probe_avals
from .tensor import Tensor


def tensor_likes(values, scalars=False) -> tuple:
    """Operands as TF1's ops convert them: a Python list or tuple of numbers becomes an
    array of the dtype of a tensor among the operands (a float into an integer dtype is
    TF1's TypeError), or of TF1's defaults without one (float32, int32); other values as
    they are (a Python scalar stays weak, taking the tensor's dtype), unless `scalars`
    (the pieces of a stack or concat, which numpy would widen): then as lists."""
    like = next((v.dtype for v in values if isinstance(v, Tensor)), None)
    return tuple(_converted(v, like) if _plain_list(v) or (scalars and _number(v)) else v
                 for v in values)


def _number(value) -> bool:
    return isinstance(value, (bool, int, float)) and not isinstance(value, np.generic)


def _plain_list(value) -> bool:
    return isinstance(value, (list, tuple)) and not any(
        isinstance(x, Tensor) for x in tree_flatten(value)[0])


def _converted(value, like):
    from .sources import _tf1_default  # (sources builds ops with this module)

    arr = np.asarray(value)
    if like is None or arr.dtype == object:
        return _tf1_default(value, None)
    if arr.dtype.kind == "f" and np.dtype(like).kind in "iub":
        raise TypeError(f"Expected {np.dtype(like).name}, got {value!r} of type "
                        f"'{type(value).__name__}' instead (floats do not convert to it)")
    return arr.astype(like)


def check_readable(graph, tensors, name):
    """Ops made here may read `tensors` only if they are not inside another body."""
    for t in tensors:
        if not (graph._ctx.encloses(t.op.ctx) if graph._ctx is not None else t.op.ctx is None):
            raise ValueError(f"{name}: {t!r} was made inside a tf.cond branch or tf.while_loop "
                             "body and cannot be used outside it; return it from the body")


def new_op(graph, op_type, name, inputs, compute, outputs, control_inputs=()):
    """An op with outputs given as (shape, dtype, probes) triples."""
    op = Operation(graph, op_type, name, inputs, compute, len(outputs), control_inputs)
    op.outputs = [Tensor(op, i, shape, dtype, probes)
                  for i, (shape, dtype, probes) in enumerate(outputs)]
    return op


def spec_of(shape: TensorShape, dtype) -> tuple:
    """(shape, dtype, probes) for a value whose static shape is `shape`."""
    dtype = np.dtype(dtype)
    return shape, dtype, probe_avals(shape, dtype)


class _Call:
    """One recorded call `fn(*args, **kwargs)` with the tensors taken out."""

    def __init__(self, fn, args, kwargs):
        self.fn = fn
        self.leaves, self.tree = tree_flatten((tuple(args), dict(kwargs or {})))
        self.tensors = [x for x in self.leaves if isinstance(x, Tensor)]
        self.evaluated = {}  # world -> `_evaluated`'s result (probing and values_of share it)

    def apply(self, values):
        it = iter(values)
        filled = [next(it) if isinstance(x, Tensor) else x for x in self.leaves]
        args, kwargs = tree_unflatten(self.tree, filled)
        return self.fn(*args, **kwargs)

    def outputs(self, result) -> list:
        return list(result) if isinstance(result, (tuple, list)) else [result]


# Values derived from shapes are kept up to this size (a shape, a slice of one, a count).
KNOWN_VALUE_SIZE = 64


def _known_values(c: _Call, world: int):
    """The inputs' values in `world` when each is known (values fixed by shapes), else None."""
    values = [None if t._values is None else t._values[world] for t in c.tensors]
    return None if any(v is None for v in values) else values


def _evaluated(c: _Call, world: int):
    """The outputs' values in `world`, computed on the inputs' known values (numpy), or None
    when an input's value is not known there or the call does not give numpy values."""
    if world not in c.evaluated:
        c.evaluated[world] = _evaluate(c, world)
    return c.evaluated[world]


def _evaluate(c: _Call, world: int):
    values = _known_values(c, world)
    if values is None:
        return None
    try:
        out = [np.asarray(v) for v in c.outputs(c.apply(values))]
    except Exception:  # noqa: BLE001  (the traced probe reports it)
        return None
    small = all(v.dtype != object and v.size <= KNOWN_VALUE_SIZE for v in out)
    return out if small else None


def _probe(c: _Call, world: int):
    """Output avals of the call traced abstractly in `world`, or the exception it raised."""
    avals = [t._probes[world] for t in c.tensors]
    if any(a is None for a in avals):
        return None
    known = _evaluated(c, world)
    if known is not None:
        return [ShapedArray(v.shape, v.dtype) for v in known]
    values = [None if t._values is None else t._values[world] for t in c.tensors]
    free = [i for i, v in enumerate(values) if v is None]

    def traced(*vals):  # the inputs of known value (a shape) as constants, the rest traced
        filled = list(values)
        for i, v in zip(free, vals):
            filled[i] = v
        return tuple(c.outputs(c.apply(filled)))
    try:
        prog = make_graph(traced, [placeholder_array(avals[i]) for i in free], concrete=False)
    except Exception as e:  # noqa: BLE001  (reported if no world traces)
        return e
    return prog.graph.out_avals


def _rename_error(e: Exception, name: str, probed=()) -> Exception:
    """`e` prefixed with the op's name; with `probed` inputs (which have `None` dims),
    their static shapes, since the message shows the probe sizes in their place."""
    msg = f"{name}: {e}"
    if probed:
        shapes = ", ".join(f"{t.name} {t.shape}" for t in probed)
        msg += f"\n  (static shapes of the inputs: {shapes}; ? dims were tried as {WORLD_SIZES})"
    try:
        return type(e)(msg)
    except Exception:  # noqa: BLE001  (exception types with other constructors)
        return ValueError(msg)


def infer(c: _Call, name: str, num_outputs: int | None = None, operands=()) -> list:
    """(shape, dtype, probes) of each output of the call (`num_outputs` of unknown shape
    where no probe traces: an input of unknown rank; of the dtype of the tensors among
    `operands`, the value arguments, if any)."""
    unknown = any(t.shape.dims is None or t._probes[0] is None for t in c.tensors)
    varying = unknown or any(None in t.shape.dims or _values_vary(t) for t in c.tensors)
    worlds = range(len(WORLD_SIZES)) if varying else range(1)
    results = [_probe(c, w) for w in worlds]
    good = [r for r in results if isinstance(r, list)]
    if not good:
        errors = [r for r in results if isinstance(r, Exception)]
        shaped_by_value = any(t._values is not None for t in c.tensors)  # (probe sizes clash)
        if unknown or not errors or shaped_by_value:
            return [_unknown_output(c, operands)] * (num_outputs or 1)
        fitted = _fitted(c) if varying else None
        if fitted is not None:
            return fitted
        raise _rename_error(errors[0], name, c.tensors if varying else ()) from errors[0]
    results = [r if isinstance(r, list) else None for r in results]
    if not varying:
        results = results * len(WORLD_SIZES)
    specs = []
    for i, aval in enumerate(good[0]):
        probes = [None if r is None or i >= len(r) else r[i] for r in results]
        specs.append((merge(probes, unknown), aval.dtype, probes))
    return specs


def _fitted(c: _Call):
    """Output specs where every probe world failed because a `None` dim must equal a known
    one (a (?, ?) matrix times a (4, 2) one): the call traced with each `None` dim set to
    one of the inputs' known sizes, the first that traces; dims of that size are unknown in
    the result (they may come from a `None`).  None if no size fits (a true mismatch)."""
    sizes = sorted({d for t in c.tensors for d in t.shape.dims if d is not None and d > 1})
    for size in sizes:
        avals = [ShapedArray(tuple(size if d is None else d for d in t.shape.dims), t.dtype)
                 for t in c.tensors]
        try:
            prog = make_graph(lambda *vals: tuple(c.outputs(c.apply(vals))),
                              [placeholder_array(a) for a in avals], concrete=False)
        except Exception:  # noqa: BLE001  (this size does not fit either)
            continue
        none = [None] * len(WORLD_SIZES)
        return [(TensorShape([None if d == size else d for d in a.shape]), a.dtype, none)
                for a in prog.graph.out_avals]
    return None


def _values_vary(t) -> bool:
    return t._values is not None and len({(v.shape, v.tobytes()) if v is not None else None
                                          for v in t._values}) > 1


def values_of(c: _Call) -> list | None:
    """Per output, its value in each world where every input's is known; None if none is."""
    worlds = [_evaluated(c, w) for w in range(len(WORLD_SIZES))]
    if all(w is None for w in worlds):
        return None
    count = len(next(w for w in worlds if w is not None))
    return [[None if w is None else w[i] for w in worlds] for i in range(count)]


def _unknown_output(c: _Call, operands=()):
    values = [t for t in operands if isinstance(t, Tensor)] or c.tensors
    dtype = np.result_type(*[t.dtype for t in values]) if values else np.float32
    return TensorShape(None), np.dtype(dtype), [None] * len(WORLD_SIZES)


def _input_value(t, env, state, op):
    """An input's value; a variable read by an op made under `control_dependencies` gives
    the value the run's assigns have left (TF1 reads it after those ops)."""
    if op.after and getattr(t.op, "variable", None) is t:
        return state.current(t)
    return env[t]


def call(fn, args, kwargs=None, name=None, num_outputs=None, operands=0, op_type=None):
    """Record `fn(*args, **kwargs)`: a Tensor, or a list when `fn` returns several (give
    their number as `num_outputs` where it does not depend on the inputs' shapes: then
    inputs of unknown rank get that many outputs too).  The first `operands` arguments
    are values, where a Python list converts as TF1 converts it (`tensor_likes`).  The op's
    type is `op_type` (TF1's: "MatMul" whatever the user names the op), else its name."""
    if operands:
        args = tensor_likes(args[:operands]) + tuple(args[operands:])
    c = _Call(fn, args, kwargs)
    graph = graph_of(c.tensors, name or "op")
    check_readable(graph, c.tensors, name)
    specs = infer(c, name, num_outputs, args[:operands])
    multiple = len(specs) > 1 or (num_outputs or 1) > 1

    def compute(env, state):
        return c.outputs(c.apply([_input_value(t, env, state, op) for t in c.tensors]))

    op = new_op(graph, op_type or name, name, c.tensors, compute, specs)
    values = values_of(c) if c.tensors and all(t._values is not None for t in c.tensors) else None
    for t, v in zip(op.outputs, values or ()):
        t._values = v
    return list(op.outputs) if multiple else op.outputs[0]
