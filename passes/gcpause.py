"""The cyclic garbage collector paused for a compile phase.

Compile phases (tracing, autodiff, cleanup, fusion planning, codegen) allocate
many small objects that stay alive until the phase returns.  The collector's
passes over that growing heap free next to nothing, yet the oldest
generation's passes walk every live object: on a large unrolled program they
took about a third of the first call.  Pausing it is safe: reference counting
still frees every object outside a cycle, and the cycles made meanwhile are
collected once it runs again.

>>> import gc
>>> with paused():
...     gc.isenabled()
False
>>> gc.isenabled()
True
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def paused():
    """The collector off inside; on again afterwards only if it was on when entered,
    so nested phases, and a program that turned it off itself, keep their state."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
