"""The oracle of the fuzzer: one program, every way tracegrad can run it.

For a program of float dtype D (float32 or float64) `check_program` runs
  * the numpy reference (fuzz_ref) in D and in float64;
  * eager tensors: forward and `backward()` of the loss, in D and in float64;
  * `tracegrad.trace` + the reference interpreter (`ir.eval_graph`);
  * `tracegrad.jit` (the outputs) and `tracegrad.compile_grad` (loss and
    gradients), each called twice (checked entry, then the fast path), the
    first call with non-contiguous inputs where the program asks for them;
  * `tracegrad.value_and_grad` (IR autodiff through the interpreter) and
    `tracegrad.jvp` (forward mode);
and compares:
  * eager == reference (values and dtypes), interpreter == eager bit for bit;
  * jit, compile_grad and value_and_grad == eager, within the tolerance of D;
  * in float64, the dot-product test <t, grad> == (L(x + eps t) - L(x - eps t)) / 2 eps
    with L the numpy reference (stop_gradient held constant), and jvp == <t, grad>.

Tolerances: |got - want| <= rtol |want| + atol max(1, max |want|) + 4 noise,
where noise is how far the same quantity computed in float32 is from float64
(0 for float64 programs): ill-conditioned programs get the slack that their
own rounding needs, well-conditioned ones are held to rtol/atol.
"""
from __future__ import annotations

import contextlib
import traceback

import numpy as np

import tracegrad
import tracegrad.numpy as tnp
from tracegrad import ir
from tracegrad.ir import ops

from fuzz_ops import KNOWN_BUGS
from fuzz_ref import RefNumpy, RefPrims

TOL = {"float32": (4e-6, 4e-6), "float64": (1e-13, 1e-13)}
FD_EPS = (1e-6, 1e-5, 1e-7)   # the dot-product test passes if one step size agrees
FD_RTOL = 1e-5


def run_ref(prog, mode, ns=None, args=None):
    """Reference outputs and loss of `prog` in float dtype `mode`."""
    f, loss = prog.build(mode, ns or RefNumpy(), RefPrims)
    args = prog.args(mode) if args is None else args
    with np.errstate(all="ignore"):
        return [np.asarray(o) for o in f(*args)], np.asarray(loss(*args))


def _data(x):
    return np.asarray(getattr(x, "data", x))


def run_eager(prog, mode):
    """Eager tensors: (outputs, loss, gradients); an input the loss does not reach gets zeros."""
    f, loss = prog.build(mode, tnp, ops)
    xs = [tracegrad.tensor(x, requires_grad=True) for x in prog.args(mode)]
    outs = [_data(o) for o in f(*xs)]
    value = loss(*xs)
    if getattr(value, "requires_grad", False):
        value.backward()
    grads = [x.grad.data if x.grad is not None else np.zeros_like(x.data) for x in xs]
    return outs, _data(value), grads


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
    return x.view(np.uint8).reshape(x.shape + (x.dtype.itemsize,)) if x.dtype.kind == "f" else x


def mismatch(got, want, mode, noise=0.0, exact=False, signed_zeros=False):
    """None if `got` matches `want`, else a one-line description of the worst element.

    exact: bit for bit (signed zeros too); signed_zeros: where both are zero, their signs agree.
    """
    got, want = np.asarray(got), np.asarray(want)
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"got {got.dtype}{list(got.shape)}, expected {want.dtype}{list(want.shape)}"
    if want.size == 0:
        return None
    tol = np.zeros(want.shape)
    if exact or want.dtype.kind in "biu":
        bad = _bits(np.ascontiguousarray(got)) != _bits(np.ascontiguousarray(want))
        bad = bad.any(axis=-1) if want.dtype.kind == "f" else bad
    else:
        rtol, atol = TOL[mode]
        w = want.astype(np.float64)
        tol = rtol * np.abs(w) + atol * max(1.0, float(np.max(np.abs(w)))) + 4 * noise
        bad = ~(np.abs(got.astype(np.float64) - w) <= tol)
        if signed_zeros:
            bad |= (got == 0) & (want == 0) & (np.signbit(got) != np.signbit(want))
    if not bad.any():
        return None
    i = np.unravel_index(np.argmax(bad), bad.shape) if bad.ndim else ()
    return (f"{int(bad.sum())}/{bad.size} elements differ; at {list(i)}: got {got[i]!r}, "
            f"expected {want[i]!r} (tolerance {float(tol[i]):.3g})")


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

    def expect_all(self, name, gots, wants, noises=None, exact=False, signed_zeros=False):
        gots, wants = list(gots), list(wants)
        if len(gots) != len(wants):
            self.fail(name, f"{len(gots)} results, expected {len(wants)}")
            return
        for i, (g, w) in enumerate(zip(gots, wants)):
            self.expect(f"{name}[{i}]", g, w, noises[i] if noises else 0.0, exact, signed_zeros)

    def run(self):
        p, mode = self.prog, self.mode
        with self.stage("reference"):
            self.ref, _ = run_ref(p, mode)
            self.ref64, _ = run_ref(p, "float64")
        with self.stage("eager"):
            self.outs, self.loss, self.grads = run_eager(p, mode)
            self.outs64, self.loss64, self.grads64 = (
                run_eager(p, "float64") if mode != "float64" else (self.outs, self.loss, self.grads))
        if self.failures:
            return self.failures
        self.noise_out = [_noise(a, b) for a, b in zip(self.ref, self.ref64)]
        self.noise_grad = [_noise(a, b) for a, b in zip(self.grads, self.grads64)]
        self.noise_loss = _noise(self.loss, self.loss64)
        self.expect_all("eager outputs vs numpy", self.outs, self.ref, self.noise_out)
        for check in (self.check_interpreter, self.check_jit, self.check_compile_grad,
                      self.check_ir_grad, self.check_finite_differences):
            with self.stage(check.__name__[6:]):
                check()
        return self.failures

    def _args(self, first_call):
        xs = self.prog.args(self.mode)
        if not first_call:
            return xs
        return [strided(x, self.prog.seed + i) if s else x
                for i, (x, s) in enumerate(zip(xs, self.prog.strided))]

    def check_interpreter(self):
        f, _ = self.prog.build(self.mode, tnp, ops)
        graph = tracegrad.trace(f)(*self._args(False)).graph
        self.primitives |= {e.prim.name for e in graph.eqns}
        outs = ir.eval_graph(graph, *self._args(False))
        self.expect_all("interpreter vs eager", outs, self.outs, exact=True)

    def check_jit(self):
        f, _ = self.prog.build(self.mode, tnp, ops)
        jf = tracegrad.jit(f, disk_cache=False)
        first = list(jf(*self._args(True)))
        self.expect_all("jit vs eager", first, self.outs, self.noise_out, signed_zeros=True)
        self.expect_all("jit second call vs first", list(jf(*self._args(False))), first, exact=True)

    def check_compile_grad(self):
        _, loss = self.prog.build(self.mode, tnp, ops)
        argnums = tuple(range(len(self.prog.inputs)))
        cg = tracegrad.compile_grad(loss, argnums=argnums, disk_cache=False)
        value, grads = cg(*self._args(True))
        self.expect("compile_grad loss vs eager", value, self.loss, self.noise_loss,
                    signed_zeros="sum_negative_zero" not in KNOWN_BUGS)
        self.expect_all("compile_grad grads vs eager", grads, self.grads, self.noise_grad)
        value2, grads2 = cg(*self._args(False))
        self.expect_all("compile_grad second call vs first", [value2, *grads2], [value, *grads],
                        exact=True)

    def check_ir_grad(self):
        _, loss = self.prog.build(self.mode, tnp, ops)
        argnums = tuple(range(len(self.prog.inputs)))
        value, grads = tracegrad.value_and_grad(loss, argnums=argnums)(*self._args(False))
        self.expect("value_and_grad loss vs eager", value, self.loss, self.noise_loss)
        self.expect_all("value_and_grad grads vs eager", grads, self.grads, self.noise_grad)

    def check_finite_differences(self):
        """Dot-product test and jvp, in float64 (the program's float32 parts run in float64)."""
        p = self.prog
        xs = p.args("float64")
        rng = np.random.default_rng(p.seed + 7)
        ts = [rng.standard_normal(x.shape) for x in xs]
        lhs = sum(float(np.vdot(t, g)) for t, g in zip(ts, self.grads64))
        scale = sum(float(np.sum(np.abs(t * g))) for t, g in zip(ts, self.grads64))
        fds = [self._fd(xs, ts, eps) for eps in FD_EPS]
        if not any(abs(lhs - fd) <= FD_RTOL * (abs(lhs) + scale) + tol for fd, tol in fds):
            self.fail("dot-product test (float64)",
                      f"<t, grad> = {lhs!r}, finite differences give "
                      f"{[round(fd, 12) for fd, _ in fds]} for eps {list(FD_EPS)}")
        _, loss = p.build("float64", tnp, ops)
        _, tangent = tracegrad.jvp(loss, xs, ts)
        if not abs(float(tangent) - lhs) <= 1e-9 * (abs(lhs) + scale) + 1e-12:
            self.fail("jvp vs <t, grad> (float64)", f"jvp gives {float(tangent)!r}, <t, grad> = {lhs!r}")

    def _fd(self, xs, ts, eps):
        """(central difference of the reference loss along ts, its rounding error bound)."""
        ns = RefNumpy()
        with ns.recording() as frozen:
            base = run_ref(self.prog, "float64", ns, xs)[1]
        values = []
        for sign in (1, -1):
            with ns.freeze(frozen):
                moved = [x + sign * eps * t for x, t in zip(xs, ts)]
                values.append(float(run_ref(self.prog, "float64", ns, moved)[1]))
        rounding = 1e-13 * (abs(float(base)) + 1.0) / eps
        return (values[0] - values[1]) / (2 * eps), rounding


def check_program(prog):
    """(failures, primitives seen) of one program; failures are (check, message) pairs."""
    c = Checker(prog)
    c.run()
    return c.failures, sorted(c.primitives)
