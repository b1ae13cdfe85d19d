"""tracegrad.ir: the graph IR, its primitives and their rules, printer, verifier,
reference interpreter and exports.  Imports nothing else of tracegrad."""
from .core import DTYPES, debug_checks, Eqn, Graph, Guard, Literal, ShapedArray, Var, aval_of, short_dtype
from .primitives import PRIMITIVES, Primitive, ShapeError
from . import ops  # registers every primitive (the family modules)
from .builder import (TRACES, ConcretizationError, GraphBuilder, TracedValue, UnexpectedTracerError,
                      user_source_location)
from .interpreter import apply_graph, eval_graph, eval_graph_bind
from .printer import format_graph
from .verifier import VerifyError, verify
from .export import to_dot, to_networkx
