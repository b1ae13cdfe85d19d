"""More elementwise math: trigonometric and hyperbolic inverses, logarithm bases, rounding, floating-point classification, integer arithmetic."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
