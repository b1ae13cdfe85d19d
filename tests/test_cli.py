"""The command line (tracegrad/cli.py): trace stages, save, cache, and one-line user errors."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import tracegrad
from tracegrad.cli import main, parse_arg_types

USER_CODE = textwrap.dedent("""
    import numpy as np

    def loss(w, x):
        return np.mean(np.tanh(x @ w))

    def broken(w):
        return w @ w @ w
""")


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "model.py"
    path.write_text(USER_CODE)
    return path


def test_arg_types_parse():
    assert parse_arg_types("f64[3], f32[4,3],i64[]") == [
        ((3,), np.dtype(np.float64)), ((4, 3), np.dtype(np.float32)), ((), np.dtype(np.int64))]


@pytest.mark.parametrize("stage, expect", [
    ("traced", "= tanh"), ("gradient", "in ("), ("optimized", "dot"),
    ("kernels", "program (in0:f64[3], in1:f64[4,3])"), ("llvm", "define"), ("asm", "ret")])
def test_trace_prints_each_stage(user_file, capsys, stage, expect):
    assert main(["trace", f"{user_file}:loss", "--args", "f64[3],f64[4,3]", "--stage", stage]) == 0
    assert expect in capsys.readouterr().out


def test_trace_saves_a_program_that_loads(user_file, tmp_path, capsys):
    out = tmp_path / "loss.tgir"
    assert main(["trace", f"{user_file}:loss", "--args", "f64[3],f64[4,3]", "--save", str(out)]) == 0
    w, x = np.ones(3), np.full((4, 3), 0.1)
    np.testing.assert_allclose(tracegrad.load(out)(w, x), np.mean(np.tanh(x @ w)))


@pytest.mark.parametrize("argv, message", [
    (["trace", "{f}:nope", "--args", "f64[3]"], "has no function 'nope'"),
    (["trace", "missing.py:f", "--args", "f64[3]"], "missing.py: no such file"),
    (["trace", "{f}:loss", "--args", "f64[3],f64[5,2]"], "loss: BroadcastError: matmul"),
    (["trace", "{f}:loss", "--args", "f64(3)"], "expected types like"),
    (["trace", "{f}", "--args", "f64[3]"], "expected FILE.py:FUNCTION"),
    (["trace", "{f}:loss", "--args", "f64[3],f64[4,3]", "--seed", "-5"], "expected a seed"),
    (["trace", "{f}:loss", "--args", "f64[99999999999999],f64[4,3]"], "MemoryError"),
])
def test_user_errors_are_one_line_with_status_2(user_file, capsys, argv, message):
    argv = [a.format(f=user_file) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(user_file):
    with pytest.raises(Exception, match="contracted dimensions"):
        main(["trace", f"{user_file}:loss", "--args", "f64[3],f64[5,2]", "--debug"])


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path / "cache"))
    f = tracegrad.jit(lambda x: np.sin(x) * 3.0, disk_cache=str(tmp_path / "cache"))
    f(np.ones(3))
    assert main(["cache", "info"]) == 0
    out = capsys.readouterr().out
    assert "cache: " in out and " 0 entries" not in out
    assert main(["cache", "clear"]) == 0
    assert "removed" in capsys.readouterr().out
    main(["cache", "info"])
    assert "0 entries" in capsys.readouterr().out


def test_module_entry_point_runs_in_a_fresh_process(user_file):
    r = subprocess.run([sys.executable, "-m", "tracegrad", "trace", f"{user_file}:broken",
                        "--args", "f64[3]"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("tracegrad: ") and r.stdout == ""


def test_trace_draws_the_program(user_file, tmp_path, capsys):
    out = tmp_path / "loss.svg"
    assert main(["trace", f"{user_file}:loss", "--args", "f64[3],f64[4,3]", "--draw", str(out)]) == 0
    assert out.read_bytes().startswith(b"<?xml")


def test_draw_to_an_unknown_suffix_is_a_user_error(user_file, tmp_path, capsys):
    out = tmp_path / "loss.xyz"
    assert main(["trace", f"{user_file}:loss", "--args", "f64[3],f64[4,3]", "--draw", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracegrad: cannot write") and ".svg" in err and "Traceback" not in err
