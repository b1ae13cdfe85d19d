"""The on-disk cache of compiled programs and kernel units: hits across processes,
corruption, switches, and keys that change with the compiler (issue 10.4)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tracegrad.codegen import cache, compile_program, fingerprint, threads
from tracegrad.codegen.cache import DiskCache, decode, describe_program

# Builds the same program in this process and in fresh ones.
PROGRAM = textwrap.dedent("""
    import numpy as np
    from tracegrad.passes.kernels import Buffer, IndexMap, KernelProgram, Load, LoopKernel, Op, Store

    def make_program(scale=2.0):
        f64 = np.dtype(np.float64)
        x = Buffer("x", (1000,), f64, "input", index=0)
        c = Buffer("c", (1000,), f64, "const", value=np.linspace(0, 1, 1000) * scale)
        out = Buffer("out", (), f64, "output", index=0)
        idx = IndexMap(0, (1,))
        body = [Load(x, idx, f64), Load(c, idx, f64), Op("mul", (0, 1), {}, f64), Op("exp", (2,), {}, f64)]
        kernel = LoopKernel("k", (1000,), body, [Store(out, 3, IndexMap(0, (0,)), reduce="sum")])
        return KernelProgram([x], [out], [c], [], [kernel])
""")
namespace = {}
exec(PROGRAM, namespace)
make_program = namespace["make_program"]

@pytest.fixture(autouse=True)
def cache_enabled(monkeypatch):
    monkeypatch.delenv("TRACEGRAD_DISABLE_CACHE", raising=False)


CHILD = PROGRAM + textwrap.dedent("""
    import sys
    from tracegrad.codegen import compile_program
    cp = compile_program(make_program(), name="cached")
    x = np.linspace(-1, 1, 1000)
    print(cp.from_cache, repr(float(cp(x)[0])))
""")


def run_child(cache_dir, **env):
    full_env = dict(os.environ, TRACEGRAD_CACHE_DIR=str(cache_dir))
    full_env.pop("TRACEGRAD_DISABLE_CACHE", None)  # CI may disable it globally
    full_env.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD], env=full_env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    hit, value = out.stdout.split()
    return hit == "True", float(value)


def expected_value():
    x = np.linspace(-1, 1, 1000)
    return float(np.sum(np.exp(x * np.linspace(0, 1, 1000) * 2.0)))


def entries(d, kind="program"):
    """The entries of one kind: programs, kernel units, or the process's tg_fastcall."""
    names = sorted(p for p in os.listdir(d) if p.endswith(cache.SUFFIX))
    return [n for n in names if _kind(os.path.join(d, n)) == kind]


def _kind(path):
    with open(path, "rb") as f:
        entry = decode(f.read())
    if entry is None:
        return None
    if "unit" in entry.meta:
        return "unit"
    if entry.meta.get("name") == "tg_pool":
        return "pool"
    return "fastcall" if entry.meta.get("name") == "tg_fastcall" else "program"


def _flip_bytes(path):
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert decode(bytes(data)) is None


def test_hit_in_a_fresh_process_then_corruption_is_recompiled(tmp_path):
    hit, value = run_child(tmp_path)
    assert not hit and np.isclose(value, expected_value(), rtol=1e-12)
    [name] = entries(tmp_path)
    [unit] = entries(tmp_path, "unit")
    assert len(entries(tmp_path, "fastcall")) == 1
    hit, value2 = run_child(tmp_path)
    assert hit and value2 == value
    # flip bytes in the object code: detected by the checksum, recompiled, rewritten
    for broken in (name, unit):
        path = tmp_path / broken
        _flip_bytes(path)
        hit, value3 = run_child(tmp_path)
        assert not hit and value3 == value
        assert decode(path.read_bytes()) is not None
        assert run_child(tmp_path)[0]


def test_truncated_and_foreign_entries_are_misses(tmp_path):
    store = DiskCache(str(tmp_path))
    kp = make_program()
    cp = compile_program(kp, disk_cache=store)
    assert not cp.from_cache and entries(tmp_path)
    path = tmp_path / entries(tmp_path)[0]
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 3])
    assert not compile_program(kp, disk_cache=store).from_cache
    # a valid entry of another program placed under this key: the key inside differs
    other = compile_program(make_program(3.0), disk_cache=store)
    path.write_bytes((tmp_path / (other.cache_key + cache.SUFFIX)).read_bytes())
    cp2 = compile_program(kp, disk_cache=store)
    assert not cp2.from_cache
    assert compile_program(kp, disk_cache=store).from_cache


def test_in_process_hit_gives_same_results(tmp_path):
    kp = make_program()
    first = compile_program(kp, disk_cache=str(tmp_path))
    second = compile_program(make_program(), disk_cache=str(tmp_path))
    assert second.from_cache and second.cache_key == first.cache_key
    x = np.linspace(-1, 1, 1000)
    assert second(x)[0] == first(x)[0]
    assert "define" in second.llvm_ir() and second.asm()


def test_disabled_by_env_and_by_argument(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEGRAD_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRACEGRAD_DISABLE_CACHE", "1")
    cp = compile_program(make_program())
    assert cp.cache_key is None and not entries(tmp_path)
    monkeypatch.delenv("TRACEGRAD_DISABLE_CACHE")
    compile_program(make_program(), disk_cache=False)
    assert not entries(tmp_path)
    compile_program(make_program())  # env default: on, in TRACEGRAD_CACHE_DIR
    assert len(entries(tmp_path)) == 1


def test_key_covers_constant_bytes_and_program_text():
    a, b = describe_program(make_program(2.0)), describe_program(make_program(2.0 + 1e-12))
    assert a != b and describe_program(make_program(2.0)) == a


def test_unwritable_cache_dir_does_not_break_compiles(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cp = compile_program(make_program(), disk_cache=str(blocker / "sub"))
    assert not cp.from_cache
    assert np.isclose(cp(np.linspace(-1, 1, 1000))[0], expected_value())


def test_threaded_program_from_cache_keeps_its_scratch(tmp_path, monkeypatch):
    """A full reduction split over threads needs arena scratch: recorded in the entry."""
    from tracegrad.codegen import threads
    monkeypatch.setattr(threads, "PARALLEL_MIN_COST", 64)
    kp = make_program()
    first = compile_program(kp, disk_cache=str(tmp_path), n_threads=3)
    second = compile_program(make_program(), disk_cache=str(tmp_path), n_threads=3)
    assert second.from_cache and "tg_pool_run" in second.llvm_ir()
    assert second.image.arena_bytes == first.image.arena_bytes > 0
    x = np.linspace(-1, 1, 1000)
    assert np.isclose(second(x)[0], expected_value(), rtol=1e-12)


# ---- keys change with the compiler (issue 10.4) -----------------------------------------

def test_source_hash_follows_every_source_file(tmp_path, monkeypatch):
    package = tmp_path / "tg_fake_compiler"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "rules.py").write_text("COST = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = fingerprint.source_hash(["tg_fake_compiler"])
    assert fingerprint.source_hash(["tg_fake_compiler"]) == before
    (package / "sub" / "rules.py").write_text("COST = 2\n")
    assert fingerprint.source_hash(["tg_fake_compiler"]) != before


def test_compiler_hash_covers_ir_passes_and_codegen():
    files = {p for package in fingerprint.PACKAGES for p, _ in fingerprint._source_files(package)}
    assert {"fingerprint.py", "lower.py", "autodiff.py", "core.py"} <= files
    assert len(fingerprint.compiler_hash()) == 64


def test_environment_names_versions_target_and_tuning():
    env = fingerprint.kernel_environment()
    target = fingerprint.target()
    for part in ("llvmlite", "llvm", "triple", "cpu", "features", "vector_bits"):
        assert part in target and str(target[part]) in env
    assert fingerprint.compiler_hash() in env
    assert "PARALLEL_MIN_COST" in env and "OUTLINE_MIN_CALLS" in env


@pytest.mark.parametrize("change", ["compiler", "tuning", "target"])
def test_a_changed_compiler_never_reuses_entries(tmp_path, monkeypatch, change):
    store = DiskCache(str(tmp_path))
    first = compile_program(make_program(), disk_cache=store)
    assert compile_program(make_program(), disk_cache=store).from_cache
    if change == "compiler":  # as an edited source file would
        monkeypatch.setattr(fingerprint, "compiler_hash", lambda: "0" * 64)
    elif change == "tuning":
        monkeypatch.setattr(threads, "PARALLEL_MIN_COST", threads.PARALLEL_MIN_COST + 1)
    else:
        monkeypatch.setattr(fingerprint, "target", lambda: {**first_target, "cpu": "other"})
    second = compile_program(make_program(), disk_cache=store)
    assert not second.from_cache and second.cache_key != first.cache_key
    assert second.kernel_stats["compiled"] == 1, "the kernel unit's key changed too"


first_target = fingerprint.target()
