"""The process-wide default workspace hook.

Lower layers (lineage) accept ``workspace=None`` (the default workspace), a workspace object,
or the path of an existing workspace, and resolve it here; the workspace module registers the
opener at import time, so no lower layer imports the layer above it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from rowtrail.errors import InvalidInputError, StateError, WorkspaceNotFoundError

__all__ = ["default_location", "register_opener", "resolve_workspace"]

_opener: Callable[[str], Any] | None = None
_cache: dict[str, Any] = {}

# What every workspace handed to the lower layers has (see ``lineage.LineageWorkspace``).
_WORKSPACE_ATTRIBUTES = ("ledger", "lineage_store", "pseudonymize")


def register_opener(opener: Callable[[str], Any]) -> None:
    """Register the function that opens an existing workspace from a location string."""
    global _opener
    _opener = opener


def default_location() -> str:
    """Return ``$ROWTRAIL_WORKSPACE`` or ``./.rowtrail``."""
    return os.environ.get("ROWTRAIL_WORKSPACE") or ".rowtrail"


def _is_workspace(value: object) -> bool:
    return all(hasattr(value, name) for name in _WORKSPACE_ATTRIBUTES)


def _open_cached(location: str) -> Any:
    """Open the workspace at ``location`` once per process (reopened if it was closed)."""
    if _opener is None:
        raise StateError("no workspace opener is registered; call rowtrail.open(location) first")
    key = location if "://" in location else os.path.abspath(location)
    cached = _cache.get(key)
    if cached is None or getattr(cached, "closed", False):
        cached = _opener(key)
        _cache[key] = cached
    return cached


def resolve_workspace(workspace: Any) -> Any:
    """Return the workspace that ``workspace`` names.

    Parameters
    ----------
    workspace : Workspace, str, os.PathLike or None
        A workspace object is returned as it is; a path (or ``sqlite:///`` location) opens the
        workspace already there, never creating one; ``None`` gives the default workspace
        (``$ROWTRAIL_WORKSPACE`` or ``./.rowtrail``).

    Raises
    ------
    WorkspaceNotFoundError
        The path (or the default location) holds no workspace; nothing is created.
    InvalidInputError
        ``workspace`` is neither a workspace, a path nor ``None``.
    """
    if workspace is None:
        return _open_cached(default_location())
    if isinstance(workspace, str | os.PathLike):
        location = os.fspath(workspace)
        if not isinstance(location, str):
            raise InvalidInputError(
                f"workspace must be a Workspace or the path of one as text; got {workspace!r}. "
                "Decode a bytes path first."
            )
        try:
            return _open_cached(location)
        except WorkspaceNotFoundError as exc:
            raise WorkspaceNotFoundError(
                f"workspace must be the path of an existing workspace; got {location!r}, which "
                f"holds none. Create it with rowtrail.init({location!r}) (or `rowtrail init "
                f"--workspace {location}`), or check the path for a typo. Nothing was created."
            ) from exc
    if _is_workspace(workspace):
        return workspace
    shown = repr(workspace)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    raise InvalidInputError(
        f"workspace must be a Workspace (from rowtrail.init or rowtrail.open), the path of "
        f"one, or None for the default workspace; got {type(workspace).__name__} {shown}. "
        "Open the workspace first: ws = rowtrail.open(path)."
    )
