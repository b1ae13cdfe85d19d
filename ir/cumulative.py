"""Cumulative primitives: cumsum, cumprod, cummax, cummin along one axis."""
from __future__ import annotations

__all__: list = []
