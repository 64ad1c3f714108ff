"""``reproduce``: from a prediction id back to the code commit, and the prediction re-scored.

The chain walked (DESIGN §8): prediction (its ``registry.prediction_batch`` event) ->
deployment -> model version -> run -> dataset versions -> code commit. Every record on it is
proven against the signed checkpoint (one verified inclusion proof each, against one head);
the artifact is re-hashed against the digest its proven event names and loaded; the logged
input is read back (checked against its recorded digest) and re-scored with the method the
logger recorded, and the result compared with the logged output within a stated tolerance
(``numpy.isclose``: ``|a - b| <= atol + rtol * |b|``; exact equality for non-numbers).

When the input cannot be re-scored the result says why instead of failing obscurely:
``"shredded"`` (an erasure destroyed the subject's data key; the job is named) or
``"expired"`` (retention deleted the payload; the date and the ``retention.expired`` event are
named). A payload missing without either record is tampering and raises.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.errors import BlobNotFoundError, FileIntegrityError, InvalidInputError, ShreddedError
from rowtrail.hashing import decode_canonical_json
from rowtrail.ledger import key_id_of
from rowtrail.ledger._events import format_time
from rowtrail.registry._predictions import (
    PredictionRecord,
    find_prediction,
    load_prediction_input,
)
from rowtrail.registry._retention import expiry_of

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["ReproduceResult", "reproduce"]

RTOL = 1e-9
ATOL = 1e-12


@dataclass(frozen=True)
class ReproduceResult:
    """The chain behind a prediction and whether re-scoring its input reproduces it.

    Attributes
    ----------
    status : str
        ``"match"``, ``"mismatch"``, ``"shredded"`` or ``"expired"``.
    prediction : PredictionRecord
        The logged prediction.
    chain : dict
        ``deployment``, ``model_version``, ``run``, ``datasets`` and ``code`` as JSON.
    records : list of int
        Ledger indices of every record on the chain, each proven against ``head_size``.
    """

    status: str
    prediction: PredictionRecord
    chain: dict[str, Any]
    records: list[int]
    head_size: int
    head_root: str
    logged_output: Any
    rescored_output: Any = None
    max_abs_diff: float | None = None
    rtol: float = RTOL
    atol: float = ATOL
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the prediction was reproduced."""
        return self.status == "match"

    def to_json(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return {
            "status": self.status,
            "reason": self.reason,
            "prediction": self.prediction.to_json(),
            "chain": self.chain,
            "records": self.records,
            "proven_against": {"size": self.head_size, "root": self.head_root},
            "logged_output": self.logged_output,
            "rescored_output": self.rescored_output,
            "max_abs_diff": self.max_abs_diff,
            "tolerance": {"rtol": self.rtol, "atol": self.atol},
            "details": self.details,
            "seconds": round(self.seconds, 6),
        }

    def to_text(self) -> str:
        """Return a human-readable report."""
        p, c = self.prediction, self.chain
        mv, run = c.get("model_version") or {}, c.get("run") or {}
        code = c.get("code") or {}
        lines = [
            f"prediction {p.prediction_id} (ledger entry {p.ledger_index}, made "
            f"{format_time(p.made_at)}, subject {p.subject or 'none'})",
            f"  deployment  {p.deployment_id} -> {c.get('deployment', {}).get('environment')}",
            f"  model       {mv.get('name')} v{mv.get('version')} artifact "
            f"{mv.get('artifact_digest')}",
            f"  run         {run.get('run_id', 'unknown')} ({run.get('name', 'none recorded')})",
        ]
        for dataset in c.get("datasets", []):
            lines.append(
                f"  dataset     {dataset.get('name')} v{dataset.get('version')} (lineage "
                f"{dataset.get('lineage_status')})"
            )
        lines.append(
            f"  code        commit {code.get('commit', 'unknown')}"
            f"{' (dirty)' if code.get('dirty') else ''}"
        )
        lines.append(
            f"  proven      {len(self.records)} records against the signed checkpoint of size "
            f"{self.head_size}"
        )
        if self.status in ("match", "mismatch"):
            lines.append(
                f"{self.status.upper()}: logged {self.logged_output!r}, re-scored "
                f"{self.rescored_output!r}, max |diff| {self.max_abs_diff} "
                f"(tolerance rtol={self.rtol}, atol={self.atol})"
            )
        else:
            lines.append(f"{self.status.upper()}: {self.reason}")
        return "\n".join(lines)


def _compare(logged: Any, rescored: Any, rtol: float, atol: float) -> tuple[bool, float | None]:
    try:
        a = np.asarray(logged, dtype=np.float64)
        b = np.asarray(rescored, dtype=np.float64)
    except (TypeError, ValueError):
        return logged == rescored, None
    if a.shape != b.shape:
        return False, None
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    return bool(np.all(np.isclose(b, a, rtol=rtol, atol=atol))), diff


def _json_value(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def _chain(ws: Workspace, record: PredictionRecord) -> tuple[Any, dict[str, Any], list[int]]:
    deployment = ws.registry.deployment(record.deployment_id)
    mv = deployment.model_version
    run = mv.run
    datasets = list(run.datasets) if run is not None else []
    chain = {
        "deployment": deployment.to_json(),
        "model_version": {k: v for k, v in mv.to_json().items() if k != "run"},
        "run": None if run is None else {k: v for k, v in run.to_json().items() if k != "datasets"},
        "datasets": [d.to_json() for d in datasets],
        "code": {} if run is None else dict(run.code),
    }
    records = [record.ledger_index, deployment.index, mv.index]
    records += [] if run is None else [run.index]
    records += [d.index for d in datasets]
    return deployment, chain, list(dict.fromkeys(records))


def _shredded_by(ws: Workspace, record: PredictionRecord) -> dict[str, Any]:
    """Return the erasure job and event that destroyed the prediction's data key."""
    doc = decode_canonical_json(ws.ledger.blobs.get(record.blob))
    sealed = base64.b64decode(doc["inputs"][record.position]["sealed"])
    key_id = key_id_of(sealed)
    for entry in ws.ledger.entries_of_kind("erasure.shredded"):
        if key_id in entry.event.payload.get("key_ids", ()):
            return {
                "key_id": key_id,
                "erasure_job": entry.event.payload.get("job"),
                "erasure_event": entry.index,
                "shredded_at": format_time(entry.event.time),
            }
    return {"key_id": key_id, "erasure_job": None, "erasure_event": None}


def _input_or_reason(
    ws: Workspace, record: PredictionRecord
) -> tuple[Any, str, str, dict[str, Any]]:
    """Return ``(input, status, reason, details)``; input is ``None`` when it is gone."""
    try:
        return load_prediction_input(ws, record), "", "", {}
    except ShreddedError:
        found = _shredded_by(ws, record)
        job = found.get("erasure_job") or "an erasure with no recorded job"
        return None, "shredded", (
            f"the input was shredded by erasure job {job} (ledger entry "
            f"{found.get('erasure_event')}): the subject's data key {found['key_id']} was "
            "destroyed, so the prediction cannot be re-scored; its record and proofs remain"
        ), found
    except BlobNotFoundError as exc:
        expired = expiry_of(ws, record.blob)
        if expired is None:
            raise FileIntegrityError(
                f"the input blob {record.blob} of prediction {record.prediction_id} is missing "
                "and no retention.expired or erasure event accounts for it; restore it from a "
                "backup and run `rowtrail reconcile`",
                path=str(ws.blobs.root),
            ) from exc
        index, when = expired
        return None, "expired", (
            f"the input expired on {format_time(when)} under the retention policy (ledger "
            f"entry {index} records its deletion), so the prediction cannot be re-scored; its "
            "record and proofs remain"
        ), {"expired_at": format_time(when), "retention_event": index}


def _is_tolerance(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def reproduce(
    ws: Workspace, prediction_id: str, *, rtol: float = RTOL, atol: float = ATOL
) -> ReproduceResult:
    """Walk a prediction back to its code commit and re-score its logged input.

    Parameters
    ----------
    ws : Workspace
        The workspace (read-only is enough).
    prediction_id : str
        The id :meth:`PredictionLogger.log` returned.
    rtol, atol : float
        Tolerance of the numeric comparison (``numpy.isclose``).

    Returns
    -------
    ReproduceResult
        ``status`` ``"match"``/``"mismatch"`` (with the diff) or ``"shredded"``/``"expired"``
        (with the erasure job or the expiry date).

    Raises
    ------
    InvalidInputError
        No such prediction, or a bad tolerance.
    VerificationError
        A record on the chain fails its proof, the artifact or the input fails its digest.
    """
    for name, value in (("rtol", rtol), ("atol", atol)):
        if not _is_tolerance(value):
            raise InvalidInputError(
                f"{name} of reproduce must be a number >= 0; got {value!r}."
            )
    started = time.perf_counter()
    record = find_prediction(ws, prediction_id)
    deployment, chain, records = _chain(ws, record)
    ws.ledger.proven(records)
    head, _ = ws.ledger.prove_signed(records)
    common = {
        "prediction": record,
        "chain": chain,
        "records": records,
        "head_size": head.size,
        "head_root": head.root.hex(),
        "logged_output": record.output,
        "rtol": float(rtol),
        "atol": float(atol),
    }
    row, status, reason, details = _input_or_reason(ws, record)
    if row is None:
        return ReproduceResult(
            status=status, reason=reason, details=details,
            seconds=time.perf_counter() - started, **common,
        )
    model = deployment.model_version.load()
    method = str(record.entry.event.payload.get("method", "predict"))
    rescored = _json_value(getattr(model, method)(np.asarray(row)[np.newaxis, ...])[0])
    same, diff = _compare(record.output, rescored, rtol, atol)
    return ReproduceResult(
        status="match" if same else "mismatch",
        rescored_output=rescored,
        max_abs_diff=diff,
        reason="" if same else "re-scoring the logged input gives a different output",
        details={"method": method},
        seconds=time.perf_counter() - started,
        **common,
    )
