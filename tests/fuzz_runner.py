"""Runs fuzz programs in child processes, so that a crash in native code is a finding.

`run_seeds(seeds, jobs)` starts `jobs` children (`python fuzz_runner.py
--child SEED...`), each checking its share of the seeds one after another
and printing `BEGIN <seed>` before and `RESULT <json>` after each program.  A
child that dies (a signal, an exit without a result) or stays silent past the
timeout is recorded as a failure of the seed it had begun, and a new child
goes on with the next seed.  The children share a disk cache of compiled code in
a temporary directory, so cache entries written by one program are read by
others.  Results are dicts: seed, dtype, failures (a list
of [check, message]), primitives (those in the traced program) and seconds.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM_TIMEOUT = 300.0  # seconds one program may take before its child is killed


def check_seed(seed: int) -> dict:
    """Generate and check one program (in this process)."""
    import traceback

    import fuzz_check
    import fuzz_gen

    t0 = time.perf_counter()
    try:
        prog = fuzz_gen.generate(seed)
        failures, prims = fuzz_check.check_program(prog)
        dtype = prog.dtype
    except Exception:  # a generator error is reported like any other failure
        failures, prims, dtype = [("generator", traceback.format_exc(limit=3))], [], "?"
    return {"seed": seed, "dtype": dtype, "failures": [list(f) for f in failures],
            "primitives": prims, "seconds": round(time.perf_counter() - t0, 3)}


def _child(seeds):
    import faulthandler
    import warnings

    faulthandler.enable()  # a native crash prints where it happened to stderr
    warnings.simplefilter("ignore")
    for seed in seeds:
        print(f"BEGIN {seed}", flush=True)
        print("RESULT " + json.dumps(check_seed(seed)), flush=True)


def _reader(stream, q):
    for line in stream:
        q.put(line)
    q.put(None)


def _crash_result(seed, why, stderr_path):
    with open(stderr_path, errors="replace") as f:
        tail = f.read()[-3000:]
    return {"seed": seed, "dtype": "?", "failures": [["crash", f"{why}; stderr:\n{tail}"]],
            "primitives": [], "seconds": 0.0}


def _blame(results, seeds, current, why, stderr_path):
    """Record a crash against the seed in progress; a child that dies before it begins
    any seed cannot start at all, and every remaining seed gets its error."""
    for seed in [current] if current is not None else [s for s in seeds if s not in results]:
        results[seed] = _crash_result(seed, why if current is not None
                                      else f"the child did not start ({why})", stderr_path)


def _child_env(cache_dir):
    """The parent's module search path (so that the child imports the same tracegrad) and a
    disk cache of compiled code private to this run."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep) + [os.path.abspath(p or ".")
                                                                 for p in sys.path]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in paths if p),
                TRACEGRAD_CACHE_DIR=cache_dir, TRACEGRAD_FUZZ_DISK_CACHE="1")


def _run_child(seeds, results, timeout, cache_dir):
    """Run `seeds` in one child; returns the seeds it did not get to (after a crash)."""
    with tempfile.NamedTemporaryFile("w+", suffix=".stderr", delete=False) as err:
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fuzz_runner.py"), "--child",
                                 *map(str, seeds)], stdout=subprocess.PIPE, stderr=err, text=True,
                                env=_child_env(cache_dir))
    q: queue.Queue = queue.Queue()
    threading.Thread(target=_reader, args=(proc.stdout, q), daemon=True).start()
    current = None
    try:
        while True:
            try:
                line = q.get(timeout=timeout)
            except queue.Empty:
                proc.kill()
                _blame(results, seeds, current, f"no result after {timeout:.0f} s", err.name)
                break
            if line is None:
                proc.wait()
                if current is not None or proc.returncode:
                    _blame(results, seeds, current, f"child exited with {proc.returncode}",
                           err.name)
                break
            if line.startswith("BEGIN "):
                current = int(line.split()[1])
            elif line.startswith("RESULT "):
                r = json.loads(line[7:])
                results[r["seed"]] = r
                current = None
    finally:
        proc.wait()
        os.unlink(err.name)
    return [s for s in seeds if s not in results]


def _worker(seeds, results, timeout, cache_dir):
    while seeds:
        seeds = _run_child(seeds, results, timeout, cache_dir)


def run_seeds(seeds, jobs=None, timeout=PROGRAM_TIMEOUT) -> dict:
    """{seed: result} for every seed, checked in `jobs` child processes."""
    seeds = list(seeds)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(seeds)))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="tracegrad-fuzz-cache-") as cache_dir:
        threads = [threading.Thread(target=_worker, args=(seeds[j::jobs], results, timeout,
                                                          cache_dir)) for j in range(jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child([int(s) for s in sys.argv[2:]])
    else:
        sys.exit("usage: fuzz_runner.py --child SEED... (see benchmarks/fuzz.py)")
