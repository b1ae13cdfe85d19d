"""The benchmark harness in smoke mode: tiny sizes, correctness checks only, no timing.

Speed is not asserted here (it lives in benchmarks/ as ratios); these tests assert that
every implementation the harness drives agrees with the float64 reference.
"""

import json
import pathlib
import sys
from contextlib import ExitStack

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.harness import Config, run_entry, run_suite  # noqa: E402
from benchmarks.impls import NumpyImpl  # noqa: E402
from benchmarks.workloads import WORKLOADS, WORKLOADS_BY_ID, reference  # noqa: E402


def smoke_suite(peers, tracegrad=False):
    return run_suite(Config(smoke=True, peers=peers, tracegrad=tracegrad, log=lambda msg: None))


def assert_agrees(suite, name):
    assert [w.id for w in suite.workloads] == [w.id for w in WORKLOADS]
    for wid, row in suite.results.items():
        entry = row[name]
        assert entry.status in ("ok", "n/a"), f"{wid} {name}: {entry.status}: {entry.error}"


def test_numpy_hand_written_gradients_agree_with_reference():
    assert_agrees(smoke_suite(("numpy",)), "numpy")


def test_tracegrad_agrees_with_reference():
    import tracegrad

    if not hasattr(tracegrad, "compile_grad"):
        pytest.skip("tracegrad.compile_grad is not implemented yet")
    assert_agrees(smoke_suite(("numpy",), tracegrad=True), "tracegrad")


# torch (a 5 s import) is left to the benchmark run itself, to keep this file under 20 s.
@pytest.mark.parametrize("peer, module", [("jax", "jax"), ("autograd", "autograd")])
def test_peer_agrees_with_reference(peer, module):
    pytest.importorskip(module)
    assert_agrees(smoke_suite((peer,)), peer)


class _OffByOne(NumpyImpl):
    name = "off-by-one"

    def unpack(self, out, wl):
        value, grads = super().unpack(out, wl)
        return value, (grads[0] * (1 + 1e-3),) + grads[1:]


@pytest.mark.parametrize("wid", ["W2", "W6"])
def test_a_wrong_gradient_is_flagged_and_not_timed(wid):
    wl = WORKLOADS_BY_ID[wid]
    inputs = wl.inputs(smoke=True)
    with ExitStack() as contexts:
        entry = run_entry(_OffByOne(), wl, inputs, reference(wl, inputs), Config(smoke=False), contexts)
    assert entry.status == "wrong" and entry.median_us is None
    assert "grad of arg 0" in entry.error


def test_reference_is_float64_and_matches_input_shapes():
    for wl in WORKLOADS:
        inputs = wl.inputs(smoke=True)
        _, grads = reference(wl, inputs)
        assert [g.shape for g in grads] == [inputs[i].shape for i in wl.wrt]
        assert all(g.dtype == np.float64 for g in grads)


def test_cli_smoke_writes_json(tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = bench_run.main(["--smoke", "--peers", "numpy", "--no-tracegrad", "--only", "W1,W4",
                         "--json", str(out)])
    assert rc == 0
    assert "| W4 |" in capsys.readouterr().out
    data = json.loads(out.read_text())
    entry = data["workloads"]["W1"]["results"]["numpy"]
    assert entry["ok"] is True and entry["error"] is None
    assert set(entry) >= {"median_us", "first_ms", "ok", "error"}


def test_isa_cap_runs_every_library_capped(tmp_path):
    """`--isa avx2` runs the harness again with each library's start-up caps, and says so."""
    import os
    import subprocess
    env = {k: v for k, v in os.environ.items() if k != "TRACEGRAD_ISA"}
    cmd = [sys.executable, "-m", "benchmarks.run", "--smoke", "--peers", "numpy", "--only", "W1,W4",
           "--isa", "avx2", "--json", str(tmp_path / "r.json")]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "instruction set capped at AVX2 for every library" in out.stdout
    assert "TRACEGRAD_ISA=avx2" in out.stdout and "| W4 |" in out.stdout
    machine = json.loads((tmp_path / "r.json").read_text())["machine"]
    assert machine["env"]["TRACEGRAD_ISA"] == "avx2"


def test_isa_environment_keeps_a_core_type_already_set():
    env = bench_run.isa_environment("avx2", {"OPENBLAS_CORETYPE": "Zen", "XLA_FLAGS": "--a=1"})
    assert env["OPENBLAS_CORETYPE"] == "Zen" and env["XLA_FLAGS"] == "--a=1 --xla_cpu_max_isa=AVX2"
    assert bench_run.isa_environment("avx2", {})["OPENBLAS_CORETYPE"] == "Haswell"


def test_steady_samples_are_taken_in_turns():
    """Round k runs sample k of every call; a call that raises is reported, the others go on."""
    from benchmarks import timing
    order = []

    def call(name):
        return lambda: order.append(name)

    def broken():  # calibration and the first round pass, the second round raises
        order.append("c")
        if order.count("c") > 2:
            raise RuntimeError("broke")

    out = timing.interleaved_steady({"a": call("a"), "b": call("b"), "c": broken},
                                    samples=3, min_sample_s=0.0, warmup=0)
    assert set(out) == {"a", "b", "c"} and isinstance(out["c"], RuntimeError)
    assert all(out[k][0] >= out[k][1] > 0 for k in "ab")
    assert "".join(order) == "abc" + "abc" + "abc" + "ab"  # calibration, then rounds in turn


def test_a_timed_row_gives_every_entry_its_times():
    config = Config(only=("W1",), peers=("numpy",), samples=2, min_sample_s=0.01,
                    measure_limits=False, log=lambda msg: None)
    row = run_suite(config).results["W1"]
    for name in ("numpy", "tracegrad"):
        assert row[name].status == "ok" and row[name].median_us > 0 and row[name].first_ms > 0
