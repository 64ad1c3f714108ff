"""``rt.lineage(obj)``: one entry point, one handler per kind of traced object.

Adapters (NumPy arrays, pandas/polars/Spark frames, torch datasets) register a predicate and
a factory returning a lineage view with the common queries ``sources()``, ``rows_of(i)``,
``derived_from(source, row)``, ``ops()`` and ``ancestors(depth=None)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rowtrail.errors import LineageError

__all__ = ["lineage", "register_lineage_handler"]

_handlers: list[tuple[str, Callable[[Any], bool], Callable[[Any], Any]]] = []


def register_lineage_handler(
    name: str, predicate: Callable[[Any], bool], factory: Callable[[Any], Any]
) -> None:
    """Register how to build the lineage view of objects for which ``predicate`` is true."""
    _handlers[:] = [h for h in _handlers if h[0] != name]
    _handlers.append((name, predicate, factory))


def lineage(obj: Any) -> Any:
    """Return the lineage view of a traced object.

    Raises
    ------
    LineageError
        If ``obj`` carries no lineage (wrap it with ``rt.track`` or load it with
        ``rt.load_csv`` / ``rt.pandas.read_csv`` / ``rt.polars.scan_csv``).
    """
    for _, predicate, factory in _handlers:
        if predicate(obj):
            return factory(obj)
    raise LineageError(
        f"object of type {type(obj).__name__} carries no lineage; create it with rt.load_csv, "
        "rt.track(array, source=...), rt.pandas.read_csv or rt.polars.scan_csv"
    )
