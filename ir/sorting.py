"""Sorting and searching primitives: sort, argsort, argmax/argmin, searchsorted."""
from __future__ import annotations

__all__: list = []
