"""The decision's own lineage: the source rows, steps and fitted statistics behind an input.

:func:`record_input_lineage` runs when a prediction is logged. For a traced input (anything
``rt.lineage`` answers for: a row of ``rt.to_numpy(traced_frame)``, a traced array) it writes
one canonical-JSON *decision lineage document* as a content-addressed blob, plus one blob per
fitted statistic holding the packed row ids it was fitted on, and returns the summary the
``prediction.made`` event carries under ``input_lineage`` (the event names every blob, so
``verify`` re-hashes them). For a plain array it returns ``{"status": "unknown", "reason"}``:
the lineage is said to be unknown, never guessed.

Document (``format`` ``rowtrail.decision-lineage/1``, canonical JSON)::

    {"format", "n_rows",                    # rows of the traced input object
     "sources": [{"source_index", "name", "version", "path", "digest", "ledger_index",
                  "rows": [row numbers], "rows_digest"}],      # one per source table
     "ops": [OpInfo.to_json(), ...],        # the op chain, oldest first
     "statistics": [{"op", "node", "location", "params", "rows_blob",
                     "fitted_on": [{"source_index", "name", "n_rows", "rows_digest",
                                    "rows" (only up to INLINE_ROWS)}]}]}

``rows_digest`` is the SHA-256 of the sorted packed row ids (little-endian int64) of one
source; ``rows_blob`` holds all of a statistic's sorted packed ids, so identical statistics
(every prediction of one model) share one blob. :func:`load_decision_lineage` reads the
document back only through the event that names it and checks every digest, count and source
registration it relies on, raising :class:`~rowtrail.errors.VerificationError` otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.attribution._types import AttributionWorkspace
from rowtrail.errors import (
    CanonicalEncodingError,
    LineageError,
    UnknownSourceError,
    VerificationError,
)
from rowtrail.hashing import canonical_json, decode_canonical_json, sha256_digest
from rowtrail.ids import ROW_BITS, row_numbers, source_indices
from rowtrail.lineage import ArrayLineage, get_source, lineage, list_sources

__all__ = ["DecisionLineage", "load_decision_lineage", "record_input_lineage"]

FORMAT = "rowtrail.decision-lineage/1"
# ws.extensions[_CACHE]: {ids of the ops that apply statistics: (statistic entries, blobs)}.
_CACHE = "decision-statistics"
_CACHE_SIZE = 64
INLINE_ROWS = 100  # a statistic's rows per source are listed in the document up to this many
_FIX = "Log the prediction again with rt.attribution.log_prediction; run `rowtrail verify`."


@dataclass(frozen=True)
class DecisionLineage:
    """Where the input of one decision came from, as recorded with the prediction.

    Attributes
    ----------
    status : {"recorded", "unknown"}
        ``"unknown"`` when the input was a plain (untraced) array, the prediction was logged
        before lineage was recorded, or the input was not logged at all; ``reason`` says which.
    reason : str
        Why the lineage is unknown (empty when recorded).
    rows : dict of str to list of int
        Source rows of the input per source table (``{"bureau": [187, 337]}``).
    sources : list of dict
        Per source table: ``name``, ``version``, ``path``, ``digest`` (of the file),
        ``ledger_index`` (its registration, proven), ``n_rows`` and ``rows_digest``.
    subjects : tuple of str
        Pseudonyms of the data subjects of those rows.
    ops : list of dict
        The processing steps that built the input, oldest first (``OpInfo.to_json()``).
    statistics : list of dict
        Fitted statistics applied to the input: ``op``, ``location``, ``rows_blob`` and
        ``fitted_on`` (per source: ``n_rows``, ``rows_digest`` and, up to 100 rows, ``rows``).
    document : str or None
        Digest of the decision lineage blob named by the ``prediction.made`` event.
    """

    status: str
    reason: str = ""
    rows: dict[str, list[int]] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    subjects: tuple[str, ...] = ()
    ops: list[dict[str, Any]] = field(default_factory=list)
    statistics: list[dict[str, Any]] = field(default_factory=list)
    document: str | None = None

    @classmethod
    def unknown(cls, reason: str) -> DecisionLineage:
        """Return an ``"unknown"`` lineage with its reason."""
        return cls(status="unknown", reason=reason)

    @property
    def is_known(self) -> bool:
        """Whether the input's lineage was recorded."""
        return self.status == "recorded"

    @property
    def row_ids(self) -> list[int]:
        """Packed source row ids of the input (see :mod:`rowtrail.ids`), ascending."""
        return sorted(
            (int(src["source_index"]) << ROW_BITS) | int(row)
            for src in self.sources
            for row in self.rows.get(src["name"], [])
        )

    @property
    def source_ledger_indices(self) -> list[int]:
        """Ledger indices of the registrations of the input's source tables."""
        return sorted(
            int(s["ledger_index"]) for s in self.sources if s.get("ledger_index") is not None
        )

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "status": self.status,
            "reason": self.reason,
            "rows": {k: list(v) for k, v in self.rows.items()},
            "row_ids": self.row_ids,
            "sources": [dict(s) for s in self.sources],
            "subjects": list(self.subjects),
            "ops": [dict(op) for op in self.ops],
            "statistics": [dict(s) for s in self.statistics],
            "document": self.document,
        }

    def text_lines(self, *, max_rows: int = 10) -> list[str]:
        """Return the readable lines: source rows, steps and fitted statistics."""
        if not self.is_known:
            return [f"  input lineage unknown: {self.reason}"]
        lines = ["  source rows of the input:"]
        for src in self.sources:
            rows = self.rows.get(src["name"], [])
            shown = ", ".join(str(r) for r in rows[:max_rows]) + (
                " ..." if len(rows) > max_rows else ""
            )
            digest = str(src.get("digest") or "unregistered")[:19]
            lines.append(f"    {src['name']:<22} {len(rows)} row(s): [{shown}]  file {digest}")
        if self.subjects:
            lines.append("    subject(s): " + ", ".join(s[:15] for s in self.subjects))
        if self.ops:
            lines.append("  through: " + " -> ".join(str(op.get("name")) for op in self.ops))
        for stat in self.statistics:
            fitted = ", ".join(f"{f['name']} {f['n_rows']} rows" for f in stat["fitted_on"])
            lines.append(
                f"  fitted statistic applied: {stat['op']} (fitted on {fitted or 'no rows'}; "
                f"rows {stat['rows_blob'][:19]})"
            )
        return lines


# ---------------------------------------------------------------------------------- record
def _union_ids(view: Any) -> NDArray[np.int64]:
    parts = [np.asarray(view.row_ids(i), dtype=np.int64) for i in range(int(view.n_rows))]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _rows_digest(ids: NDArray[np.int64]) -> str:
    return sha256_digest(np.ascontiguousarray(np.sort(ids), dtype="<i8").tobytes())


def _by_source(ids: NDArray[np.int64]) -> list[tuple[int, NDArray[np.int64]]]:
    """Split sorted packed ids into ``(source index, ids)`` runs."""
    sources = source_indices(ids)
    cuts = np.flatnonzero(np.diff(sources)) + 1
    return [(int(part[0] >> ROW_BITS), part) for part in np.split(ids, cuts) if part.size]


def _source_entry(ws: AttributionWorkspace, index: int, ids: NDArray[np.int64]) -> dict[str, Any]:
    try:
        info = get_source(ws, index)
    except UnknownSourceError:
        info = None
    return {
        "source_index": index,
        "name": info.name if info else f"source#{index}",
        "version": info.version if info else None,
        "path": info.path if info else None,
        "digest": info.digest if info else None,
        "ledger_index": info.ledger_index if info else None,
        "rows": row_numbers(ids).tolist(),
        "rows_digest": _rows_digest(ids),
    }


def _source_index(ws: AttributionWorkspace, label: str) -> int:
    """Index of the source a lineage label names (``name`` or ``name@v<version>``)."""
    name, _, version = label.rpartition("@v")
    if name and version.isdigit():
        for info in list_sources(ws):
            if (info.name, info.version) == (name, int(version)):
                return info.index
    return get_source(ws, label).index


def _fitted_ids(ws: AttributionWorkspace, stat: Any) -> NDArray[np.int64]:
    """Packed row ids a statistic was fitted on (from ``SourceRows.row_ids`` or by name)."""
    fitted = stat.fitted_on
    ids = np.asarray(getattr(fitted, "row_ids", ()), dtype=np.int64)
    if ids.size == sum(len(v) for v in fitted.values()):
        return ids if bool(np.all(ids[1:] > ids[:-1])) else np.unique(ids)
    parts = [
        (_source_index(ws, str(label)) << ROW_BITS) | np.asarray(rows, np.int64)
        for label, rows in fitted.items()
    ]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _statistic(ws: AttributionWorkspace, stat: Any, blobs: list[str]) -> dict[str, Any]:
    ids = _fitted_ids(ws, stat)
    blob = ws.ledger.put_blob(np.ascontiguousarray(ids, dtype="<i8").tobytes())
    blobs.append(blob)
    fitted = []
    for index, part in _by_source(ids):
        entry = _source_entry(ws, index, part)
        fitted.append({k: entry[k] for k in ("source_index", "name", "rows_digest")})
        fitted[-1]["n_rows"] = int(part.size)
        if part.size <= INLINE_ROWS:  # small: the row numbers themselves, not only a digest
            fitted[-1]["rows"] = entry["rows"]
    return {
        "op": str(stat.op),
        "node": str(getattr(stat, "node", "")),
        "location": str(getattr(stat, "location", "")),
        "params": _json_safe(dict(getattr(stat, "params", {}) or {})),
        "rows_blob": blob,
        "fitted_on": fitted,
    }


def _statistics(
    ws: AttributionWorkspace, view: Any, ops: Sequence[Any], blobs: list[str]
) -> list[dict[str, Any]]:
    """Entries of the fitted statistics applied to the input (cached for traced arrays).

    Collecting a statistic's rows costs O(rows it was fitted on); every row of one matrix
    shares the same statistics. For a NumPy view the statistics are exactly the STAT parents
    of the ops flagged ``statistics``, and an op's node id names it uniquely in this process,
    so those ids are an exact cache key.
    """
    if not isinstance(view, ArrayLineage):
        return [_statistic(ws, stat, blobs) for stat in view.statistics()]
    key = tuple(str(op.node) for op in ops if op.statistics)
    if not key:
        return []
    cache: dict[tuple[str, ...], tuple[list[dict[str, Any]], list[str]]]
    cache = ws.extensions.setdefault(_CACHE, {})
    found = cache.get(key)
    if found is None:
        made: list[str] = []
        found = ([_statistic(ws, stat, made) for stat in view.statistics()], made)
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[key] = found
    blobs.extend(found[1])
    return [dict(entry) for entry in found[0]]


def _json_safe(value: dict[str, Any]) -> dict[str, Any]:
    """Return ``value`` if canonical JSON can hold it, else its values as ``repr`` strings."""
    try:
        canonical_json(value)
    except (CanonicalEncodingError, TypeError, ValueError):
        return {str(k): repr(v) for k, v in value.items()}
    return value


def _op_json(op: Any) -> dict[str, Any]:
    data = dict(op) if isinstance(op, Mapping) else dict(op.to_json())
    if isinstance(data.get("params"), Mapping):
        data["params"] = _json_safe(dict(data["params"]))
    return _json_safe(data)


def _untraced_reason(query: Any) -> str:
    kind = type(query).__name__
    if isinstance(query, list | tuple) and query:
        kind = f"{kind} of {type(query[0]).__name__}"
    return (
        f"the input was a plain {kind}, not a traced array or frame, so the source rows it "
        "came from were not recorded (build it with rt.to_numpy(traced_frame), rt.load_csv or "
        "rt.track, or pass input_lineage=rt.lineage(row) with query features)"
    )


def record_input_lineage(
    ws: AttributionWorkspace, query: Any, view: Any = None
) -> tuple[dict[str, Any], list[str]]:
    """Write the decision lineage of ``query``; return the event field and the blobs it names.

    Parameters
    ----------
    ws : Workspace
        Where the blobs are written.
    query : object
        The logged input; its lineage is ``rt.lineage(query)`` unless ``view`` is given.
    view : lineage view, optional
        The input's lineage when ``query`` itself is not traced (e.g. query features computed
        from a traced row).

    Returns
    -------
    (dict, list of str)
        The ``input_lineage`` field (``status`` ``"recorded"`` or ``"unknown"``) and the
        digests of the blobs the event must name.
    """
    if view is None:
        try:
            view = lineage(query)
        except LineageError:
            return {"status": "unknown", "reason": _untraced_reason(query)}, []
    blobs: list[str] = []
    ids = _union_ids(view)
    sources = [_source_entry(ws, index, part) for index, part in _by_source(ids)]
    infos = list(view.ops())
    ops = [_op_json(op) for op in infos]
    statistics = _statistics(ws, view, infos, blobs)
    doc = {
        "format": FORMAT,
        "n_rows": int(view.n_rows),
        "sources": sources,
        "ops": ops,
        "statistics": statistics,
    }
    document = ws.ledger.put_blob(canonical_json(doc))
    summary = {
        "status": "recorded",
        "document": document,
        "rows_digest": _rows_digest(ids),
        "n_rows_per_source": {s["name"]: len(s["rows"]) for s in sources},
        "n_ops": len(ops),
        "n_statistics": len(statistics),
    }
    return summary, [document, *dict.fromkeys(blobs)]


# ---------------------------------------------------------------------------------- load
def _refuse(index: int, what: str) -> VerificationError:
    return VerificationError(f"prediction {index}: {what}. {_FIX}")


def _read_document(
    ws: AttributionWorkspace, index: int, field_: Mapping[str, Any], named: Sequence[str]
) -> dict[str, Any]:
    digest = field_.get("document")
    if not isinstance(digest, str) or digest not in named:
        raise _refuse(index, f"its input lineage document {digest!r} is not a blob the event names")
    try:
        doc = decode_canonical_json(ws.ledger.blobs.get(digest))  # hash-checked on read
    except CanonicalEncodingError as exc:
        raise _refuse(index, f"input lineage document {digest} is not canonical JSON") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _refuse(index, f"input lineage document {digest} is not a {FORMAT} document")
    return doc


def _check_sources(
    ws: AttributionWorkspace, index: int, doc: dict[str, Any], field_: Mapping[str, Any]
) -> NDArray[np.int64]:
    """Check rows against the event's summary and each source against its registration."""
    parts = []
    for src in doc["sources"]:
        ids = (int(src["source_index"]) << ROW_BITS) | np.asarray(src["rows"], dtype=np.int64)
        if _rows_digest(ids) != src["rows_digest"]:
            raise _refuse(index, f"the recorded rows of {src['name']} do not match their digest")
        parts.append(ids)
        if src.get("ledger_index") is not None:
            entry = ws.ledger.entry(int(src["ledger_index"]))
            payload = entry.event.payload
            if entry.event.kind != "source.registered" or (
                payload.get("digest"),
                payload.get("name"),
            ) != (src["digest"], src["name"]):
                raise _refuse(
                    index,
                    f"source {src['name']} does not match its registration "
                    f"event {src['ledger_index']}",
                )
    ids = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    counts = {s["name"]: len(s["rows"]) for s in doc["sources"]}
    if _rows_digest(ids) != field_.get("rows_digest") or counts != field_.get("n_rows_per_source"):
        raise _refuse(index, "its input lineage document disagrees with the event's row summary")
    return ids


def _check_statistics(
    ws: AttributionWorkspace, index: int, doc: dict[str, Any], named: Sequence[str]
) -> None:
    for stat in doc["statistics"]:
        blob = stat.get("rows_blob")
        if blob not in named:
            raise _refuse(
                index,
                f"statistic {stat.get('op')!r} names rows blob {blob!r}, "
                "which the event does not name",
            )
        ids = np.frombuffer(ws.ledger.blobs.get(str(blob)), dtype="<i8").astype(np.int64)
        found = [(i, int(p.size), _rows_digest(p)) for i, p in _by_source(ids)]
        recorded = [
            (int(f["source_index"]), int(f["n_rows"]), f["rows_digest"]) for f in stat["fitted_on"]
        ]
        listed = [
            _rows_digest((int(f["source_index"]) << ROW_BITS) | np.asarray(f["rows"], np.int64))
            == f["rows_digest"]
            for f in stat["fitted_on"]
            if "rows" in f
        ]
        if found != recorded or not all(listed):
            raise _refuse(
                index,
                f"the rows statistic {stat.get('op')!r} was fitted on do not "
                "match their recorded counts and digests",
            )


def load_decision_lineage(
    ws: AttributionWorkspace, index: int, payload: Mapping[str, Any], named: Sequence[str]
) -> DecisionLineage:
    """Read and check the decision lineage recorded with prediction ``index``.

    Parameters
    ----------
    ws : Workspace
        Where the blobs, registrations and subject rows are read.
    index : int
        Ledger index of the ``prediction.made`` event.
    payload : mapping
        The event's payload (its ``input_lineage`` field is read).
    named : sequence of str
        The blobs the event names; the document and row blobs must be among them.

    Raises
    ------
    VerificationError
        A blob is altered (or missing: ``BlobNotFoundError``), not named by the event, or
        disagrees with the event's summary or with a source's registration event.
    """
    field_ = payload.get("input_lineage")
    if not isinstance(field_, Mapping):
        return DecisionLineage.unknown(
            f"prediction {index} was logged without input lineage (logged before rowtrail "
            "recorded it, or by other code)"
        )
    if field_.get("status") != "recorded":
        return DecisionLineage.unknown(str(field_.get("reason") or "not recorded"))
    doc = _read_document(ws, index, field_, named)
    try:
        ids = _check_sources(ws, index, doc, field_)
        _check_statistics(ws, index, doc, named)
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(index, f"its input lineage document is malformed ({exc!r})") from exc
    subjects = ws.lineage_store.subjects_of_rows(ids.tolist())
    return DecisionLineage(
        status="recorded",
        rows={s["name"]: list(s["rows"]) for s in doc["sources"]},
        sources=[
            {k: v for k, v in s.items() if k != "rows"} | {"n_rows": len(s["rows"])}
            for s in doc["sources"]
        ],
        subjects=tuple(sorted(set(subjects.values()))),
        ops=list(doc["ops"]),
        statistics=list(doc["statistics"]),
        document=str(field_["document"]),
    )
