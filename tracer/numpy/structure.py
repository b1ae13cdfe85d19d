"""Structure: pad, tile, repeat, flip, roll, split, the stacks, triangles, meshgrid, diff, diag."""
from __future__ import annotations

__all__: list = []

NUMPY: dict = {}  # numpy callable -> implementation here
