"""The serving side of prediction logging: :class:`PredictionLogger` and its spool segments.

What a batch records, how ids are made and how the spool is replayed: see
:mod:`rowtrail.registry._predictions`.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.attribution._decision import record_input_lineage
from rowtrail.errors import InvalidInputError, StateError, StorageError
from rowtrail.hashing import canonical_json
from rowtrail.ids import is_pseudonym
from rowtrail.ledger import encrypt_payload, subject_keys
from rowtrail.ledger._events import format_time
from rowtrail.registry._predictions import (
    MAX_BATCH,
    append_records,
    encode_input,
    input_digest,
    replay_prediction_spool,
    spool_dir,
)

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["PredictionLogger"]


def _spool_line(record: dict[str, Any], output: Any) -> bytes:
    """Encode a record as one canonical JSON line (this also validates the output)."""
    try:
        return canonical_json(record) + b"\n"
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"output of PredictionLogger.log must be a JSON value (number, string, bool, list, "
            f"dict); got {output!r}: {exc}"
        ) from exc


def _is_int_in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _is_name(value: object) -> bool:
    return isinstance(value, str) and value.isidentifier()


def _deployment(ws: Workspace, deployment: object) -> Any:
    """Return the recorded deployment ``deployment`` names (a Deployment or its id)."""
    found = getattr(deployment, "deployment_id", deployment)
    if not isinstance(found, str) or not found:
        raise InvalidInputError(
            f"deployment of PredictionLogger must be a deployment or its id; got {deployment!r}. "
            "Deploy a model version with ws.registry.deploy(...)."
        )
    return ws.registry.deployment(found)  # raises for an id no registry event records



class _Segment:
    """One spool file, locked by its writer (so no other process replays it while open)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any], line: bytes, *, sync: bool) -> None:
        os.write(self.fd, line)  # one write: a killed process leaves whole lines only
        if sync:
            os.fsync(self.fd)
        self.records.append(record)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)




class PredictionLogger:
    """Log a deployment's predictions: ids at once, durable at once, batched into the ledger.

    Parameters
    ----------
    ws : Workspace
        A workspace opened for writing.
    deployment : Deployment or str
        The deployment serving the predictions (or its id), recorded with
        ``ws.registry.deploy``.
    model : object, optional
        What :meth:`predict` calls (``model.predict(X)``); default: the deployment's model
        version, loaded (digest checked) on first use.
    batch_size : int
        Flush once this many predictions are pending (default 512).
    flush_interval : float
        Seconds between background flushes (default 0.5).
    fsync : bool
        Also ``fsync`` each record before :meth:`log` returns (survives a machine crash, not
        only a process crash).
    method : str
        The model method whose outputs are logged (default ``"predict"``); :meth:`predict`
        calls it and ``reproduce`` re-scores with it.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> from rowtrail.registry import find_prediction
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> _ = ws.registry.register_model("scorer", b"weights", flavor="bytes")
    >>> deployment = ws.registry.deploy("scorer", 1, environment="prod")
    >>> with PredictionLogger(ws, deployment) as logger:
    ...     pid = logger.log([1.0, 2.0], 1)
    >>> find_prediction(ws, pid).output
    1
    """

    def __init__(
        self,
        ws: Workspace,
        deployment: Any,
        *,
        model: Any = None,
        batch_size: int = 512,
        flush_interval: float = 0.5,
        fsync: bool = False,
        method: str = "predict",
    ) -> None:
        if not _is_int_in(batch_size, 1, MAX_BATCH):
            raise InvalidInputError(
                f"batch_size of PredictionLogger must be an int in [1, {MAX_BATCH}]; got "
                f"{batch_size!r}."
            )
        if not _is_positive(flush_interval):
            raise InvalidInputError(
                f"flush_interval of PredictionLogger must be a positive number of seconds; got "
                f"{flush_interval!r}."
            )
        if getattr(ws, "read_only", False):
            raise StateError(
                "ws of PredictionLogger must be open for writing; open it with rt.open(path)."
            )
        self.ws = ws
        self.deployment = _deployment(ws, deployment)
        self.deployment_id: str = self.deployment.deployment_id
        self._model = model
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.fsync = bool(fsync)
        if not _is_name(method):
            raise InvalidInputError(
                f"method of PredictionLogger must be a method name such as 'predict' or "
                f"'predict_proba'; got {method!r}."
            )
        self.method = method
        self.session = secrets.token_hex(8)
        self._counter = 0
        self._lock = threading.Lock()  # pending records and the current segment
        self._flush_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Condition(self._lock)
        self._error: BaseException | None = None
        self._closed = False
        self._segments: list[_Segment] = []  # rotated, not yet in the ledger
        self._n_segments = 0
        root = spool_dir(ws)
        root.parent.mkdir(mode=0o700, exist_ok=True)  # private like the rest of the workspace
        root.mkdir(mode=0o700, exist_ok=True)
        self.replayed = replay_prediction_spool(ws)
        self._segment = self._new_segment()
        self._thread = threading.Thread(
            target=self._run, name=f"rowtrail-predictions-{self.session}", daemon=True
        )
        self._thread.start()

    # ------------------------------------------------------------------ logging
    def _new_segment(self) -> _Segment:
        self._n_segments += 1
        path = spool_dir(self.ws) / f"{self.session}-{self._n_segments:08d}.spool"
        return _Segment(path)

    def _record(
        self, input_row: Any, output: Any, subject: str | None, input_lineage: Any
    ) -> dict[str, Any]:
        if subject is not None and not is_pseudonym(subject):
            raise InvalidInputError(
                f"subject of PredictionLogger.log must be a subject pseudonym ('ps:<64 hex>'); "
                f"got {subject!r}. Pseudonymize raw identifiers with ws.pseudonymize(raw)."
            )
        encoded, data = encode_input(input_row)
        nonce = secrets.token_hex(16)
        record: dict[str, Any] = {
            "deployment": self.deployment_id,
            "method": self.method,
            "digest": input_digest(nonce, encoded["dtype"], encoded["shape"], data),
            "output": output.tolist() if isinstance(output, np.ndarray | np.generic) else output,
            "time": format_time(self.ws.ledger.now()),
            "subject": subject,
        }
        lineage, blobs = record_input_lineage(self.ws, input_row, input_lineage)
        record["lineage"] = lineage
        if blobs:
            record["lineage_blobs"] = blobs
        sealed_input = {**encoded, "nonce": nonce}
        if subject is None:
            record["input"] = sealed_input
        else:
            envelope = encrypt_payload(subject_keys(self.ws), subject, canonical_json(sealed_input))
            record["sealed"] = base64.b64encode(envelope).decode("ascii")
        return record

    def log(
        self,
        input_row: Any,
        output: Any,
        *,
        subject: str | None = None,
        input_lineage: Any = None,
    ) -> str:
        """Log one prediction; return its id once the record is durable (spooled).

        Parameters
        ----------
        input_row : array-like
            The model's numeric input for this prediction (kept so it can be re-scored).
        output : JSON value or NumPy value
            What the model returned.
        subject : str, optional
            Pseudonym of the data subject the prediction is about (``ws.pseudonymize(raw)``).
        input_lineage : lineage view, optional
            The input's lineage when ``input_row`` itself is not traced.

        Returns
        -------
        str
            The prediction id, ``pred-<session>-<n>``.
        """
        self._raise_pending_error()
        record = self._record(input_row, output, subject, input_lineage)
        with self._lock:
            if self._closed:
                raise StateError("this PredictionLogger is closed; create a new one to log.")
            self._counter += 1
            record["id"] = prediction_id = f"pred-{self.session}-{self._counter}"
            try:
                line = _spool_line(record, output)
            except InvalidInputError:
                self._counter -= 1  # nothing was written: the id is not used
                raise
            try:
                self._segment.write(record, line, sync=self.fsync)
            except OSError as exc:
                raise StorageError(
                    f"could not spool prediction to {self._segment.path}: {exc}"
                ) from exc
            if len(self._segment.records) >= self.batch_size:
                self._wake.notify()
        return prediction_id

    def _loaded_model(self) -> Any:
        if self._model is None:
            self._model = self.deployment.model_version.load()  # digest checked
        return self._model

    def predict(
        self,
        X: Any,  # noqa: N803 (scikit-learn's name for a design matrix)
        *,
        subjects: Sequence[str | None] | None = None,
    ) -> Any:
        """Call the deployed model's method on ``X`` (``model.predict``) and log every row.

        Returns the model's outputs; the prediction ids are in :attr:`last_ids`.
        """
        rows = np.asarray(X)
        if rows.ndim != 2:
            raise InvalidInputError(
                f"X of PredictionLogger.predict must be 2-D (rows x features); got shape "
                f"{rows.shape}."
            )
        if subjects is not None and len(subjects) != rows.shape[0]:
            raise InvalidInputError(
                f"subjects of PredictionLogger.predict must have one entry per row of X "
                f"({rows.shape[0]}); got {len(subjects)}."
            )
        outputs = getattr(self._loaded_model(), self.method)(X)
        self.last_ids = [
            self.log(rows[i], outputs[i], subject=None if subjects is None else subjects[i])
            for i in range(rows.shape[0])
        ]
        return outputs

    # ------------------------------------------------------------------ flushing
    def _run(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return
                if len(self._segment.records) < self.batch_size:
                    self._wake.wait(self.flush_interval)
                if self._is_closed():
                    return
            try:
                self._flush_once()
            except BaseException as exc:  # kept, raised to the caller by the next call
                self._error = exc
                return

    def _flush_once(self) -> int:
        with self._flush_lock:
            with self._lock:
                if self._segment.records:
                    self._segments.append(self._segment)
                    self._segment = self._new_segment()
                segments, self._segments = self._segments, []
            if not segments:
                return 0
            records = [r for s in segments for r in s.records]
            try:
                appended = append_records(self.ws, records)
            except BaseException:
                with self._lock:
                    self._segments = segments + self._segments  # retried by the next flush
                raise
            for segment in segments:
                segment.remove()
            return appended

    def _is_closed(self) -> bool:
        return self._closed

    def _raise_pending_error(self) -> None:
        error = self._error
        if error is not None:
            raise StateError(
                f"the prediction logger's background flush failed ({error}); its records are "
                "kept in the spool and replayed by the next PredictionLogger."
            ) from error

    def flush(self) -> int:
        """Append every pending prediction to the ledger now; return how many were appended."""
        self._raise_pending_error()
        return self._flush_once()

    def close(self) -> None:
        """Flush, stop the background thread and release the spool."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._wake.notify()
        self._thread.join()
        try:
            self._flush_once()
        finally:
            self._segment.remove()
        self._raise_pending_error()

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PredictionLogger(deployment={self.deployment_id!r}, session={self.session!r})"
