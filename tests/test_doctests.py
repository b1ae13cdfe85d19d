"""The runnable examples in the docstrings of every tracegrad module stay runnable, and
those of the public API run as a user would copy them: in a fresh script, with no names
but the ones the example imports itself."""
import doctest
import importlib
import inspect
import pkgutil

import pytest

import tracegrad
import tracegrad.static

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
PUBLIC_MODULES = ["tracegrad", "tracegrad.numpy", "tracegrad.numpy.linalg", "tracegrad.static",
                  "tracegrad.static.nn", "tracegrad.static.train", "tracegrad.optim",
                  "tracegrad.scipy", "tracegrad.scipy.linalg", "tracegrad.scipy.special",
                  "tracegrad.tree_util", "tracegrad.testing", "tracegrad.autograd",
                  "tracegrad.lax", "tracegrad.nn", "tracegrad.flatten_util", "tracegrad.config",
                  "tracegrad.tree"]
STAGES = ["tracegrad", "tracegrad.tracer", "tracegrad.ir", "tracegrad.passes", "tracegrad.codegen"]


def _modules():
    names = set(STAGES)
    for pkg in STAGES:
        path = importlib.import_module(pkg).__path__
        names.update(m.name for m in pkgutil.iter_modules(path, pkg + ".")
                     if not m.name.endswith("__main__"))
    return sorted(names)


def _as_in_a_new_script():
    """Forget the state a previous example left behind: tracegrad.static's global default
    graph numbers its ops ('add:0', 'add_1:0'), and the examples print those names."""
    tracegrad.static.reset_default_graph()


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    _as_in_a_new_script()
    result = doctest.testmod(module, optionflags=FLAGS)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"


def _public_objects(module_name):
    """(name, object) for the module and each of its public attributes."""
    module = importlib.import_module(module_name)
    yield module_name, module
    for attr in dir(module):
        if not attr.startswith("_"):
            yield f"{module_name}.{attr}", getattr(module, attr)


def _ours(obj) -> bool:
    """Whether the object is tracegrad's (its docstring written here, not numpy's, say)."""
    name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None)
    return isinstance(name, str) and name.split(".")[0] == "tracegrad"


def _standalone_tests(module_name):
    """The docstring examples of the module's public objects, each with empty globals;
    a public class brings the examples of its methods."""
    for name, obj in _public_objects(module_name):
        if not (inspect.ismodule(obj) or callable(obj)) or not _ours(obj):
            continue
        finder = doctest.DocTestFinder(recurse=inspect.isclass(obj))
        try:
            tests = finder.find(obj, name, globs={})
        except ValueError:  # no source to find a docstring in (a C extension's object)
            continue
        yield from (t for t in tests if t.examples)


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_public_examples_run_in_an_empty_namespace(module_name):
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failed = []
    for test in _standalone_tests(module_name):
        report = []
        _as_in_a_new_script()
        if runner.run(test, out=report.append).failed:
            failed.append(f"{test.name}\n{''.join(report)}")
    assert not failed, ("public examples that fail when run alone, with only the names they "
                        "import themselves (as in a user's script):\n" + "\n".join(failed))


def test_public_api_is_documented_with_examples():
    for name in ["tensor", "trace", "grad", "value_and_grad", "jvp", "vjp", "jit", "compile_grad"]:
        doc = getattr(tracegrad, name).__doc__ or ""
        assert ">>>" in doc, f"tracegrad.{name} has no runnable example"
