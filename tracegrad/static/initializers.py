"""TF1's variable initializers (`tf.zeros_initializer()`, `tf.glorot_uniform_initializer()`,
...): callables `init(shape, dtype)` giving a variable's initial value.

The value is a NumPy array made when the variable is made (the static graph has no
random ops): a random initializer draws once, with `seed` if given, and every session's
initializer sets that same value, where TF1 draws again each time it runs.
"""
from __future__ import annotations

import numpy as np

from .dtypes import as_dtype, float32

__all__ = ["zeros_initializer", "ones_initializer", "constant_initializer",
           "random_normal_initializer", "random_uniform_initializer",
           "truncated_normal_initializer", "glorot_uniform_initializer"]


class _Initializer:
    def __init__(self, dtype=float32):
        self.dtype = as_dtype(dtype)

    def __call__(self, shape, dtype=None, partition_info=None):
        dtype = as_dtype(dtype or self.dtype)
        return np.asarray(self._value(tuple(int(d) for d in shape), dtype), dtype)


class zeros_initializer(_Initializer):
    """All zeros: `tf.get_variable("b", [3], initializer=tf.zeros_initializer())`."""

    def _value(self, shape, dtype):
        return np.zeros(shape, dtype)


class ones_initializer(_Initializer):
    """All ones."""

    def _value(self, shape, dtype):
        return np.ones(shape, dtype)


class constant_initializer(_Initializer):
    """`value` everywhere, or a list of `shape`'s size reshaped to it (as TF1)."""

    def __init__(self, value=0, dtype=float32, verify_shape=False):
        super().__init__(dtype)
        self.value = np.asarray(value)

    def _value(self, shape, dtype):
        dtype = np.dtype(dtype)
        if self.value.dtype.kind == "f" and dtype.kind in "iub" and np.any(self.value % 1):
            raise TypeError(f"constant_initializer: the value {self.value.tolist()!r} is not "
                            f"exactly a {dtype.name}")
        if self.value.size == 1:
            return np.full(shape, self.value.reshape(()), dtype)
        return self.value.reshape(shape)


class _Random(_Initializer):
    def __init__(self, seed=None, dtype=float32):
        super().__init__(dtype)
        self.rng = np.random.default_rng(seed)


class random_normal_initializer(_Random):
    """Normal samples of mean `mean` and standard deviation `stddev`."""

    def __init__(self, mean=0.0, stddev=1.0, seed=None, dtype=float32):
        super().__init__(seed, dtype)
        self.mean, self.stddev = mean, stddev

    def _value(self, shape, dtype):
        return self.rng.normal(self.mean, self.stddev, shape)


class random_uniform_initializer(_Random):
    """Uniform samples in [minval, maxval) (maxval 1 for floats when None, as TF1)."""

    def __init__(self, minval=0, maxval=None, seed=None, dtype=float32):
        super().__init__(seed, dtype)
        self.minval, self.maxval = minval, 1 if maxval is None else maxval

    def _value(self, shape, dtype):
        return self.rng.uniform(self.minval, self.maxval, shape)


class truncated_normal_initializer(random_normal_initializer):
    """Normal samples, those beyond two standard deviations drawn again (as TF1)."""

    def _value(self, shape, dtype):
        z = self.rng.standard_normal(shape)
        while np.any(np.abs(z) > 2):
            far = np.abs(z) > 2
            z[far] = self.rng.standard_normal(int(far.sum()))
        return self.mean + self.stddev * z


def _fans(shape):
    """(fan_in, fan_out) as TF1's VarianceScaling computes them."""
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2], dtype=np.int64))
    return shape[-2] * receptive, shape[-1] * receptive


class glorot_uniform_initializer(_Random):
    """Uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)): TF1's default
    initializer of `get_variable` for float variables."""

    def _value(self, shape, dtype):
        fan_in, fan_out = _fans(shape)
        limit = np.sqrt(6.0 / max(1.0, fan_in + fan_out))
        return self.rng.uniform(-limit, limit, shape)
