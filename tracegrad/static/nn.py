"""`tf.nn`: the activation and loss functions TF1 users reach for."""
from __future__ import annotations

from tracegrad.tracer import numpy as tnp

from .building import call
from .math_ops import _fn, sigmoid, tanh  # noqa: F401  (tf.nn.sigmoid, tf.nn.tanh)
from .sources import as_tensor

__all__ = ["relu", "sigmoid", "tanh", "softplus", "softmax", "log_softmax", "l2_loss",
           "sigmoid_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits"]


def relu(features, name=None):
    return call(_fn("relu"), (features,), {}, name or "Relu")


def softplus(features, name=None):
    return call(_fn("softplus"), (features,), {}, name or "Softplus")


def softmax(logits, axis=-1, name=None):
    return call(_fn("softmax"), (logits,), {"axis": axis}, name or "Softmax")


def log_softmax(logits, axis=-1, name=None):
    return call(_fn("log_softmax"), (logits,), {"axis": axis}, name or "LogSoftmax")


def l2_loss(t, name=None):
    """TF1's `l2_loss`: sum(t ** 2) / 2, a scalar of t's dtype."""
    return call(lambda x: tnp.sum(tnp.square(x)) / 2, (t,), {}, name or "L2Loss")


def _sigmoid_xent(labels, logits):
    # softplus(x) - x * z, TF1's max(x, 0) - x * z + log(1 + exp(-|x|)): tracegrad's
    # softplus takes one side of its `where`s at 0, so the gradient there is exactly
    # sigmoid(0) - z (an abs and a max split it: -z).
    return tnp.softplus(logits) - logits * labels


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    return call(_sigmoid_xent, (labels, logits), {}, name or "logistic_loss")


def _softmax_xent(labels, logits, axis):
    return -tnp.sum(labels * tnp.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=-1, name=None):
    return call(_softmax_xent, (labels, logits), {"axis": axis}, name or "softmax_cross_entropy")


def _sparse_softmax_xent(labels, logits):
    classes = tnp.arange(tnp.shape(logits)[-1])
    picked = tnp.expand_dims(labels, -1) == classes
    return -tnp.sum(tnp.where(picked, tnp.log_softmax(logits, axis=-1), 0), axis=-1)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """-log_softmax(logits)[..., labels]: `labels` are class indices (int32 or int64) of
    shape logits.shape[:-1]; the gradient is softmax(logits) - one_hot(labels)."""
    if _sentinel is not None:
        raise ValueError("sparse_softmax_cross_entropy_with_logits: pass labels= and logits= "
                         "by name")
    labels, logits = as_tensor(labels), as_tensor(logits)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"sparse_softmax_cross_entropy_with_logits: labels must be int32 or "
                        f"int64, got {labels!r}")
    if (labels.shape.dims is not None and logits.shape.dims is not None
            and len(labels.shape.dims) != len(logits.shape.dims) - 1):
        raise ValueError(f"Rank mismatch: Rank of labels (received {labels.shape.ndims}) should "
                         f"equal rank of logits minus 1 (received {logits.shape.ndims}).")
    return call(_sparse_softmax_xent, (labels, logits), {},
                name or "SparseSoftmaxCrossEntropyWithLogits")
