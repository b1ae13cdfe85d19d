"""Contractions: einsum, tensordot, kron, trace, lowered to transpose, reshape and dot."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
