"""`tracegrad.numpy.linalg`: norms, solves, inverses, determinants and decompositions with matrix-calculus gradients."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
