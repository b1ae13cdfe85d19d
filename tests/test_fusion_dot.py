"""Fusion around dot kernels: transposed and batched operands read in place."""

from tracegrad.ir import ops
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.dce import dce
from fusion_cases import F32, F64, build, sample, loop_kernels, dot_kernels, assert_matches, check


# ---- dot ------------------------------------------------------------------------------

def test_dot_transposed_operands_read_in_place():
    def f(a, b):
        return ops.dot(ops.transpose(a, (1, 0)), ops.transpose(b, (1, 0)))

    kp = check(f, ((5, 3), F64), ((4, 5), F64))
    (d,) = dot_kernels(kp)
    assert (d.trans_a, d.trans_b, d.m, d.k, d.n) == (True, True, 3, 5, 4)
    assert not loop_kernels(kp)


def test_dot_batched_and_operand_expressions():
    def f(a, b):
        ab = ops.dot(ops.tanh(a), b)
        return ops.dot(ops.transpose(ops.exp(a), (0, 2, 1)), ab)

    kp = check(f, ((2, 3, 4), F64), ((2, 4, 5), F64))
    assert [(d.batch, d.trans_a) for d in dot_kernels(kp)] == [(2, False), (2, True)]


def test_dot_of_reshaped_vector():
    def f(w, X):
        return ops.reshape(ops.dot(X, ops.reshape(w, (4, 1))), (6,))

    kp = check(f, ((4,), F64), ((6, 4), F64))
    assert len(kp.kernels) == 1  # the dot writes straight into the output


def test_mlp_layer_keeps_dots():
    def f(x, w1, b1, w2):
        h = ops.tanh(ops.add(ops.dot(x, w1), ops.broadcast(b1, (8, 16))))
        return ops.reduce_sum(ops.dot(h, w2), (0, 1))

    g = dce(grad_graph(build(f, ((8, 12), F32), ((12, 16), F32), ((16,), F32), ((16, 3), F32)),
                       (1, 2, 3)))
    args = [sample(s, F32) for s in [(8, 12), (12, 16), (16,), (16, 3)]]
    kp = assert_matches(g, *args, rtol=1e-4)
    dots = dot_kernels(kp)
    assert len(dots) == 5  # x@w1, h@w2, dh = g@w2.T, dw1 = x.T@dh, dw2 = h.T@g
    assert sum(d.trans_a or d.trans_b for d in dots) >= 2
