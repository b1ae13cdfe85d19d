"""Agreement of one implementation's value and gradients with the float64 reference.

Tolerances are relative and depend on the dtype the workload differentiates in. Gradients
are compared elementwise with an absolute floor scaled to the reference's largest entry, so
entries near zero (where relative error means nothing) do not fail the check.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}


def tolerance(inputs: Sequence[np.ndarray], wrt: Sequence[int]) -> float:
    dtype = np.result_type(*(inputs[i] for i in wrt))
    if dtype not in RTOL:
        raise ValueError(f"no tolerance for dtype {dtype}")
    return RTOL[dtype]


def disagreement(value: Any, grads: Sequence[np.ndarray], ref: tuple, inputs, wrt) -> str | None:
    """None when (value, grads) agree with ``ref``, else a sentence saying where not."""
    rtol = tolerance(inputs, wrt)
    ref_value, ref_grads = ref
    problem = _value_problem(value, ref_value, rtol)
    if problem or len(grads) != len(ref_grads):
        return problem or f"{len(grads)} gradients, expected {len(ref_grads)}"
    for argnum, got, want in zip(wrt, grads, ref_grads):
        problem = _grad_problem(argnum, np.asarray(got), want, inputs[argnum], rtol)
        if problem:
            return problem
    return None


def _value_problem(value: Any, ref_value: float, rtol: float) -> str | None:
    if np.ndim(value) != 0:
        return f"value has shape {np.shape(value)}, expected a scalar"
    got = float(np.asarray(value))
    err = abs(got - ref_value)
    if not err <= rtol * abs(ref_value):
        return (f"value {got!r} vs reference {ref_value!r}: "
                f"rel err {err / abs(ref_value):.2e} > {rtol:g}")
    return None


def _grad_problem(argnum: int, got: np.ndarray, want: np.ndarray, x: np.ndarray, rtol: float):
    if got.shape != x.shape or got.dtype != x.dtype:
        return (f"grad of arg {argnum} is {got.dtype}{list(got.shape)}, "
                f"expected {x.dtype}{list(x.shape)}")
    atol = rtol * float(np.max(np.abs(want)))
    bad = ~(np.abs(got - want) <= atol + rtol * np.abs(want))
    if bad.any():
        i = np.unravel_index(int(np.argmax(bad)), bad.shape)
        return (f"grad of arg {argnum}: {int(bad.sum())} of {bad.size} entries off, first at "
                f"{tuple(int(k) for k in i)}: {got[i]!r} vs reference {want[i]!r} (rtol {rtol:g})")
    return None
