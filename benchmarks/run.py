"""Command line: ``python -m benchmarks.run [--smoke] [--only W2,W6] [--peers jax,numpy] [--isa avx2]``.

Prints the markdown report on stdout, progress on stderr. Exit status 0 when every entry
that ran agreed with the reference, 1 when any was WRONG or raised.

``--isa avx2`` caps every library at AVX2 on an AVX-512 host, for a table per instruction
set from one machine: the command runs itself again with the variables each library reads
at start-up (ISA_ENV): tracegrad's TRACEGRAD_ISA, OpenBLAS's core type (Haswell, unless
OPENBLAS_CORETYPE is already set, which is then kept), numpy's dispatch, XLA's, MKL's and
ATen's instruction-set caps, and numba's CPU name. The report lists them.
"""

from __future__ import annotations

import argparse
import os
import sys

if __package__ in (None, ""):  # run as `python benchmarks/run.py`: import from the repo root
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from benchmarks.harness import Config, Suite, run_suite  # noqa: E402
from benchmarks.impls import PEER_NAMES, TORCH_COMPILE_SKIP  # noqa: E402
from benchmarks.report import render_markdown, write_json  # noqa: E402


# the start-up variables that cap each library at an instruction set (module docstring)
ISA_ENV = {"avx2": {"TRACEGRAD_ISA": "avx2", "OPENBLAS_CORETYPE": "Haswell",
                    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
                    "XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2",
                    "ATEN_CPU_CAPABILITY": "avx2", "NUMBA_CPU_NAME": "haswell"}}


def isa_environment(isa: str, env: dict) -> dict:
    """`env` with the variables of ISA_ENV[isa]; an OPENBLAS_CORETYPE already set is kept,
    XLA_FLAGS are appended to."""
    out = dict(env)
    for key, value in ISA_ENV[isa].items():
        if key == "OPENBLAS_CORETYPE" and env.get(key):
            continue
        if key == "XLA_FLAGS" and env.get(key):
            value = f"{env[key]} {value}"
        out[key] = value
    return out


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.run",
        description="tracegrad against its peers on the reference workloads; markdown on stdout.")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, correctness checks only, no timing, no torch.compile")
    p.add_argument("--only", type=_names, help="comma-separated workload ids, e.g. W2,W6")
    p.add_argument("--peers", type=_names, default=PEER_NAMES,
                   help=f"comma-separated peers among {','.join(PEER_NAMES)} (default: all)")
    p.add_argument("--no-tracegrad", action="store_true", help="run the peers only")
    p.add_argument("--tracegrad-ns", choices=("numpy", "tnp"), default="numpy",
                   help="trace the plain-numpy loss (default) or rebind it to tracegrad.numpy")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    p.add_argument("--samples", type=int, default=5, help="timed samples per entry (median)")
    p.add_argument("--first-calls", type=int, default=3,
                   help="fresh builds per entry whose first calls give the median (at least 1)")
    p.add_argument("--min-sample-s", type=float, default=0.2, help="minimum seconds per sample")
    p.add_argument("--compile-timeout", type=float, default=120.0,
                   help="seconds allowed for torch.compile's first call (0: no limit)")
    p.add_argument("--torch-compile-skip", type=_names, default=tuple(TORCH_COMPILE_SKIP),
                   help="workloads torch.compile skips (default: %(default)s; '' runs all)")
    p.add_argument("--no-limits", action="store_true", help="do not measure bandwidth/matmul")
    p.add_argument("--isa", choices=("native", *ISA_ENV), default="native",
                   help="cap every library at this instruction set (module docstring)")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    skip = {w: TORCH_COMPILE_SKIP.get(w, "skipped by --torch-compile-skip")
            for w in args.torch_compile_skip}
    return Config(smoke=args.smoke, only=args.only, peers=args.peers,
                  tracegrad=not args.no_tracegrad, tracegrad_ns=args.tracegrad_ns,
                  samples=args.samples, first_calls=max(1, args.first_calls),
                  min_sample_s=args.min_sample_s,
                  compile_timeout=args.compile_timeout or None, torch_compile_skip=skip,
                  measure_limits=not args.no_limits)


def all_agreed(suite: Suite) -> bool:
    return not any(e.status in ("wrong", "error") for row in suite.results.values()
                   for e in row.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.isa != "native" and os.environ.get("TRACEGRAD_ISA") != args.isa:
        argv = sys.argv[1:] if argv is None else argv  # again, the libraries capped from the start
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks.run", *argv],
                  isa_environment(args.isa, os.environ))
    suite = run_suite(config_from(args))
    print(render_markdown(suite), flush=True)
    if args.json:
        write_json(suite, args.json)
    return 0 if all_agreed(suite) else 1


if __name__ == "__main__":
    sys.exit(main())
