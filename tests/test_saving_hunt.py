"""Saved programs: a failed save leaves the file alone, float32 NaN-payload guards load,
the constants section and custom_call params are checked, a byte-order mark is skipped."""
import numpy as np
import pytest

import tracegrad as tg
from tracegrad.ir.parser import IRSyntaxError
from tracegrad.tracer.saving import loads_program, program_text


def test_a_failed_save_leaves_the_file_as_it_was(tmp_path):
    path = tmp_path / "p.tgir"
    tg.trace(lambda x: x * 2)(np.ones(2)).save(str(path))
    before = path.read_bytes()
    bad = tg.trace(lambda x: {object(): x})(np.ones(2))
    with pytest.raises(ValueError):
        bad.save(str(path))
    assert path.read_bytes() == before
    np.testing.assert_array_equal(tg.load(str(path))(np.ones(2)), [2.0, 2.0])


def test_a_float32_guard_on_a_nan_with_payload_loads(tmp_path):
    payload = np.array([0x7FC00001], np.uint32).view(np.float32)

    def f(x):
        return x * 2 if np.isnan(x[0].item()) else x
    prog = tg.trace(f)(np.concatenate([payload, np.ones(1, np.float32)]))
    text = program_text(prog, "embedded", "")
    loaded = loads_program(text)
    assert loaded.check_guards(np.concatenate([payload, np.ones(1, np.float32)]))


def _text():
    return program_text(tg.trace(lambda x: x + np.arange(3.0))(np.ones(3)), "embedded", "")


def test_constant_lines_are_checked():
    text = _text()
    lines = text.splitlines()
    const = next(i for i, line in enumerate(lines) if line.startswith("a f64"))
    doubled = "\n".join(lines[:const + 1] + [lines[const]] + lines[const + 1:])
    with pytest.raises(IRSyntaxError, match="a second line for a"):
        loads_program(doubled)
    with pytest.raises(IRSyntaxError, match="negative dimension"):
        loads_program(text.replace("a f64[3]", "a f64[-3]"))
    np.testing.assert_array_equal(loads_program("\ufeff" + text)(np.ones(3)), [1.0, 2.0, 3.0])


def test_custom_call_params_are_checked():
    @tg.custom_vjp
    def f(x):
        return np.tanh(x)
    f.defvjp(lambda x: (np.tanh(x), x), lambda x, g: (g,))
    text = program_text(tg.trace(lambda x: f(x) * 2)(np.ones(3)), "embedded", "")
    assert "fwd_calls=(False,)" in text
    for bad, message in [("fwd_calls=(7,)", "one bool per output"),
                         ("fwd_calls=(True, True)", "one bool per output")]:
        with pytest.raises(IRSyntaxError, match=message):
            loads_program(text.replace("fwd_calls=(False,)", bad))
    with pytest.raises(IRSyntaxError, match="unexpected keyword argument 'bwdx'"):
        loads_program(text.replace(" bwd={", " bwdx={"))
