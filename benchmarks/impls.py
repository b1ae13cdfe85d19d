"""One adapter per implementation: how to build a value-and-gradient call for a workload.

An adapter's ``build(workload, inputs)`` returns a zero-argument callable that evaluates the
loss and its gradients once and waits for the result (jax dispatches asynchronously). Input
conversion (``jax.device_put``, ``torch.from_numpy``) happens in ``build``, so it counts in
the first call but not in the steady state. ``unpack`` turns that callable's output into
``(scalar value, tuple of numpy gradients)`` for the correctness check; it is never timed.

Peers are imported lazily, in ``probe``, so a missing peer costs nothing.
"""

from __future__ import annotations

import importlib
import types
from contextlib import contextmanager, nullcontext
from typing import Any, Callable, Sequence

import numpy as np

from benchmarks.workloads import Workload

# Workloads torch.compile does not get, with the reason shown in the table.
TORCH_COMPILE_SKIP = {
    "W7": "did not compile in 120 s on the reference machine (shared/bench/WORKLOADS.md)",
}


def split_grads(grads: Any, argnums: int | tuple[int, ...]) -> tuple:
    """Gradients as a tuple, checking the public API's form: one array for an int argnums."""
    is_seq = isinstance(grads, (tuple, list))
    if isinstance(argnums, int) and is_seq:
        raise TypeError("argnums is an int but the gradients came back as a sequence")
    if not isinstance(argnums, int) and not is_seq:
        raise TypeError("argnums is a tuple but the gradients did not come back as a tuple")
    return (grads,) if isinstance(argnums, int) else tuple(grads)


class Impl:
    name = ""            # key for --peers and the JSON output
    label = ""           # column header
    is_peer = True
    first_call_timeout: float | None = None

    def probe(self) -> str | None:
        """None when usable, else why not (the module is imported here)."""
        return None

    def not_applicable(self, wl: Workload) -> str | None:
        return wl.not_for.get(self.name)

    def skip_reason(self, wl: Workload) -> str | None:
        return None

    def entry_context(self):
        return nullcontext()

    def build(self, wl: Workload, inputs: Sequence[np.ndarray]) -> Callable[[], Any]:
        raise NotImplementedError

    def unpack(self, out: Any, wl: Workload) -> tuple[Any, tuple[np.ndarray, ...]]:
        value, grads = out
        return value, tuple(np.asarray(g) for g in split_grads(grads, wl.argnums))


def _import(name: str) -> tuple[Any, str | None]:
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # an installed but broken peer is reported, not fatal
        return None, f"cannot import {name}: {type(exc).__name__}: {exc}"


class NumpyImpl(Impl):
    name, label = "numpy", "numpy (hand grad)"

    def build(self, wl, inputs):
        return lambda: wl.numpy_vg(*inputs)

    def unpack(self, out, wl):
        value, grads = out  # the hand-written gradients are always a tuple
        return value, tuple(grads)


class JaxImpl(Impl):
    name, label = "jax", "jax.jit"

    def probe(self):
        self.jax, why = _import("jax")
        if why:
            return why
        self.jax.config.update("jax_enable_x64", True)
        self.jnp = importlib.import_module("jax.numpy")
        return None

    def build(self, wl, inputs):
        jax = self.jax
        vg = jax.jit(jax.value_and_grad(wl.loss_with(self.jnp), argnums=wl.argnums))
        args = [jax.device_put(a) for a in inputs]
        return lambda: jax.block_until_ready(vg(*args))


class AutogradImpl(Impl):
    name, label = "autograd", "autograd"

    def probe(self):
        self.autograd, why = _import("autograd")
        if why:
            return why
        self.anp = importlib.import_module("autograd.numpy")
        return None

    def build(self, wl, inputs):
        vg = self.autograd.value_and_grad(wl.loss_with(self.anp), wl.argnums)
        return lambda: vg(*inputs)


def torch_namespace(torch) -> types.ModuleType:
    """The part of the numpy namespace the workloads use, mapped onto torch."""
    def reduction(fn):
        def reduce(x, axis=None, keepdims=False):
            return fn(x) if axis is None else fn(x, dim=axis, keepdim=keepdims)
        return reduce

    ns = types.ModuleType("torch_as_numpy")
    for name in ("tanh", "exp", "log", "sin", "cos", "sqrt"):
        setattr(ns, name, getattr(torch, name))
    ns.sum, ns.mean, ns.max = reduction(torch.sum), reduction(torch.mean), reduction(torch.amax)
    return ns


class TorchImpl(Impl):
    name, label = "torch", "torch eager"

    def probe(self):
        self.torch, why = _import("torch")
        if not why:
            self.ns = torch_namespace(self.torch)
        return why

    def loss(self, wl):
        return wl.loss_with(self.ns)

    def build(self, wl, inputs):
        f = self.loss(wl)
        tensors = [self.torch.from_numpy(a) for a in inputs]
        leaves = [tensors[i].requires_grad_() for i in wl.wrt]

        def call():
            for t in leaves:
                t.grad = None
            out = f(*tensors)
            out.backward()
            return out.detach(), tuple(t.grad for t in leaves)
        return call

    def unpack(self, out, wl):
        value, grads = out
        return value.numpy(), tuple(g.numpy() for g in grads)


class TorchCompileImpl(TorchImpl):
    """torch.compile (default inductor) on the loss; backward via AOTAutograd.

    Each entry starts from a reset dynamo and an empty inductor cache directory, so the
    first call is a cold compile even when an earlier run left its cache behind.
    """
    name, label = "torch.compile", "torch.compile"

    def __init__(self, skip: dict[str, str] | None = None, timeout: float | None = 120.0):
        self.skip = TORCH_COMPILE_SKIP if skip is None else skip
        self.first_call_timeout = timeout

    def skip_reason(self, wl):
        return self.skip.get(wl.id)

    def loss(self, wl):
        return self.torch.compile(wl.loss_with(self.ns))

    @contextmanager
    def entry_context(self):
        from torch._inductor.utils import fresh_cache
        self.torch._dynamo.reset()
        try:
            with fresh_cache():
                yield
        finally:
            self.torch._dynamo.reset()


class NumbaImpl(Impl):
    name, label = "numba", "numba (hand grad)"

    def probe(self):
        self.numba, why = _import("numba")
        return why

    def not_applicable(self, wl):
        if not wl.numba_vg:
            return "no hand-written numba kernel for this workload"
        return super().not_applicable(wl)

    def build(self, wl, inputs):
        kernel = self.numba.njit(wl.numba_vg)  # a new dispatcher: nothing compiled yet
        return lambda: kernel(*inputs)

    def unpack(self, out, wl):
        return out[0], tuple(np.asarray(g) for g in out[1:])


class TracegradImpl(Impl):
    """``tracegrad.compile_grad(loss, argnums=...)`` on the plain-numpy loss.

    With ``namespace="tnp"`` the loss is rebound to ``tracegrad.numpy`` instead.
    """
    name, label, is_peer = "tracegrad", "tracegrad", False

    def __init__(self, namespace: str = "numpy"):
        self.namespace = namespace

    def probe(self):
        self.tracegrad, why = _import("tracegrad")
        if why:
            return why
        if not hasattr(self.tracegrad, "compile_grad"):
            return "tracegrad.compile_grad does not exist yet (pending)"
        self.xp = np
        if self.namespace == "tnp":
            self.xp, why = _import("tracegrad.numpy")
        return why

    def build(self, wl, inputs):
        # disk_cache=False: the first call measures a full compile, never a hit in
        # the persistent cache that the check build (or an earlier run) filled.
        f2 = self.tracegrad.compile_grad(wl.loss_with(self.xp), argnums=wl.argnums,
                                         disk_cache=False)
        return lambda: f2(*inputs)


PEER_NAMES = ("numpy", "jax", "torch", "torch.compile", "autograd", "numba")


def make_impls(peers: Sequence[str], tracegrad: bool = True, tracegrad_ns: str = "numpy",
               torch_compile_skip: dict[str, str] | None = None,
               compile_timeout: float | None = 120.0) -> list[Impl]:
    """Adapters for the chosen peers, in the table's column order, then tracegrad."""
    unknown = sorted(set(peers) - set(PEER_NAMES))
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; choose from {list(PEER_NAMES)}")
    factories = {
        "numpy": NumpyImpl, "jax": JaxImpl, "torch": TorchImpl, "autograd": AutogradImpl,
        "torch.compile": lambda: TorchCompileImpl(torch_compile_skip, compile_timeout),
        "numba": NumbaImpl,
    }
    impls = [factories[name]() for name in PEER_NAMES if name in peers]
    if tracegrad:
        impls.append(TracegradImpl(tracegrad_ns))
    return impls
