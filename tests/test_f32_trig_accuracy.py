"""float32 tan, arcsin and arccos go through float64 (tracer/numpy/math.py `_via_f64`):
within one ULP of the exact value, as numpy's float32 loops, eager and compiled."""
import numpy as np
import pytest

import tracegrad as tg


def max_ulp(got, x, fn):
    ref = fn(x.astype(np.float64))
    spacing = np.spacing(np.abs(ref).astype(np.float32)).astype(np.float64)
    return float(np.max(np.abs(got.astype(np.float64) - ref) / spacing))


@pytest.mark.parametrize("fn, lo, hi", [(np.arcsin, -1.0, 1.0), (np.arccos, -1.0, 1.0),
                                        (np.tan, -100.0, 100.0)])
def test_within_one_ulp(fn, lo, hi):
    x = np.random.default_rng(0).uniform(lo, hi, 20000).astype(np.float32)
    assert max_ulp(tg.numpy.asarray(getattr(tg.numpy, fn.__name__)(x)), x, fn) <= 1.0
    compiled = tg.jit(lambda v: fn(v))(x)
    assert compiled.dtype == np.float32 and max_ulp(compiled, x, fn) <= 1.0
