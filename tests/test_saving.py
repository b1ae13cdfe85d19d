"""Programs saved as text and loaded back: `TracedProgram.save`, `tracegrad.load`.

Round trips print identically and compute identically (the fuzzer's random
programs, with control flow, guards and constants), loaded programs run through
the interpreter, `jit` and `compile_grad`, and parse errors name line and column.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import re

import tracegrad
import tracegrad as tg
import tracegrad.numpy as tnp
from tracegrad.ir import ops
from tracegrad.ir.parser import IRSyntaxError, parse_graph

import fuzz_gen


def _rnn(x, w, xs):
    def step(h, xt):
        h = np.tanh(w @ h + xt)
        return h, np.sum(h)
    h, ys = tracegrad.scan(step, x, xs)
    if np.sum(h) > 0:  # a guard
        h = h * 2.0
    big = np.arange(12.0).reshape(3, 4)  # a captured constant
    return {"h": h, "ys": ys, "c": np.sum(big) + np.float64(np.nan) + -0.0}


RNN_ARGS = (np.ones(3), np.full((3, 3), 0.1), np.linspace(-1, 1, 12).reshape(4, 3))


def _loop(x):
    def cond_fun(c):
        return c[0] < 5

    def body(c):
        i, v = c
        return i + 1, tracegrad.cond(np.sum(v) > 0, lambda u: u * 0.5, lambda u: u - 1.0, v)
    return tracegrad.while_loop(cond_fun, body, (0, x))[1].astype(np.float32)


def _round_trip(tmp_path, f, args, constants="embedded"):
    prog = tracegrad.trace(f)(*args)
    path = tmp_path / "prog.tgir"
    prog.save(path, constants=constants)
    return prog, tracegrad.load(path)


def _same(a, b, rtol=0.0, scale=0.0):
    """Equal leaves, within `rtol` and `scale` times the leaf's largest magnitude (float32
    products may round differently with the buffers' alignment, and a sum that cancels
    turns that into a large relative error on its small elements)."""
    for x, y in zip(tracegrad.tracer.tree_leaves(a), tracegrad.tracer.tree_leaves(b)):
        x, y = np.asarray(x), np.asarray(y)
        finite = np.abs(y[np.isfinite(y)]) if y.dtype.kind == "f" else np.zeros(1)
        atol = scale * float(finite.max(initial=0.0))
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        assert x.dtype == y.dtype


@pytest.mark.parametrize("constants", ["embedded", "sidecar"])
def test_round_trip_prints_and_computes_identically(tmp_path, constants):
    prog, loaded = _round_trip(tmp_path, _rnn, RNN_ARGS, constants)
    assert str(loaded) == str(prog)
    assert len(loaded.guards) == 1
    _same(loaded(*RNN_ARGS), prog(*RNN_ARGS))  # numpy's tanh may differ in the last bit (docs/eager.md)
    _same(loaded(*RNN_ARGS), _rnn(*RNN_ARGS), rtol=1e-14)
    assert sorted(loaded(*RNN_ARGS)) == ["c", "h", "ys"]


def test_loops_branches_and_int_dtypes_round_trip(tmp_path):
    x = np.array([3.0, -1.0])
    prog, loaded = _round_trip(tmp_path, _loop, (x,))
    assert str(loaded) == str(prog)
    _same(loaded(x), _loop(x))


def test_loaded_program_compiles(tmp_path):
    _, loaded = _round_trip(tmp_path, _rnn, RNN_ARGS)
    _same(tracegrad.jit(loaded)(*RNN_ARGS), _rnn(*RNN_ARGS), rtol=1e-14)

    def loss(*args):
        return np.sum(loaded(*args)["ys"])
    value, grads = tracegrad.compile_grad(loss)(*RNN_ARGS)
    want_value, want_grads = tracegrad.value_and_grad(
        lambda *a: np.sum(_rnn(*a)["ys"]), argnums=(0, 1, 2))(*RNN_ARGS)
    np.testing.assert_allclose(value, want_value, rtol=1e-12)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


def test_loaded_program_records_eager_autograd(tmp_path):
    _, loaded = _round_trip(tmp_path, lambda x: np.sum(np.sin(x) * x), (np.ones(3),))
    x = tracegrad.tensor([0.5, 1.0, 2.0], requires_grad=True)
    loaded(x).backward()
    np.testing.assert_allclose(x.grad.numpy(), np.cos(x.data) * x.data + np.sin(x.data))


def test_guard_of_a_loaded_program_still_guards(tmp_path):
    _, loaded = _round_trip(tmp_path, _rnn, RNN_ARGS)
    with pytest.raises(tracegrad.tracer.GuardFailure):
        loaded(-np.ones(3) * 10, RNN_ARGS[1], RNN_ARGS[2] - 5)


def test_loaded_program_checks_its_arguments(tmp_path):
    _, loaded = _round_trip(tmp_path, _rnn, RNN_ARGS)
    with pytest.raises(TypeError, match="does not match"):
        loaded(np.ones(4), *RNN_ARGS[1:])


def _fuzz_program(seed):
    prog = fuzz_gen.generate(seed)
    f, _ = prog.build(prog.dtype, tnp, ops, tracegrad)
    return f, prog.args(prog.dtype, 0)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6))
def test_random_programs_round_trip(tmp_path, seed):
    f, args = _fuzz_program(seed)
    prog = tracegrad.trace(f)(*args)
    path = tmp_path / f"p{seed}.tgir"
    prog.save(path)
    loaded = tracegrad.load(path)
    assert str(loaded) == str(prog)
    with np.errstate(all="ignore"):  # BLAS may round float32 products by the buffers' alignment
        f32 = any(a.dtype == np.float32 for a in prog.graph.in_avals)
        _same(loaded(*args), prog(*args), rtol=1e-6 if f32 else 1e-13, scale=1e-6 if f32 else 0.0)


# ---- errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, where, what", [
    ("{ lambda a:f64[3] . let b:f64[3] = frob a in (b) }", "column 36", "unknown primitive"),
    ("{ lambda a:f64[3] . let\n  b:f64[3] = add a c\nin (b) }", "line 2, column 20", "c is not"),
    ("{ lambda a:q64[3] . let in (a) }", "line 1, column 12", "unknown dtype"),
    ("{ lambda a:f64[3] . let in (a) ", "end of the text", "expected"),
    ("{ lambda a:f64[3] . let in (a) } $", "column 34", "unexpected character"),
])
def test_parse_errors_name_line_and_column(text, where, what):
    with pytest.raises(IRSyntaxError, match=what) as info:
        parse_graph(text)
    assert where in str(info.value)


def test_bad_files_are_refused_with_the_reason(tmp_path):
    path = tmp_path / "p.tgir"
    path.write_text("# tracegrad program\n%% format 99\n%% outputs *\n%% graph\n%% constants embedded\n")
    with pytest.raises(IRSyntaxError, match="format '99'"):
        tracegrad.load(path)
    path.write_text("hello\n")
    with pytest.raises(IRSyntaxError, match="before the first"):
        tracegrad.load(path)
    prog = tracegrad.trace(lambda x: x + np.arange(3.0))(np.ones(3))
    prog.save(path)
    path.write_text(path.read_text().replace("%% graph\n{ lambda a", "%% graph\n{ lambda zz"))
    with pytest.raises(IRSyntaxError, match=r"p.tgir, line 6, column \d+: a is not defined"):
        tracegrad.load(path)


def test_namedtuples_and_any_dict_keys_round_trip(tmp_path):
    """Output structures are written with namedtuple fields and read token by token, so
    a `*` inside a key stays a `*` (tracer/tree_text.py)."""
    import collections

    pair = collections.namedtuple("Pair", "a b")
    path = tmp_path / "nt.tgir"
    tracegrad.trace(lambda x: (pair(x, 2 * x), {"a*b": x, "c": None}))(np.ones(3)).save(path)
    (p, d) = tracegrad.load(path)(np.full(3, 2.0))
    assert type(p).__name__ == "Pair" and p._fields == ("a", "b")
    np.testing.assert_array_equal(p.b, [4.0, 4.0, 4.0])
    assert set(d) == {"a*b", "c"} and d["c"] is None
    path = tmp_path / "slogdet.tgir"
    tracegrad.trace(lambda m: np.linalg.slogdet(m))(np.eye(2) * 2).save(path)
    sign, logdet = tracegrad.load(path)(np.eye(2) * 3)
    assert float(sign) == 1.0 and np.isclose(float(logdet), np.log(9.0))


def test_a_loaded_programs_guard_fails_clearly_inside_a_trace(tmp_path):
    """jit or grad of a loaded program on inputs that take the other branch: the guard's
    failure is named at trace time (not blamed on rounding in compiled code)."""
    def f(x):
        return x * 2 if x.sum() > 0 else x * 3
    path = tmp_path / "g.tgir"
    tracegrad.trace(f)(np.ones(3)).save(path)
    p = tracegrad.load(path)
    np.testing.assert_array_equal(tracegrad.jit(p)(np.ones(3)), [2.0, 2.0, 2.0])
    for run in (tracegrad.jit(p), tracegrad.grad(lambda x: np.sum(p(x)))):
        with pytest.raises(ValueError, match="assumed True, these inputs give False"):
            run(-np.ones(3))


def test_loaded_program_argument_errors_name_the_input(tmp_path):
    from tracegrad.ir.parser import IRSyntaxError
    prog = tracegrad.trace(lambda a, b: a @ b)(np.ones((2, 3)), np.ones(3))
    path = tmp_path / "f.tgir"
    prog.save(path)
    loaded = tracegrad.load(path)
    with pytest.raises(TypeError, match=r"input 0 of shape \(2, 4\).*takes f64\[2,3\], f64\[3\]"):
        loaded(np.ones((2, 4)), np.ones(3))
    with pytest.raises(TypeError, match="takes 2 arguments"):
        loaded(np.ones((2, 3)))
    junk = tmp_path / "junk.tgir"
    junk.write_bytes(bytes(range(256)))
    with pytest.raises(IRSyntaxError, match="not a tracegrad program"):
        tracegrad.load(junk)


def test_a_long_program_never_names_a_variable_inf_or_nan(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_REROLL", "0")

    def f(x):
        for i in range(9000):  # names reach 'inf' (the 5,751st) and 'nan' (the 8,801st)
            x = x + 1.0 if i % 2 else x * 1.0001
        return x

    p = tg.trace(f)(np.ones(2))
    assert not {"inf", "nan"} & set(re.findall(r"\b[a-z]+(?=:f64)", str(p)))
    p.save(tmp_path / "long.tgir")
    np.testing.assert_array_equal(tg.load(tmp_path / "long.tgir")(np.ones(2)), p(np.ones(2)))


def test_a_body_shared_by_two_equations_prints_with_fresh_names(tmp_path):
    def f(x):
        return tg.while_loop(lambda c: c[0] < 5.0, lambda c: (c[0] + 1.0, c[1] * 1.5), (x, x))[1]

    p = tg.trace(tg.value_and_grad(f))(np.float64(1.0))  # while and while_vjp share a body
    p.save(tmp_path / "shared.tgir")
    q = tg.load(tmp_path / "shared.tgir")
    assert str(q) == str(p)
    np.testing.assert_array_equal(q(np.float64(1.0)), p(np.float64(1.0)))


def test_strings_that_spell_words_and_negative_nan_survive_a_round_trip(tmp_path):
    @tg.custom_vjp
    def f32(x):
        return x * 2.0

    f32.defvjp(lambda x: (f32(x), None), lambda r, g: (g * 2.0,))
    p = tg.trace(lambda x: np.copysign(1.0, f32(x) * 0.0 + (-np.nan)))(np.ones(2))
    p.save(tmp_path / "words.tgir")
    q = tg.load(tmp_path / "words.tgir")
    assert str(q) == str(p)
    np.testing.assert_array_equal(q(np.ones(2)), [-1.0, -1.0])


def test_a_program_with_loops_runs_on_eager_tensors_and_records_autograd():
    def f(x):
        y = tg.scan(lambda c, t: (c * t, c + t), 1.0, x)[1]
        return tg.fori_loop(0, 3, lambda i, c: c * 0.5, y).sum()

    x0 = np.arange(1.0, 4.0)
    p = tg.trace(f)(x0)
    x = tg.tensor(x0, requires_grad=True)
    y = p(x)
    y.backward()
    assert float(y) == float(f(x0))
    np.testing.assert_allclose(x.grad.numpy(), tg.grad(f)(x0))


def test_an_unpickled_array_gives_the_same_bits():
    import pickle
    x = np.random.default_rng(0).uniform(-3, 3, 4096)
    y = pickle.loads(pickle.dumps(x))  # an equal dtype, not numpy's own object
    assert np.sin(tg.tensor(x)).numpy().tobytes() == np.sin(tg.tensor(y)).numpy().tobytes()


@pytest.mark.parametrize("constants", ["embedded", "sidecar"])
def test_bodies_that_close_over_array_constants_save_and_load(tmp_path, constants):
    W = np.eye(3) * 0.5
    C = np.array([1.0, -2.0, 3.0])

    def f(x):
        y = tg.fori_loop(0, 3, lambda i, c: W @ c, x)
        return tg.cond(np.sum(x) > 0, lambda u: u * C, lambda u: u - C, y)
    for prog in (tg.trace(f)(np.ones(3)), tg.trace(tg.vmap(f))(np.ones((2, 3)))):
        path = tmp_path / "p.tgir"
        prog.save(path, constants=constants)
        loaded = tg.load(path)
        assert str(loaded) == str(prog)
        x = np.full(prog.in_avals[0].shape, 0.7)
        np.testing.assert_array_equal(loaded(x), prog(x))


def test_guards_keep_a_negative_nan_and_an_empty_shape(tmp_path):
    def f(x, e):
        s = float(np.max(x) - np.max(x))     # inf - inf: x86's NaN has its sign bit set
        e.tolist()                            # a guard on an empty (0, 3) array
        return x * 2 if s == s else x * 3
    x, e = np.array([1.0, np.inf]), np.zeros((0, 3))
    prog = tg.trace(f)(x, e)
    prog.save(tmp_path / "g.tgir")
    loaded = tg.load(tmp_path / "g.tgir")
    np.testing.assert_array_equal(loaded(x, e), prog(x, e))
    assert [g.expected.shape for g in loaded.guards] == [g.expected.shape for g in prog.guards]


def test_outputs_keyed_by_numpy_scalars_load_back(tmp_path):
    prog = tg.trace(lambda x: {np.int64(0): x * 2, np.str_("b"): x + 1})(np.ones(2))
    prog.save(tmp_path / "k.tgir")
    out = tg.load(tmp_path / "k.tgir")(np.ones(2))
    np.testing.assert_array_equal(out[0], [2.0, 2.0])
    np.testing.assert_array_equal(out["b"], [2.0, 2.0])


def test_unknown_dtype_parameter_is_a_syntax_error_at_its_line():
    from tracegrad.tracer.saving import loads_program
    text = ("# tracegrad program\n%% format 1\n%% outputs *\n%% graph\n"
            "{ lambda a:f64[3] . let\n    b:f64[3] = convert[dtype=i2] a\n  in (b) }\n"
            "%% constants embedded\n")
    with pytest.raises(IRSyntaxError, match=r"line 6.*unknown dtype 'i2'"):
        loads_program(text)


def test_outputs_that_would_not_load_are_refused_when_saved(tmp_path):
    program = tg.trace(lambda x: {float("inf"): x})(np.ones(3))
    with pytest.raises(ValueError, match="dict key inf is not a hashable Python literal"):
        program.save(str(tmp_path / "p.tgir"))


@pytest.mark.parametrize("outputs, constants, what", [
    ("{[1]: *}", "embedded", "dict key \\[1\\] is not a hashable"),
    ("*", "sidecar nope.npz", "sidecar 'nope.npz' does not exist"),
])
def test_bad_outputs_and_missing_sidecars_are_syntax_errors(outputs, constants, what):
    from tracegrad.tracer.saving import loads_program
    text = (f"# tracegrad program\n%% format 1\n%% outputs {outputs}\n%% graph\n"
            f"{{ lambda a:f64[3] . let\n  in (a) }}\n%% constants {constants}\n")
    with pytest.raises(IRSyntaxError, match=what):
        loads_program(text)


@pytest.mark.parametrize("damage", ["garbage", "empty", "object", "directory"])
def test_a_damaged_sidecar_is_a_syntax_error_of_the_program(tmp_path, damage):
    k = np.linspace(0, 1, 6)
    path = str(tmp_path / "prog.tgir")
    tg.trace(lambda x: x * k)(np.ones(6)).save(path, constants="sidecar")
    sidecar = path + ".npz"
    if damage == "directory":
        import os
        os.remove(sidecar)
        os.mkdir(sidecar)
    elif damage == "object":
        np.savez(sidecar, a=np.array([1, "x"], dtype=object))
    else:
        with open(sidecar, "wb") as f:
            f.write(b"not a zip file" if damage == "garbage" else b"")
    with pytest.raises(IRSyntaxError, match="sidecar .* is not a readable .npz"):
        tg.load(path)


def _custom_square():
    @tg.custom_vjp
    def sq(v):
        return v * v
    sq.defvjp(lambda v: (v * v, v), lambda r, g: (2 * r * g,))
    return sq


@pytest.mark.parametrize("make, old, new, what", [
    (_custom_square, "num_consts=0", "num_consts=3", "num_consts=3 for 1 operands"),
    (_custom_square, "in (j, i) }", "in (j) }", "bwd takes 2 inputs"),
    (lambda: np.cumsum, "reverse=False", "reverse=7", "reverse must be a bool"),
    (lambda: (lambda v: v * 2 if np.sum(v) > 0 else v), "== True", "== 7", "not a value of bool"),
])
def test_a_tampered_program_does_not_load(tmp_path, make, old, new, what):
    """Params, bodies and guards that do not fit their equation are refused at load, not
    run (a reverse=7 cumsum ran reversed; a custom_call failed only under grad)."""
    path = tmp_path / "p.tgir"
    tg.trace(make())(np.arange(4.0)).save(str(path))
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    with pytest.raises(IRSyntaxError, match=what):
        tg.load(str(path))


@pytest.mark.parametrize("dtype, bits", [(np.float64, 0x7FF8000000000123), (np.float64, 0xFFF8000000000456),
                                         (np.float32, 0x7FC00123), (np.float32, 0xFF800001)])
def test_a_nan_literal_keeps_its_bits_through_text_save_load_and_the_disk_cache(tmp_path, monkeypatch,
                                                                                dtype, bits):
    """A NaN with a payload prints as nan(0x<bits>) (it printed as nan): the text parses
    back to the same bits, a loaded program computes identically, and two programs that
    differ only in the payload get their own disk-cache entries."""
    uint = np.uint64 if dtype == np.float64 else np.uint32
    nan = np.array(bits, uint).view(dtype)[()]
    x = np.ones(2, dtype)
    program = tg.trace(lambda v: v * nan)(x)
    assert "nan(0x" in str(program)
    reparsed = parse_graph(str(program.graph))
    assert str(reparsed) == str(program.graph)
    program.save(str(tmp_path / "p.tgir"))
    np.testing.assert_array_equal(tg.load(str(tmp_path / "p.tgir"))(x).view(uint), program(x).view(uint))
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TRACEGRAD_DISABLE_CACHE", raising=False)
    other = np.array(bits ^ 0x10, uint).view(dtype)[()]
    for value in (nan, other):
        got = tracegrad.jit(lambda v, value=value: v * value)(x)
        with np.errstate(invalid="ignore"):  # a signalling NaN: x86 quiets it, as numpy
            want = x * value
        np.testing.assert_array_equal(got.view(uint), want.view(uint))
