"""Replaying graph operations into a tracegrad trace.

`replay(ops, env, state)` runs each op's `compute` in creation order, reading
input values from `env` (Tensor -> value: a traced value, or a numpy array for
constants) and writing its outputs there; values already in `env` (feeds, a
loop's carries, a gradient's substituted inputs) are not recomputed.  Bodies
of control flow and gradients replay their own op lists into a `ChainMap` over
the enclosing `env`, so they read outer values (captured by the nested trace as
operands) without changing them.

Variables: `RunState.start` holds each read variable's value at the start of
the run (a graph input); assign ops of one run apply in creation order, an
`assign_add` adding to the value left by the earlier assigns of the run, and
`updates` holds the final value of each assigned variable (a graph output).
Reading a variable (`w` itself) gives its start-of-run value.
"""
from __future__ import annotations


class RunState:
    def __init__(self, start: dict, record: bool = True, fed=frozenset(), fresh=frozenset()):
        self.start = start
        self.updates: dict = {}
        self.record = record
        self.fed = fed  # the tensors fed in this run (a gradient keeps their values)
        self.fresh = fresh  # uninitialized variables this run initializes (program.Plan)

    def read(self, var):
        return self.updates[var] if var in self.fresh else self.start[var]

    def current(self, var):
        return self.updates[var] if var in self.updates else self.start[var]

    def assign(self, var, value):
        if self.record:
            self.updates[var] = value

    def scratch(self) -> "RunState":
        """A state for a recomputation (a gradient's forward replay): assigns not kept."""
        state = RunState(self.start, record=False, fed=self.fed, fresh=self.fresh)
        state.updates = dict(self.updates)
        return state


def replay(ops, env, state, recompute=False, targets=frozenset()):
    """Run `ops` into `env`; with `recompute`, ops whose values `env` already holds
    run again (a gradient's forward replay, whose inputs were substituted).  `targets`
    (ops fetched as ops) run even when their outputs are fed, which stay as fed."""
    for op in ops:
        fed = op.outputs and all(t in env for t in op.outputs)
        if fed and not recompute and (op not in targets or op.type == "Placeholder"):
            continue  # (a fed placeholder fetched as an op has nothing to run)
        try:
            values = op.compute(env, state)
        except Exception as e:
            raise _in_op(e, op) from e
        if not (fed and op in targets):
            env.update(zip(op.outputs, values))
    return env


def _in_op(e: Exception, op) -> Exception:
    """`e` with the op that raised it, and where the user made that op."""
    if getattr(e, "_tg_static_op", None) is not None:
        return e
    where = f" (created at {op.src})" if op.src else ""
    msg = f"{e}\n  while running op '{op.name}' of type {op.type}{where}"
    try:
        err = type(e)(msg)
    except Exception:  # noqa: BLE001  (exception types with other constructors)
        err = RuntimeError(msg)
    err._tg_static_op = op
    return err


def ancestors(tensors_or_ops) -> set:
    """Every op the given tensors/ops need (themselves included), through `deps()`."""
    stack = [getattr(x, "op", x) for x in tensors_or_ops]
    seen = set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        stack.extend(op.deps())
    return seen


def body_ops(outputs, ctx) -> list:
    """The ops of body `ctx` that its `outputs` need, in creation order."""
    return sorted((op for op in ancestors(outputs) if op.ctx is ctx and op.compute is not None),
                  key=lambda op: op.id)
