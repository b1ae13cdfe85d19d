"""Indexing primitives: gather, scatter, dynamic slices (advanced indexing and functional updates)."""
from __future__ import annotations

__all__: list = []
