"""`tracegrad.config`: JAX's `jax.config.update(name, value)` for the options ported code
sets, so that `tracegrad.config.update("jax_enable_x64", True)` runs unchanged.

tracegrad computes in float64 by default (NumPy's rules) and runs on the CPU: enabling x64
and choosing the "cpu" platform change nothing; options it cannot honour raise.

>>> import tracegrad
>>> tracegrad.config.update("jax_enable_x64", True)
>>> tracegrad.config.jax_enable_x64
True
"""
from __future__ import annotations

__all__ = ["update", "read", "jax_enable_x64", "jax_platform_name", "jax_platforms"]

jax_enable_x64 = True
jax_platform_name = "cpu"
jax_platforms = "cpu"


def _x64(value):
    if not value:
        raise ValueError("tracegrad.config: jax_enable_x64=False is not supported: tracegrad "
                         "keeps NumPy's dtypes (float64 by default); pass float32 arrays to "
                         "compute in float32")
    return True


def _platform(value):
    names = [p.strip().lower() for p in str(value).split(",")]
    if "cpu" not in names:
        raise ValueError(f"tracegrad.config: platform {value!r} is not available: tracegrad "
                         "runs on the CPU only (use 'cpu')")
    return "cpu"


_OPTIONS = {"jax_enable_x64": _x64, "jax_platform_name": _platform, "jax_platforms": _platform}


def update(name, value):
    """Set the option `name` (JAX's spelling): "jax_enable_x64" (True only: tracegrad
    computes in float64 already) or "jax_platform_name"/"jax_platforms" ("cpu")."""
    if name not in _OPTIONS:
        raise AttributeError(f"Unrecognized config option: {name!r} (tracegrad.config knows "
                             f"{', '.join(sorted(_OPTIONS))})")
    globals()[name] = _OPTIONS[name](value)


def read(name):
    """The value of the option `name`."""
    if name not in _OPTIONS:
        raise AttributeError(f"Unrecognized config option: {name!r}")
    return globals()[name]
