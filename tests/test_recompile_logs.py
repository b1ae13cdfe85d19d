"""Recompile logs (`TRACEGRAD_LOG=recompiles`), per-specialization introspection and dumps."""
from __future__ import annotations

import logging

import numpy as np
import pytest

import tracegrad


def _branchy(x, n):
    if np.sum(x) > 0:
        return x * n
    return x - n


@pytest.fixture
def recompiles(monkeypatch, caplog):
    monkeypatch.setenv("TRACEGRAD_LOG", "recompiles")
    caplog.set_level(logging.INFO, logger="tracegrad")
    return caplog


def _lines(caplog):
    return [r.getMessage() for r in caplog.records if "specialization" in r.getMessage()]


def test_one_line_per_specialization_with_its_reason(recompiles):
    f = tracegrad.jit(_branchy, disk_cache=False)
    f(np.ones(3), 2)
    f(np.ones(3), 2)                 # a hit: no line
    f(np.ones(4), 2)                 # shape change
    f(np.ones(4, np.float32), 3)     # dtype and static value change
    f(-np.ones(4, np.float32), 3)    # the branch goes the other way
    lines = _lines(recompiles)
    assert len(lines) == 4
    assert lines[0].endswith("specialization 1: first call: (f64[3], 2)")
    assert "argument 0 ('x'): f64[3] -> f64[4]" in lines[1]
    assert "argument 0 ('x'): f64[4] -> f32[4]; argument 1 ('n'): 2 -> 3" in lines[2]
    assert "guard failed at" in lines[3] and "test_recompile_logs.py:" in lines[3]
    assert "traced with True, now False" in lines[3]


def test_no_lines_without_the_topic(monkeypatch, caplog):
    monkeypatch.delenv("TRACEGRAD_LOG", raising=False)
    caplog.set_level(logging.INFO, logger="tracegrad")
    f = tracegrad.jit(_branchy, disk_cache=False)
    f(np.ones(3), 2)
    f(np.ones(5), 2)
    assert _lines(caplog) == []


def test_cache_info_reads_like_the_ir_and_every_specialization_is_shown():
    f = tracegrad.jit(lambda x, s: x * s, disk_cache=False)
    f(np.ones((2, 64)), 0.5)
    f(np.ones(3, np.float32), 0.5)
    info = f.cache_info()
    assert sorted(e["signature"] for e in info) == ["(f32[3], float)", "(f64[2,64], float)"]
    for i, entry in enumerate(info):
        first_arg = entry["signature"][1:].split("]")[0] + "]"
        assert f"a:{first_arg}" in f.ir("traced", specialization=i)
        assert f.llvm_ir(specialization=i) and f.asm(specialization=i)
    assert "f32[3]" in f.ir("traced")  # the latest by default
    with pytest.raises(IndexError, match="2 specializations"):
        f.ir(specialization=5)


def test_dump_one_file_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_DUMP", str(tmp_path))
    monkeypatch.setenv("TRACEGRAD_DUMP_MODE", "file")
    f = tracegrad.jit(_branchy, disk_cache=False)
    f(np.ones(3), 2)
    f(-np.ones(3), 2)
    files = sorted(tmp_path.iterdir())
    assert len(files) == 2 and all(p.suffix == ".txt" for p in files)
    texts = [p.read_text() for p in files]
    assert all("==== traced ====" in t and "==== asm ====" in t for t in texts)
    assert any("reason: guard failed" in t for t in texts)
    assert all("guards: 1" in t for t in texts)
