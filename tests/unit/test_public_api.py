"""The public surface: every public module's ``__all__`` is sorted and complete, and
``import rowtrail`` stays light (no heavy optional dependency is imported)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
import types

import pytest

import rowtrail

# Public modules: the package, its public subpackages and public top-level modules. Private
# ("_"-prefixed) modules are internal and unstable; the CLI's surface is its commands (checked by
# the CLI tests), not Python names.
PUBLIC = sorted(
    ["rowtrail"]
    + [
        info.name
        for info in pkgutil.iter_modules(rowtrail.__path__, "rowtrail.")
        if not info.name.rsplit(".", 1)[1].startswith("_") and info.name != "rowtrail.cli"
    ]
)
HEAVY = [
    "torch",
    "pandas",
    "polars",
    "fastapi",
    "psycopg",
    "sklearn",
    "pyarrow",
    "pyspark",
    "mlflow",
]


def isort_key(name: str) -> tuple[int, str]:
    """ruff RUF022's "isort-style" order: CONSTANTS, then Classes, then functions/modules."""
    if name.isupper() or (name.upper() == name and "_" in name):
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


def test_public_modules_found() -> None:
    assert {
        "rowtrail",
        "rowtrail.errors",
        "rowtrail.hashing",
        "rowtrail.ids",
        "rowtrail.ledger",
        "rowtrail.store",
    } <= set(PUBLIC)


@pytest.mark.parametrize("name", PUBLIC)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_key), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    missing = [n for n in exported if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ names missing attributes: {missing}"
    defined = {n for n, value in vars(module).items() if _defined_here(name, n, value)}
    assert sorted(defined - set(exported)) == [], f"{name} has public names missing from __all__"


def _defined_here(module: str, name: str, value: object) -> bool:
    """A public name the module defines, or re-exports from its own private submodules."""
    if name.startswith("_") or name == "annotations" or isinstance(value, types.ModuleType):
        return False
    if isinstance(value, bool):  # flags such as typing.TYPE_CHECKING, not API
        return False
    origin = getattr(value, "__module__", None)
    if not isinstance(origin, str) or isinstance(value, (str, bytes, int, float, frozenset)):
        return True  # constants carry no origin: every public constant must be exported
    prefix = "rowtrail._" if module == "rowtrail" else module + "._"
    return origin == module or origin.startswith(prefix)


def test_import_rowtrail_is_light() -> None:
    code = (
        "import json, sys, rowtrail, rowtrail.ledger, rowtrail.store;"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
