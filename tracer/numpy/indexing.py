"""Indexing functions: take, take_along_axis, functional index updates, nonzero with a static size."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
