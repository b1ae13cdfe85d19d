"""Every package folder is installed: pyproject's explicit package list names each folder
with an __init__.py under tracegrad/ and the stage folders (a regular, non-editable
install would silently miss one that is not listed)."""
from __future__ import annotations

import pathlib
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, folder in config["package-dir"].items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            if "__pycache__" in rel.parts:
                continue
            found.add(".".join((name,) + rel.parts) if rel.parts else name)
    assert found <= listed, f"not installed: {sorted(found - listed)}"
    assert "tracegrad.passes.fusion" in found  # the walk does reach nested packages
