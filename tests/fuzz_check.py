"""The oracle of the fuzzer: one program, every way tracegrad can run it.

For a program of float dtype D (float32 or float64) `check_program` runs, on
both of its input sets,
  * the numpy reference (fuzz_ref) in D and in float64;
  * eager tensors: forward and `backward()` of the loss, in D and in float64;
  * `tracegrad.trace` + the reference interpreter (`ir.eval_graph`);
  * `tracegrad.jit` (the outputs) and `tracegrad.compile_grad` (loss and
    gradients): one compiled function each, called on set 0 (non-contiguous
    inputs where the program asks for them), on set 1 (new data, maybe the
    other side of a guard: a new specialization) and on set 0 again;
  * IR autodiff through the interpreter: `tracegrad.vjp` traced into one graph,
    and `tracegrad.value_and_grad`; forward mode with `tracegrad.jvp`;
and compares:
  * eager == reference (values and dtypes), interpreter == eager bit for bit;
  * jit, compile_grad, traced vjp and value_and_grad == eager, within the tolerance of D
    (forward values of edge programs exactly), and the signs of zero values agree;
  * in float64, the dot-product test <t, grad> == (L(x + eps t) - L(x - eps t)) / 2 eps
    with L the numpy reference (stop_gradient held constant), and jvp == <t, grad>;
  * for a quarter of the programs, Hessian-vector products (grad of grad) against
    differences of the eager gradient, and compile_grad of grad against the interpreter.
Compiled functions take the inputs positionally, as one dict or list (pytrees) or,
in float64 programs, 0-d inputs as Python floats; a tenth of the programs also
race two threads on one new compile_grad function.

Tolerances: |got - want| <= rtol |want| + atol max(1, max |want|) + 16 noise,
where noise is how far the same quantity computed in float32 is from float64
(max over the array; 0 for float64 programs): ill-conditioned programs get the
slack that their own rounding needs, well-conditioned ones are held to
rtol/atol.  The factor is large because one sample of the rounding error can
be small by luck while compiled code (mathlib, float64 accumulation) rounds
differently.
"""
from __future__ import annotations

import contextlib
import os
import threading
import traceback
from dataclasses import dataclass

import numpy as np

import tracegrad
import tracegrad.numpy as tnp
from tracegrad import ir
from tracegrad.ir import ops

from fuzz_ops import KNOWN_BUGS
from fuzz_ref import RefControl, RefNumpy, RefPrims

TOL = {"float32": (4e-6, 4e-6), "float64": (1e-13, 1e-13)}
FD_EPS = (1e-6, 1e-5, 1e-7)   # the dot-product test passes if one step size agrees
FD_RTOL = 1e-5
NOISE = 16   # times the float32-vs-float64 deviation: one sample of the rounding error
SET = ("", " (set 1)")        # how check names mark the second input set
# compare the signs of zero results (of forward values)
SIGNED_ZEROS = not {"sum_negative_zero", "extremum_signed_zero"} & set(KNOWN_BUGS)
# fuzz_runner gives its children a private cache directory: compiled code then goes through
# the disk cache (written by one program or child, read by later ones); elsewhere it is off.
DISK_CACHE = None if os.environ.get("TRACEGRAD_FUZZ_DISK_CACHE") else False


def run_ref(prog, mode, which=0, ns=None, args=None):
    """Reference outputs and loss of `prog` in float dtype `mode` on input set `which`."""
    f, loss = prog.build(mode, ns or RefNumpy(), RefPrims, RefControl)
    args = prog.args(mode, which) if args is None else args
    with np.errstate(all="ignore"):
        return [np.asarray(o) for o in f(*args)], np.asarray(loss(*args))


def _data(x):
    return np.asarray(getattr(x, "data", x))


def run_eager(prog, mode, which=0, args=None):
    """Eager tensors: (outputs, loss, gradients); an input the loss does not reach gets zeros."""
    f, loss = prog.build(mode, tnp, ops, tracegrad)
    args = prog.args(mode, which) if args is None else args
    xs = [tracegrad.tensor(x, requires_grad=True) for x in args]
    outs = [_data(o) for o in f(*xs)]
    value = loss(*xs)
    if getattr(value, "requires_grad", False):
        value.backward()
    grads = [x.grad.data if x.grad is not None else np.zeros_like(x.data) for x in xs]
    return outs, _data(value), grads


@dataclass
class Expected:
    """What every stage must reproduce on one input set: eager results and their noise."""
    ref: list          # numpy reference outputs (dtype D)
    outs: list         # eager outputs (D)
    loss: np.ndarray   # eager loss (D)
    grads: list        # eager gradients (D)
    grads64: list      # eager gradients in float64 (for the finite differences)
    noise_out: list
    noise_grad: list
    noise_loss: float


def expected(prog, which) -> Expected:
    mode = prog.dtype
    ref, ref64 = run_ref(prog, mode, which)[0], run_ref(prog, "float64", which)[0]
    outs, loss, grads = run_eager(prog, mode, which)
    _, loss64, grads64 = run_eager(prog, "float64", which) if mode != "float64" else (
        outs, loss, grads)
    return Expected(ref, outs, loss, grads, grads64, [_noise(a, b) for a, b in zip(ref, ref64)],
                    [_noise(a, b) for a, b in zip(grads, grads64)], _noise(loss, loss64))


def strided(x, variant):
    """`x` as a non-contiguous (or Fortran-ordered) array with the same values."""
    if x.ndim == 0 or x.size == 0:
        return x
    if variant % 2 and x.ndim >= 2:
        return np.asfortranarray(x)
    big = np.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
    big[..., ::2] = x
    return big[..., ::2]


def _bits(x):
    """The bytes of each float element along a last axis; other kinds as they are.  The
    result keeps x's shape (ascontiguousarray makes a 0-d array 1-d: undone here)."""
    shape = np.shape(x)
    x = np.ascontiguousarray(x)
    if x.dtype.kind != "f":
        return x.reshape(shape)
    return x.reshape(-1).view(np.uint8).reshape(shape + (x.dtype.itemsize,))


def mismatch(got, want, mode, noise=0.0, exact=False, signed_zeros=False, any_zero_sign=False):
    """None if `got` matches `want`, else a one-line description of the worst element.

    exact: bit for bit (signed zeros too, unless any_zero_sign); signed_zeros: within the
    tolerance, and where both are zero their signs agree.
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
    if want.size == 0:
        return None
    tol = np.zeros(want.shape)
    if exact and any_zero_sign and want.dtype.kind == "f":
        bad = got != want
    elif exact or want.dtype.kind in "biu":
        bad = _bits(got) != _bits(want)
        bad = bad.any(axis=-1) if want.dtype.kind == "f" else bad
    else:
        rtol, atol = TOL[mode]
        w = want.astype(np.float64)
        tol = rtol * np.abs(w) + atol * max(1.0, float(np.max(np.abs(w)))) + NOISE * noise
        bad = ~(np.abs(got.astype(np.float64) - w) <= tol)
        if signed_zeros:
            bad |= (got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want))
    if not bad.any():
        return None
    i = np.unravel_index(np.argmax(bad), bad.shape) if bad.ndim else ()
    return (f"{int(bad.sum())}/{bad.size} elements differ; at {list(i)}: got {got[i]!r}, "
            f"expected {want[i]!r} (tolerance {float(tol[i]):.3g})")


def primitives_of(graph) -> set:
    """Names of the primitives a graph applies, inside loop and branch bodies too."""
    names = set()
    for eqn in graph.eqns:
        names.add(eqn.prim.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple) else (param,):
                if isinstance(sub, ir.Graph):
                    names |= primitives_of(sub)
    return names


def _noise(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b))) if a.size and a.shape == b.shape else 0.0


class Checker:
    """Runs the checks of one program, collecting failures (check name, message)."""

    def __init__(self, prog):
        self.prog = prog
        self.mode = prog.dtype
        self.failures: list[tuple[str, str]] = []
        self.primitives: set[str] = set()

    @contextlib.contextmanager
    def stage(self, name):
        try:
            yield
        except Exception as e:  # an exception is a finding: report it, run the other checks
            where = traceback.extract_tb(e.__traceback__)[-1]
            self.fail(name, f"{type(e).__name__}: {e} [{where.filename}:{where.lineno}]")

    def fail(self, name, msg):
        self.failures.append((name, msg))

    def expect(self, name, got, want, noise=0.0, exact=False, signed_zeros=False):
        msg = mismatch(got, want, self.mode, noise, exact, signed_zeros)
        if msg:
            self.fail(name, msg)

    def expect_value(self, name, got, want, noise=0.0):
        """A forward value: exact in edge programs, else within the tolerance."""
        msg = mismatch(got, want, self.mode, noise, exact=self.prog.edge,
                       signed_zeros=SIGNED_ZEROS, any_zero_sign=not SIGNED_ZEROS)
        if msg:
            self.fail(name, msg)

    def expect_all(self, name, gots, wants, noises=None, exact=False, signed_zeros=False,
                   value=False):
        gots, wants = list(gots), list(wants)
        if len(gots) != len(wants):
            self.fail(name, f"{len(gots)} results, expected {len(wants)}")
            return
        for i, (g, w) in enumerate(zip(gots, wants)):
            noise = noises[i] if noises else 0.0
            if value:
                self.expect_value(f"{name}[{i}]", g, w, noise)
            else:
                self.expect(f"{name}[{i}]", g, w, noise, exact, signed_zeros)

    def run(self):
        with self.stage("reference and eager"):
            self.sets = [expected(self.prog, which) for which in (0, 1)]
        if self.failures:
            return self.failures
        for which, e in enumerate(self.sets):
            self.expect_all(f"eager outputs vs numpy{SET[which]}", e.outs, e.ref, e.noise_out,
                            value=True)
        for check in (self.check_interpreter, self.check_jit, self.check_compile_grad,
                      self.check_ir_grad, self.check_value_and_grad,
                      self.check_threads, self.check_finite_differences,
                      self.check_second_order):
            with self.stage(check.__name__[6:]):
                check()
        return self.failures

    def _args(self, which=0, first_call=False):
        xs = self.prog.args(self.mode, which)
        if not first_call:
            return xs
        return [strided(x, self.prog.seed + i) if s else x
                for i, (x, s) in enumerate(zip(xs, self.prog.strided))]

    def _functions(self):
        return self.prog.build(self.mode, tnp, ops, tracegrad)

    def check_interpreter(self):
        """trace on each set, run by ir.eval_graph; set 0's program on set 1 if its guards hold."""
        f, _ = self._functions()
        progs = [tracegrad.trace(f)(*self._args(which)) for which in (0, 1)]
        for which, prog in enumerate(progs):
            self.primitives |= primitives_of(prog.graph)
            outs = ir.eval_graph(prog.graph, *self._args(which))
            self.expect_all(f"interpreter vs eager{SET[which]}", outs, self.sets[which].outs,
                            exact=True)
        if progs[0].check_guards(*self._args(1)):
            outs = ir.eval_graph(progs[0].graph, *self._args(1))
            self.expect_all("program traced on set 0, run on set 1", outs, self.sets[1].outs,
                            exact=True)

    def _compiled(self, fn, grad):
        """jit or compile_grad of `fn`, taking the inputs in the program's call style."""
        params, style = self.prog.params, self.prog.call_style
        packed = {"dict": lambda d: fn(*(d[p] for p in params)),
                  "list": lambda xs: fn(*xs)}.get(style, fn)
        if not grad:
            return tracegrad.jit(packed, disk_cache=DISK_CACHE)
        argnums = 0 if style in ("dict", "list") else tuple(range(len(params)))
        return tracegrad.compile_grad(packed, argnums=argnums, disk_cache=DISK_CACHE)

    def _call(self, compiled, which=0, first_call=False, grad=False):
        """Call in the program's call style; gradients come back as a list in input order."""
        xs = self._args(which, first_call)
        style = self.prog.call_style
        args = ({p: x for p, x in zip(self.prog.params, xs)},) if style == "dict" else (
            (xs,) if style == "list" else xs)
        if style == "floats":
            args = [float(x) if x.ndim == 0 else x for x in xs]
        out = compiled(*args)
        if not grad:
            return out
        value, grads = out
        return value, [grads[p] for p in self.prog.params] if style == "dict" else list(grads)

    def check_jit(self):
        """One jit function called on set 0, set 1, then set 0 again (its cache)."""
        f, _ = self._functions()
        jf = self._compiled(f, grad=False)
        first = list(self._call(jf, 0, first_call=True))
        for which in (0, 1):
            got = first if which == 0 else list(self._call(jf, 1))
            e = self.sets[which]
            self.expect_all(f"jit vs eager{SET[which]}", got, e.outs, e.noise_out, value=True)
        self.expect_all("jit set 0 again vs first call", list(self._call(jf, 0)), first,
                        exact=True)

    def check_compile_grad(self):
        """One compile_grad function called on set 0, set 1, then set 0 again."""
        _, loss = self._functions()
        cg = self._compiled(loss, grad=True)
        first = self._call(cg, 0, first_call=True, grad=True)
        for which in (0, 1):
            value, grads = first if which == 0 else self._call(cg, 1, grad=True)
            e = self.sets[which]
            self.expect_value(f"compile_grad loss vs eager{SET[which]}", value, e.loss,
                              e.noise_loss)
            self.expect_all(f"compile_grad grads vs eager{SET[which]}", grads, e.grads,
                            e.noise_grad)
        value, grads = self._call(cg, 0, grad=True)
        self.expect_all("compile_grad set 0 again vs first call", [value, *grads],
                        [first[0], *first[1]], exact=True)

    def check_threads(self):
        """Two threads call one new compile_grad function at once, on set 0 and on set 1."""
        if not self.prog.threads:
            return
        _, loss = self._functions()
        cg = self._compiled(loss, grad=True)
        results = [None, None]

        def call(which):
            try:
                results[which] = self._call(cg, which, grad=True)
            except Exception as e:  # reported below, by the main thread
                results[which] = e

        threads = [threading.Thread(target=call, args=(which,)) for which in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for which, (r, e) in enumerate(zip(results, self.sets)):
            if isinstance(r, Exception):
                raise r
            self.expect(f"threaded compile_grad loss vs eager{SET[which]}", r[0], e.loss,
                        e.noise_loss)
            self.expect_all(f"threaded compile_grad grads vs eager{SET[which]}", r[1], e.grads,
                            e.noise_grad)

    def check_ir_grad(self):
        """Reverse mode on the IR: vjp traced into one graph, run by the interpreter."""
        _, loss = self._functions()

        def value_and_pullback(*xs):
            value, pullback = tracegrad.vjp(loss, *xs)
            return value, pullback(tnp.ones_like(value))

        for which, e in enumerate(self.sets):
            traced = tracegrad.trace(value_and_pullback)(*self._args(which))
            self.primitives |= primitives_of(traced.graph)
            value, grads = traced(*self._args(which))
            self.expect(f"traced vjp loss vs eager{SET[which]}", value, e.loss, e.noise_loss)
            self.expect_all(f"traced vjp grads vs eager{SET[which]}", grads, e.grads,
                            e.noise_grad)

    def check_value_and_grad(self):
        _, loss = self._functions()
        argnums = tuple(range(len(self.prog.inputs)))
        for which, e in enumerate(self.sets):
            value, grads = tracegrad.value_and_grad(loss, argnums=argnums)(*self._args(which))
            self.expect(f"value_and_grad loss vs eager{SET[which]}", value, e.loss, e.noise_loss)
            self.expect_all(f"value_and_grad grads vs eager{SET[which]}", grads, e.grads,
                            e.noise_grad)

    def check_finite_differences(self):
        """Dot-product test and jvp on set 0, in float64 (float32 parts run in float64);
        not for edge programs, which sit on kinks."""
        p, grads64 = self.prog, self.sets[0].grads64
        if p.edge:
            return
        xs = p.args("float64")
        rng = np.random.default_rng(p.seed + 7)
        ts = [rng.standard_normal(x.shape) for x in xs]
        ns = RefNumpy()
        with ns.recording() as frozen:
            run_ref(p, "float64", ns=ns, args=xs)

        def ref_loss(args):
            with ns.freeze(frozen):  # stop_gradient: its operand is a constant
                return float(run_ref(p, "float64", ns=ns, args=args)[1])

        lhs = self._dot_product_test("dot-product test (float64)", grads64, ref_loss, xs, ts)
        _, loss = p.build("float64", tnp, ops, tracegrad)
        _, tangent = tracegrad.jvp(loss, xs, ts)
        scale = sum(float(np.sum(np.abs(t * g))) for t, g in zip(ts, grads64))
        if not abs(float(tangent) - lhs) <= 1e-9 * (abs(lhs) + scale) + 1e-12:
            self.fail("jvp vs <t, grad> (float64)",
                      f"jvp gives {float(tangent)!r}, <t, grad> = {lhs!r}")

    def _dot_product_test(self, name, grads, fn, xs, ts):
        """<t, grads> against central differences of fn along t; returns <t, grads>."""
        lhs = sum(float(np.vdot(t, g)) for t, g in zip(ts, grads))
        scale = sum(float(np.sum(np.abs(t * g))) for t, g in zip(ts, grads))
        base = abs(fn(xs)) + 1.0
        fds = []
        for eps in FD_EPS:
            plus, minus = (fn([x + sign * eps * t for x, t in zip(xs, ts)]) for sign in (1, -1))
            fd = (plus - minus) / (2 * eps)
            fds.append(fd)
            if abs(lhs - fd) <= FD_RTOL * (abs(lhs) + scale) + 1e-13 * base / eps:
                return lhs
        self.fail(name, f"<t, grad> = {lhs!r}, finite differences give "
                        f"{[round(fd, 12) for fd in fds]} for eps {list(FD_EPS)}")
        return lhs

    def _gradient_functions(self, mode, us):
        """(x -> grad loss(x), x -> <grad loss(x), u>) in float dtype `mode`."""
        _, loss = self.prog.build(mode, tnp, ops, tracegrad)
        grad = tracegrad.grad(loss, argnums=tuple(range(len(us))))
        us = [u.astype(mode) for u in us]

        def directional(*xs):
            return sum(tnp.sum(g * u) for g, u in zip(grad(*xs), us))
        return grad, directional

    def check_second_order(self):
        """Hessian-vector products: forward-over-reverse (jvp of grad) against differences of
        the eager gradient in float64; reverse-over-reverse (grad of <grad, u>) against it
        where reverse mode can be nested (not through while_loop, by design); compiled
        against the interpreter in D."""
        p = self.prog
        if not p.second_order:
            return
        rng = np.random.default_rng(p.seed + 11)
        us = [rng.standard_normal(x.shape) for x in p.inputs]
        ts = [rng.standard_normal(x.shape) for x in p.inputs]
        argnums = tuple(range(len(us)))
        xs = p.args("float64")
        grad64, directional64 = self._gradient_functions("float64", us)
        hv = tracegrad.jvp(grad64, xs, us)[1]

        def eager_directional(args):
            grads = run_eager(p, "float64", args=args)[2]
            return sum(float(np.vdot(g, u)) for g, u in zip(grads, us))

        self._dot_product_test("Hessian-vector product, jvp of grad (float64)", hv,
                               eager_directional, xs, ts)
        nested_reverse = "while" not in self.primitives
        if nested_reverse:
            hv_rev = tracegrad.grad(directional64, argnums=argnums)(*xs)
            self.expect_all("grad of grad vs jvp of grad (float64)", hv_rev, hv)
        grad, directional = self._gradient_functions(self.mode, us)
        args = self._args(0)
        if nested_reverse:
            want = tracegrad.value_and_grad(directional, argnums=argnums)(*args)[1]
            got = tracegrad.compile_grad(directional, argnums=argnums,
                                         disk_cache=DISK_CACHE)(*args)[1]
        else:
            usd = [u.astype(self.mode) for u in us]
            want = tracegrad.jvp(grad, args, usd)[1]
            got = tracegrad.jit(lambda *a: tracegrad.jvp(grad, a, usd)[1],
                                disk_cache=DISK_CACHE)(*args)
        self.expect_all("compiled second order vs interpreter", got, want,
                        [_noise(w, h) for w, h in zip(want, hv)])


def check_program(prog):
    """(failures, primitives seen) of one program; failures are (check, message) pairs."""
    c = Checker(prog)
    c.run()
    return c.failures, sorted(c.primitives)
