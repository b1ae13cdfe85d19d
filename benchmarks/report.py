"""The markdown report (one results table plus machine facts) and the JSON dump."""

from __future__ import annotations

import json

from benchmarks import roofline
from benchmarks.limits import ISA_REPORTED
from benchmarks.harness import Entry, Suite

LABELS = {"wrong": "WRONG", "error": "ERROR", "timeout": "TIMEOUT", "skipped": "skipped"}
SMOKE_LEGEND = ("Smoke run: ok means value and gradients agree with the float64 reference; "
                "nothing was timed.")
LEGEND = ("Cells: steady-state median per call in us, first call (build + trace + compile + "
          "one evaluation; the median over fresh builds, --first-calls) in ms in brackets. Ratios are tracegrad time / peer time: below 1 "
          "means tracegrad is faster. WRONG entries disagreed with the float64 reference and "
          "were not timed.")


def fmt(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ratio_values(row: dict[str, Entry]) -> dict:
    """tracegrad's median over the best ok peer's and over jax.jit's (None when missing)."""
    out = {"best_peer": None, "vs_best_peer": None, "vs_jax": None}
    tg = row.get("tracegrad")
    if tg is None or tg.median_us is None:
        return out
    peers = [(e.median_us, name) for name, e in row.items()
             if name != "tracegrad" and e.ok and e.median_us]
    if peers:
        t, out["best_peer"] = min(peers)
        out["vs_best_peer"] = tg.median_us / t
    jax = row.get("jax")
    if jax and jax.ok and jax.median_us:
        out["vs_jax"] = tg.median_us / jax.median_us
    return out


def ratio_cells(row: dict[str, Entry], labels: dict[str, str]) -> list[str]:
    r = ratio_values(row)
    best, vs_jax = "-", "-"
    if r["vs_best_peer"] is not None:
        best = f"{r['vs_best_peer']:.2f}x ({labels[r['best_peer']]})"
    if r["vs_jax"] is not None:
        vs_jax = f"{r['vs_jax']:.2f}x"
    return [best, vs_jax]


def cell(entry: Entry, name: str, where: str, notes: list[str]) -> str:
    if entry.status == "ok":
        if entry.median_us is None:
            return "ok"  # smoke mode: checked, not timed
        return f"{fmt(entry.median_us)} ({fmt(entry.first_ms)})"
    if entry.status == "n/a":
        return "-"
    if entry.status == "unavailable":
        return "pending" if name == "tracegrad" else "n/a"
    notes.append(f"{where}: {entry.error}")
    return f"{LABELS[entry.status]} [{len(notes)}]"


def results_table(suite: Suite) -> tuple[str, list[str]]:
    shown = [i for i in suite.impls if i.name not in suite.unavailable or not i.is_peer]
    labels = {i.name: i.label for i in suite.impls}
    header = ["id", "workload"] + [i.label for i in shown]
    header += ["tracegrad / best peer", "tracegrad / jax.jit"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes: list[str] = []
    for wl in suite.workloads:
        row = suite.results[wl.id]
        cells = [wl.id, wl.title]
        cells += [cell(row[i.name], i.name, f"{wl.id} {i.label}", notes) for i in shown]
        cells += ratio_cells(row, labels)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines), notes


def machine_lines(suite: Suite) -> list[str]:
    m = suite.machine
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    threads = ", ".join(f"{k}={v}" for k, v in m["env"].items()
                        if k not in ("OPENBLAS_CORETYPE", *ISA_REPORTED) and v)
    return [
        f"- date: {m['date']}; CPU: {m['cpu']}; cores: {m['cores']} "
        f"({m['cores_usable']} usable); {m['platform']}; Python {m['python']}",
        f"- versions: {versions}; numpy BLAS: {m['numpy_blas']} (core {m['openblas_core']})",
        isa_line(m["env"]) + f"; {threads or 'no thread-count variables set'}",
    ]


def isa_line(env: dict) -> str:
    """OPENBLAS_CORETYPE as found, or the instruction-set caps `benchmarks.run --isa` set."""
    isa = env.get("TRACEGRAD_ISA")
    if not isa:
        return (f"- OPENBLAS_CORETYPE: {env.get('OPENBLAS_CORETYPE') or 'unset'} (the harness "
                f"never sets or changes it)")
    caps = ", ".join(f"{k}={env[k]}" for k in ("OPENBLAS_CORETYPE", *ISA_REPORTED) if env.get(k))
    return f"- **instruction set capped at {isa.upper()} for every library** (`--isa {isa}`): {caps}"


def competition_lines(m: dict) -> list[str]:
    c = m.get("competition")
    if not c:
        return []
    line = (f"- CPU taken by other processes during the run: {c['others_share']:.0%} of the "
            f"machine; hypervisor steal: {c['steal_share']:.0%}")
    if c["others_share"] + c["steal_share"] > 0.1:
        line += (" -- WARNING: the cores were shared, so times are inflated, multi-threaded"
                 " peers most; rerun on a quiet machine before trusting the table")
    return [line]


def limit_lines(limits: dict | None) -> list[str]:
    if not limits:
        return ["- machine limits: not measured (smoke mode or --no-limits)"]
    bw, mm = limits["bandwidth"], limits["matmul"]
    rates = ", ".join(f"{v:.1f} GB/s on {k.split('_')[1]} thread(s)"
                      for k, v in bw.items() if k.startswith("GBps"))
    return [
        f"- memory bandwidth ({bw['method']}, {bw['bytes_per_element']} B/element, "
        f"{bw['elements']:,} float64 elements): {rates}",
        f"- numpy matmul {mm['n']}x{mm['n']}: {mm['GFLOPs_float32']:.0f} GFLOP/s float32, "
        f"{mm['GFLOPs_float64']:.0f} GFLOP/s float64",
    ]


def transcendental_line(limits: dict) -> list[str]:
    costs = limits.get("transcendentals")
    if not costs:
        return []
    shown = ", ".join(f"{k.replace('_float', ' f')} {v:.2f}" for k, v in costs.items())
    return [f"- tracegrad transcendentals, ns per element on one thread (in cache): {shown}"]


def _share(bound_s: float, entry: Entry | None) -> str:
    if entry is None or not entry.ok or not entry.median_us:
        return "-"
    return f"{bound_s * 1e6 / entry.median_us:.0%}"


def roofline_table(suite: Suite) -> list[str]:
    """Per workload: its lower bound (the limiting resource) and the share of it reached."""
    if not suite.limits or not suite.work:
        return []
    cores = suite.machine["cores_usable"] or 1
    lines = ["", "Share of the machine's limit (lower bound / median time; 100% = at the limit):",
             "", "| id | limited by | bound (us) | tracegrad | best peer |", "|---|---|---|---|---|"]
    for wl_id, work in suite.work.items():
        b = roofline.bounds(work, suite.limits, cores)
        kind = max(b, key=b.get)
        row = suite.results[wl_id]
        best = ratio_values(row)["best_peer"]
        peer = f"{_share(b[kind], row.get(best))} ({best})" if best else "-"
        lines.append(f"| {wl_id} | {kind} | {fmt(b[kind] * 1e6)} | "
                     f"{_share(b[kind], row.get('tracegrad'))} | {peer} |")
    return lines


def render_markdown(suite: Suite) -> str:
    mode = "smoke run: tiny sizes, correctness only" if suite.config.smoke else "full run"
    table, notes = results_table(suite)
    parts = [f"## tracegrad benchmark, {mode}", ""]
    parts += machine_lines(suite)
    if not suite.config.smoke:
        parts += competition_lines(suite.machine) + limit_lines(suite.limits)
        parts += transcendental_line(suite.limits or {})
    parts += ["", table, "", SMOKE_LEGEND if suite.config.smoke else LEGEND]
    parts += roofline_table(suite)
    if notes:
        parts += [""] + [f"[{k}] {text}" for k, text in enumerate(notes, 1)]
    if suite.unavailable:
        parts += ["", "Not run:"] + [f"- {n}: {why}" for n, why in suite.unavailable.items()]
    return "\n".join(parts)


def to_json(suite: Suite) -> dict:
    c = suite.config
    return {
        "config": {"smoke": c.smoke, "samples": c.samples, "min_sample_s": c.min_sample_s,
                   "peers": list(c.peers), "tracegrad_namespace": c.tracegrad_ns,
                   "compile_timeout_s": c.compile_timeout},
        "machine": suite.machine,
        "limits": suite.limits,
        "workloads": {
            wl.id: {"description": wl.description,
                    "results": {n: e.to_json() for n, e in suite.results[wl.id].items()},
                    "tracegrad_ratios": ratio_values(suite.results[wl.id])}
            for wl in suite.workloads
        },
    }


def write_json(suite: Suite, path: str) -> None:
    with open(path, "w") as fh:
        json.dump(to_json(suite), fh, indent=2)
        fh.write("\n")
