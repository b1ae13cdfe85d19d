"""`tf.train.Saver`: a session's variable values to and from one .npz file.

TF1 writes a checkpoint (`.index`, `.data-*` and a `checkpoint` file); this Saver
writes one NumPy archive at exactly the path given, holding each variable's value
under its op name (`"dense/kernel"`), so `np.load(path)` reads it back too.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import InvalidArgumentError
from .variables import global_variables


class Saver:
    """Saves and restores `var_list`, a list of variables or a {name: variable} dict; by
    default the global variables of the default graph when the Saver is made, as TF1's
    (so a Saver made before an optimizer restores a model's weights into a graph that has
    its slots since), or when it saves or restores, if that graph had none.

    >>> import os, tempfile, tracegrad.static as tf
    >>> with tf.Graph().as_default():
    ...     w = tf.Variable([1.0, 2.0], name="w")
    ...     saver, path = tf.train.Saver(), os.path.join(tempfile.mkdtemp(), "model.npz")
    ...     with tf.Session() as sess:
    ...         _ = sess.run(tf.global_variables_initializer())
    ...         _ = sess.run(w.assign([3.0, 4.0])); _ = saver.save(sess, path)
    ...     with tf.Session() as sess:
    ...         saver.restore(sess, path); print(sess.run(w))
    [3. 4.]
    """

    def __init__(self, var_list=None, max_to_keep=5, **unused):
        self._default = var_list is None
        self._var_list = var_list if var_list is not None else global_variables() or None

    def _named(self, graph) -> dict:
        var_list = self._var_list
        if var_list is None or (self._default and any(v.graph is not graph for v in var_list)):
            var_list = global_variables(graph)  # (a default Saver used with another graph)
        if isinstance(var_list, dict):
            return dict(var_list)
        return {v.op.name: v for v in var_list}

    def save(self, sess, save_path, global_step=None, **unused) -> str:
        """Write the variables' values in `sess` to `save_path` (`-<global_step>` appended
        when given, as TF1); returns the path written."""
        if global_step is not None:
            step = global_step if isinstance(global_step, int) else int(sess.run(global_step))
            save_path = f"{save_path}-{step}"
        values = {name: sess.run(v) for name, v in self._named(sess.graph).items()}
        parent = os.path.dirname(os.path.abspath(save_path))
        if not os.path.isdir(parent):
            raise ValueError(f"Parent directory of {save_path} doesn't exist, can't save.")
        with open(save_path, "wb") as f:  # np.savez(path) would append ".npz"
            np.savez(f, **values)
        return save_path

    def restore(self, sess, save_path):
        """Set the variables in `sess` to the values saved at `save_path` (no initializer
        needed); a variable missing from the file is a NotFoundError-like KeyError, one of
        another dtype or shape an InvalidArgumentError, as TF1's."""
        try:
            saved = np.load(save_path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            if isinstance(e, FileNotFoundError):
                raise
            raise ValueError(f"Saver.restore: {save_path} is not a file Saver.save wrote (an .npz "
                             f"archive of arrays; {type(e).__name__} reading it)") from None
        if not hasattr(saved, "files"):
            raise ValueError(f"Saver.restore: {save_path} holds one array, not the .npz archive "
                             "Saver.save writes")
        with saved:
            for name, var in self._named(sess.graph).items():
                if name not in saved.files:
                    raise KeyError(f"Key {name} not found in checkpoint {save_path}")
                value = saved[name]
                dims = var.shape.dims
                if value.dtype != var.dtype or (dims is not None and value.shape != tuple(dims)):
                    raise InvalidArgumentError(
                        f"Restoring {name} from {save_path}: the variable is "
                        f"{var.dtype.name} of shape {var.shape}, the checkpoint holds "
                        f"{value.dtype.name} of shape {value.shape} (TF1 restores only the same "
                        "dtype and shape)", var.op)
                var.load(value, sess)
