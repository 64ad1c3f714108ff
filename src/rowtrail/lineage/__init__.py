"""Row-level lineage: sources, subjects, row maps, the op DAG and lineage queries."""

from __future__ import annotations

from rowtrail.lineage._dispatch import lineage, register_lineage_handler
from rowtrail.lineage._sources import (
    SourceInfo,
    get_source,
    list_sources,
    register_source,
    rows_of_subject,
)
from rowtrail.lineage._store import LineageStore

__all__ = [
    "LineageStore",
    "SourceInfo",
    "get_source",
    "lineage",
    "list_sources",
    "register_lineage_handler",
    "register_source",
    "rows_of_subject",
]
