"""`tf.nn`: the activation and loss functions TF1 users reach for."""
from __future__ import annotations

from tracegrad.tracer import numpy as tnp

from . import tf1_rules
from .building import call
from .math_ops import _fn, sigmoid, stop_gradient, tanh  # noqa: F401  (tf.nn.sigmoid, tf.nn.tanh)
from .sources import as_tensor

__all__ = ["relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "softmax",
           "log_softmax", "l2_loss", "bias_add", "sigmoid_cross_entropy_with_logits",
           "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits"]


def relu(features, name=None):
    """max(features, 0); the gradient at 0 is 0, as TF1's ReluGrad (features > 0)."""
    return call(_fn("relu"), (features,), {}, name or "Relu", operands=1)


def relu6(features, name=None):
    """min(max(features, 0), 6); the gradient passes where 0 < features < 6 (TF1's)."""
    return call(tf1_rules.relu6, (features,), {}, name or "Relu6", operands=1)


def _leaky_relu(x, alpha):
    # TF1's LeakyRelu kernel: x > 0 ? x : alpha * x, so the gradient at 0 is alpha.
    return tnp.where(x > 0, x, x * alpha)


def leaky_relu(features, alpha=0.2, name=None):
    """features where > 0, else alpha * features (TF1's default alpha is 0.2)."""
    return call(_leaky_relu, (features,), {"alpha": float(alpha)}, name or "LeakyRelu", operands=1)


def _elu(x):
    # TF1's Elu: x < 0 ? expm1(x) : x, so the gradient at 0 is 1.  expm1 sees only the
    # negative side: a large x in the untaken branch would make 0 * inf = nan.
    return tnp.where(x < 0, tnp.expm1(tnp.where(x < 0, x, 0)), x)


def elu(features, name=None):
    """exp(features) - 1 where features < 0, else features (TF1's `elu`)."""
    return call(_elu, (features,), {}, name or "Elu", operands=1)


def softplus(features, name=None):
    """log(1 + exp(features)), computed stably."""
    return call(_fn("softplus"), (features,), {}, name or "Softplus", operands=1)


def softmax(logits, axis=None, name=None, dim=None):
    """exp(logits) / sum(exp(logits)) along `axis` (TF1's older `dim`; the last by default)."""
    axis = _softmax_axis(axis, dim)
    return call(_fn("softmax"), (logits,), {"axis": axis}, name or "Softmax", operands=1)


def log_softmax(logits, axis=None, name=None, dim=None):
    """logits - logsumexp(logits) along `axis` (or `dim`), computed stably."""
    axis = _softmax_axis(axis, dim)
    return call(_fn("log_softmax"), (logits,), {"axis": axis}, name or "LogSoftmax", operands=1)


def _softmax_axis(axis, dim) -> int:
    if axis is not None and dim is not None:
        raise ValueError("softmax: pass axis or dim, not both")
    return -1 if axis is None and dim is None else (axis if axis is not None else dim)


def _bias_add(value, bias, channel_axis):
    shape = [1] * tnp.ndim(value)
    shape[channel_axis] = tnp.shape(bias)[0]
    return value + tnp.reshape(bias, tuple(shape))


def bias_add(value, bias, data_format=None, name=None):
    """`value + bias` with the 1-D `bias` added along the channel axis: the last one
    (data_format "NHWC" or None) or axis 1 ("NCHW"), as TF1's BiasAdd.

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     y = tf.nn.bias_add(tf.zeros([2, 3]), tf.constant([1.0, 2.0, 3.0]))
    ...     print(tf.Session().run(y))
    [[1. 2. 3.]
     [1. 2. 3.]]
    """
    value, bias = as_tensor(value), as_tensor(bias)
    if data_format not in (None, "NHWC", "NCHW", "N..C", "NC.."):
        raise ValueError(f"bias_add: unknown data_format {data_format!r}")
    if bias.shape.dims is not None and len(bias.shape.dims) != 1:
        raise ValueError(f"Shape must be rank 1 but is rank {len(bias.shape.dims)} for "
                         f"'BiasAdd' (bias {bias!r})")
    if value.shape.dims is not None and len(value.shape.dims) < 2:
        raise ValueError(f"Shape must be at least rank 2 but is rank {len(value.shape.dims)} "
                         f"for 'BiasAdd' (value {value!r})")
    channel_axis = 1 if data_format in ("NCHW", "NC..") else -1
    return call(_bias_add, (value, bias), {"channel_axis": channel_axis}, name or "BiasAdd",
                operands=2)


def l2_loss(t, name=None):
    """TF1's `l2_loss`: sum(t ** 2) / 2, a scalar of t's dtype."""
    return call(lambda x: tnp.sum(tnp.square(x)) / 2, (t,), {}, name or "L2Loss", operands=1)


def _sigmoid_xent(labels, logits):
    # softplus(x) - x * z, TF1's max(x, 0) - x * z + log(1 + exp(-|x|)): tracegrad's
    # softplus takes one side of its `where`s at 0, so the gradient there is exactly
    # sigmoid(0) - z (an abs and a max split it: -z).
    return tnp.softplus(logits) - logits * labels


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """The elementwise logistic loss of `logits` for `labels` (probabilities of 1):
    softplus(logits) - logits * labels; its logits gradient is sigmoid(logits) - labels."""
    return call(_sigmoid_xent, (labels, logits), {}, name or "logistic_loss", operands=2)


def _softmax_xent(labels, logits, axis):
    return -tnp.sum(labels * tnp.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=None, name=None,
                                         dim=None):
    """-sum(labels * log_softmax(logits)) along `axis`; the gradient flows into both the
    logits (softmax(logits) - labels) and the labels (-log_softmax(logits))."""
    axis = -1 if axis is None and dim is None else dim if axis is None else axis  # dim: TF1's old name
    return call(_softmax_xent, (labels, logits), {"axis": axis}, name or "softmax_cross_entropy",
                operands=2)


def softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, dim=-1,
                                      name=None, axis=None):
    """TF1's deprecated v1 name: the value of `softmax_cross_entropy_with_logits_v2`, but
    the labels go through `stop_gradient`, so `tf.gradients(loss, labels)` is [None].

    >>> import tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     z, y = tf.constant([[0.0, 0.0]]), tf.constant([[1.0, 0.0]])
    ...     loss = tf.nn.softmax_cross_entropy_with_logits(labels=y, logits=z)
    ...     print(tf.Session().run(loss), tf.gradients(loss, y))
    [0.6931472] [None]
    """
    if _sentinel is not None:
        raise ValueError("softmax_cross_entropy_with_logits: pass labels= and logits= by name")
    labels = stop_gradient(as_tensor(labels))
    return softmax_cross_entropy_with_logits_v2(labels, logits, dim if axis is None else axis,
                                                name or "softmax_cross_entropy_with_logits")


def _sparse_softmax_xent(labels, logits):
    n = tnp.shape(logits)[-1]
    picked = tnp.expand_dims(labels, -1) == tnp.arange(n)
    loss = -tnp.sum(tnp.where(picked, tnp.log_softmax(logits, axis=-1), 0), axis=-1)
    # a label outside [0, n) has no class: its loss is NaN (TF1 on GPU; on CPU it raises)
    return loss + tnp.where((labels >= 0) & (labels < n), 0.0, tnp.nan).astype(loss.dtype)


def sparse_softmax_cross_entropy_with_logits(_sentinel=None, labels=None, logits=None, name=None):
    """-log_softmax(logits)[..., labels]: `labels` are class indices (int32 or int64) of
    shape logits.shape[:-1]; the gradient is softmax(logits) - one_hot(labels).  A label
    outside [0, classes) gives a NaN loss, as TF1 on a GPU (TF1 on a CPU raises)."""
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
