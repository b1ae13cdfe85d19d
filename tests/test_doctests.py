"""The runnable examples in the docstrings of every tracegrad module stay runnable."""
import doctest
import importlib
import pkgutil

import pytest

import tracegrad

STAGES = ["tracegrad", "tracegrad.tracer", "tracegrad.ir", "tracegrad.passes", "tracegrad.codegen"]


def _modules():
    names = set(STAGES)
    for pkg in STAGES:
        path = importlib.import_module(pkg).__path__
        names.update(m.name for m in pkgutil.iter_modules(path, pkg + ".")
                     if not m.name.endswith("__main__"))
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def test_public_api_is_documented_with_examples():
    for name in ["tensor", "trace", "grad", "value_and_grad", "jvp", "vjp", "jit", "compile_grad"]:
        doc = getattr(tracegrad, name).__doc__ or ""
        assert ">>>" in doc, f"tracegrad.{name} has no runnable example"
