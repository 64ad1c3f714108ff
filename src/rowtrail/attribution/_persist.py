"""Saved attributors and logged predictions, so explanations work across processes.

A saved attributor is a directory ``<workspace>/attribution/<name>/`` holding the train-side
score matrix (``matrix.npy``, float32, memory-mapped when loaded), the row ids, the sample
lineage as CSR (``lineage_offsets.npy``, ``lineage_ids.npy``) and ``meta.json``; saving appends an
``attribution.index.saved`` ledger event with the files' digests. A prediction logged with
:func:`log_prediction` is a ``prediction.made`` event whose blob is the query's index-side
vector, so ``ws.explain(ledger_index)`` and ``rowtrail explain`` need neither the model nor
torch.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from rowtrail.attribution._attributor import Attributor
from rowtrail.attribution._checks import is_count
from rowtrail.attribution._explanation import Explanation, RowMapLineage
from rowtrail.attribution._features import load_feature_matrix, save_feature_matrix
from rowtrail.attribution._topk import ScoreIndex
from rowtrail.attribution._types import AttributionWorkspace
from rowtrail.errors import InvalidInputError, StateError
from rowtrail.hashing import file_digest

__all__ = [
    "explain",
    "load_attributor",
    "log_prediction",
    "register_attributor",
    "save_attributor",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EXT = "attribution:"


def _check_name(name: object, caller: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidInputError(
            f"name of {caller} must be 1-64 letters, digits, '.', '_' or '-'; got {name!r}."
        )
    return name


def _directory(ws: AttributionWorkspace, name: str) -> Path:
    return Path(ws.path) / "attribution" / name


def register_attributor(
    ws: AttributionWorkspace, attributor: Attributor, name: str = "default"
) -> None:
    """Make ``attributor`` the one ``ws.explain`` uses for ``name`` in this process."""
    _check_name(name, "register_attributor")
    ws.extensions[_EXT + name] = attributor


def save_attributor(ws: AttributionWorkspace, attributor: Attributor, name: str = "default") -> int:
    """Save the index and lineage under the workspace, register it, return the ledger index."""
    _check_name(name, "save_attributor")
    path = _directory(ws, name)
    lineage = attributor.lineage
    if not isinstance(lineage, RowMapLineage):
        lineage = RowMapLineage.from_view(lineage, attributor.index.n_samples)
    meta = {
        "name": name,
        "method": attributor.method,
        "model": attributor.model,
        "checkpoints": list(attributor.checkpoints),
        "record_indices": list(attributor.record_indices),
        "ops": lineage.ops(),
        "statistics": lineage.statistics(),
    }
    save_feature_matrix(path, attributor.index.matrix, attributor.index.row_ids, meta=meta)
    np.save(path / "lineage_offsets.npy", lineage.offsets)
    np.save(path / "lineage_ids.npy", lineage.ids)
    payload = {
        "name": name,
        "method": attributor.method,
        "model": attributor.model,
        "n_samples": attributor.index.n_samples,
        "dim": attributor.index.dim,
        "matrix_digest": file_digest(path / "matrix.npy"),
        "row_ids_digest": file_digest(path / "row_ids.npy"),
        "lineage_digest": file_digest(path / "lineage_ids.npy"),
    }
    index: int = ws.ledger.append("attribution.index.saved", payload)
    register_attributor(ws, attributor, name)
    return index


def load_attributor(ws: AttributionWorkspace, name: str = "default") -> Attributor:
    """Return the attributor registered or saved under ``name``."""
    _check_name(name, "load_attributor")
    found = ws.extensions.get(_EXT + name)
    if isinstance(found, Attributor):
        return found
    path = _directory(ws, name)
    if not (path / "meta.json").exists():
        raise StateError(
            f"no attributor {name!r} in workspace {ws.path}; build one with "
            "rt.attribution.Attributor(...) and save it with rt.attribution.save_attributor()."
        )
    matrix, row_ids, meta = load_feature_matrix(path)
    lineage = RowMapLineage(
        np.load(path / "lineage_offsets.npy"),
        np.load(path / "lineage_ids.npy"),
        ops=meta.get("ops", []),
        statistics=meta.get("statistics", []),
    )
    attributor = Attributor(
        index=ScoreIndex(matrix, row_ids),
        lineage=lineage,
        model=str(meta.get("model", "")),
        checkpoints=meta.get("checkpoints", []),
        record_indices=meta.get("record_indices", []),
        method=str(meta.get("method", "unknown")),
    )
    ws.extensions[_EXT + name] = attributor
    return attributor


def log_prediction(
    ws: AttributionWorkspace,
    attributor: Attributor,
    query: Any,
    *,
    name: str = "default",
    subject: str | None = None,
    payload: dict[str, Any] | None = None,
) -> int:
    """Append a ``prediction.made`` event that ``ws.explain(index)`` can explain later.

    Parameters
    ----------
    ws : Workspace
        Where the event and the query blob are written.
    attributor : Attributor
        Turns the query into its index-side vector.
    query : raw input row or query GradientFeatures
        Turned into the index-side vector, stored as a float32 blob.
    name : str
        The attributor that explains it: registered under ``name`` in this process if
        nothing is; save it with :func:`save_attributor` to explain from another process.
    subject : str, optional
        Pseudonym of the data subject the decision is about.
    payload : dict, optional
        Extra JSON fields (``decision``, ``score``, ``model``, ...).
    """
    _check_name(name, "log_prediction")
    vector = attributor.query_vectors(query)
    if vector.shape[0] != 1:
        raise InvalidInputError(
            f"query of log_prediction must describe one decision; got {vector.shape[0]}."
        )
    ws.extensions.setdefault(_EXT + name, attributor)
    blob = ws.ledger.put_blob(np.ascontiguousarray(vector[0], dtype="<f4").tobytes())
    body = dict(payload or {})
    body.setdefault("model", attributor.model)
    body["attribution"] = {"index": name, "query_blob": blob, "dim": int(vector.shape[1])}
    index: int = ws.ledger.append(
        "prediction.made", body, blobs=[blob], subjects=[subject] if subject else []
    )
    return index


def explain(
    ws: AttributionWorkspace,
    prediction: Any,
    *,
    top_k: int = 20,
    proofs: bool = True,
    attributor: Attributor | None = None,
) -> Explanation:
    """Explain a logged prediction (ledger index) or an input (see ``Workspace.explain``)."""
    if not is_count(top_k, 1):
        raise InvalidInputError(
            f"top_k of explain must be an int > 0; got {top_k!r}. Try top_k=20."
        )
    if isinstance(prediction, int | np.integer) and not isinstance(prediction, bool):
        entry = ws.ledger.entry(int(prediction))
        info = entry.event.payload.get("attribution")
        if entry.event.kind != "prediction.made" or not isinstance(info, dict):
            raise InvalidInputError(
                f"prediction of explain must be the ledger index of a prediction.made event "
                f"logged with rt.attribution.log_prediction; entry {int(prediction)} is "
                f"{entry.event.kind!r}."
            )
        att = attributor or load_attributor(ws, str(info["index"]))
        vector = np.frombuffer(ws.ledger.blobs.get(info["query_blob"]), dtype="<f4")
        if vector.size != att.index.dim:
            raise StateError(
                f"prediction {int(prediction)} was logged for a {vector.size}-dim index; "
                f"attributor {info['index']!r} has {att.index.dim}. Log it again."
            )
        shown = {k: v for k, v in entry.event.payload.items() if k != "attribution"}
        shown["ledger_index"] = int(prediction)
        return att.explain_vector(
            ws,
            vector.astype(np.float32),
            top_k=top_k,
            proofs=proofs,
            prediction=shown,
            extra_records=[int(prediction)],
        )
    att = attributor or load_attributor(ws, "default")
    return att.explain(ws, prediction, top_k=top_k, proofs=proofs)
