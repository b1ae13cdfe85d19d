"""Python call patterns under jit (hunt PY): Python int keywords are static (they were
int64 arrays, widening float32 and breaking static uses), callable objects and bound
methods that hash by identity are refused as silent static arguments, and jit works as
a method decorator."""
import functools

import numpy as np
import pytest

import tracegrad as tg


def test_python_int_keywords_are_static():
    x = np.arange(4, dtype=np.float32)
    assert tg.jit(lambda x, k: x * k)(x, k=2).dtype == np.float32
    np.testing.assert_array_equal(tg.jit(lambda x, k: np.roll(x, k))(x, k=1), np.roll(x, 1))
    f = tg.jit(lambda x, n: np.tile(x, n))
    assert f(x, n=2).shape == (8,) and f(x, n=3).shape == (12,)
    value, _ = tg.compile_grad(lambda w, k: (w * k).sum(), argnums=0)(x, k=3)
    assert value.dtype == np.float32


class _Scale:
    def __init__(self, a):
        self.a = a

    def __call__(self, z):
        return z * self.a

    def apply(self, z):
        return z * self.a


@pytest.mark.parametrize("pick", [lambda s: s, lambda s: s.apply])
def test_callable_objects_and_their_methods_are_not_silently_static(pick):
    f = tg.jit(lambda x, act: act(x))
    with pytest.raises(TypeError, match="hashes by identity"):
        f(np.ones(3), pick(_Scale(np.full(3, 2.))))


def test_functions_ufuncs_and_partials_stay_static_arguments():
    import operator
    f = tg.jit(lambda x, act: act(x))
    assert float(f(np.ones(3), np.sum)) == 3.0  # NumPy 2's dispatcher objects
    assert float(f(np.ones(3), np.linalg.norm)) == pytest.approx(3 ** 0.5)
    assert float(f(np.ones(3), operator.itemgetter(0))) == 1.0
    np.testing.assert_array_equal(f(np.ones(3), tg.jit(lambda a: a * 2)), 2.0)

    class AddOne:  # callable, no arrays held: nothing to freeze
        def __call__(self, z):
            return z + 1
    np.testing.assert_array_equal(f(np.ones(3), AddOne()), 2.0)
    np.testing.assert_allclose(f(np.ones(3), np.sin), np.sin(np.ones(3)))
    np.testing.assert_allclose(f(np.ones(3), functools.partial(np.multiply, 2.0)), 2.0)
    np.testing.assert_allclose(f(np.ones(3), abs), 1.0)
    np.testing.assert_allclose(f(np.ones(3), lambda z: z + 1), 2.0)


def test_jit_decorates_methods():
    class Model:
        def __init__(self):
            self.scale = 3.0

        @functools.partial(tg.jit, static_argnums=0)
        def static_self(self, x):
            return x * self.scale

        @tg.jit
        def plain(self, x):
            return x * 2

    m = Model()
    np.testing.assert_array_equal(m.static_self(np.ones(2)), [3., 3.])
    np.testing.assert_array_equal(Model.static_self(m, np.ones(2)), [3., 3.])
    with pytest.raises(TypeError, match=r"argument 0 \('self'\).*static"):
        m.plain(np.ones(2))
