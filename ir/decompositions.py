"""Matrix decompositions and solvers (LAPACK-backed extern primitives) with their matrix-calculus derivatives."""
from __future__ import annotations

__all__: list = []
