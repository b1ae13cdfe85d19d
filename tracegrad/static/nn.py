"""`tf.nn`: the activation and loss functions TF1 users reach for."""
from __future__ import annotations

import numpy as np

from tracegrad.tracer import numpy as tnp
from tracegrad.tracer.numpy import stop_gradient as lax_stop

from . import tf1_rules
from .building import call
from .math_ops import _fn, sigmoid, stop_gradient, tanh  # noqa: F401  (tf.nn.sigmoid, tf.nn.tanh)
from .sources import as_tensor

__all__ = ["relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "softmax",
           "log_softmax", "l2_loss", "bias_add", "sigmoid_cross_entropy_with_logits",
           "softmax_cross_entropy_with_logits", "softmax_cross_entropy_with_logits_v2",
           "sparse_softmax_cross_entropy_with_logits", "embedding_lookup", "moments"]


def relu(features, name=None):
    """max(features, 0); the gradient at 0 is 0, as TF1's ReluGrad (features > 0)."""
    return call(_fn("relu"), (features,), {}, name or "Relu", op_type="Relu", operands=1)


def relu6(features, name=None):
    """min(max(features, 0), 6); the gradient passes where 0 < features < 6 (TF1's)."""
    return call(tf1_rules.relu6, (features,), {}, name or "Relu6", op_type="Relu6", operands=1)


def _leaky_relu(x, alpha):
    # TF1's LeakyRelu kernel: x > 0 ? x : alpha * x, so the gradient at 0 is alpha.
    return tnp.where(x > 0, x, x * alpha)


def leaky_relu(features, alpha=0.2, name=None):
    """features where > 0, else alpha * features (TF1's default alpha is 0.2)."""
    return call(_leaky_relu, (features,), {"alpha": float(alpha)}, name or "LeakyRelu",
                op_type="LeakyRelu", operands=1)


def _elu(x):
    # TF1's Elu: x < 0 ? expm1(x) : x, so the gradient at 0 is 1.  expm1 sees only the
    # negative side: a large x in the untaken branch would make 0 * inf = nan.
    return tnp.where(x < 0, tnp.expm1(tnp.where(x < 0, x, 0)), x)


def elu(features, name=None):
    """exp(features) - 1 where features < 0, else features (TF1's `elu`)."""
    return call(_elu, (features,), {}, name or "Elu", op_type="Elu", operands=1)


def softplus(features, name=None):
    """log(1 + exp(features)), computed stably."""
    return call(_fn("softplus"), (features,), {}, name or "Softplus", op_type="Softplus",
                operands=1)


def softmax(logits, axis=None, name=None, dim=None):
    """exp(logits) / sum(exp(logits)) along `axis` (TF1's older `dim`; the last by default)."""
    axis = _softmax_axis(axis, dim)
    return call(_fn("softmax"), (logits,), {"axis": axis}, name or "Softmax", op_type="Softmax",
                operands=1)


def log_softmax(logits, axis=None, name=None, dim=None):
    """logits - logsumexp(logits) along `axis` (or `dim`), computed stably."""
    axis = _softmax_axis(axis, dim)
    return call(_fn("log_softmax"), (logits,), {"axis": axis}, name or "LogSoftmax",
                op_type="LogSoftmax", operands=1)


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
                op_type="BiasAdd",
                operands=2)


def l2_loss(t, name=None):
    """TF1's `l2_loss`: sum(t ** 2) / 2, a scalar of t's dtype."""
    return call(lambda x: tnp.sum(tnp.square(x)) / 2, (t,), {}, name or "L2Loss", op_type="L2Loss",
                operands=1)


def _sigmoid_xent(labels, logits):
    # softplus(x) - x * z, TF1's max(x, 0) - x * z + log(1 + exp(-|x|)): tracegrad's
    # softplus takes one side of its `where`s at 0, so the gradient there is exactly
    # sigmoid(0) - z (an abs and a max split it: -z).
    return tnp.softplus(logits) - logits * labels


def sigmoid_cross_entropy_with_logits(labels=None, logits=None, name=None):
    """The elementwise logistic loss of `logits` for `labels` (probabilities of 1):
    softplus(logits) - logits * labels; its logits gradient is sigmoid(logits) - labels."""
    return call(_sigmoid_xent, (labels, logits), {}, name or "logistic_loss",
                op_type="logistic_loss", operands=2)


def _softmax_xent(labels, logits, axis):
    return -tnp.sum(labels * tnp.log_softmax(logits, axis=axis), axis=axis)


def softmax_cross_entropy_with_logits_v2(labels=None, logits=None, axis=None, name=None,
                                         dim=None):
    """-sum(labels * log_softmax(logits)) along `axis`; the gradient flows into both the
    logits (softmax(logits) - labels) and the labels (-log_softmax(logits))."""
    axis = -1 if axis is None and dim is None else dim if axis is None else axis  # dim: TF1's old name
    return call(_softmax_xent, (labels, logits), {"axis": axis}, name or "softmax_cross_entropy",
                op_type="SoftmaxCrossEntropyWithLogits", operands=2)


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
                name or "SparseSoftmaxCrossEntropyWithLogits",
                op_type="SparseSoftmaxCrossEntropyWithLogits")


def _embedding(table, ids, max_norm):
    rows = tnp.take(table, ids, axis=0)
    if max_norm is None:
        return rows
    axes = tuple(range(tnp.ndim(ids), tnp.ndim(rows)))
    l2sum = tnp.sum(rows * rows, axis=axes, keepdims=True)
    positive = l2sum > 0
    norm = tnp.where(positive, tnp.sqrt(tnp.where(positive, l2sum, 1)), l2sum)
    return rows * max_norm / tnp.maximum(norm, max_norm)


def _sharded_table(shards, strategy):
    """The rows of TF1's sharded embedding table in id order: "div" gives each shard a
    contiguous range of ids, "mod" gives id to shard id % n at row id // n."""
    table = tnp.concatenate(shards, axis=0)
    if strategy == "div" or len(shards) == 1:
        return table
    sizes = [s.shape[0] for s in shards]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    order = [offsets[i % len(sizes)] + i // len(sizes) for i in range(sum(sizes))]
    return tnp.take(table, np.asarray(order, np.int64), axis=0)


def embedding_lookup(params, ids, partition_strategy="mod", name=None, validate_indices=True,
                     max_norm=None):
    """The rows of `params` at `ids` (shape `ids.shape + params.shape[1:]`), as TF1's: `params`
    is a tensor or a list of shards ("mod": id i is row i // n of shard i % n; "div":
    contiguous ranges), and `max_norm` clips each looked-up row to that L2 norm.  The gradient
    adds into the rows looked up, repeated ids adding up.  Fed ids out of range are clamped
    (docs/static.md, `gather`)."""
    if partition_strategy not in ("mod", "div"):
        raise ValueError(f"Unrecognized partition strategy: {partition_strategy}")
    shards = list(params) if isinstance(params, (list, tuple)) else [params]
    shards = [as_tensor(s) for s in shards]
    if len(shards) > 1:
        table = call(lambda *ts: _sharded_table(ts, partition_strategy), tuple(shards), {},
                     "concat")
    else:
        table = shards[0]
    return call(_embedding, (table, ids), {"max_norm": max_norm}, name or "embedding_lookup",
                op_type="embedding_lookup",
                operands=1)


def _moments(x, axes, keepdims):
    mean = tnp.mean(x, axis=axes, keepdims=True)
    variance = tnp.mean(tnp.square(x - lax_stop(mean)), axis=axes, keepdims=True)
    if not keepdims:
        mean, variance = tnp.squeeze(mean, axis=axes), tnp.squeeze(variance, axis=axes)
    return mean, variance


def moments(x, axes, shift=None, name=None, keep_dims=None, keepdims=None):
    """(mean, variance) of `x` over `axes`, as TF1's: the variance is the mean of
    `(x - stop_gradient(mean))**2`, and both keep the reduced axes with `keep_dims`
    (or `keepdims`); `shift` is accepted and unused, as in TF1."""
    keep = bool(keepdims if keepdims is not None else keep_dims)
    axes = tuple(int(a) for a in np.atleast_1d(axes))
    return tuple(call(_moments, (x,), {"axes": axes, "keepdims": keep}, name or "moments",
                      op_type="moments",
                      num_outputs=2, operands=1))
