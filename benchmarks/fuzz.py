"""Fuzz tracegrad from the command line: thousands of random programs, counts and failures.

    python -m benchmarks.fuzz --n 5000            # seeds 1000000.. on every core
    python -m benchmarks.fuzz --n 200 --start 0   # the seeds of the normal test suite
    python -m benchmarks.fuzz --show 1000123      # a standalone reproducer script of one seed
    python -m benchmarks.fuzz --reduce 1000123    # the smallest sub-program that still fails

The programs, the oracle and the child-process runner are those of tests/test_fuzz.py
(tests/fuzz_gen.py, fuzz_ops.py, fuzz_check.py, fuzz_runner.py): a crash in native code is
reported against its seed and the run goes on.  Graphs are verified (TRACEGRAD_DEBUG=1)
unless the environment says otherwise.  The exit status is 1 when any program failed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests"))
os.environ.setdefault("TRACEGRAD_DEBUG", "1")

import fuzz_gen  # noqa: E402  (tests/ is on the path only now)
import fuzz_runner  # noqa: E402

DEFAULT_START = 1_000_000  # disjoint from the seeds the test suite runs


def summarize(results: dict, seconds: float, out=sys.stdout):
    """Counts per dtype, failures per check, failing seeds, primitive coverage, timing."""
    from tracegrad.ir import PRIMITIVES

    rs = sorted(results.values(), key=lambda r: r["seed"])
    failed = [r for r in rs if r["failures"]]
    dtypes = collections.Counter(r["dtype"] for r in rs)
    checks = collections.Counter(c.split("[")[0] for r in failed
                                 for c in {f[0] for f in r["failures"]})
    seen = collections.Counter(p for r in rs for p in r["primitives"])
    per = sorted(r["seconds"] for r in rs)
    print(f"programs: {len(rs)} ({', '.join(f'{d}: {n}' for d, n in sorted(dtypes.items()))}) "
          f"in {seconds:.1f} s; passed {len(rs) - len(failed)}, failed {len(failed)}", file=out)
    if per:
        print(f"seconds per program: median {per[len(per) // 2]:.3f}, max {per[-1]:.3f}", file=out)
    missing = sorted(set(PRIMITIVES) - set(seen))
    print(f"primitives generated: {len(set(PRIMITIVES)) - len(missing)}/{len(PRIMITIVES)}"
          + (f", never: {missing}" if missing else ""), file=out)
    for check, n in checks.most_common():
        print(f"  {n:5d} programs failed: {check}", file=out)
    for r in failed:
        check, msg = r["failures"][0]
        more = f" (+{len(r['failures']) - 1} more)" if len(r["failures"]) > 1 else ""
        print(f"seed {r['seed']} {r['dtype']}: {check}: {msg.splitlines()[0][:300]}{more}",
              file=out)
    return len(failed)


def reduce_seed(seed: int):
    """The fewest-lines sub-program (one output, what it needs) failing a check the seed fails."""
    import fuzz_check

    prog = fuzz_gen.generate(seed)
    failing = {c.split("[")[0] for c, _ in fuzz_check.check_program(prog)[0]}
    if not failing:
        return prog, []
    best, best_failures = prog, fuzz_check.check_program(prog)[0]
    for name in prog.nodes:
        if name in prog.params:
            continue
        sub = prog.restrict([name])
        if len(sub.lines) >= len(best.lines):
            continue
        failures = fuzz_check.check_program(sub)[0]
        if failing & {c.split("[")[0] for c, _ in failures}:
            best, best_failures = sub, failures
    return best, best_failures


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="programs to run (default 1000)")
    ap.add_argument("--start", type=int, default=DEFAULT_START, help="first seed")
    ap.add_argument("--jobs", type=int, default=os.cpu_count(), help="child processes")
    ap.add_argument("--timeout", type=float, default=fuzz_runner.PROGRAM_TIMEOUT,
                    help="seconds one program may take")
    ap.add_argument("--json", help="write every result to this file")
    ap.add_argument("--show", type=int, metavar="SEED", help="print the reproducer of SEED")
    ap.add_argument("--reduce", type=int, metavar="SEED", help="minimize the failing SEED")
    args = ap.parse_args(argv)
    if args.show is not None:
        print(fuzz_gen.generate(args.show).script())
        return 0
    if args.reduce is not None:
        prog, failures = reduce_seed(args.reduce)
        print(prog.script())
        print("\n".join(f"# {c}: {m.splitlines()[0]}" for c, m in failures) or "# passes")
        return 1 if failures else 0
    t0 = time.perf_counter()
    results = fuzz_runner.run_seeds(range(args.start, args.start + args.n), args.jobs, args.timeout)
    n_failed = summarize(results, time.perf_counter() - t0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(sorted(results.values(), key=lambda r: r["seed"]), f, indent=1)
    return 1 if n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
