"""tracegrad.codegen: kernel programs -> native code through LLVM (llvmlite).

`compile_program(kp, name=..., disk_cache=None, n_threads=None)` lowers a
`passes.kernels.KernelProgram` to one LLVM module, optimizes it for the host
CPU, and returns a `CompiledProgram`: call it with arrays of the compiled
signature to get a tuple of fresh output arrays, or `SignatureMismatch`.
See docs/codegen.md.
"""
from .runtime import CompiledProgram, SignatureMismatch, compile_program
from .cache import DiskCache, cache_key, describe_program
from .lower import lower_program
from .scalar_ops import LOWERINGS

__all__ = ["CompiledProgram", "SignatureMismatch", "compile_program", "DiskCache", "cache_key",
           "describe_program", "lower_program", "LOWERINGS"]
