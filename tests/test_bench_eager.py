"""benchmarks/eager.py at tiny sizes: the cases agree with PyTorch (when installed) and the
timing table renders. No time is asserted (speed lives in benchmarks/ as ratios)."""

import io
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks import eager  # noqa: E402


@pytest.mark.parametrize("case", [c.id for c in eager.CASES])
def test_case_agrees_with_torch(case):
    pytest.importorskip("torch")
    out = io.StringIO()
    eager.run([case], smoke=True, out=out)
    assert out.getvalue() == f"{case}: ok (tracegrad, torch agree)\n"


def test_runs_without_torch():
    out = io.StringIO()
    eager.run(smoke=True, use_torch=False, out=out)
    assert out.getvalue().count("ok (tracegrad agree)") == len(eager.CASES)


def test_table_renders_ratios(monkeypatch):
    monkeypatch.setattr(eager, "CASES", [eager.CASES_BY_ID["seed"]])
    out = io.StringIO()
    rows = eager.run(repeats=2, min_sample_s=0.001, out=out)
    assert len(rows) == 1 and len(rows[0][1].per_call["tracegrad"]) == 2
    text = out.getvalue()
    assert "| seed: " in text and "load average" in text
    if eager.load_torch() is not None:
        assert text.count("x |") == 2  # the two ratio cells


def test_check_catches_a_wrong_gradient():
    lib = eager.TracegradLib()

    class Wrong(eager.TracegradLib):
        name = "wrong"

        def tanh(self, x):
            return self.np.sin(x)

    with pytest.raises(AssertionError, match="chain: wrong array"):
        eager.check(eager.CASES_BY_ID["chain"], [lib, Wrong()], smoke=True)


def test_unknown_case_is_an_error(capsys):
    with pytest.raises(SystemExit):
        eager.main(["--only", "nope"])
    assert "unknown case" in capsys.readouterr().err


def test_leaf_values_round_trip():
    lib = eager.TracegradLib()
    t = lib.leaf(np.arange(3.0))
    assert lib.value(t).tolist() == [0.0, 1.0, 2.0]
