"""Prediction logging for serving: batched, asynchronous, crash-safe (issue 13, DESIGN §8).

A :class:`PredictionLogger` gives every prediction an id at once, and before ``log`` returns
the record survives a crash of the process: it is appended (one ``write``) to a spool segment under
``<workspace>/spool/predictions/``; a background thread turns the spooled records into one
``registry.prediction_batch`` ledger event per flushed batch and deletes the segment once the
event has committed. A process killed at any point leaves segments that the next logger of the
workspace (or :func:`replay_prediction_spool`) appends; ids already in the ledger are skipped,
so a crash between the commit and the deletion logs nothing twice. With ``fsync=True`` each
``log`` also survives a machine crash (one ``fsync`` per prediction).

What a batch records
--------------------
The event names one payload blob holding each prediction's input, and lists per prediction:
its id, time, output, input digest, input lineage (``recorded`` with the lineage document, or
``unknown`` with the reason) and subject pseudonym (never a raw identifier). The subjects are
also the event's ``subjects``, so subject audits and erasure find the batch. A subject's input
is sealed in the blob under the subject's data key (as ``attribution.log_prediction`` does), so
erasure shreds it; the input digest is SHA-256 over a random 16-byte nonce, the dtype, the
shape and the raw little-endian bytes of the input, the nonce kept inside the (sealed) input,
so a digest in the ledger cannot be matched against guessed inputs once the key is gone.

Prediction ids are ``pred-<session>-<n>``: a random 64-bit session per logger and a counter.
They are unique without coordination between replicas, cost nothing per call (no randomness,
no clock), and order the predictions of one logger; the time is recorded separately.

Finding a prediction by id is an indexed lookup in the ``registry_predictions`` cache table,
projected from the batch events in their append's transaction; the row found is checked
against the proven event it names. A missing row is never taken as "no such prediction": the
proven batch events are then searched, and a prediction found there raises
:class:`~rowtrail.errors.TableIntegrityError` (the cache was edited).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import (
    FileIntegrityError,
    InvalidInputError,
    ShreddedError,
    StateError,
    TableIntegrityError,
    VerificationError,
)
from rowtrail.hashing import canonical_json, decode_canonical_json
from rowtrail.ledger import (
    Event,
    LedgerEntry,
    decrypt_payload,
    key_id_of,
    subject_keys,
)
from rowtrail.ledger._events import format_time, parse_time

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "PREDICTION_BATCH_KIND",
    "PredictionRecord",
    "MAX_BATCH",
    "append_records",
    "encode_input",
    "find_prediction",
    "load_prediction_input",
    "prediction_cache_rows",
    "project_predictions",
    "input_digest",
    "replay_prediction_spool",
    "spool_dir",
    "verify_prediction_cache",
    "verify_prediction_keys",
]

PREDICTION_BATCH_KIND = "registry.prediction_batch"
FORMAT = "rowtrail.predictions/1"
_SPOOL = Path("spool") / "predictions"
_ID = re.compile(r"^pred-[0-9a-f]{16}-[0-9]{1,18}$")
_TABLE = "registry_predictions"
_COLUMNS = "prediction_id, deployment_id, ledger_index, position"
_INSERT = f"INSERT INTO {_TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?)"
MAX_BATCH = 10_000


# ------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class PredictionRecord:
    """One logged prediction, read from its proven ``registry.prediction_batch`` event.

    Attributes
    ----------
    prediction_id : str
        The id :meth:`PredictionLogger.log` returned.
    deployment_id : str
        The deployment that served it.
    entry : LedgerEntry
        The batch event (proven against the signed checkpoint when read).
    position : int
        The prediction's position in the batch.
    """

    prediction_id: str
    deployment_id: str
    entry: LedgerEntry
    position: int

    def _field(self, name: str) -> Any:
        return self.entry.event.payload[name][self.position]

    @property
    def ledger_index(self) -> int:
        """Index of the batch event in the ledger."""
        return self.entry.index

    @property
    def made_at(self) -> datetime:
        """When the prediction was logged (UTC)."""
        return parse_time(self._field("times"))

    @property
    def output(self) -> Any:
        """The logged output (JSON value)."""
        return self._field("outputs")

    @property
    def input_digest(self) -> str:
        """SHA-256 over the input's nonce and encoding (see the module docstring)."""
        return str(self._field("input_digests"))

    @property
    def subject(self) -> str | None:
        """The subject pseudonym, or ``None`` when the prediction is about no known subject."""
        value = self._field("subjects")
        return None if value is None else str(value)

    @property
    def input_lineage(self) -> dict[str, Any]:
        """``{"status": "recorded", ...}`` or ``{"status": "unknown", "reason": ...}``."""
        return dict(self._field("input_lineage"))

    @property
    def blob(self) -> str:
        """Digest of the batch's payload blob (the inputs)."""
        return str(self.entry.event.payload["blob"])

    def to_json(self) -> dict[str, Any]:
        """Return the record as JSON-ready data."""
        return {
            "prediction_id": self.prediction_id,
            "deployment_id": self.deployment_id,
            "ledger_index": self.ledger_index,
            "position": self.position,
            "made_at": format_time(self.made_at),
            "output": self.output,
            "input_digest": self.input_digest,
            "subject": self.subject,
            "input_lineage": self.input_lineage,
            "blob": self.blob,
        }


# ------------------------------------------------------------------------------- encoding
def encode_input(row: Any) -> tuple[dict[str, Any], bytes]:
    array = np.asarray(row)
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"input_row of PredictionLogger.log must be numeric (bool, int or float); got "
            f"dtype {array.dtype}. Log the model's numeric input row."
        )
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    data = array.tobytes()
    doc = {
        "dtype": array.dtype.str,
        "shape": list(array.shape),
        "data": base64.b64encode(data).decode("ascii"),
    }
    return doc, data


def _decode_input(doc: dict[str, Any]) -> NDArray[Any]:
    data = base64.b64decode(doc["data"])
    return np.frombuffer(data, dtype=np.dtype(doc["dtype"])).reshape(doc["shape"]).copy()


def input_digest(nonce: str, dtype: str, shape: Sequence[int], data: bytes) -> str:
    """SHA-256 over ``nonce | dtype | shape | raw little-endian bytes`` of the input."""
    head = f"{dtype}|{','.join(str(int(n)) for n in shape)}|".encode("ascii")
    return "sha256:" + hashlib.sha256(bytes.fromhex(nonce) + head + data).hexdigest()


def _doc_digest(nonce: str, doc: dict[str, Any]) -> str:
    return input_digest(nonce, doc["dtype"], doc["shape"], base64.b64decode(doc["data"]))


# ------------------------------------------------------------------------------- spool
def _read_segment(path: Path) -> list[dict[str, Any]]:
    """Return the whole records of a spool file (a torn last line was never acknowledged)."""
    records = []
    for line in path.read_bytes().split(b"\n"):
        if not line:
            continue
        try:
            records.append(dict(decode_canonical_json(line)))
        except (InvalidInputError, ValueError, TypeError):
            continue
    return records


def spool_dir(ws: Workspace) -> Path:
    return Path(ws.path) / _SPOOL


# ------------------------------------------------------------------------------- batches
def _batch_events(ws: Workspace, records: Sequence[dict[str, Any]]) -> list[Event]:
    """Build one event per (deployment, chunk) of ``records``; their blobs are stored."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (str(record["deployment"]), str(record.get("method", "predict")))
        groups.setdefault(key, []).append(record)
    events = []
    for (deployment, method), rows in groups.items():
        for start in range(0, len(rows), MAX_BATCH):
            part = rows[start : start + MAX_BATCH]
            events.append(_batch_event(ws, deployment, method, part))
    return events


def _batch_event(
    ws: Workspace, deployment: str, method: str, rows: Sequence[dict[str, Any]]
) -> Event:
    inputs = [
        {"id": r["id"], "sealed": r["sealed"]} if "sealed" in r else {"id": r["id"], **r["input"]}
        for r in rows
    ]
    blob = ws.ledger.put_blob(canonical_json({"format": FORMAT, "inputs": inputs}))
    lineage_blobs = [d for r in rows for d in r.get("lineage_blobs", ())]
    payload = {
        "format": FORMAT,
        "deployment": deployment,
        "method": method,
        "blob": blob,
        "n_predictions": len(rows),
        "ids": [r["id"] for r in rows],
        "times": [r["time"] for r in rows],
        "outputs": [r["output"] for r in rows],
        "input_digests": [r["digest"] for r in rows],
        "input_lineage": [r["lineage"] for r in rows],
        "subjects": [r.get("subject") for r in rows],
    }
    subjects = sorted({str(r["subject"]) for r in rows if r.get("subject")})
    return ws.ledger.make_event(
        PREDICTION_BATCH_KIND,
        payload,
        subjects=subjects,
        blobs=list(dict.fromkeys([blob, *lineage_blobs])),
    )


def _logged_ids(ws: Workspace, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        marks = ",".join("?" * len(part))
        rows = ws.db.query(f"SELECT prediction_id FROM {_TABLE} WHERE prediction_id IN ({marks})",
                           part)
        found.update(str(row[0]) for row in rows)
    return found


def append_records(ws: Workspace, records: Sequence[dict[str, Any]]) -> int:
    """Append the records not yet in the ledger as batch events; return how many."""
    with ws.ledger.transaction():
        logged = _logged_ids(ws, [str(r["id"]) for r in records])
        fresh = [r for r in records if r["id"] not in logged]
        if fresh:
            ws.ledger.append_events(_batch_events(ws, fresh))
    return len(fresh)


def replay_prediction_spool(ws: Workspace) -> int:
    """Append the spooled predictions a crashed or closed-unflushed logger left behind.

    Segments held by a live logger (in any process) are skipped; predictions already in the
    ledger are not appended again.

    Returns
    -------
    int
        The number of predictions appended.
    """
    root = spool_dir(ws)
    if not root.is_dir():
        return 0
    appended = 0
    for path in sorted(root.glob("*.spool")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # flushed and removed by its logger meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live logger's segment
            if not path.exists():
                continue
            records = _read_segment(path)
            if records:
                appended += append_records(ws, records)
            os.unlink(path)
        finally:
            os.close(fd)
    return appended


# ------------------------------------------------------------------------------- cache
def prediction_cache_rows(index: int, event: Event) -> list[tuple[str, str, int, int]]:
    """Return the ``registry_predictions`` rows one batch event implies."""
    payload = event.payload
    if event.kind != PREDICTION_BATCH_KIND or not isinstance(payload.get("ids"), list):
        return []
    deployment = str(payload.get("deployment"))
    return [(str(pid), deployment, index, pos) for pos, pid in enumerate(payload["ids"])]


def project_predictions(handle: Any, entries: Sequence[tuple[int, bytes]]) -> list[Any]:
    """Write the cache rows of appended batch events (in the append's transaction).

    The rows are not part of the checkpoint's signed cache digest: every row read is checked
    against the proven event it names, and a missing row is caught by the fallback search.
    """
    rows = [
        row
        for index, leaf in entries
        for row in prediction_cache_rows(index, Event.from_leaf(leaf))
    ]
    if rows:
        try:
            handle.executemany(_INSERT, rows)
        except Exception as exc:  # driver errors differ between backends
            raise InvalidInputError(
                f"a prediction id of the batch is already logged ({exc}); nothing was written"
            ) from exc
    return []


def verify_prediction_cache(ws: Workspace, events: Sequence[tuple[int, Event]]) -> int:
    """Rebuild ``registry_predictions`` from the batch events and compare; return row count.

    Raises
    ------
    TableIntegrityError
        A row is missing, extra or different.
    """
    expected = {row for index, event in events for row in prediction_cache_rows(index, event)}
    stored = {
        (str(a), str(b), int(c), int(d))
        for a, b, c, d in ws.db.query(f"SELECT {_COLUMNS} FROM {_TABLE}")
    }
    missing, extra = sorted(expected - stored), sorted(stored - expected)
    if missing or extra:
        row = (missing or extra)[0]
        what = "is missing" if missing else "is not backed by any ledger event"
        raise TableIntegrityError(
            f"cache table {_TABLE!r}: row with key {row[0]!r} {what} ({len(missing)} missing, "
            f"{len(extra)} extra or altered rows). The table was edited outside rowtrail.",
            table=_TABLE,
            key=repr(row[0]),
        )
    return len(stored)


def verify_prediction_keys(ws: Workspace, events: Sequence[tuple[int, Event]]) -> int:
    """Check every sealed prediction input's data key is alive or destroyed by an erasure.

    A key file deleted without an ``erasure.shredded`` event naming it would make the input
    unreadable with no record of why. Batch blobs that are gone are judged by the log's own
    check (expired by retention, or missing). Returns the number of sealed inputs checked.

    Raises
    ------
    FileIntegrityError
        A sealed input's key is missing and no erasure destroyed it.
    """
    store = subject_keys(ws)
    shredded = {
        str(k)
        for e in ws.ledger.entries_of_kind("erasure.shredded")
        for k in e.event.payload.get("key_ids", ())
    }
    n_sealed = 0
    for index, event in events:
        blob = event.payload.get("blob")
        if not isinstance(blob, str) or not ws.ledger.blobs.has(blob):
            continue
        doc = _batch_document(ws, blob)
        for item in doc.get("inputs", []) if isinstance(doc, dict) else []:
            if not isinstance(item, dict) or "sealed" not in item:
                continue
            key_id = key_id_of(base64.b64decode(item["sealed"]))
            n_sealed += 1
            if not store.has(key_id) and key_id not in shredded:
                raise FileIntegrityError(
                    f"the data key {key_id} of prediction {item.get('id')!r}'s input (ledger "
                    f"entry {index}) is missing from {store.root}, and no erasure destroyed "
                    "it. Restore keys/ from your backup.",
                    path=str(store.root),
                )
    return n_sealed


def _record_from(entry: LedgerEntry, prediction_id: str, position: int) -> PredictionRecord:
    payload = entry.event.payload
    ids = payload.get("ids")
    if (
        entry.event.kind != PREDICTION_BATCH_KIND
        or not isinstance(ids, list)
        or not 0 <= position < len(ids)
        or ids[position] != prediction_id
    ):
        raise TableIntegrityError(
            f"cache table {_TABLE!r}: the row of prediction {prediction_id!r} points at entry "
            f"{entry.index} position {position}, which records another prediction; run "
            "`rowtrail verify`",
            table=_TABLE,
            key=repr(prediction_id),
        )
    return PredictionRecord(prediction_id, str(payload["deployment"]), entry, position)


def find_prediction(ws: Workspace, prediction_id: str) -> PredictionRecord:
    """Return the logged prediction ``prediction_id``, its batch event proven.

    Raises
    ------
    InvalidInputError
        No prediction has this id (or it is malformed).
    StateError
        The prediction is spooled but not yet flushed to the ledger.
    TableIntegrityError
        The cache table disagrees with the ledger.
    """
    if not _is_id(prediction_id):
        raise InvalidInputError(
            f"prediction_id of find_prediction must look like 'pred-<16 hex>-<n>'; got "
            f"{prediction_id!r}. Use the id PredictionLogger.log returned."
        )
    rows = ws.db.query(
        f"SELECT ledger_index, position FROM {_TABLE} WHERE prediction_id = ?", (prediction_id,)
    )
    if rows:
        (entry,) = ws.ledger.proven([int(rows[0][0])])
        return _record_from(entry, prediction_id, int(rows[0][1]))
    for entry in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND):
        ids = entry.event.payload.get("ids")
        if isinstance(ids, list) and prediction_id in ids:
            raise TableIntegrityError(
                f"cache table {_TABLE!r} has no row for prediction {prediction_id!r}, which "
                f"ledger entry {entry.index} records: the table was edited; run `rowtrail "
                "verify`",
                table=_TABLE,
                key=repr(prediction_id),
            )
    if _spooled(ws, prediction_id):
        raise StateError(
            f"prediction {prediction_id!r} is spooled but not yet in the ledger; flush its "
            "logger (logger.flush()) or open a PredictionLogger, which replays the spool."
        )
    raise InvalidInputError(
        f"prediction_id of find_prediction must name a logged prediction; got "
        f"{prediction_id!r}, which no registry.prediction_batch event records."
    )


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def _spooled(ws: Workspace, prediction_id: str) -> bool:
    session = prediction_id.split("-")[1]
    root = spool_dir(ws)
    for path in sorted(root.glob(f"{session}-*.spool")) if root.is_dir() else []:
        with contextlib.suppress(FileNotFoundError):
            if any(r.get("id") == prediction_id for r in _read_segment(path)):
                return True
    return False


# ------------------------------------------------------------------------------- inputs
def _batch_document(ws: Workspace, digest: str) -> Any:
    """Return a batch blob's JSON document.

    ``blobs.get`` has checked that the bytes hash to the digest a proven event names, so they
    are exactly the bytes written: a plain parse suffices (re-encoding a batch of thousands of
    inputs to check it is canonical cost most of a ``reproduce``).
    """
    return json.loads(ws.ledger.blobs.get(digest))


def _batch_inputs(ws: Workspace, record: PredictionRecord) -> dict[str, Any]:
    """Return the prediction's input entry of the batch blob (StorageError when gone)."""
    doc = _batch_document(ws, record.blob)
    inputs = doc.get("inputs") if isinstance(doc, dict) else None
    if not isinstance(inputs, list) or record.position >= len(inputs):
        raise VerificationError(f"batch blob {record.blob} does not list the batch's inputs")
    found = inputs[record.position]
    if not isinstance(found, dict) or found.get("id") != record.prediction_id:
        raise VerificationError(
            f"batch blob {record.blob} holds another input at position {record.position}"
        )
    return found


def load_prediction_input(ws: Workspace, record: PredictionRecord) -> NDArray[Any]:
    """Return the logged input of ``record``, checked against the digest the event records.

    Raises
    ------
    BlobNotFoundError
        The batch's payload blob is gone (expired by retention, or deleted).
    ShreddedError
        The subject's data key was destroyed by an erasure.
    VerificationError
        The input does not match its recorded digest.
    """
    found = _batch_inputs(ws, record)
    if "sealed" in found:
        sealed = base64.b64decode(found["sealed"])
        try:
            plain = decrypt_payload(subject_keys(ws), sealed)
        except ShreddedError as exc:
            raise ShreddedError(f"{exc} (key {key_id_of(sealed)})") from exc
        found = dict(decode_canonical_json(plain))
    nonce = str(found.pop("nonce", ""))
    found.pop("id", None)
    if _doc_digest(nonce, found) != record.input_digest:
        raise VerificationError(
            f"the stored input of prediction {record.prediction_id} does not match the digest "
            f"ledger entry {record.ledger_index} records; it was altered"
        )
    return _decode_input(found)


# ------------------------------------------------------------------------------- logger
