"""The registry's entities in the interop exports (filled in once the registry records them)."""

from __future__ import annotations

from typing import Any

__all__ = ["add_registry_prov", "registry_events"]


def registry_events(builder: Any) -> list[tuple[int, Any]]:
    """Return ``(ledger index, RunEvent)`` of every registry run."""
    return []


def add_registry_prov(graph: Any) -> None:
    """Add the registry's dataset versions, runs and model versions to a PROV graph."""
