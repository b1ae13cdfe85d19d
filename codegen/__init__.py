"""tracegrad.codegen: kernel programs -> native code through LLVM (llvmlite).

`compile_graph(graph, plan, name=..., disk_cache=None, n_threads=None)` compiles an
optimized graph, looking the disk cache up by the graph before calling `plan` (fusion)
for its kernel program; `compile_program(kp, ...)` compiles a
`passes.kernels.KernelProgram`.  Each distinct kernel is one compile unit, optimized and
cached once; the program's entry calls them.  The result is a `CompiledProgram`: call
it with arrays of the compiled signature to get a tuple of fresh output arrays, or
`SignatureMismatch`.  See docs/codegen.md.
"""
from .runtime import CompiledProgram, SignatureMismatch
from .compiler import compile_graph, compile_program
from .cache import DiskCache, describe_program, graph_key, program_key
from .lower import lower_program
from .scalar_ops import LOWERINGS

__all__ = ["CompiledProgram", "SignatureMismatch", "compile_graph", "compile_program", "DiskCache",
           "describe_program", "graph_key", "program_key", "lower_program", "LOWERINGS"]
