"""`jit` and `compile_grad`: trace, transform, fuse and compile to native code.

A compiled function keeps, per input signature (shapes, dtypes, static
arguments), a short list of specializations.  Each one is native code for the
traced program plus the guards recorded while tracing it; the native code
returns the guard values as extra outputs, so a call checks its guards after
one native call.  When a data-dependent Python branch goes the other way, the
guards fail, the function is traced again on these inputs and a second
specialization is compiled beside the first.

Limits: one guard may fail `max_specializations` times (each failure compiles a
new specialization), and one signature holds at most `max_specializations`
specializations.  Past either limit, calls that no specialization serves run
uncompiled (`fun(*args)`, or value and gradients through the reference
interpreter), as torch.compile falls back to eager past its recompile limit;
one `SpecializationLimitWarning` names the guard's source line, or points at
the call of a signature that reached its limit.  Float guards tolerate the
rounding of compiled sums (tracegrad/guards.py).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import itertools
import threading
import time
import types
import warnings
from dataclasses import dataclass, field

import numpy as np

from tracegrad.ir import TRACES, Graph, debug_checks, format_graph, user_source_location
from tracegrad.passes.autodiff import grad_graph
from tracegrad.passes.manager import cleanup, run_pipeline
from tracegrad.passes.fusion import fuse
from tracegrad.passes import reroll as rerolling
from tracegrad.passes.slab_writes import concat_writes
from tracegrad.codegen import compile_graph, llvm_util, SignatureMismatch
from tracegrad.tracer import (Tensor, is_grad_enabled, make_graph, tree_flatten, tree_map,
                              tree_unflatten)

from .guards import GuardMismatch, advice, location, location_of, settle
from .dumps import LOG, dump_specialization, log_topics
from .signature import ArgNames, changes, dynamic_positions, normalize_args
from .transforms import aux_count, value_and_grad

DEFAULT_MAX_SPECIALIZATIONS = 8


class InPlaceArgumentWarning(UserWarning):
    """A compiled function wrote into an array argument in place without returning it."""


class SpecializationLimitWarning(UserWarning):
    """A compiled function reached `max_specializations` for a guard or a signature."""


_SERIALS = itertools.count()


@contextlib.contextmanager
def collector_paused():
    """While a specialization compiles, Python's cyclic garbage collector looks only at
    objects made since it began (`gc.freeze`, undone after; left alone if the application
    froze objects itself).  A compile makes tens of thousands of short-lived objects
    (graphs, llvmlite's IR builders) whose allocations start collections, and in a process
    whose heap holds torch or jax one full collection took about 100 ms, twice the compile
    it interrupted.  The compile's own garbage is still collected as it goes; the young
    garbage found is collected first (frozen, it would wait for a full collection)."""
    if gc.get_freeze_count():
        yield
        return
    gc.collect(1)
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class Specialization:
    """One compiled version of the function, valid while its guards hold."""

    native: object  # codegen CompiledProgram
    n_outputs: int
    out_tree: object
    guards: list
    reason: str
    stages: dict = field(default_factory=dict)
    compile_seconds: float = 0.0
    hits: int = 0
    direct: bool = False  # every argument is an array or a Python float (see `lift`)
    n_args: int = -1
    floats: tuple = ()  # positions of Python float arguments
    arg_texts: tuple = ()  # each argument's type as `SpecArgs.arg_texts` writes it
    front_seconds: dict = field(default_factory=dict)  # trace, gradient, cleanup, first_run
    # array leaves written in place: their final values are the outputs after the
    # function's own (n_outputs counts both), written back after each call
    writes: tuple = ()
    serial: int = field(default_factory=lambda: next(_SERIALS))  # creation order

    @property
    def stage_seconds(self) -> dict:
        """Where the compile's time went: the front end's stages, codegen's (key, plan,
        lower, emit, optimize, object, entry, link, ...), then the first run."""
        front = dict(self.front_seconds)
        last = {"first_run": front.pop("first_run")} if "first_run" in front else {}
        return {**front, **self.native.stage_seconds, **last}

    def __post_init__(self):
        self.fast = self.native.fast  # None without the fast-call ABI
        self.mismatch = self.native.MISMATCH
        self.direct = self.direct and self.fast is not None
        self.unflatten = _unflattener(self.out_tree, self.n_outputs - len(self.writes))

    def write_back(self, leaves, outs) -> bool:
        """NumPy's in-place semantics for the arrays the function wrote into: the final
        values into the caller's arrays and tensors (`leaves`: the call's leaf objects).
        Read-only targets raise NumPy's error before anything is written.  False, with
        nothing written, when a target shares memory with another argument: the trace
        took them for independent arrays, so the caller runs the function uncompiled."""
        targets = [(leaves[leaf], k) for k, leaf in enumerate(self.writes)
                   if _writable(leaves[leaf])]
        if any(_aliases(self.writes[k], leaves) for _, k in targets):
            return False
        if any(isinstance(t, np.ndarray) and not t.flags.writeable for t, _ in targets):
            raise ValueError("assignment destination is read-only (the compiled function "
                             "writes into this argument in place)")
        first = self.n_outputs - len(self.writes)
        for target, k in targets:
            if isinstance(target, Tensor):  # (one that records autograd ran eagerly)
                target[...] = outs[first + k]
            else:
                np.copyto(target, outs[first + k], casting="unsafe")
        return True

    def lift(self, args):
        """`args` with the Python floats as 0-d arrays, or None if one of them is not a
        float (a float64 array there would be strongly typed: another signature)."""
        args = list(args)
        for i in self.floats:
            if type(args[i]) is not float:
                return None
            args[i] = np.array(args[i])
        return args

    def failed_guard(self, outs):
        """The first guard whose value (returned after the outputs) differs, or None."""
        return next((g for g, v in self._guard_values(outs) if not g.holds(v)), None)

    def _guard_values(self, outs):
        return zip(self.guards, outs[self.n_outputs:])

    def run(self, arrays):
        """(outputs, None), or (None, (the guard that failed, its new value))."""
        outs = self.native(*arrays)
        for guard, value in (self._guard_values(outs) if self.guards else ()):
            if not guard.holds(value):
                return None, (guard, value)
        return outs[:self.n_outputs], None


def static_arguments(arg_names, static_argnums, static_argnames) -> tuple:
    """(positions, names) of the static parameters, each completed from the other through
    the function's signature (`ArgNames.positional`) where it has one, as jax.jit does."""
    nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    positional = arg_names.positional()
    if positional is None:  # a builtin or callable without a signature
        return nums, frozenset(names)
    if not arg_names.keywords:  # (the keyword variant's own positions are past the user's)
        _check_static(arg_names, positional, nums, names)
    nums += tuple(i for i, name in enumerate(positional) if name in names and i not in nums)
    names += tuple(positional[i] for i in nums if 0 <= i < len(positional))
    return nums, frozenset(names)


def _check_static(arg_names, positional, nums, names) -> None:
    """A ValueError, as jax.jit's, for a static name the function has no parameter of, or a
    static position past its positional parameters (unless it takes **kwargs or *args):
    a misspelt name would otherwise be ignored."""
    params = arg_names._signature().parameters.values()
    kinds = {p.kind for p in params}
    known = {p.name for p in params if p.kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                      inspect.Parameter.VAR_KEYWORD)}
    unknown = sorted(set(names) - known)
    if unknown and inspect.Parameter.VAR_KEYWORD not in kinds:
        raise ValueError(f"{arg_names.fname}: static_argnames names {unknown}, which are not "
                         f"parameters of {arg_names.signature()}")
    past = [i for i in nums if not -len(positional) <= i < len(positional)]
    if past and inspect.Parameter.VAR_POSITIONAL not in kinds:
        raise ValueError(f"{arg_names.fname}: static_argnums={tuple(nums)}, but "
                         f"{arg_names.signature()} takes {len(positional)} positional arguments")


def _as_output(leaf):
    """A leaf of an uncompiled call's result as compiled code returns it: Python and numpy
    scalars as 0-d arrays (a specialization returns arrays whichever way it was called)."""
    return np.asarray(leaf) if isinstance(leaf, (bool, int, float, np.generic)) else leaf


def _records_autograd(args) -> bool:
    """Whether grad mode is on and an argument holds a tensor that requires grad."""
    return is_grad_enabled() and any(isinstance(leaf, Tensor) and leaf.requires_grad
                                     for leaf in tree_flatten(args)[0])


class CompiledFunction:
    """The callable returned by `jit` / `compile_grad`; see their docstrings."""

    _tg_static_callable = True  # a pure function of its arguments: static as an argument (signature.py)

    def __init__(self, fun, static_argnums=(), grad_argnums=None, grad=False,
                 max_specializations=DEFAULT_MAX_SPECIALIZATIONS, disk_cache=None,
                 has_aux=False, static_argnames=()):
        if not callable(fun):
            raise TypeError(f"expected a function to compile, got {type(fun).__name__} {fun!r:.60}")
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.has_aux = has_aux
        self._names = ArgNames(fun)
        self.static_argnums, self.static_argnames = static_arguments(self._names, static_argnums,
                                                                     static_argnames)
        self.grad = grad
        self.grad_argnums = grad_argnums
        self.max_specializations = max_specializations
        # Positions named in argnums: a Python number there is differentiated, so it is an array.
        nums = () if grad_argnums is None else (
            (grad_argnums,) if isinstance(grad_argnums, int) else tuple(grad_argnums))
        self._grad_positions = frozenset(nums)
        self.disk_cache = disk_cache
        self._cache: dict[tuple, list[Specialization]] = {}
        self._last: Specialization | None = None
        self._guard_failures: dict[str, int] = {}  # guard (kind at file:line) -> failures
        self._given_up: set[str] = set()  # guards past the limit: no more compiling for them
        self._warned_signatures: set[tuple] = set()
        # Guards the cache and the limit counters: calls that miss take it, so that one
        # thread compiles a signature while the others wait and then find it.  Hits
        # read the cache without it (`hits` is a statistic, not exact under threads).
        self._lock = threading.RLock()
        llvm_util.free_after_fork(self, "_lock")
        self._keywords = {}  # positional count -> the variant taking keywords (_with_keywords)
        self._trailing = 0     # 2 in such a variant: its last arguments hold the keywords
        self._warned_eager = False
        self._mismatches: dict[tuple, int] = {}  # signature -> compiles that hit GuardMismatch

    # -- copies and pickles ----------------------------------------------------
    # A compiled function is a function: copies are itself (Python copies functions so), and
    # a pickle carries the function and the options; the loading process compiles again.
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        options = dict(static_argnums=self.static_argnums, grad_argnums=self.grad_argnums,
                       grad=self.grad, max_specializations=self.max_specializations,
                       disk_cache=self.disk_cache, has_aux=self.has_aux,
                       static_argnames=self.static_argnames)
        return _rebuild_compiled, (self.fun, options)

    # -- calling ---------------------------------------------------------------
    def __get__(self, instance, owner=None):
        """A method: `obj.f(x)` calls this function with `obj` first (as a plain function's
        attribute would); `static_argnums=0` makes `obj` static."""
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, *args, **kwargs):
        if kwargs:
            static = tuple(sorted((k, v) for k, v in kwargs.items()
                                  if k in self.static_argnames or _python_int(v)))
            dynamic = {k: v for k, v in kwargs.items()
                       if k not in self.static_argnames and not _python_int(v)}
            return self._with_keywords(len(args))(*args, static, dynamic)
        # Fast path: the native builtin checks types, dtypes, shapes and layout
        # itself and hands back its sentinel on any mismatch.
        spec = self._last
        if spec is not None and spec.direct and len(args) == spec.n_args:
            arrays = spec.lift(args) if spec.floats else args
            outs = spec.fast(*arrays) if arrays is not None else spec.mismatch
            if outs is not spec.mismatch and (not spec.guards or spec.failed_guard(outs) is None):
                spec.hits += 1
                if spec.writes and not spec.write_back(args, outs):
                    return tree_map(_as_output, self._uncompiled(args))
                return spec.unflatten(outs)
        return self._call_checked(args)

    def _with_keywords(self, n: int) -> "CompiledFunction":
        """This function, called with `n` positional arguments, compiled with its keyword
        arguments as two trailing ones: those named static (`static_argnames`, or a
        parameter whose position is in `static_argnums`) as one static tuple of items,
        the others as a dict, dynamic as in jax.jit (floats and arrays traced, ints
        static) and never differentiated."""
        variant = self._keywords.get(n)
        if variant is None:
            fun = self.fun

            def with_keywords(*args):
                *positional, static, keywords = args
                return fun(*positional, **dict(static), **keywords)
            with_keywords.__name__ = getattr(fun, "__name__", "fun")
            with_keywords.__qualname__ = getattr(fun, "__qualname__", with_keywords.__name__)
            with_keywords._tg_keywords_of = fun  # signature.py names the user's parameters
            statics = tuple(i for i in self.static_argnums if i < n) + (n,)
            variant = CompiledFunction(with_keywords, statics, self.grad_argnums, self.grad,
                                       self.max_specializations, self.disk_cache, self.has_aux)
            variant._trailing = 2
            variant = self._keywords.setdefault(n, variant)
        return variant

    def _call_checked(self, args):
        if TRACES.traces:  # called while tracing another function: trace this one inline
            return self._uncompiled(args)
        if not self.grad and _records_autograd(args):
            return self._eager(args)
        spec_args = normalize_args(args, self.static_argnums, self._names, self._grad_positions)
        seen = tuple(self._cache.get(spec_args.key, ()))  # a snapshot: others may add to it
        hit, outs, failed = self._run_cached(seen, spec_args)
        if hit is not None:
            return self._finish(hit, spec_args, args, outs)
        with self._lock:  # one thread compiles a signature; the others then find it cached
            specs = self._cache.setdefault(spec_args.key, [])
            if len(specs) != len(seen):  # specializations are only ever added under the lock
                hit, outs, failed = self._run_cached(specs, spec_args)
            if hit is None and self._may_compile(specs, failed, spec_args):
                hit, outs = self._specialize(spec_args, specs, failed)
        if hit is None:  # outside the lock: it runs the user's code
            return tree_map(_as_output, self._uncompiled(args))
        return self._finish(hit, spec_args, args, outs)

    def _finish(self, spec, spec_args, args, outs):
        """The call's result, after writing back what the function wrote into its
        arguments (or, where two of them share memory, the function run uncompiled)."""
        if spec.writes and not spec.write_back(spec_args.leaf_objects(), outs):
            return tree_map(_as_output, self._uncompiled(args))
        return spec.unflatten(outs)

    def _run_cached(self, specs, spec_args):
        """(spec, its outputs, None) from the first specialization whose guards hold,
        else (None, None, (guard, new value)) of the guard that failed in the most recent one."""
        failed = None
        for spec in tuple(specs):
            try:
                outs, why = spec.run(spec_args.arrays)
            except SignatureMismatch as e:  # cannot happen after normalize_args; be loud
                raise TypeError(f"{self._fname()}: {e}") from None
            if outs is not None:
                spec.hits += 1
                self._last = spec
                return spec, outs, None
            failed = failed or why
        return None, None, failed

    def _may_compile(self, specs, failed, spec_args) -> bool:
        """Whether a call that no specialization serves may compile a new one.

        A guard may fail `max_specializations` times, and one signature hold
        `max_specializations` specializations; past either limit the call runs
        uncompiled (as torch.compile does past its recompile limit), and one
        warning says which guard or signature reached it.
        """
        where = None if failed is None else _where(failed[0])
        if where in self._given_up or \
                self._mismatches.get(spec_args.key, 0) >= self.max_specializations:
            return False
        n = self._guard_failures.get(where, 0) + 1
        if where is not None and n >= self.max_specializations:
            self._given_up.add(where)
            self._warn_guard(failed[0], n)
            return False
        if len(specs) >= self.max_specializations:
            self._warn_signature(spec_args)
            return False
        if where is not None:
            self._guard_failures[where] = n
        return True

    def _warn_guard(self, guard, n):
        message = (f"{self._fname()}: {_where(guard)} failed on {n} calls, each needing a new "
                   f"specialization; past max_specializations={self.max_specializations} the "
                   f"function runs uncompiled when it fails. {advice(guard)}")
        _warn_at(message, location(guard))

    def _warn_signature(self, spec_args):
        if spec_args.key in self._warned_signatures:
            return
        self._warned_signatures.add(spec_args.key)
        message = (f"{self._fname()}: {self.max_specializations} specializations (max_specializations) "
                   f"for the signature {spec_args.describe()}; calls that none of them serves run "
                   "uncompiled. f.cache_info() lists the guards that made them.")
        _warn_at(message, None)

    def _eager(self, args):
        """`fun(*args)` on tensors that require grad, recorded by autograd: the native
        code has no backward nodes, and its outputs would cut the tensors' graph."""
        if not self._warned_eager:
            self._warned_eager = True
            warnings.warn(f"{self._fname()}: called with tensors that require grad, so it runs "
                          "eagerly (autograd records it); for compiled gradients use "
                          "tracegrad.compile_grad, or call it on arrays (tensor.detach())",
                          stacklevel=4)
        return self.fun(*args)

    def _uncompiled(self, args):
        """What the compiled code computes, without compiling: `fun(*args)`, or its
        value and gradients through the transforms (inlined into an enclosing trace)."""
        if not self.grad:
            return self.fun(*args)
        argnums = self.grad_argnums
        if argnums is None:
            argnums = dynamic_positions(args[:len(args) - self._trailing], self.static_argnums)
        return value_and_grad(self.fun, argnums, has_aux=self.has_aux)(*args)

    def _fname(self):
        return self._names.fname

    # -- compiling -------------------------------------------------------------
    def _specialize(self, spec_args, specs, failed):
        """Compile a specialization for these arguments; (it, its outputs for them)."""
        reason = self._reason(spec_args, failed)
        if "recompiles" in log_topics():
            LOG.info("%s: specialization %d: %s", self._fname(), self._count() + 1, reason)
        try:
            with collector_paused():
                spec, outs = self._compile(spec_args, reason)
        except GuardMismatch as e:  # compiled code decides a branch otherwise: run uncompiled
            n = self._mismatches[spec_args.key] = self._mismatches.get(spec_args.key, 0) + 1
            _warn_at(f"{e} This call runs uncompiled" + (
                "; so will the next calls of this signature that no specialization serves"
                if n >= self.max_specializations else "") + ".", None)
            return None, None
        specs.insert(0, spec)  # most recent first: data tends to repeat
        self._last = spec
        return spec, outs

    def _reason(self, spec_args, failed) -> str:
        """Why a new specialization: the guard that failed (line, old and new value), the
        arguments that changed since the latest specialization, or the first call."""
        if failed is not None:
            guard, value = failed
            return (f"guard failed at {guard.src or '<unknown line>'} ({guard.kind}): traced "
                    f"with {guard.expected.tolist()!r}, now {np.asarray(value).tolist()!r}")
        texts = spec_args.arg_texts()
        if self._last is None:
            return f"first call: ({', '.join(texts)})"
        return "signature changed: " + changes(list(self._last.arg_texts), texts, self._names)

    def _writes(self, spec_args, written) -> list:
        """The array leaves the function wrote into in place ((position, returned) pairs)
        whose final values the trace outputs, for each call to write back into the
        caller's NumPy arrays and eager tensors as NumPy would have changed them (whatever
        the leaf is on this call: a list and an array share a signature).  A compile_grad
        writes none back; it, and a call whose argument cannot take the write (a list),
        warn unless the function returns the value.  (A NumPy scalar is immutable: in
        NumPy `s += 1` rebinds a local, as here.)"""
        leaves = spec_args.leaf_objects()
        lost = [i for i, returned in written if not returned and not isinstance(
            leaves[i], np.generic) and (self.grad or not _writable(leaves[i]))]
        if lost:
            self._warn_writes(spec_args, lost)
        return [] if self.grad else [i for i, _ in written]

    def _warn_writes(self, spec_args, leaves):
        """The function wrote into arguments in place and did not return them, and the
        compiled code cannot make the caller's objects see the writes."""
        args = sorted({spec_args.position_of_leaf(i) for i in leaves})
        named = ", ".join(self._names.arg(p) for p in args)
        _warn_at(f"{self._fname()} writes into {named} in place (x[i] = v, x += v) without "
                 "returning it: a compiled function writes such values back only into the "
                 "NumPy arrays and tensors passed to tracegrad.jit, so after this call the "
                 "argument holds its old values. Return the array and rebind it (u = f(u)).",
                 None, InPlaceArgumentWarning)

    def _warn_replaced(self, pos):
        _warn_at(f"{self._fname()} changes the containers of {self._names.arg(pos)} (d[k] = "
                 "v, l.append(v)): a compiled function cannot change the caller's dicts and "
                 "lists, so after the call they hold their old entries. Update the arrays in "
                 "place (d[k] -= v, d[k][...] = v) or return the new values.", None,
                 InPlaceArgumentWarning)

    def _count(self) -> int:
        return sum(len(specs) for specs in self._cache.values())

    def _compile(self, spec_args, reason) -> Specialization:
        t0 = time.perf_counter()
        stages, clock = {}, _Clock()
        label = _label(self._fname())
        prog = make_graph(spec_args.bind(self.fun, self._warn_replaced),
                          spec_args.arrays, concrete=True,
                          on_writes=lambda written: self._writes(spec_args, written))
        graph, out_tree = prog.graph, prog.out_tree
        clock.lap("trace")
        # Stage texts are formatted on demand (f.ir, TRACEGRAD_DUMP): printing a
        # large gradient graph costs milliseconds that a first call should not pay.
        stages["traced"] = functools.partial(format_graph, graph)
        graph = concat_writes(graph)  # hs[t] = h in a Python loop: one concatenation
        if rerolling.enabled():  # Python loops unrolled by tracing become scans again
            rolled = rerolling.reroll(graph, gradient=self.grad)
            if rolled is not graph:
                graph = rolled
                stages["rerolled"] = functools.partial(format_graph, graph)
            clock.lap("reroll")
        if self.grad:
            graph, out_tree = self._gradient(graph, out_tree, spec_args)
            stages["gradient"] = functools.partial(format_graph, graph)
            clock.lap("gradient")
        # dump_dir="": the stages go to the specialization's own dump (tracegrad/dumps.py)
        result = run_pipeline(graph, [cleanup], debug=debug_checks(), dump_dir="", label=label)
        graph = result.graph
        stages["optimized"] = functools.partial(format_graph, graph)
        n_out = len(graph.outvars)
        graph = graph.replace(outvars=list(graph.outvars) + [g.var for g in graph.guards])
        clock.lap("cleanup")
        # the disk cache is looked up by the graph before fusion plans it (codegen.compiler)
        native = compile_graph(graph, fuse, name=label, disk_cache=self.disk_cache)
        stages["kernels"] = lambda: str(native.kernel_program())
        clock.lap(None)  # codegen's own stages are in native.stage_seconds
        # The first run, on the inputs it was traced with, settles float guards on the
        # compiled values (tracegrad/guards.py).
        outs = native(*spec_args.arrays)
        try:
            guards = settle(graph, spec_args.arrays, graph.guards, outs[n_out:])
        except GuardMismatch as e:
            raise GuardMismatch(f"{self._fname()}: {e}") from None
        clock.lap("first_run")
        spec = Specialization(native, n_out, out_tree, guards, reason, stages,
                              time.perf_counter() - t0, writes=tuple(prog.writes),
                              direct=spec_args.direct,
                              n_args=spec_args.n_args, floats=spec_args.float_positions,
                              arg_texts=tuple(spec_args.arg_texts()),
                              front_seconds=clock.seconds)
        dump_specialization(label, spec)
        return spec, outs[:n_out]

    def _gradient(self, graph: Graph, out_tree, spec_args):
        if out_tree.kind is None:
            raise TypeError(f"{self._fname()}: compile_grad needs a function returning one "
                            "scalar, it returned None (is a `return` missing?)")
        n_aux = aux_count(out_tree, self._fname(), scalar=True) if self.has_aux else 0
        value_outs = graph.outvars[:len(graph.outvars) - n_aux]
        if len(value_outs) != 1 or value_outs[0].aval.shape != ():
            shapes = ", ".join(str(v.aval) for v in value_outs)
            raise TypeError(f"{self._fname()}: compile_grad needs a function returning one scalar, "
                            f"it returned ({shapes}); for other outputs compile forward with "
                            "tracegrad.jit, or use tracegrad.vjp (or has_aux=True for "
                            "(value, aux) pairs)")
        if value_outs[0].aval.dtype.kind != "f":
            kinds = ", ".join(f"{self._names.arg(i)}: {t}" for i, t in
                              enumerate(spec_args.arg_texts()))
            raise TypeError(f"{self._fname()}: compile_grad differentiates a float scalar "
                            f"output, and this one is {value_outs[0].aval} (arguments {kinds}): "
                            "integer arguments are not differentiated, and compute in integers; "
                            "pass float arrays, e.g. x.astype(np.float64)")
        argnums, grads_template = spec_args.grad_positions(self.grad_argnums, self._trailing)
        graph = grad_graph(graph, argnums=argnums, has_value=True, aux=n_aux)
        value_template = tree_unflatten(out_tree, list(range(1 + n_aux))) if self.has_aux else 0
        return graph, tree_flatten((value_template, grads_template))[1]

    # -- introspection -----------------------------------------------------------
    def _spec(self, specialization=None):
        """The latest specialization, or the one at index `specialization` of `cache_info()`."""
        if specialization is not None:
            specs = self._all_specs()
            if not -len(specs) <= specialization < len(specs):
                raise IndexError(f"{self._fname()} has {len(specs)} specializations "
                                 f"(see cache_info()); no index {specialization}")
            return specs[specialization]
        if self._last is None:
            raise RuntimeError(f"{self._fname()} has not been compiled yet: call it once first")
        return self._last

    def _all_specs(self) -> list:
        """Every specialization in the order they were compiled (the keyword-argument
        variant's among them): the last is the latest."""
        with self._lock:
            own = [s for specs in self._cache.values() for s in specs]
        own += [s for n in sorted(self._keywords) for s in self._keywords[n]._all_specs()]
        return sorted(own, key=lambda s: s.serial)

    def ir(self, stage="optimized", specialization=None):
        """IR text of a compilation (the latest, or `cache_info()[specialization]`'s):
        traced, rerolled (when a Python loop rolled into a scan), gradient, optimized
        or kernels."""
        stages = self._spec(specialization).stages
        if stage not in stages:
            raise KeyError(f"no stage {stage!r}; this function has {list(stages)}")
        return stages[stage]()

    def llvm_ir(self, specialization=None):
        """The optimized LLVM IR of a compilation (the latest by default)."""
        return self._spec(specialization).native.llvm_ir()

    def asm(self, specialization=None):
        """The native assembly of a compilation (the latest by default)."""
        return self._spec(specialization).native.asm()

    def to_dot(self, specialization=None) -> str:
        """Graphviz DOT text of a specialization's kernel program (the latest by default);
        `tracegrad.draw(f, "k.svg")` draws it without Graphviz."""
        from .pictures import kernels_diagram, to_dot

        return to_dot(kernels_diagram(self._spec(specialization).native.kernel_program()))

    def cache_info(self):
        """One entry per specialization: signature (as `f64[2,64]`), why it was made,
        guards, hits, compile times; `ir(..., specialization=i)` shows entry i."""
        return [{"signature": f"({', '.join(s.arg_texts)})", "reason": s.reason, "hits": s.hits,
                 "guards": [f"{g.kind} at {g.src} == {g.expected.tolist()!r}" for g in s.guards],
                 "compile_seconds": round(s.compile_seconds, 4),
                 "stage_seconds": s.stage_seconds}
                for s in self._all_specs()]

    def cache_clear(self):
        """Forget every specialization (the keyword-argument variant's too) and what the
        guards learned: the next call traces again, as a fresh function would."""
        with self._lock:
            self._cache.clear()
            self._last = None
            self._guard_failures.clear()
            self._given_up.clear()
            self._warned_signatures.clear()
            self._mismatches.clear()
            for variant in self._keywords.values():
                variant.cache_clear()


def _writable(target) -> bool:
    return isinstance(target, (np.ndarray, Tensor))


def _memory(x):
    return x if isinstance(x, np.ndarray) else np.asarray(x) if isinstance(x, Tensor) else None


def _aliases(i, leaves) -> bool:
    """Whether array leaf `i` of the call may share memory with another leaf (the same
    array passed twice included)."""
    mine = _memory(leaves[i])
    return any(j != i and (m := _memory(leaf)) is not None and np.may_share_memory(mine, m)
               for j, leaf in enumerate(leaves))


def _unflattener(out_tree, n):
    """outs -> the function's result structure; a leaf or flat tuple skips the generic walk."""
    leaves = tree_flatten(tree_unflatten(out_tree, list(range(n))))[0]
    probe = tree_unflatten(out_tree, list(range(n)))
    if isinstance(probe, int):
        return lambda outs: outs[0]
    # exact types: a namedtuple (a tuple subclass) must come back as itself
    if type(probe) is tuple and len(probe) == 2 and probe[0] == 0:
        rest = probe[1]
        if isinstance(rest, int):
            return lambda outs: (outs[0], outs[1])
        if type(rest) is tuple and list(rest) == list(range(1, n)):
            return lambda outs: (outs[0], outs[1:n])
    assert leaves == list(range(n))
    return lambda outs: tree_unflatten(out_tree, list(outs[:n]))


def _rebuild_compiled(fun, options):
    return CompiledFunction(fun, **options)


class _Clock:
    """Laps of a compile's front-end stages (seconds, rounded as codegen's stages are)."""

    def __init__(self):
        self.seconds, self._t = {}, time.perf_counter()

    def lap(self, name) -> None:
        """End the stage `name` now (None: a stretch timed elsewhere)."""
        now = time.perf_counter()
        if name is not None:
            self.seconds[name] = round(now - self._t, 6)
        self._t = now


def _where(guard) -> str:
    return f"guard {guard.kind} at {guard.src}"


def _warn_at(message, where, category=SpecializationLimitWarning):
    """One warning attributed to the user's line `where` (file, line), or to the user's
    frame that called the compiled function."""
    where = where or location_of(user_source_location()) or ("<unknown>", 0)
    warnings.warn_explicit(message, category, where[0], where[1])


def _label(name):
    return "".join(c if c.isalnum() else "_" for c in name)[:40] or "fn"


def _python_int(v) -> bool:
    """A Python int or bool keyword: static, as a positional one (docs/transforms.md)."""
    return type(v) in (int, bool)


def jit(fun=None, *, static_argnums=(), static_argnames=(),
        max_specializations=DEFAULT_MAX_SPECIALIZATIONS, disk_cache=None, donate_argnums=()):
    """Compile `fun` (forward only) to native code, specialized per signature.

    Arguments (tracegrad/signature.py): arrays and pytrees of arrays are dynamic
    (one specialization per shape and dtype); a Python float is a dynamic
    weak-typed float64 scalar, so one specialization serves every value and
    `x_f32 * s` stays float32; ints, bools and other hashables are static (one
    specialization per value), as is anything named in `static_argnums` or, by
    parameter name, `static_argnames` (either completes the other through the
    signature, as in JAX); strings must be named there.  Keyword arguments are
    dynamic or static by the same rules (a Python int keyword is static).  Ints inside a
    dict, list or tuple argument are int64 arrays (dynamic, strongly typed).  A callable
    object or bound method of a class that hashes by identity is refused unless named
    static (its attributes would be frozen silently).  `donate_argnums` is accepted and
    ignored.  Decorating a method works: `obj.f(x)` passes `obj` as the first argument
    (name it static, `static_argnums=0`, as in JAX: the attributes the method reads are
    then frozen at trace time, so pass arrays that change as arguments); a jitted
    function stored as a class attribute is a method so too, as a plain function is.
    A static int changes the specialization: an int keyword that counts steps compiles
    once per value (pass it as a float or an array to keep one specialization).

    `max_specializations` bounds the specializations of one signature and the
    times one guard may fail; past either, calls no specialization serves run
    uncompiled, with one SpecializationLimitWarning (see the module docstring).
    Called while another function is traced (inside `grad`, `trace`, ...), the
    function is traced inline.

    What the function reads besides its arguments (global arrays, a closed-over dict of
    settings) is read when it is traced and becomes part of the program, as in JAX:
    changing it later does not change what a compiled specialization returns (pass
    such values as arguments); so do its side effects (a traced value appended to a
    global list, `float(x)` appended to a log): they happen when a specialization is
    traced, not on every call (a NumPy array cannot hold a traced value: writing one
    into a global array raises).  In-place changes the function makes
    to its NumPy array or tensor arguments (`x += v`) are written back into the caller's
    arrays after every call, as NumPy would leave them (docs/transforms.md); arguments
    that share memory with a written one (`f(z, z)`) run the function uncompiled, which
    gives NumPy's aliasing.

    >>> import numpy as np, tracegrad
    >>> f = tracegrad.jit(lambda x: np.sum(np.tanh(x) * 2.0))
    >>> float(f(np.zeros(3)))
    0.0
    >>> scale = tracegrad.jit(lambda x, s: x * s)
    >>> [scale(np.ones(2, np.float32), s).dtype.name for s in (0.5, 2.0)], len(scale.cache_info())
    (['float32', 'float32'], 1)
    """
    if fun is None:
        return functools.partial(jit, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 max_specializations=max_specializations, disk_cache=disk_cache)
    return CompiledFunction(fun, static_argnums, max_specializations=max_specializations,
                            disk_cache=disk_cache, static_argnames=static_argnames)


def compile_grad(fun=None, *, argnums=None, static_argnums=(), static_argnames=(),
                 max_specializations=DEFAULT_MAX_SPECIALIZATIONS, disk_cache=None, has_aux=False):
    """`jit(value_and_grad(fun, argnums))`: returns `(value, grads)` from native code.

    With `has_aux=True`, `fun` returns `(value, aux)` and the result is
    `((value, aux), grads)`, as JAX's `value_and_grad(..., has_aux=True)`.

    `argnums` defaults to every positional argument that is not static (float
    arrays, pytrees of arrays and Python floats, not integer or bool arrays such as
    indices and masks; grads is then a tuple); an int gives
    one gradient, a tuple a tuple of gradients.  Arguments, limits and
    `max_specializations` are as for `jit`.

    >>> import numpy as np, tracegrad
    >>> @tracegrad.compile_grad
    ... def loss(w, x):
    ...     return np.mean(np.tanh(x @ w))
    >>> value, (gw, gx) = loss(np.ones(3), np.ones((2, 3)))
    >>> gw.shape, gx.shape
    ((3,), (2, 3))
    >>> value, grads = tracegrad.compile_grad(lambda a, b, c, d: (a + b) + c * d)(1.0, 2.0, 3.0, 4.0)
    >>> float(value), [float(g) for g in grads]
    (15.0, [1.0, 1.0, 4.0, 3.0])
    """
    if fun is None:
        return functools.partial(compile_grad, argnums=argnums, static_argnums=static_argnums,
                                 static_argnames=static_argnames,
                                 max_specializations=max_specializations, disk_cache=disk_cache,
                                 has_aux=has_aux)
    if argnums is not None and not isinstance(argnums, (int, np.integer)) and not tuple(argnums):
        raise ValueError("compile_grad: argnums=() selects no argument to differentiate: give "
                         "an int, a non-empty tuple of ints, or None (every float argument)")
    return CompiledFunction(fun, static_argnums, grad_argnums=argnums, grad=True,
                            max_specializations=max_specializations, disk_cache=disk_cache,
                            has_aux=has_aux, static_argnames=static_argnames)
