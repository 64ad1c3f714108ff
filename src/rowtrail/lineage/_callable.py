"""Make the ``rowtrail.lineage`` package callable, so ``rt.lineage(obj)`` is the package itself.

``rt.lineage(obj)`` is the public query entry point, and ``rowtrail.lineage`` is also the
subpackage; binding the function to the package attribute would make
``import rowtrail.lineage`` return the function. A module subclass with ``__call__`` keeps
both working.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from rowtrail.lineage._dispatch import lineage

__all__ = ["install"]


class _CallableModule(types.ModuleType):
    """A module whose call is ``lineage(obj)``."""

    def __call__(self, obj: Any) -> Any:
        return lineage(obj)


def install(module_name: str) -> None:
    """Make the already imported module ``module_name`` callable as ``lineage``."""
    sys.modules[module_name].__class__ = _CallableModule
