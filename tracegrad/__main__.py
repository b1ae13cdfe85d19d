"""`python -m tracegrad [demo]`: the dynamic-graph story, then the same function
traced, differentiated as a graph, fused and compiled to native code."""
from __future__ import annotations

import sys

import numpy as np


def _section(title):
    print(f"\n== {title} " + "=" * max(0, 66 - len(title)))


def eager_story():
    import tracegrad as tg

    _section("1. eager define-by-run autograd")
    a, b, c, d = (tg.tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0, 4.0))
    x = a + b
    y = c * d
    z = x + y
    print(f"x = a + b = {x.item():g}   grad_fn={x.grad_fn.name()}")
    print(f"y = c * d = {y.item():g}  grad_fn={y.grad_fn.name()}")
    print(f"z = x + y = {z.item():g}  grad_fn={z.grad_fn.name()}")
    z.backward()
    print("z.backward():", _grads(a=a, b=b, c=c, d=d))
    z2 = (a + b) + c * d
    z2.backward()
    print("again, without zeroing (accumulates):", _grads(a=a, b=b, c=c, d=d))
    tg.zero_grad([a, b, c, d])
    print("after zero_grad:", _grads(a=a, b=b, c=c, d=d))
    return tg


def _grads(**ts):
    return ", ".join(f"{k}.grad={float(t.grad.item()):g}" if t.grad is not None else f"{k}.grad=None"
                     for k, t in ts.items())


def branchy(a, b):
    if a.item() > 0:
        x = a + b
    else:
        x = a - b
    return x * 2


def control_flow_story(tg):
    _section("2. data-dependent Python control flow")
    for av in (1.0, -1.0):
        a, b = tg.tensor(av, requires_grad=True), tg.tensor(2.0, requires_grad=True)
        branchy(a, b).backward()
        print(f"a = {av:+g}: a.grad = {a.grad.item():g}, b.grad = {b.grad.item():g}")


def loss(w, x):
    return np.mean(np.tanh(x @ w))


def trace_story(tg):
    _section("3. the same code traced to IR (plain numpy calls, no edits)")
    rng = np.random.default_rng(0)
    w, x = rng.standard_normal(3), rng.standard_normal((4, 3))
    print(tg.trace(loss)(w, x))
    _section("4. its gradient as a graph")
    print(tg.trace(tg.grad(loss))(w, x))
    _section("5. guards: the branchy function traced at a = 1")
    print(tg.trace(branchy)(np.float64(1.0), np.float64(2.0)))
    return w, x


def compiled_story(tg, w, x):
    _section("6. compiled with LLVM: eager vs native")
    f = tg.compile_grad(loss)
    value, (gw, gx) = f(w, x)
    tw, tx = tg.tensor(w, requires_grad=True), tg.tensor(x, requires_grad=True)
    ev = loss(tw, tx)
    ev.backward()
    print(f"value   eager {ev.item():.12f}  compiled {float(value):.12f}")
    print(f"grad w  max |eager - compiled| = {np.max(np.abs(tw.grad.numpy() - gw)):.2e}")
    print(f"grad x  max |eager - compiled| = {np.max(np.abs(tx.grad.numpy() - gx)):.2e}")
    print("fused kernels:\n" + f.ir("kernels"))
    g = tg.compile_grad(branchy)
    for av in (1.0, -1.0):
        val, (ga, gb) = g(np.float64(av), np.float64(2.0))
        print(f"compiled branchy at a = {av:+g}: value {float(val):g}, a.grad {float(ga):g}, b.grad {float(gb):g}")
    for entry in g.cache_info():
        print("  specialization:", entry["reason"])


def demo():
    tg = eager_story()
    control_flow_story(tg)
    w, x = trace_story(tg)
    compiled_story(tg, w, x)


def main(argv=None):
    """The command line (tracegrad/cli.py); no command runs the demo."""
    from .cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
