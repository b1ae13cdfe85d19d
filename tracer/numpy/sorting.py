"""Sorting, searching, cumulative and order statistics: sort, argsort, argmax, cumsum, median, quantile, the nan* reductions."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
