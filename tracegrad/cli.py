"""The command line: `tracegrad` (console script) and `python -m tracegrad`.

    tracegrad demo
    tracegrad trace FILE.py:FUNC --args 'f64[3],f64[4,3]' [--stage STAGE] [--grad]
                    [--save OUT.tgir] [--draw OUT.svg|OUT.png|OUT.pdf] [--seed N]
    tracegrad cache info|clear
    tracegrad bench [--quick]

`trace` imports FILE, calls FUNC on arrays of the given types (seeded standard
normal values, so guards are reproducible) and prints one stage: `traced`
(the default), `gradient`, `optimized`, `kernels`, `llvm` or `asm`; stages after
`traced` compile the function (`compile_grad` with `--grad` or for `gradient`,
`jit` otherwise).  A user error (a missing file or function, bad `--args`, an
error while tracing) prints one line on stderr and exits with status 2;
`--debug` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import re
import sys
import traceback

import numpy as np

STAGES = ("traced", "gradient", "optimized", "kernels", "llvm", "asm")
DTYPES = {"f32": np.float32, "f64": np.float64, "i32": np.int32, "i64": np.int64, "bool": np.bool_}


class UserError(Exception):
    """A mistake in the command line or the user's code: one line, exit status 2."""


def parse_arg_types(text: str) -> list:
    """'f64[3],f64[4,3],f32[]' -> [(shape, dtype), ...]."""
    specs = re.findall(r"\s*([a-z0-9]+)\[([0-9,\s]*)\]\s*(?:,|$)", text)
    rebuilt = ",".join(f"{d}[{s}]" for d, s in specs)
    if not specs or rebuilt.replace(" ", "") != text.replace(" ", ""):
        raise UserError(f"--args {text!r}: expected types like 'f64[3],f32[4,3],i64[]'")
    out = []
    for dtype, dims in specs:
        if dtype not in DTYPES:
            raise UserError(f"--args: unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
        out.append((tuple(int(d) for d in dims.split(",") if d.strip()), np.dtype(DTYPES[dtype])))
    return out


def example_args(types, seed: int) -> list:
    """Seeded example arrays of the given types; a bad seed or a size that does not fit in
    memory is a `UserError` (one line, exit 2)."""
    if seed < 0:
        raise UserError(f"--seed {seed}: expected a seed of 0 or more")
    rng = np.random.default_rng(seed)
    try:
        return [_example(rng, shape, dtype) for shape, dtype in types]
    except (MemoryError, ValueError) as e:
        raise UserError(f"--args: cannot make the example arrays: {type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}") from None


def _example(rng, shape, dtype):
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return (rng.standard_normal(shape) > 0).astype(dtype)
    return rng.integers(0, 10, shape).astype(dtype)


def load_function(target: str):
    """`FILE.py:FUNC` -> the function (the file is imported as a module)."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise UserError(f"{target!r}: expected FILE.py:FUNCTION")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(path))[0], path)
    if spec is None:
        raise UserError(f"{path}: not a Python file (expected FILE.py:FUNCTION; a saved "
                        "program is loaded with tracegrad.load)")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    fun = getattr(module, name, None)
    if not callable(fun):
        raise UserError(f"{path} has no function {name!r}")
    return fun


def stage_text(fun, args, stage: str, grad: bool) -> str:
    import tracegrad as tg

    if stage == "traced":
        return str(tg.trace(fun)(*args))
    compiled = (tg.compile_grad if grad or stage == "gradient" else tg.jit)(fun, disk_cache=False)
    compiled(*args)
    if stage == "llvm":
        return compiled.llvm_ir()
    if stage == "asm":
        return compiled.asm()
    return compiled.ir(stage)


def cmd_trace(opts) -> int:
    import tracegrad as tg

    args = example_args(parse_arg_types(opts.args), opts.seed)
    try:
        fun = load_function(opts.target)
        print(stage_text(fun, args, opts.stage, opts.grad))
        program = tg.trace(fun)(*args) if opts.save or opts.draw else None
    except UserError:
        raise
    except Exception as e:  # the user's code failed: one line, unless --debug
        if opts.debug:
            raise
        first = str(e).splitlines()[0] if str(e) else ""
        raise UserError(f"{opts.target}: {type(e).__name__}: {first}") from None
    _write_outputs(program, opts)
    return 0


def _write_outputs(program, opts) -> None:
    """--save and --draw: a file that cannot be written is the command's error, not the
    traced function's."""
    import tracegrad as tg

    for path, write in ((opts.save, program and program.save), (opts.draw, lambda p: tg.draw(program, p))):
        if not path:
            continue
        try:
            write(path)
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        except (ValueError, ImportError) as e:  # a suffix draw does not know, a missing extra
            raise UserError(f"cannot write {path}: {e}") from None


def cmd_cache(opts) -> int:
    from tracegrad.codegen.cache import SUFFIX, DiskCache, default_dir

    directory = default_dir()
    if opts.action == "clear":
        print(f"removed {DiskCache(directory).clear()} entries from {directory}")
        return 0
    names = [n for n in (os.listdir(directory) if os.path.isdir(directory) else [])
             if n.endswith(SUFFIX)]
    size = sum(os.path.getsize(os.path.join(directory, n)) for n in names)
    print(f"{directory}: {len(names)} entries, {size / 1e6:.1f} MB")
    return 0


def cmd_bench(opts) -> int:
    try:
        from benchmarks import run
    except ImportError:
        raise UserError("the benchmarks live in the repository's benchmarks/ folder: run "
                        "`tracegrad bench` from the repository root") from None
    return run.main(["--smoke"] if opts.quick else [])


def cmd_demo(opts) -> int:
    from .__main__ import demo

    demo()
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tracegrad", description="trace, inspect and compile "
                                "NumPy-style functions")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command works too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command")
    sub.add_parser("demo", parents=[common],
                   help="the eager, traced and compiled story").set_defaults(run=cmd_demo)
    t = sub.add_parser("trace", parents=[common], help="print a stage of FILE.py:FUNC")
    t.add_argument("target", help="FILE.py:FUNCTION")
    t.add_argument("--args", required=True, help="argument types, e.g. 'f64[3],f64[4,3]'")
    t.add_argument("--stage", choices=STAGES, default="traced")
    t.add_argument("--grad", action="store_true", help="compile value and gradients")
    t.add_argument("--save", metavar="OUT.tgir", help="also save the traced program as text")
    t.add_argument("--draw", metavar="OUT.svg", help="also draw the traced program (.svg, .png, .pdf)")
    t.add_argument("--seed", type=int, default=0, help="seed of the example arguments")
    t.set_defaults(run=cmd_trace)
    c = sub.add_parser("cache", parents=[common], help="the disk cache of compiled code")
    c.add_argument("action", choices=("info", "clear"))
    c.set_defaults(run=cmd_cache)
    b = sub.add_parser("bench", parents=[common], help="the benchmarks (from the repository root)")
    b.add_argument("--quick", action="store_true", help="the smoke run")
    b.set_defaults(run=cmd_bench)
    return p


def main(argv=None) -> int:
    opts = parser().parse_args(argv)
    if opts.command is None:
        opts.run = cmd_demo
    try:
        return opts.run(opts)
    except UserError as e:
        if opts.debug:
            traceback.print_exc()
        print(f"tracegrad: {e}", file=sys.stderr)
        return 2
