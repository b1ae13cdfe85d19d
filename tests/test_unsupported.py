"""What numpy code that tracegrad cannot run gets: an error naming the function, the
user's line and the nearest supported function; and `np.random` inside a traced
function, whose sample is frozen into the program, gets a one-time warning."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tracegrad as tg
from tracegrad.tracer.numpy.dispatch import (
    TABLE, RandomSampleFrozenWarning, UnsupportedFunctionError, alternatives,
)



def _line_of(marker: str) -> int:
    """The line number of the line in this file that contains `marker`."""
    with open(__file__) as f:
        return next(i for i, line in enumerate(f, 1) if marker in line and "_line_of" not in line)


def test_unsupported_function_names_itself_and_the_users_line():
    t = tg.tensor([1.0, 2.0])
    with pytest.raises(UnsupportedFunctionError) as info:
        np.fft.fft(t)  # marker: fft-eager
    msg = str(info.value)
    assert msg.startswith("np.fft.fft is not supported on tracegrad arrays")
    assert f"at {__file__}:{_line_of('marker: fft-eager')}" in msg
    assert isinstance(info.value, TypeError)  # what numpy code expects from a bad call


def test_unsupported_inside_a_traced_function_points_at_the_traced_line():
    def f(x):
        return np.fft.rfft(x)  # marker: rfft-traced
    with pytest.raises(UnsupportedFunctionError, match=r"np\.fft\.rfft is not supported") as info:
        tg.trace(f)(np.ones(4))
    assert f"{__file__}:{_line_of('marker: rfft-traced')}" in str(info.value)
    with pytest.raises(UnsupportedFunctionError, match=r"np\.fft\.rfft"):
        tg.jit(f)(np.ones(4))


def _unsupported_near(candidates):
    """The first (numpy function, expected suggestion) whose function stays unsupported."""
    return next(((f, near) for f, near in candidates if f not in TABLE), (None, None))


def test_nearest_supported_function_is_suggested():
    f, near = _unsupported_near([(np.histogram2d, "histogram"), (np.histogramdd, "histogram"),
                                 (np.polyval, "polyval")])
    if f is None:
        pytest.skip("every candidate became supported")
    t = tg.tensor(np.ones((4, 2)))
    with pytest.raises(UnsupportedFunctionError) as info:
        f(t, t)
    assert f"nearest supported: np.{near}" in str(info.value)


def test_ufunc_outer_works_and_reduceat_is_refused():
    t = tg.tensor([1.0, 2.0])
    np.testing.assert_array_equal(np.multiply.outer(t, t).numpy(), [[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(UnsupportedFunctionError, match=r"np\.add\.reduceat is not supported"):
        np.add.reduceat(t, [0])


def test_alternatives_hand_table_then_difflib():
    assert alternatives("row_stack")[0] == "vstack"        # a renamed function
    assert alternatives("amax")[0] == "max"
    assert "tensordot" in alternatives("tensordott")       # a near spelling
    assert alternatives("histogram2d")[0] == "histogram"
    assert alternatives("zzz_nothing_like_it") == []
    assert alternatives("linalg.nrom")[0] == "linalg.norm"  # linalg names keep their prefix
    assert all(not a.isidentifier() or a in tg.numpy.__all__
               for a in alternatives("unique"))             # never a name we do not have


def test_unsupported_keyword_argument_names_the_line():
    t = tg.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"np\.add: keyword arguments \['order'\]") as info:
        np.add(t, t, order="F")  # marker: add-order
    assert f"{__file__}:{_line_of('marker: add-order')}" in str(info.value)


def test_ufunc_accumulate_dispatches_to_the_running_reductions():
    x = np.array([[3.0, 1.0, 4.0], [1.0, 5.0, 9.0]])
    for ufunc in (np.add, np.multiply, np.maximum, np.minimum):
        for axis in (0, 1, -1):
            got = ufunc.accumulate(tg.tensor(x), axis=axis)
            np.testing.assert_array_equal(got.data, ufunc.accumulate(x, axis=axis))
    prog = tg.trace(lambda v: np.maximum.accumulate(v, 1))(x)
    np.testing.assert_array_equal(prog(x), np.maximum.accumulate(x, 1))


# ---- np.random inside traced functions ------------------------------------------------------

def _frozen_warnings(record):
    return [w for w in record if issubclass(w.category, RandomSampleFrozenWarning)]


def test_random_sample_in_a_traced_function_warns_once():
    def noisy(x):
        return x + np.random.normal(size=x.shape)  # marker: noisy-sample
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tg.trace(noisy)(np.ones(3))
        tg.trace(noisy)(np.ones(3))
        tg.jit(noisy)(np.ones(2))
    frozen = _frozen_warnings(record)
    assert len(frozen) == 1, [str(w.message) for w in frozen]
    msg = str(frozen[0].message)
    assert "noisy" in msg and "frozen into the traced program as a constant" in msg
    assert frozen[0].filename == __file__  # reported at the user's call


def test_random_sample_under_jit_and_grad_names_the_users_function():
    def loss(w):
        return np.sum(w * np.random.rand(3))
    for transform in (tg.jit, tg.compile_grad, tg.grad):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            transform(loss)(np.ones(3))
        if transform is tg.jit:  # first: warned; the others trace the same function again
            assert len(_frozen_warnings(record)) == 1
            assert "loss" in str(_frozen_warnings(record)[0].message)
        else:
            assert not _frozen_warnings(record)


def test_no_warning_without_sampling_or_outside_traces():
    def clean(x):
        np.random.get_state()  # reading the state draws nothing
        return x * 2
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        tg.trace(clean)(np.ones(3))
        np.random.normal(size=3)  # eager numpy: a real sample each call, nothing to warn
        tg.tensor(np.ones(3)) + np.random.normal(size=3)
    assert not _frozen_warnings(record)


def test_generator_samples_are_not_detected_as_documented():
    """A `default_rng()` Generator has its own state: its samples are frozen too, but no
    global check sees them (docs/ops.md says so)."""
    rng = np.random.default_rng(0)

    def f(x):
        return x + rng.normal(size=3)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        prog = tg.trace(f)(np.zeros(3))
    assert not _frozen_warnings(record)
    np.testing.assert_array_equal(prog(np.zeros(3)), prog(np.zeros(3)))  # frozen: same sample
