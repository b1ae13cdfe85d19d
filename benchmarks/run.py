"""Command line: ``python -m benchmarks.run [--smoke] [--only W2,W6] [--peers jax,numpy]``.

Prints the markdown report on stdout, progress on stderr. Exit status 0 when every entry
that ran agreed with the reference, 1 when any was WRONG or raised.
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
    p.add_argument("--min-sample-s", type=float, default=0.2, help="minimum seconds per sample")
    p.add_argument("--compile-timeout", type=float, default=120.0,
                   help="seconds allowed for torch.compile's first call (0: no limit)")
    p.add_argument("--torch-compile-skip", type=_names, default=tuple(TORCH_COMPILE_SKIP),
                   help="workloads torch.compile skips (default: %(default)s; '' runs all)")
    p.add_argument("--no-limits", action="store_true", help="do not measure bandwidth/matmul")
    return p.parse_args(argv)


def config_from(args: argparse.Namespace) -> Config:
    skip = {w: TORCH_COMPILE_SKIP.get(w, "skipped by --torch-compile-skip")
            for w in args.torch_compile_skip}
    return Config(smoke=args.smoke, only=args.only, peers=args.peers,
                  tracegrad=not args.no_tracegrad, tracegrad_ns=args.tracegrad_ns,
                  samples=args.samples, min_sample_s=args.min_sample_s,
                  compile_timeout=args.compile_timeout or None, torch_compile_skip=skip,
                  measure_limits=not args.no_limits)


def all_agreed(suite: Suite) -> bool:
    return not any(e.status in ("wrong", "error") for row in suite.results.values()
                   for e in row.values())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = run_suite(config_from(args))
    print(render_markdown(suite), flush=True)
    if args.json:
        write_json(suite, args.json)
    return 0 if all_agreed(suite) else 1


if __name__ == "__main__":
    sys.exit(main())
