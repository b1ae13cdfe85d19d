"""TF1's registered gradients where they differ from tracegrad's own rules: at kinks
and ties (`maximum`, `minimum`, `clip_by_value`, `abs`, `relu6`).

tracegrad follows JAX (a tie of `maximum` splits the gradient in halves, d|x|/dx is 1
at 0); TF1 registers other rules (`_MaximumGrad` gives a tie to x, `_AbsGrad` is
`sign(x)`).  `with_tf1_gradient(forward, backward)` keeps the forward computation
exactly as it is (the same primitives, so the same bits, NaN and -0.0 included) and
replaces only its derivative, through `tracegrad.custom_vjp`: the custom call is
inlined after differentiation, so the compiled program is the same as before.
"""
from __future__ import annotations

from tracegrad.custom import custom_vjp
from tracegrad.ir.core import is_float
from tracegrad.ir.structural import sum_to_shape
from tracegrad.tracer import numpy as tnp
from tracegrad.tracer.numpy._core import is_boxed


def _differentiable(a) -> bool:
    """A traced float value (constants, Python numbers and integers get no gradient)."""
    return is_boxed(a) and is_float(tnp.dtype(a.dtype))


def with_tf1_gradient(forward, backward, name):
    """`forward(*args)`, whose gradient is `backward(g, *args)`: one cotangent per arg,
    of the output's shape (summed back to each arg's shape and cast to its dtype here).
    Python numbers stay Python numbers, so `forward` promotes them as weak types."""
    def apply(*args):
        slots = [i for i, a in enumerate(args) if _differentiable(a)]
        if not slots:
            return forward(*args)

        def full(xs):
            filled = list(args)
            for i, x in zip(slots, xs):
                filled[i] = x
            return filled

        def fwd(*xs):  # the value as a call of `rule`: TF1 uses the rule at every order
            return rule(*xs), xs

        def bwd(xs, g):
            cts = backward(g, *full(xs))
            return tuple(tnp.astype(sum_to_shape(cts[i], tnp.shape(x)), x.dtype)
                         for i, x in zip(slots, xs))
        rule = custom_vjp(lambda *xs: forward(*full(xs)))
        rule.__name__ = name
        rule.defvjp(fwd, bwd)
        return rule(*[args[i] for i in slots])
    apply.__name__ = name
    return apply


def _maximum_grad(g, x, y):
    # TF1's _MaximumGrad: x gets the gradient where x >= y (ties go to x), y the rest.
    x_wins = x >= y
    return tnp.where(x_wins, g, 0), tnp.where(x_wins, 0, g)


def _minimum_grad(g, x, y):
    # TF1's _MinimumGrad: x gets the gradient where x <= y.
    x_wins = x <= y
    return tnp.where(x_wins, g, 0), tnp.where(x_wins, 0, g)


def _clip_grad(g, x, lo, hi):
    # TF1's _ClipByValueGrad: x inside [lo, hi] (inclusive) keeps it, else the bound it
    # crossed gets it.
    below, above = x < lo, x > hi
    return tnp.where(below | above, 0, g), tnp.where(below, g, 0), tnp.where(above, g, 0)


def _abs_grad(g, x):
    # TF1's _AbsGrad: g * sign(x), so 0 at x == 0 (tracegrad, as JAX, gives 1 there).
    return (g * tnp.sign(x),)


def _relu6_grad(g, x):
    # TF1's Relu6Grad: the gradient passes where 0 < x < 6 (0 at both kinks).
    return (tnp.where((x > 0) & (x < 6), g, 0),)


maximum = with_tf1_gradient(lambda x, y: tnp.maximum(x, y), _maximum_grad, "tf1_maximum")
minimum = with_tf1_gradient(lambda x, y: tnp.minimum(x, y), _minimum_grad, "tf1_minimum")
clip = with_tf1_gradient(lambda x, lo, hi: tnp.clip(x, lo, hi), _clip_grad, "tf1_clip")
abs = with_tf1_gradient(lambda x: tnp.abs(x), _abs_grad, "tf1_abs")  # noqa: A001
relu6 = with_tf1_gradient(lambda x: tnp.minimum(tnp.maximum(x, 0), 6), _relu6_grad, "tf1_relu6")
