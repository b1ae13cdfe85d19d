"""Runs every selected workload for every usable implementation, in one process.

For each (workload, implementation): build a callable and check its value and gradients
against the float64 reference; a disagreement is recorded as ``wrong`` and is not timed.
Otherwise build fresh callables, each in a fresh entry context (torch.compile: reset dynamo,
empty inductor cache), and time their first calls (checked again): the first call reported is
the median of ``first_calls`` of them, as one compile on these shared machines varies by a
third from run to run, and the last callable is the one timed in the steady state. Then the
steady states of all the workload's implementations are measured together, their samples in
turns (timing.interleaved_steady), so that the ratios in one row share the machine's phase.
Smoke mode stops after the check.

>>> suite = run_suite(Config(smoke=True, only=("W6",), peers=("numpy",), tracegrad=False))
>>> suite.results["W6"]["numpy"].status
'ok'
"""

from __future__ import annotations

import gc
import statistics
import sys
import traceback
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable

from benchmarks import check, limits, roofline, timing
from benchmarks.impls import PEER_NAMES, Impl, make_impls
from benchmarks.workloads import WORKLOADS, Workload, reference

STATUSES = ("ok", "wrong", "error", "timeout", "skipped", "n/a", "unavailable")


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Config:
    smoke: bool = False                 # tiny sizes, correctness only, no torch.compile
    only: tuple[str, ...] | None = None  # workload ids; None means all
    peers: tuple[str, ...] = PEER_NAMES
    tracegrad: bool = True
    tracegrad_ns: str = "numpy"         # "numpy" (plain numpy loss) or "tnp" (tracegrad.numpy)
    samples: int = 5
    first_calls: int = 3                # fresh builds whose first calls give the median
    min_sample_s: float = 0.2
    compile_timeout: float | None = 120.0
    torch_compile_skip: dict[str, str] | None = None  # None: impls.TORCH_COMPILE_SKIP
    measure_limits: bool = True         # never in smoke mode
    log: Callable[[str], None] = _stderr


@dataclass
class Entry:
    status: str
    median_us: float | None = None
    first_ms: float | None = None
    error: str | None = None
    min_us: float | None = None  # fastest sample: JSON only

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        return {"status": self.status, "ok": self.ok, "median_us": self.median_us,
                "min_us": self.min_us, "first_ms": self.first_ms, "error": self.error}


@dataclass
class Suite:
    config: Config
    machine: dict
    limits: dict | None
    impls: list[Impl]
    unavailable: dict[str, str]
    workloads: list[Workload]
    results: dict[str, dict[str, Entry]] = field(default_factory=dict)
    work: dict[str, dict] = field(default_factory=dict)  # roofline.WORK per workload id


def select_workloads(only: tuple[str, ...] | None) -> list[Workload]:
    if not only:
        return list(WORKLOADS)
    known = {w.id for w in WORKLOADS}
    unknown = sorted(set(only) - known)
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {sorted(known)}")
    return [w for w in WORKLOADS if w.id in only]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:600]


def _first_call(impl: Impl, wl: Workload, inputs, log):
    """(call, output, ms) or an Entry saying why there is no first call."""
    try:
        build = lambda: impl.build(wl, inputs)  # noqa: E731
        call, out, seconds = timing.first_call(build, impl.first_call_timeout)
    except timing.Timeout as exc:
        return Entry("timeout", error=f"first call (compile) {exc}")
    except Exception as exc:
        log("".join(traceback.format_exception(exc)[-12:]).rstrip())
        return Entry("error", error=_describe(exc))
    return call, out, seconds * 1e3


def _check(impl: Impl, wl: Workload, out, ref, inputs) -> str | None:
    try:
        value, grads = impl.unpack(out, wl)
        return check.disagreement(value, grads, ref, inputs, wl.wrt)
    except Exception as exc:
        return f"result has the wrong form: {_describe(exc)}"


def _checked_first_call(impl: Impl, wl: Workload, inputs, ref, config: Config):
    """(call, first-call ms) for a fresh build whose result agrees, else an Entry saying why not."""
    first = _first_call(impl, wl, inputs, config.log)
    if isinstance(first, Entry):
        return first
    call, out, first_ms = first
    problem = _check(impl, wl, out, ref, inputs)
    return Entry("wrong", error=problem) if problem else (call, first_ms)


def run_entry(impl: Impl, wl: Workload, inputs, ref, config: Config, contexts: ExitStack):
    """Check one build, then time the first calls of `config.first_calls` fresh builds: the
    Entry (not ok, or ok in smoke mode), or (the last build's call, the median first-call
    ms) for the steady-state timing.  The last build's context stays open in `contexts`
    until that timing is done.

    The check's build absorbs one-time, process-wide start-up (jax backend, numba's typing
    tables, inductor's worker pool), so the timed first call is this function's own
    trace-and-compile cost, as in shared/bench/WORKLOADS.md.
    """
    for status, reason in (("n/a", impl.not_applicable(wl)), ("skipped", impl.skip_reason(wl))):
        if reason:
            return Entry(status, error=reason)
    with impl.entry_context():
        checked = _checked_first_call(impl, wl, inputs, ref, config)
    if isinstance(checked, Entry) or config.smoke:
        return checked if isinstance(checked, Entry) else Entry("ok")
    times = []
    for _ in range(config.first_calls - 1):
        with impl.entry_context():
            timed = _checked_first_call(impl, wl, inputs, ref, config)
        if isinstance(timed, Entry):
            return timed
        times.append(timed[1])
    contexts.enter_context(impl.entry_context())
    timed = _checked_first_call(impl, wl, inputs, ref, config)
    if isinstance(timed, Entry):
        return timed
    return timed[0], statistics.median(times + [timed[1]])


def _steady_entries(timed: dict, config: Config) -> dict:
    """{name: Entry} of the (call, first ms) pairs in `timed`, timed in turns."""
    calls = {name: call for name, (call, _) in timed.items()}
    steady = timing.interleaved_steady(calls, config.samples, config.min_sample_s)
    entries = {}
    for name, (_, first_ms) in timed.items():
        result = steady[name]
        if isinstance(result, BaseException):
            entries[name] = Entry("error", first_ms=first_ms,
                                  error=f"during timing: {_describe(result)}")
        else:
            entries[name] = Entry("ok", median_us=result[0] * 1e6, first_ms=first_ms,
                                  min_us=result[1] * 1e6)
    return entries


def probe(impls: list[Impl]) -> dict[str, str]:
    """Import each implementation; the ones that cannot run, with the reason."""
    reasons = {impl.name: impl.probe() for impl in impls}
    return {name: why for name, why in reasons.items() if why}


def _measure_limits(config: Config) -> dict | None:
    if config.smoke or not config.measure_limits:
        return None
    config.log("measuring machine limits (triad bandwidth, matmul, transcendentals)...")
    # transcendentals first: OpenBLAS's workers spin for a while after the matmul and would
    # take the core the single-threaded measurement runs on
    costs = roofline.transcendental_ns() if config.tracegrad else None
    return {"bandwidth": limits.bandwidth(), "matmul": limits.matmul_gflops(),
            "transcendentals": costs}


def _log_entry(config: Config, wl: Workload, impl: Impl, entry: Entry) -> None:
    timing_text = "" if entry.median_us is None else f" {entry.median_us:.4g} us"
    first_text = "" if entry.first_ms is None else f" (first {entry.first_ms:.4g} ms)"
    extra = f": {entry.error}" if entry.error else ""
    config.log(f"{wl.id} {impl.name}: {entry.status}{timing_text}{first_text}{extra}")


def _run_row(impls, wl: Workload, inputs, ref, unavailable: dict, config: Config) -> dict:
    """{impl name: Entry} of one workload, in the implementations' order."""
    row, timed = {}, {}
    with ExitStack() as contexts:
        for impl in impls:
            if impl.name in unavailable:
                row[impl.name] = Entry("unavailable", error=unavailable[impl.name])
                continue
            result = run_entry(impl, wl, inputs, ref, config, contexts)
            if isinstance(result, Entry):
                row[impl.name] = result
                _log_entry(config, wl, impl, result)
            else:
                row[impl.name], timed[impl.name] = None, result
            gc.collect()
        row.update(_steady_entries(timed, config) if timed else {})
    for impl in impls:
        if impl.name in timed:
            _log_entry(config, wl, impl, row[impl.name])
    return row


def run_suite(config: Config) -> Suite:
    """Run everything the config selects; nothing is printed to stdout."""
    peers = tuple(p for p in config.peers if not (config.smoke and p == "torch.compile"))
    impls = make_impls(peers, config.tracegrad, config.tracegrad_ns,
                       config.torch_compile_skip, config.compile_timeout)
    workloads = select_workloads(config.only)
    unavailable = probe(impls)
    started = limits.cpu_snapshot()
    suite = Suite(config, limits.machine_info(), _measure_limits(config), impls, unavailable,
                  workloads)
    for wl in workloads:
        inputs = wl.inputs(config.smoke)
        ref = reference(wl, inputs)
        if wl.id in roofline.WORK:
            suite.work[wl.id] = roofline.WORK[wl.id](inputs)
        suite.results[wl.id] = _run_row(impls, wl, inputs, ref, unavailable, config)
    suite.machine["competition"] = limits.competition(
        started, limits.cpu_snapshot(), suite.machine["cores_usable"] or 1)
    return suite
