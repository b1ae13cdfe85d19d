"""`tf.nn`: the activation and loss functions TF1 users reach for."""
from __future__ import annotations

from tracegrad.tracer import numpy as tnp

from .building import call
from .math_ops import _fn, sigmoid, tanh  # noqa: F401  (tf.nn.sigmoid, tf.nn.tanh)

__all__ = ["relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax",
           "sigmoid_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2"]


def relu(features, name=None):
    return call(_fn("relu"), (features,), {}, name or "Relu")


def softplus(features, name=None):
    return call(_fn("softplus"), (features,), {}, name or "Softplus")


def softmax(logits, axis=-1, name=None):
    return call(_fn("softmax"), (logits,), {"axis": axis}, name or "Softmax")


def log_softmax(logits, axis=-1, name=None):
    return call(_fn("log_softmax"), (logits,), {"axis": axis}, name or "LogSoftmax")


def _sigmoid_xent(labels, logits):
    # max(x, 0) - x * z + log(1 + exp(-|x|)): TF1's stable formula
    return tnp.maximum(logits, 0) - logits * labels + tnp.log1p(tnp.exp(-tnp.abs(logits)))


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    return call(_sigmoid_xent, (labels, logits), {}, name or "logistic_loss")


def _softmax_xent(labels, logits, axis):
    return -tnp.sum(labels * tnp.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=-1, name=None):
    return call(_softmax_xent, (labels, logits), {"axis": axis}, name or "softmax_cross_entropy")
