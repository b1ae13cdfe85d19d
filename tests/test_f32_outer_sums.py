"""float32 sums over outer axes accumulate in float64 (docs/codegen.md, "Reassociation
policy"), also where they combine into memory (codegen/shadow.py) or keep a row in
registers (codegen/unrolled.py): fused with other reductions, and as bias gradients."""
import numpy as np
import pytest

import tracegrad as tg

X = (1e3 + np.random.default_rng(0).standard_normal((200_000, 4))).astype(np.float32)


def rel_error(got, ref):
    return float(np.max(np.abs(np.asarray(got, np.float64) - ref)) / np.max(np.abs(ref)))


@pytest.mark.parametrize("threads", ["1", "2"])
@pytest.mark.parametrize("fn", [
    lambda x: (np.sum(x, axis=0), np.sum(x)),
    lambda x: (np.sum(x, axis=0), np.max(x)),
    lambda x: np.sum(2e-6 * x, axis=0) * 5e5,
], ids=["with-sum", "with-max", "scaled"])
def test_fused_outer_axis_sums_accumulate_in_float64(fn, threads, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_NUM_THREADS", threads)
    got = tg.jit(fn, disk_cache=False)(X)
    got = got[0] if isinstance(got, tuple) else got
    assert got.dtype == np.float32
    assert rel_error(got, X.astype(np.float64).sum(axis=0)) < 1e-6  # numpy float32: ~2e-3


def test_bias_gradient_in_float32():
    b = np.zeros(4, np.float32)
    value, (gb,) = tg.compile_grad(lambda b, x: np.sum((x + b) ** 2) * 1e-6, argnums=(0,),
                                   disk_cache=False)(b, X)
    ref = 2e-6 * X.astype(np.float64).sum(axis=0)
    assert gb.dtype == np.float32 and rel_error(gb, ref) < 1e-6


def test_outer_sum_into_a_wide_target_keeps_float32_semantics():
    """A target too large for a shadow (codegen/shadow.MAX_ELEMENTS) still sums right."""
    x = np.random.default_rng(1).standard_normal((64, 5000)).astype(np.float32)
    got = tg.jit(lambda x: (np.sum(x, axis=0), np.sum(x)), disk_cache=False)(x)[0]
    np.testing.assert_allclose(got, x.astype(np.float64).sum(axis=0), rtol=1e-5, atol=1e-5)
