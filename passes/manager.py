"""The pass manager: run a list of passes, optionally verifying and recording
the IR after each one.

A pass is a function `Graph -> Graph` that never mutates its input; its name
is its `pass_name` attribute or else its `__name__`.  A pipeline is a list of
passes.  `run_pipeline` runs one in order and returns a `PipelineResult`
holding the final graph and, when asked for, every stage's IR text.

Dumping: with `dump_dir=...`, or the environment variable
`TRACEGRAD_DUMP=<dir>` (read on every call, not at import), each stage is
written to `<dir>/<label>-<nn>-<stage>.txt`, stage 00 being the input.

>>> import numpy as np
>>> from tracegrad.ir import GraphBuilder, ShapedArray, ops
>>> b = GraphBuilder()
>>> x = b.new_input(ShapedArray((3,), np.float32))
>>> _dead = ops.exp(x)
>>> result = run_pipeline(b.build([ops.mul(x, 1.0)]), CLEANUP, debug=True)
>>> [name for name, _ in result.stages]
['input', 'simplify', 'fold_constants', 'cse', 'dce']
>>> print(result.stages[-1][1])
{ lambda a:f32[3] . let
  in (a) }
"""
from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from typing import Callable

from tracegrad.ir import Graph, VerifyError, format_graph, verify
from tracegrad.ir.core import map_subgraphs, subgraphs

from .cse import cse
from .dce import dce
from .inline import inline_calls
from .simplify import fold_constants, simplify
from .worklist import clean

DUMP_ENV = "TRACEGRAD_DUMP"
MAX_CLEANUP_ROUNDS = 8

# The default cleaning pipeline: `cleanup_by_rounds` iterates it to a fixed point,
# `cleanup` computes the same graph incrementally.
CLEANUP: list[Callable[[Graph], Graph]] = [simplify, fold_constants, cse, dce]


class PassVerifyError(VerifyError):
    """The verifier rejected the graph a pass produced (or the pipeline's input)."""

    def __init__(self, stage: str, error: VerifyError, stages: list):
        super().__init__(f"after pass {stage!r}: {error}")
        self.stage = stage
        self.stages = stages  # the (name, text) stages recorded up to the failure


def pass_name(p) -> str:
    return getattr(p, "pass_name", None) or getattr(p, "__name__", type(p).__name__)


def stage_text(name: str, graph: Graph) -> str:
    """One stage as a user reads it: a header line and the printed graph."""
    return f"-- {name} --\n{format_graph(graph)}"


def format_stages(stages: list) -> str:
    """All recorded stages, in order, ready to print."""
    return "\n\n".join(f"-- {i:02d} {name} --\n{text}" for i, (name, text) in enumerate(stages))


@dataclass
class PipelineResult:
    graph: Graph
    stages: list = field(default_factory=list)  # [(stage name, IR text)], input first

    def text(self) -> str:
        return format_stages(self.stages)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "_"


def dump_stage(dump_dir: str, label: str, index: int, name: str, text: str) -> str:
    """Write one stage file; written to a temporary name first, then renamed,
    so a reader never sees a half-written file."""
    os.makedirs(dump_dir, exist_ok=True)
    path = os.path.join(dump_dir, f"{_safe(label or 'graph')}-{index:02d}-{_safe(name)}.txt")
    fd, tmp = tempfile.mkstemp(dir=dump_dir, prefix=".tmp-", suffix=".txt")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


class _Recorder:
    """Verifies and records stages as the pipeline asks; holds no global state."""

    def __init__(self, debug: bool, dump_dir: str | None, label: str):
        self.debug, self.dump_dir, self.label = debug, dump_dir, label
        self.stages: list = []

    def __call__(self, name: str, graph: Graph):
        if self.debug:
            try:
                verify(graph)
            except VerifyError as e:
                raise PassVerifyError(name, e, list(self.stages)) from None
        if not (self.debug or self.dump_dir):
            return
        text = format_graph(graph)
        if self.dump_dir:
            dump_stage(self.dump_dir, self.label, len(self.stages), name, text)
        self.stages.append((name, text))


def run_pipeline(graph: Graph, passes, debug: bool = False, dump_dir: str | None = None,
                 label: str = "") -> PipelineResult:
    """Run `passes` in order on `graph`.

    With `debug`, the verifier checks the input and the result of every pass
    (a failure raises `PassVerifyError` naming the pass), and each stage's IR
    text is recorded in `result.stages`.  With `dump_dir` (or `$TRACEGRAD_DUMP`)
    the stages are also written to files; without either, nothing is recorded.
    """
    if dump_dir is None:
        dump_dir = os.environ.get(DUMP_ENV) or None
    record = _Recorder(debug, dump_dir, label)
    record("input", graph)
    for p in passes:
        graph = p(graph)
        if not isinstance(graph, Graph):
            raise TypeError(f"pass {pass_name(p)!r} returned {type(graph).__name__}, not a Graph")
        record(pass_name(p), graph)
    return PipelineResult(graph, record.stages)


def cleanup_by_rounds(graph: Graph, max_rounds: int = MAX_CLEANUP_ROUNDS) -> Graph:
    """Run `CLEANUP` until a whole round changes nothing, at most `max_rounds` times.

    The definition of `cleanup`, which computes the same graph incrementally.
    Relies on the cleaning passes returning their input object when they
    change nothing.  Returns `graph` itself when it is already clean.
    """
    for _ in range(max_rounds):
        start = graph
        for p in CLEANUP:
            graph = p(graph)
        if graph is start:
            break
    return graph


def cleanup(graph: Graph, max_rounds: int = MAX_CLEANUP_ROUNDS, keep_calls: bool = False) -> Graph:
    """`cleanup_by_rounds(graph, max_rounds)`, computed incrementally: after the
    first round each pass revisits only the equations whose inputs or their
    producers changed (see `passes/worklist.py`).  Custom calls (custom_vjp,
    custom_jvp, autograd.Function) are inlined first: their rules have served.
    The bodies of control-flow equations are cleaned next, each as a graph of
    its own (a body keeps its inputs and its number of outputs, so its equation
    stays valid).  Returns `graph` itself when it is already clean.  `keep_calls` keeps
    the custom calls, for a graph that may be differentiated again (a transform's
    result inside an outer trace): their rules must serve there too.
    """
    graph = graph if keep_calls else inline_calls(graph)
    return clean(clean_bodies(graph, max_rounds), max_rounds)


def clean_bodies(graph: Graph, max_rounds: int = MAX_CLEANUP_ROUNDS) -> Graph:
    """`graph` with every control-flow body cleaned (recursively)."""
    eqns = [map_subgraphs(e, lambda body: cleanup(body, max_rounds)) if subgraphs(e) else e
            for e in graph.eqns]
    if all(a is b for a, b in zip(eqns, graph.eqns)):
        return graph
    return graph.replace(eqns=eqns)
