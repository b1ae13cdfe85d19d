"""Messages and consistency, tried as a new user would (issue 10, item 9)."""
import warnings

import numpy as np
import pytest

import tracegrad
from tracegrad import compile_grad, grad, jit, tensor
from tracegrad.compile import SpecializationLimitWarning
from tracegrad.tracer import trace


def test_numpy_of_a_traced_value_says_what_asarray_says():
    errors = []

    def f(x):
        for convert in (lambda: x.numpy(), lambda: np.asarray(x)):
            try:
                convert()
            except TypeError as e:
                errors.append(str(e))
        return x

    trace(f)(np.ones(2))
    assert len(errors) == 2 and errors[0] == errors[1]
    assert "cannot convert a traced value f64[2]" in errors[0] and "tracegrad.numpy" in errors[0]


def test_the_truth_value_advice_names_methods_that_exist():
    t = tensor([1.0, 0.0])
    with pytest.raises(ValueError, match=r"a\.any\(\) or a\.all\(\)"):
        bool(t)
    assert bool(t.any()) and not bool(t.all())
    assert type(t.any()) is tracegrad.Tensor and t.any().dtype == np.bool_
    m = tensor([[1.0, 0.0], [2.0, 3.0]])
    assert m.any(axis=0).tolist() == [True, True] and m.all(axis=1).tolist() == [False, True]
    assert m.all(axis=0, keepdims=True).shape == (1, 2)
    empty = tensor(np.zeros((0, 3)))
    assert not bool(empty.any()) and bool(empty.all())  # numpy's identities
    assert empty.any(axis=0).tolist() == [False] * 3


def test_any_and_all_trace_and_compile():
    f = jit(lambda x: (x.any(axis=1), x.all()))
    x = np.array([[0.0, 0.0], [0.0, 2.0]])
    a, b = f(x)
    np.testing.assert_array_equal(a, x.any(axis=1))
    assert bool(b) == x.all()
    g = jit(lambda x: x * 2.0 if x.all() else x)  # a guard on the outcome
    np.testing.assert_array_equal(g(np.ones(2)), [2.0, 2.0])
    np.testing.assert_array_equal(g(np.array([0.0, 1.0])), [0.0, 1.0])


def test_grad_of_a_non_scalar_names_exported_alternatives():
    with pytest.raises(TypeError, match=r"returned \(f64\[2\] of shape \(2,\)\); for other outputs use "
                                        r"tracegrad.vjp") as info:
        grad(lambda x: x * 2.0)(np.ones(2))
    assert "vjp_graph" not in str(info.value)
    assert hasattr(tracegrad, "vjp") and hasattr(tracegrad, "jvp")
    with pytest.raises(TypeError, match="tracegrad.jit, or use tracegrad.vjp"):
        compile_grad(lambda x: x * 2.0)(np.ones(2))


def test_converting_a_tensor_that_requires_grad_raises_as_pytorch():
    t = tensor([1.0, 2.0], requires_grad=True)
    message = r"Can't call numpy\(\) on Tensor that requires grad. Use tensor.detach\(\).numpy\(\)"
    with pytest.raises(RuntimeError, match=message):
        np.asarray(t)
    with pytest.raises(RuntimeError, match=message):
        t.numpy()
    with pytest.raises(RuntimeError, match=message):
        np.asarray(t * 2.0)  # a result that requires grad, too
    np.testing.assert_array_equal(np.asarray(t.detach()), [1.0, 2.0])
    np.testing.assert_array_equal(np.asarray(tensor([1.0, 2.0])), [1.0, 2.0])
    # What the library itself converts keeps working on such tensors.
    assert float(compile_grad(lambda x: np.sum(x * x))(t)[0]) == 5.0
    assert grad(lambda x: np.sum(x * x))(t).tolist() == [2.0, 4.0]
    assert float(np.sum(t * t).item()) == 5.0


def _flipping(x):
    if x[0] > 0:
        return x + 1.0
    return x - 1.0


def test_the_limit_warning_points_at_the_users_line_once_and_advises_by_guard_kind():
    f = jit(_flipping, max_specializations=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for v in (1.0, -1.0, 2.0, -2.0, -3.0):
            f(np.array([v]))
    assert len(caught) == 1
    (w,) = caught
    assert w.category is SpecializationLimitWarning and w.filename == __file__
    assert "compile.py" not in w.filename and "tracegrad.numpy.where" in str(w.message)


def test_the_advice_names_only_exported_functions():
    from tracegrad.guards import advice
    from tracegrad.ir import Guard

    for kind in ("float", "value", "bool", "int", "index"):
        text = advice(Guard(None, np.asarray(0.0), kind, None))
        for name in ("cond", "numpy.where"):
            if f"tracegrad.{name}" in text:
                obj = tracegrad
                for part in name.split("."):
                    obj = getattr(obj, part)
                assert callable(obj)


def test_messages_name_what_the_user_passed():
    with pytest.raises(OverflowError, match="too large to convert to int64"):
        jit(lambda x: x + 1)(2**70)
    with pytest.raises(TypeError, match="tuples or lists"):
        tracegrad.jvp(np.sin, np.ones(3), np.ones(3))
    with pytest.raises(tracegrad.ir.ConcretizationError, match="vmap: under vmap"):
        tracegrad.vmap(lambda x: x if x > 0 else -x)(np.array([1.0, -2.0]))
    with pytest.raises(TypeError, match=r"output, and this one is i64\[\].*'x'\): i64\[3\]"):
        compile_grad(lambda x: np.sum(x * x))(np.arange(3))
    with pytest.raises(TypeError, match=r"pair \(carry, y\), got an array float64\[2\]"):
        jit(lambda xs: tracegrad.scan(lambda c, x: c + x, np.zeros(2), xs))(np.ones((5, 2)))


def test_a_derivative_cut_by_float_warns_at_the_users_line():
    import math
    with pytest.warns(tracegrad.passes.autodiff.CutDerivativeWarning) as record:
        assert grad(lambda x: math.exp(x))(1.0) == 0.0  # as documented: a guard, no derivative
    assert record[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grad(lambda x: x * 2 if x > 0 else x)(1.0)  # a decision (bool guard): no warning
        grad(lambda x: x * 2 if x > 0 else x)(np.array(1.0))


def test_a_compile_grad_argument_written_in_place_and_not_returned_warns_at_the_call():
    """compile_grad cannot write such values back (its outputs are the value and the
    gradients): it says so, naming the argument, once per specialization."""
    def loss(u):
        u[0] = 2.0
        return np.sum(u ** 2)

    u = np.ones(3)
    with pytest.warns(tracegrad.InPlaceArgumentWarning, match=r"argument 0 \('u'\)") as w:
        value, (g,) = compile_grad(loss)(u)
    assert w[0].filename == __file__
    assert value == 6.0 and g.tolist() == [0.0, 2.0, 2.0] and u.tolist() == [1.0, 1.0, 1.0]
    with pytest.warns(tracegrad.InPlaceArgumentWarning, match="argument 0"):
        jit(lambda lst: lst.__setitem__(0, 5.0))([1.0, 2.0])  # a list: nothing to write into


def test_bincount_and_polyfit_messages_name_what_works():
    i = np.array([1, 2, 2, 5])
    with pytest.raises(ValueError, match=r"tracegrad.numpy.bincount\(x, weights, length=n\)"):
        jit(lambda i: np.bincount(i, minlength=7))(i)
    with pytest.raises(Exception, match=r"lstsq\(vander\(x, deg \+ 1\), y\)"):
        jit(lambda y: np.polyfit(np.arange(4.0), y, 1))(np.ones(4))


def test_a_scipy_function_with_a_port_is_named_when_it_meets_a_traced_value():
    import scipy.special
    with pytest.raises(TypeError, match=r"tracegrad\.scipy\.special\.logsumexp"):
        tracegrad.jit(lambda x: scipy.special.logsumexp(x, axis=1))(np.ones((2, 3)))
