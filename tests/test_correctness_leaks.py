"""Traced values that outlive their trace raise UnexpectedTracerError where they
are used, naming the user's line that made them (issue 10, item 2)."""
import sys
import threading

import numpy as np
import pytest

import tracegrad
from tracegrad import grad, jit
from tracegrad.ir import TRACES, UnexpectedTracerError
from tracegrad.tracer import trace


def _leak():
    """A traced value kept in a list past its trace, and the line that made it."""
    kept = []

    def f(x):
        kept.append((x * 2.0, sys._getframe().f_lineno))
        return np.sum(x)

    grad(f)(np.ones(3))
    value, line = kept[0]
    return value, f"{__file__}:{line}"


def _leaked_input():
    kept = []
    trace(lambda x: kept.append(x) or x)(np.ones(3))
    return kept[0]


@pytest.mark.parametrize("use", [
    pytest.param(lambda v: grad(lambda x: np.sum(x * v))(np.ones(3)), id="grad"),
    pytest.param(lambda v: jit(lambda x: np.sum(x * v))(np.ones(3)), id="jit"),
    pytest.param(lambda v: tracegrad.compile_grad(lambda x: np.sum(x * v))(np.ones(3)),
                 id="compile_grad"),
    pytest.param(lambda v: jit(lambda x: v)(np.ones(3)), id="returned-by-jit"),
    pytest.param(lambda v: grad(lambda x: np.sum(v))(np.ones(3)), id="returned-by-grad"),
    pytest.param(lambda v: v + 1.0, id="eager-operator"),
    pytest.param(lambda v: np.sin(v), id="eager-numpy"),
    pytest.param(lambda v: tracegrad.tensor(np.ones(3)) * v, id="with-a-tensor"),
    pytest.param(lambda v: bool(v[0] > 0), id="bool"),
    pytest.param(lambda v: float(v[0]), id="float"),
])
def test_a_leaked_value_raises_where_it_is_used_naming_where_it_was_made(use):
    value, made_at = _leak()
    with pytest.raises(UnexpectedTracerError) as info:
        use(value)
    message = str(info.value)
    assert made_at in message and "after its trace ended" in message
    assert "used at " + __file__ in message
    assert TRACES.traces == []


def test_a_leaked_input_names_the_trace_that_made_it():
    value = _leaked_input()
    with pytest.raises(UnexpectedTracerError, match=r"as an input of the trace of _leaked_input.<locals>.<lambda> "
                                                     r"started at .*test_correctness_leaks.py:"):
        jit(lambda x: x + value)(np.ones(3))


def test_nothing_leaks_through_a_transform_result():
    value, _ = _leak()
    with pytest.raises(UnexpectedTracerError):
        grad(lambda x: np.sum(x) + np.sum(value))(np.ones(3))
    out = grad(lambda x: np.sum(x * x))(np.ones(3))  # the trace stack is clean afterwards
    assert type(out) is np.ndarray and out.tolist() == [2.0, 2.0, 2.0]


def test_closures_over_enclosing_traces_keep_working():
    d = grad(lambda x: grad(lambda y: x * y * y)(np.float64(1.0)))
    assert float(d(np.float64(2.0))) == 2.0
    scaled = jit(lambda y: np.sin(y) * 2.0)
    g = grad(lambda x: np.sum(scaled(x)))(np.zeros(3))  # jit inside a trace is traced inline
    assert g.tolist() == [2.0, 2.0, 2.0]
    h = grad(lambda x: jit(lambda y: x * y)(np.float64(3.0)))(np.float64(1.0))
    assert float(h) == 3.0  # the jitted closure reads the enclosing trace's x
    vg = tracegrad.compile_grad(lambda x: np.sum(x * x))
    g2 = grad(lambda x: np.sum(vg(x)[1][0]))(np.ones(2))  # d/dx sum(2x) = 2
    assert g2.tolist() == [2.0, 2.0]


def test_a_value_of_a_trace_running_in_another_thread_is_rejected():
    started, release, kept = threading.Event(), threading.Event(), []

    def f(x):
        kept.append(x * 2.0)
        started.set()
        release.wait(10)
        return np.sum(x)

    worker = threading.Thread(target=lambda: trace(f)(np.ones(2)))
    worker.start()
    try:
        assert started.wait(10)
        with pytest.raises(UnexpectedTracerError, match="outside its trace"):
            trace(lambda x: x + kept[0])(np.ones(2))
    finally:
        release.set()
        worker.join()


def test_the_stack_is_popped_when_the_function_raises_and_can_be_reset():
    def boom(x):
        assert TRACES.traces and ".boom started at " in TRACES.traces[-1].description
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        trace(boom)(np.ones(2))
    assert TRACES.traces == []
    held = []
    with TRACES.entered(tracegrad.ir.GraphBuilder(), "a test trace") as b:
        held.append(b)
        TRACES.reset()
        assert TRACES.traces == [] and b.finished
