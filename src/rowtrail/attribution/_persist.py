"""Saved attributors and logged predictions, so explanations work across processes.

A saved attributor is a directory ``<workspace>/attribution/<name>/`` holding the train-side
score matrix (``matrix.npy``, float32, memory-mapped when loaded), the row ids, the sample
lineage as CSR (``lineage_offsets.npy``, ``lineage_ids.npy``) and ``meta.json``. Saving writes
them in a staging directory, moves each into place and appends an ``attribution.index.saved``
ledger event whose ``files`` field records the digest and size of all five (DESIGN §7).
:func:`load_attributor` finds the latest such event for the name and checks every file against
it before reading anything (a successful check is cached per process, see
:mod:`rowtrail.training._bound`); the event is then one of the records every explanation
proves. :func:`verify_attribution_files` re-hashes every saved attributor. A prediction logged with
:func:`log_prediction` is a ``prediction.made`` event whose blobs are the query's index-side
vector and, for a traced input, its decision lineage (source rows per table, op chain, fitted
statistics: see :mod:`rowtrail.attribution._decision`), so ``ws.explain(ledger_index)`` and
``rowtrail explain`` need neither the model nor torch, and show what the decision was made on.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.attribution._attributor import Attributor
from rowtrail.attribution._checks import is_count
from rowtrail.attribution._decision import load_decision_lineage, record_input_lineage
from rowtrail.attribution._explanation import Explanation, RowMapLineage
from rowtrail.attribution._features import (
    GradientFeatures,
    load_feature_matrix,
    save_feature_matrix,
)
from rowtrail.attribution._topk import ScoreIndex
from rowtrail.attribution._types import AttributionWorkspace
from rowtrail.errors import FileIntegrityError, InvalidInputError, ShreddedError, StateError
from rowtrail.ledger import decrypt_payload, encrypt_payload, is_encrypted, key_id_of, subject_keys
from rowtrail.training._bound import (
    Binding,
    describe_files,
    latest_binding,
    latest_bindings,
    load_npy_file,
)

__all__ = [
    "explain",
    "load_attributor",
    "log_prediction",
    "register_attributor",
    "save_attributor",
    "verify_attribution_files",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EXT = "attribution:"
# extensions[_LOADED + name]: (binding event index, stat keys) of an attributor read from disk.
_LOADED = "attribution-files:"
_KIND = "attribution.index.saved"
_FILES = ("lineage_ids.npy", "lineage_offsets.npy", "matrix.npy", "meta.json", "row_ids.npy")
_FIX = (
    "Save the attributor again with rt.attribution.save_attributor(ws, attributor, name), "
    "or delete its directory."
)


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
    ws.extensions.pop(_LOADED + name, None)


def save_attributor(ws: AttributionWorkspace, attributor: Attributor, name: str = "default") -> int:
    """Save the index and lineage under the workspace, register it, return the ledger index.

    The five files are written to a staging directory and moved into place one by one (so a
    process that has the previous matrix mapped keeps reading it), then an
    ``attribution.index.saved`` event binds all five by digest.
    """
    _check_name(name, "save_attributor")
    path = _directory(ws, name)
    lineage = attributor.lineage
    if not isinstance(lineage, RowMapLineage):
        lineage = RowMapLineage.from_view(lineage, attributor.index.n_samples)
    meta = {
        "name": name,
        "method": attributor.method,
        "score_unit": attributor.score_unit,
        "model": attributor.model,
        "checkpoints": list(attributor.checkpoints),
        "record_indices": list(attributor.record_indices),
        "ops": lineage.ops(),
        "statistics": lineage.statistics(),
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A dot-prefixed name can never be an attributor's, so a staging leftover is never read.
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".staging", dir=path.parent))
    try:
        save_feature_matrix(staging, attributor.index.matrix, attributor.index.row_ids, meta=meta)
        np.save(staging / "lineage_offsets.npy", np.asarray(lineage.offsets, dtype=np.int64))
        np.save(staging / "lineage_ids.npy", np.asarray(lineage.ids, dtype=np.int64))
        path.mkdir(mode=0o700, exist_ok=True)
        for file in _FILES:
            os.chmod(staging / file, 0o600)  # private like the rest of the workspace
            os.replace(staging / file, path / file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    payload = {
        "name": name,
        "method": attributor.method,
        "model": attributor.model,
        "n_samples": attributor.index.n_samples,
        "dim": attributor.index.dim,
        "files": describe_files(path, _FILES),
    }
    index: int = ws.ledger.append(_KIND, payload)
    register_attributor(ws, attributor, name)
    return index


def load_attributor(ws: AttributionWorkspace, name: str = "default") -> Attributor:
    """Return the attributor registered in this process or saved under ``name``.

    A saved attributor's five files are first checked against the latest
    ``attribution.index.saved`` event for ``name`` (a check that succeeded before in this
    process is not repeated while the files' size, inode and times are unchanged).

    Raises
    ------
    StateError
        Nothing is registered or saved under ``name``.
    FileIntegrityError
        A file is missing, truncated, extended, altered or malformed, or the directory has no
        binding event.
    """
    _check_name(name, "load_attributor")
    found = ws.extensions.get(_EXT + name)
    loaded = ws.extensions.get(_LOADED + name)
    if isinstance(found, Attributor) and loaded is None:
        return found  # registered in this process: the object itself, never read from disk
    path = _directory(ws, name)
    binding = latest_binding(ws.ledger, _KIND, "name", name, fix=_FIX)
    if binding is None:
        if path.exists():
            raise FileIntegrityError(
                f"{path} holds attributor files that no {_KIND} event binds, so they cannot be "
                f"trusted. {_FIX}",
                path=str(path),
            )
        raise StateError(
            f"no attributor {name!r} in workspace {ws.path}; build one with "
            "rt.attribution.Attributor(...) and save it with rt.attribution.save_attributor()."
        )
    keys = binding.check(path, _FILES)
    if isinstance(found, Attributor) and loaded == (binding.index, keys):
        return found
    attributor = _read_attributor(path, binding)
    binding.still_same(path, keys)
    ws.extensions[_EXT + name] = attributor
    ws.extensions[_LOADED + name] = (binding.index, keys)
    return attributor


def _read_files(
    path: Path, binding: Binding
) -> tuple[NDArray[Any], NDArray[np.int64], dict[str, Any], RowMapLineage]:
    """Parse the (already checked) files of a saved attributor, with typed errors."""
    matrix, row_ids, meta = load_feature_matrix(path)
    shape = (binding.payload.get("n_samples"), binding.payload.get("dim"))
    if matrix.shape != shape:
        raise FileIntegrityError(
            f"{path / 'matrix.npy'} has shape {matrix.shape}; ledger event {binding.index} "
            f"recorded {shape}. {_FIX}",
            path=str(path / "matrix.npy"),
        )
    offsets = load_npy_file(path / "lineage_offsets.npy")
    ids = load_npy_file(path / "lineage_ids.npy")
    try:
        lineage = RowMapLineage(
            offsets, ids, ops=meta.get("ops", []), statistics=meta.get("statistics", [])
        )
        if lineage.n_samples != matrix.shape[0]:
            raise InvalidInputError(
                f"{lineage.n_samples} samples in the lineage, {matrix.shape[0]} in the matrix"
            )
    except (InvalidInputError, TypeError) as exc:
        raise FileIntegrityError(
            f"{path / 'lineage_offsets.npy'} and lineage_ids.npy do not form a valid lineage: "
            f"{exc}. {_FIX}",
            path=str(path / "lineage_offsets.npy"),
        ) from exc
    return matrix, row_ids, meta, lineage


def _read_attributor(path: Path, binding: Binding) -> Attributor:
    matrix, row_ids, meta, lineage = _read_files(path, binding)
    try:
        return Attributor(
            index=ScoreIndex(matrix, row_ids),
            lineage=lineage,
            model=str(meta.get("model", "")),
            checkpoints=list(meta.get("checkpoints", [])),
            # The binding event is one of the records every explanation proves.
            record_indices=[*meta.get("record_indices", []), binding.index],
            method=str(meta.get("method", "unknown")),
            score_unit=str(meta["score_unit"]) if meta.get("score_unit") else None,
        )
    except (InvalidInputError, TypeError, ValueError) as exc:
        raise FileIntegrityError(
            f"{path / 'meta.json'} does not describe a valid attributor: {exc}. {_FIX}",
            path=str(path / "meta.json"),
        ) from exc


def verify_attribution_files(ws: AttributionWorkspace) -> int:
    """Re-hash every saved attributor against its latest ``attribution.index.saved`` event.

    Checks that every directory under ``<workspace>/attribution/`` is bound by an event, and
    that all five files of every name's latest event exist and match their recorded size and
    digest (never using the per-process cache), then parses them. Called by
    ``Workspace.verify``.

    Parameters
    ----------
    ws : Workspace
        The workspace whose saved attributors are checked.

    Returns
    -------
    int
        The number of files checked.

    Raises
    ------
    FileIntegrityError
        On the first unbound directory or missing, truncated, extended, altered or malformed
        file.
    """
    bindings = latest_bindings(ws.ledger, _KIND, "name", fix=_FIX)
    root = Path(ws.path) / "attribution"
    present = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    for name in present:
        # Dot-prefixed directories are save_attributor's staging leftovers: no name reads them.
        if not name.startswith(".") and name not in bindings:
            raise FileIntegrityError(
                f"{root / name} holds attributor files that no {_KIND} event binds. {_FIX}",
                path=str(root / name),
            )
    n_files = 0
    for name, binding in sorted(bindings.items()):
        if not _NAME.match(name):
            raise FileIntegrityError(
                f"ledger event {binding.index} ({_KIND}) names attributor {name!r}, which is "
                "not a valid name; no directory can be checked for it.",
                path=str(root),
            )
        keys = binding.check(root / name, _FILES, use_cache=False)
        _read_files(root / name, binding)
        binding.still_same(root / name, keys)
        n_files += len(keys)
    return n_files


def log_prediction(
    ws: AttributionWorkspace,
    attributor: Attributor,
    query: Any,
    *,
    name: str = "default",
    subject: str | None = None,
    payload: dict[str, Any] | None = None,
    input_lineage: Any = None,
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
        Extra JSON fields (``decision``, ``score``, ``model``, ``explained_class``, ...).
    input_lineage : lineage view, optional
        The input's lineage when ``query`` itself is not traced (default:
        ``rt.lineage(query)`` for a traced input; a plain array is recorded as "unknown").

    Returns
    -------
    int
        The ledger index of the ``prediction.made`` event. Its ``input_lineage`` field is
        ``{"status": "recorded", "document", "rows_digest", "n_rows_per_source", "n_ops",
        "n_statistics"}`` (the document and the fitted-statistics row blobs are named by the
        event) or ``{"status": "unknown", "reason"}``.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from rowtrail.attribution import Attributor, ExactInfluenceScorer, GradientFeatures
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> f = GradientFeatures(np.eye(2), p_correct=np.full(2, .5), row_ids=np.arange(2))
    >>> att = Attributor(ExactInfluenceScorer(l2=1.0).fit([f]))
    >>> i = log_prediction(ws, att, GradientFeatures(np.eye(2)[:1]))
    >>> ws.explain(i, top_k=1).decision.status
    'unknown'
    """
    _check_name(name, "log_prediction")
    vector = attributor.query_vectors(query)
    if vector.shape[0] != 1:
        raise InvalidInputError(
            f"query of log_prediction must describe one decision; got {vector.shape[0]}."
        )
    ws.extensions.setdefault(_EXT + name, attributor)
    data = np.ascontiguousarray(vector[0], dtype="<f4").tobytes()
    if subject:
        # The input is the subject's data: stored under its data key, so erasure can shred it.
        data = encrypt_payload(subject_keys(ws), subject, data)
    blob = ws.ledger.put_blob(data)
    body = dict(payload or {})
    body.setdefault("model", attributor.model)
    body["attribution"] = {"index": name, "query_blob": blob, "dim": int(vector.shape[1])}
    body["input_lineage"], lineage_blobs = record_input_lineage(ws, query, input_lineage)
    index: int = ws.ledger.append(
        "prediction.made",
        body,
        blobs=list(dict.fromkeys([blob, *lineage_blobs])),
        subjects=[subject] if subject else [],
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
    """Explain a logged prediction (ledger index) or an input (see ``Workspace.explain``).

    For a logged prediction the :class:`Explanation` starts with the decision's own lineage
    (``decision``), read only from the ``prediction.made`` event and the blobs it names, each
    checked on read; an input given directly has ``decision.status == "unknown"``.

    Raises
    ------
    InvalidInputError
        ``prediction`` is neither a ``prediction.made`` index nor an input row.
    VerificationError
        A record relied on fails its proof, or the recorded input lineage was altered or
        removed (``BlobNotFoundError`` for a missing blob).
    """
    if not is_count(top_k, 1):
        raise InvalidInputError(
            f"top_k of explain must be an int > 0; got {top_k!r}. Try top_k=20."
        )
    if isinstance(prediction, int | np.integer) and not isinstance(prediction, bool):
        with ws.ledger.snapshot():  # every record of the answer from one committed state
            return _explain_logged(ws, int(prediction), top_k, proofs, attributor)
    if not _is_input_row(prediction):
        raise InvalidInputError(
            "prediction of explain must be the ledger index (int) of a prediction.made event or "
            f"an input row (array); got {prediction!r}. Pass the index returned by "
            "rt.attribution.log_prediction, or the row as a list or NumPy array."
        )
    att = attributor or load_attributor(ws, "default")
    return att.explain(ws, prediction, top_k=top_k, proofs=proofs)


def _is_input_row(value: object) -> bool:
    if isinstance(value, GradientFeatures):
        return True
    if isinstance(value, list | tuple) and value and isinstance(value[0], GradientFeatures):
        return True
    if isinstance(value, str | bytes | dict) or value is None:
        return False
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return array.ndim >= 1 and array.size > 0


def verify_decision_keys(ws: AttributionWorkspace) -> int:
    """Check the data key store, and that every encrypted decision input has its key.

    A decision input logged for a subject is encrypted under the subject's data key; its key
    must be alive, or destroyed by a recorded erasure (``erasure.shredded`` names its id). A
    key file that is altered, truncated or missing otherwise is a tampered workspace.

    Returns
    -------
    int
        The number of live data keys checked.

    Raises
    ------
    FileIntegrityError
        A key file fails its seal, or an encrypted input's key is missing without a record.
    """
    store = subject_keys(ws)
    n_keys = store.verify()
    shredded = {
        str(k)
        for e in ws.ledger.entries_of_kind("erasure.shredded")
        for k in e.event.payload.get("key_ids", ())
    }
    for entry in ws.ledger.entries_of_kind("prediction.made"):
        info = entry.event.payload.get("attribution")
        digest = info.get("query_blob") if isinstance(info, dict) else None
        if not isinstance(digest, str):
            continue
        blob = ws.ledger.blobs.get(digest)
        if (
            is_encrypted(blob)
            and not store.has(key_id_of(blob))
            and key_id_of(blob) not in shredded
        ):
            raise FileIntegrityError(
                f"the data key {key_id_of(blob)} of prediction {entry.index}'s input is missing "
                f"from {store.root}, and no erasure destroyed it. Restore keys/ from your backup.",
                path=str(store.root),
            )
    return n_keys


def _query_bytes(ws: AttributionWorkspace, prediction: int, digest: str) -> bytes:
    """Return a logged input vector's bytes, decrypted; say which erasure shredded it."""
    data = ws.ledger.blobs.get(digest)
    if not is_encrypted(data):
        return data
    try:
        return decrypt_payload(subject_keys(ws), data)
    except ShreddedError:
        key_id = key_id_of(data)
        for entry in ws.ledger.entries_of_kind("erasure.shredded"):
            if key_id in entry.event.payload.get("key_ids", ()):
                ws.ledger.prove_signed([entry.index])
                raise ShreddedError(
                    f"the input of prediction {prediction} was shredded by erasure job "
                    f"{entry.event.payload.get('job')} on {entry.event.time.date().isoformat()} "
                    f"(ledger entry {entry.index}): it cannot be explained again. Its record "
                    "and proofs remain."
                ) from None
        raise


def _explain_logged(
    ws: AttributionWorkspace,
    prediction: int,
    top_k: int,
    proofs: bool,
    attributor: Attributor | None,
) -> Explanation:
    entry = ws.ledger.entry(prediction)
    info = entry.event.payload.get("attribution")
    if entry.event.kind != "prediction.made" or not isinstance(info, dict):
        raise InvalidInputError(
            f"prediction of explain must be the ledger index of a prediction.made event "
            f"logged with rt.attribution.log_prediction; entry {prediction} is "
            f"{entry.event.kind!r}."
        )
    name = info.get("index")
    if not isinstance(name, str):
        raise InvalidInputError(
            f"prediction of explain must be a prediction.made event naming its attributor; "
            f"entry {prediction} names {name!r}. Log it again with rt.attribution.log_prediction."
        )
    att = attributor or load_attributor(ws, name)
    vector = np.frombuffer(_query_bytes(ws, prediction, str(info.get("query_blob"))), dtype="<f4")
    if vector.size != att.index.dim:
        raise StateError(
            f"prediction {prediction} was logged for a {vector.size}-dim index; "
            f"attributor {name!r} has {att.index.dim}. Log it again."
        )
    decision = load_decision_lineage(ws, prediction, entry.event.payload, entry.event.blobs)
    shown = {
        k: v for k, v in entry.event.payload.items() if k not in ("attribution", "input_lineage")
    }
    shown["ledger_index"] = prediction
    return att.explain_vector(
        ws,
        vector.astype(np.float32),
        top_k=top_k,
        proofs=proofs,
        prediction=shown,
        extra_records=[prediction],
        decision=decision,
    )
