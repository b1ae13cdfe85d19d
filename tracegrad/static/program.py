"""What one `Session.run` computes, as one tracegrad program compiled to native code.

A `Plan` is fixed by the fetches and the fed tensors: the ops the fetches need
(the rest of the graph is left out: DCE on the op graph, before any tracing),
the variables they read and the ones they assign.  `Plan.trace` replays those
ops on traced inputs (feeds, then variables' start values) into one tracegrad
graph whose outputs are the fetched values, then the assigned variables' new
values.  `compile_plan` runs it through the same stages as `tracegrad.jit`
(cleanup, fusion, LLVM) and gives a `CompiledRun`: one native call per run.
"""
from __future__ import annotations

import functools

import numpy as np

from tracegrad.ir import debug_checks
from tracegrad.tracer import make_graph

from .replay import RunState, replay
from .shapes import placeholder_array


class Plan:
    """The ops one `Session.run` needs, in creation order, and what they read and write.

    `fresh`: the session's uninitialized variables.  One whose initializer runs in this
    plan reads, after it, the value its initializer set (TF1 reads another variable's
    initial value in an initial value: `tf.Variable(tf.zeros_like(w))`); its initializer
    was made with it, before every op that reads it.  An op whose outputs are all fed
    does not run (nor its assign: TF1 prunes a fed tensor's producer)."""

    def __init__(self, graph, fetch_tensors, fetch_ops, fed, fresh=frozenset()):
        self.graph = graph
        self.fetch_tensors = list(dict.fromkeys(fetch_tensors))
        fed_set = set(fed)
        self.targets = targets = frozenset(fetch_ops)  # fetched as ops: they run, even fed
        needed = _needed([t.op for t in self.fetch_tensors] + list(fetch_ops), fed_set, targets)
        touched = {op.variable for op in needed if getattr(op, "variable", None) is not None}
        fed_vars = {t.op.variable: t for t in fed
                    if t.op.type == "VariableV2" and t.op.variable in touched}
        # feeds nothing reads are not inputs; a fed variable is, where an op reads or assigns it
        self.fed = [t for t in fed if t.op in needed or t in fed_vars.values()]
        ops = [op for op in needed if op.ctx is None and op.compute is not None
               and (op in targets or not (op.outputs and all(t in fed_set for t in op.outputs)))]
        self.needed = needed
        self.placeholders = sorted((op for op in needed if op.type == "Placeholder"
                                    and op.outputs[0] not in fed_set), key=lambda op: op.id)
        self.initialized = {op.variable for op in ops if getattr(op, "is_initializer", False)
                            and getattr(op, "writes_variable", False)} & set(fresh)
        self.ops = sorted(ops, key=self._order)
        self.read_vars = _unique(op.variable for op in sorted(needed, key=lambda o: o.id)
                                 if getattr(op, "reads_variable", False)
                                 and op.variable not in self.initialized
                                 and op.variable not in fed_vars)
        self.assigned = _unique(op.variable for op in self.ops
                                if getattr(op, "writes_variable", False))
        # a fed variable's run starts from the fed value: its reads and its updates see it
        self.fed_vars = [(t, var) for var, t in fed_vars.items()]

    def _order(self, op):
        """Creation order, except that a variable this run initializes is read right after
        its initializer (made just after the variable itself)."""
        var = getattr(op, "variable", None)
        if op.type == "VariableV2" and var in self.initialized:
            return var.initializer.id + 0.5
        return op.id

    def function(self):
        """(feeds..., variable values...) -> (fetches..., new values of assigned variables...)."""
        n = len(self.fed)

        def run_graph(*arrays):
            env = dict(zip(self.fed, arrays[:n]))
            start = dict(zip(self.read_vars, arrays[n:]))
            start.update((var, env[t]) for t, var in self.fed_vars)
            state = RunState(start, fed=frozenset(self.fed), fresh=self.initialized)
            replay(self.ops, env, state, targets=self.targets)
            return (tuple(env[t] for t in self.fetch_tensors)
                    + tuple(state.updates[v] for v in self.assigned))
        return run_graph

    def trace(self, fed_avals):
        """The tracegrad graph of this plan for feeds of `fed_avals`."""
        args = [placeholder_array(a) for a in fed_avals]
        args += [placeholder_array(v._probes[0]) for v in self.read_vars]
        return make_graph(self.function(), args, concrete=False).graph


def _unique(items) -> list:
    return list(dict.fromkeys(items))


def _needed(roots, fed: set, targets=frozenset()) -> set:
    """The ops `roots` need; an op whose outputs are all fed needs nothing, unless it is
    one of the `targets` (fetched as an op: it runs)."""
    stack, seen = list(roots), set()
    while stack:
        op = stack.pop()
        if op in seen:
            continue
        seen.add(op)
        if op.outputs and all(t in fed for t in op.outputs) and op not in targets:
            continue
        stack.extend(op.deps())
    return seen


class CompiledRun:
    """One plan compiled for one set of fed shapes and dtypes."""

    def __init__(self, plan: Plan, fed_avals, label="static_graph"):
        from tracegrad.codegen import compile_graph
        from tracegrad.passes.fusion import fuse
        from tracegrad.passes.manager import cleanup, run_pipeline

        self.plan = plan
        traced = plan.trace(fed_avals)
        self.traced = functools.partial(str, traced)
        self.n_fetch = len(plan.fetch_tensors)
        if not traced.outvars:  # nothing to compute (only no-ops fetched)
            self.native, self.optimized = None, traced
            return
        self.optimized = run_pipeline(traced, [cleanup], debug=debug_checks(), label=label).graph
        self.native = compile_graph(self.optimized, fuse, name=label)

    def __call__(self, feeds, variables):
        """(fetched values, {variable: new value})."""
        if self.native is None:
            return [], {}
        outs = self.native(*feeds, *variables)
        return list(outs[:self.n_fetch]), dict(zip(self.plan.assigned, outs[self.n_fetch:]))


def as_result(value) -> np.ndarray:
    """A fetched value as TF1 returns it: a numpy scalar for rank 0, else an array."""
    value = np.asarray(value)
    return value[()] if value.ndim == 0 else value
