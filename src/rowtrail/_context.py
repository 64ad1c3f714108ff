"""The process-wide default workspace hook.

Lower layers (lineage) accept ``workspace=None`` and resolve it here; the workspace module
registers the opener at import time, so no lower layer imports the layer above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rowtrail.errors import StateError

__all__ = ["default_location", "register_opener", "resolve_workspace"]

_opener: Callable[[str], Any] | None = None
_cache: dict[str, Any] = {}


def register_opener(opener: Callable[[str], Any]) -> None:
    """Register the function that opens a workspace from a location string."""
    global _opener
    _opener = opener


def default_location() -> str:
    """Return ``$ROWTRAIL_WORKSPACE`` or ``./.rowtrail``."""
    return os.environ.get("ROWTRAIL_WORKSPACE") or ".rowtrail"


def resolve_workspace(workspace: Any) -> Any:
    """Return ``workspace`` itself, or the default workspace when it is ``None``."""
    if workspace is not None:
        return workspace
    if _opener is None:
        raise StateError("no workspace opener is registered; call rowtrail.open(location) first")
    location = os.path.abspath(default_location())
    cached = _cache.get(location)
    if cached is None or getattr(cached, "closed", False):
        cached = _opener(location)
        _cache[location] = cached
    return cached
