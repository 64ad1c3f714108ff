"""Row-level lineage: sources, subjects, row maps, the op DAG and lineage queries."""

from __future__ import annotations

from rowtrail.lineage import _callable, _functions, _indexing, _reorder  # noqa: F401 - install
from rowtrail.lineage._array import TracedArray
from rowtrail.lineage._dispatch import lineage, register_lineage_handler
from rowtrail.lineage._exclude import excluded_rows, excluding_rows
from rowtrail.lineage._persist import PipelineContext, flush, load_lineage, pipeline
from rowtrail.lineage._query import ArrayLineage, OpList
from rowtrail.lineage._schema import ColumnSpec, ValidationReport, Violation
from rowtrail.lineage._sources import (
    SOURCE_EVENT_KINDS,
    SourceInfo,
    get_source,
    list_sources,
    register_source,
    rows_of_subject,
    subject_rows_digest,
)
from rowtrail.lineage._store import LineageStore, LineageWorkspace, SubjectRows
from rowtrail.lineage._track import load_csv, track
from rowtrail.lineage._view import LineageView, OpInfo, SourceRows, StatisticsDependency

__all__ = [
    "SOURCE_EVENT_KINDS",
    "ArrayLineage",
    "ColumnSpec",
    "LineageStore",
    "LineageView",
    "LineageWorkspace",
    "OpInfo",
    "OpList",
    "PipelineContext",
    "SourceInfo",
    "SourceRows",
    "StatisticsDependency",
    "SubjectRows",
    "TracedArray",
    "ValidationReport",
    "Violation",
    "excluded_rows",
    "excluding_rows",
    "flush",
    "get_source",
    "lineage",
    "list_sources",
    "load_csv",
    "load_lineage",
    "pipeline",
    "register_lineage_handler",
    "register_source",
    "rows_of_subject",
    "subject_rows_digest",
    "track",
]


_callable.install(__name__)
