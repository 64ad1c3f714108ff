"""The erasure job behind :meth:`Workspace.erase`: resolve, update models, shred, record.

A job holds one or more requests (a batch: requests received within one calendar month, the
GDPR Art. 12(3) window), each resolved into an :class:`~rowtrail.unlearning._resolve.
ErasurePlan` when the job is made; nothing is written until :meth:`ErasureJob.run`. ``run``
first does every check and computes every model update, then appends, in order:

``erasure.requested``
    one per job: each request's reason, ``requested_at`` and ``received_at``, the subject's
    pseudonym (never a raw identifier) or the source name, counts, and a commitment to the
    erased rows (no raw ids); the event names the subjects, so their audit finds it.
``erasure.model_updated``
    one per affected model: method label, exact or approximate, residual, bound, model
    digests before and after, verification figures, timings.
``erasure.redacted``
    one per feature set whose rows of erased samples were overwritten in place.
``erasure.shredded``
    the ids (never the keys) of the destroyed per-subject data keys, and the decisions whose
    stored inputs they made unreadable (or that were stored in clear and could not be).
``erasure.completed``
    the job's outcome and the indices of its events; then a checkpoint is signed.

A bad request (unknown subject, rows out of range, unknown source, a model rowtrail did not
see trained, missing data for an affected model, a batch spanning more than a month) raises a
typed error before anything is written.
"""

from __future__ import annotations

import calendar
import contextlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, StateError
from rowtrail.ledger import subject_keys
from rowtrail.lineage import excluding_rows
from rowtrail.training._erased import SCHEME, row_commitments
from rowtrail.unlearning._methods import (
    ModelInput,
    ModelUpdate,
    check_rebuilt,
    choose,
    fit_index_of,
    needs_model,
    update_model,
)
from rowtrail.unlearning._resolve import ErasurePlan, ModelWork, resolve_request

__all__ = ["ErasureJob", "ErasureRequest", "ErasureResult", "check_window", "new_job"]


@dataclass(frozen=True)
class ErasureRequest:
    """One resolved request of a job: its plan, reason and when it was made and received."""

    plan: ErasurePlan
    reason: str
    requested_at: datetime
    received_at: datetime


@dataclass
class ErasureResult:
    """What :meth:`ErasureJob.run` did: its events and each model's update."""

    job_id: str
    updates: list[ModelUpdate]
    events: dict[str, list[int]] = field(default_factory=dict)
    key_ids: list[str] = field(default_factory=list)

    @property
    def completed_index(self) -> int:
        """Ledger index of the ``erasure.completed`` event."""
        return self.events["erasure.completed"][0]


def _check_time(value: object, name: str) -> datetime:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = datetime.fromisoformat(value)
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInputError(
            f"{name} of erase must be a timezone-aware datetime or ISO 8601 time with an offset; "
            f"got {value!r}. E.g. '2026-05-01T09:00:00+00:00'. Nothing was written."
        )
    return value.astimezone(UTC)


def _one_month_after(start: datetime) -> datetime:
    month = start.month % 12 + 1
    year = start.year + (start.month == 12)
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def check_window(times: Sequence[datetime]) -> None:
    """Raise unless every request time lies within one calendar month of the earliest."""
    if times and max(times) > _one_month_after(min(times)):
        raise InvalidInputError(
            "requested_at of erase_batch must lie within one month (GDPR Art. 12(3)) for one "
            f"batch; got {min(times).isoformat()} to {max(times).isoformat()}. Split the batch. "
            "Nothing was written."
        )


def new_job(
    ws: Any, requests: Iterable[Mapping[str, Any]], *, now: datetime | None = None
) -> ErasureJob:
    """Resolve ``requests`` into one job; raise on a bad one, writing nothing.

    Each request is a mapping with ``subject`` or ``source`` and ``rows``, ``reason`` and
    optionally ``requested_at`` (default: ``now``, the time it is received).
    """
    received = now or datetime.now(UTC)
    resolved = []
    for request in requests:
        extra = set(request) - {"subject", "source", "rows", "reason", "requested_at"}
        if extra:
            raise InvalidInputError(
                f"request of erase must have only subject, source, rows, reason, requested_at; "
                f"got {sorted(extra)}. Nothing was written."
            )
        reason = request.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInputError(
                f"reason of erase must be a non-empty text (e.g. 'GDPR Art. 17 request'); got "
                f"{reason!r}. Nothing was written."
            )
        requested = _check_time(request.get("requested_at", received), "requested_at")
        plan = resolve_request(
            ws,
            subject=request.get("subject"),
            source=request.get("source"),
            rows=request.get("rows"),
        )
        resolved.append(ErasureRequest(plan, reason.strip(), requested, received))
    if not resolved:
        raise InvalidInputError("requests of erase_batch must hold at least one request")
    check_window([r.requested_at for r in resolved])
    return ErasureJob(ws, resolved)


def _union(parts: Iterable[NDArray[np.int64]]) -> NDArray[np.int64]:
    arrays = [np.asarray(p, dtype=np.int64) for p in parts]
    return np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.int64)


def _merged(run_id: str, parts: Sequence[ModelWork]) -> ModelWork:
    """Return one :class:`ModelWork` for several (requests of a batch, shards of a model)."""
    if len(parts) == 1:
        return parts[0]
    removed = _union(p.removed_ids for p in parts)
    return ModelWork(
        run_id,
        parts[0].run_status,
        tuple(sorted({i for p in parts for i in p.fit_indices})),
        tuple(sorted({i for p in parts for i in p.split_indices})),
        removed,
        np.setdiff1d(_union(p.recomputed_ids for p in parts), removed).astype(np.int64),
        _union(p.statistic_ids for p in parts),
        tuple(sorted({r for p in parts for r in p.roles})),
    )


class ErasureJob:
    """An erasure of one or more requests; see the module docstring.

    Make one with :meth:`Workspace.erase` or :meth:`Workspace.erase_batch`; inspect
    :attr:`plan` (the merged work per model) and :attr:`requests`, then call :meth:`run`.
    """

    def __init__(self, ws: Any, requests: Sequence[ErasureRequest]) -> None:
        self.ws = ws
        self.requests = list(requests)
        self.job_id = "erasure-" + secrets.token_hex(8)
        self.row_ids = _union(r.plan.row_ids for r in self.requests)
        self.models = self._merge_models()
        self.result: ErasureResult | None = None

    @property
    def plan(self) -> ErasurePlan:
        """The plan of the first request (the only one of a single-request job)."""
        return self.requests[0].plan

    @property
    def pseudonyms(self) -> list[str]:
        """The subjects of the job's requests (pseudonyms)."""
        return sorted({r.plan.pseudonym for r in self.requests if r.plan.pseudonym})

    def _merge_models(self) -> dict[str, ModelWork]:
        parts: dict[str, list[ModelWork]] = {}
        for work in (w for r in self.requests for w in r.plan.models):
            parts.setdefault(work.run_id, []).append(work)
        return {run: _merged(run, works) for run, works in parts.items()}

    def to_json(self) -> dict[str, Any]:
        """Return the job's plan as JSON (what ``rowtrail erase --dry-run`` prints)."""
        return {
            "job": self.job_id,
            "requests": [
                r.plan.to_json() | {"reason": r.reason, "requested_at": r.requested_at.isoformat()}
                for r in self.requests
            ],
            "models": [w.to_json() for _, w in sorted(self.models.items())],
            "n_rows": int(self.row_ids.size),
        }

    def excluding(self) -> AbstractContextManager[None]:
        """Return ``with job.excluding():``, under which the source readers drop the rows.

        Re-run the pipeline that built the training data inside it (``rt.pandas.read_csv`` /
        ``read_parquet``, ``rt.polars.read_*`` / ``scan_*``, ``rt.load_csv``): every other row
        keeps its row id, so the rebuilt
        data is the data without the erased rows, and its lineage is checked by :meth:`run`.
        """
        return excluding_rows(self.row_ids)

    def certificate(self, *, now: datetime | None = None) -> bytes:
        """Return the job's signed erasure certificate (a DSSE envelope, JSON bytes).

        Built from the job's proven ``erasure.*`` events (see :mod:`._job_certificate`);
        check it anywhere with ``rowtrail certificate verify FILE --vkey KEY``. Issuing it
        appends an ``erasure.certified`` event naming its digest.

        Raises
        ------
        StateError
            The job has not run.
        """
        from rowtrail.unlearning._job_certificate import certify_job

        return certify_job(self, now=now)

    # ------------------------------------------------------------------ checks
    def _runs_of(self, given: ModelInput) -> tuple[list[str], int | None]:
        """Return the affected runs a model's training was recorded as, and its fit index."""
        model = given.model
        run_id = given.run_id
        if run_id is None and given.replay is not None:  # a replayable run, or its Replayer
            replay = given.replay
            run_id = getattr(replay, "run_id", None) or getattr(
                getattr(replay, "plan", None), "run_id", None
            )
        if run_id is not None:
            return ([str(run_id)] if run_id in self.models else []), None
        index = fit_index_of(model)
        if index is not None:
            by_fit = {i: run for run, w in self.models.items() for i in w.fit_indices}
            return ([by_fit[index]] if index in by_fit else []), index
        shards = getattr(model, "shards", None)
        if shards is not None:  # a sharded model: one training run per shard
            return sorted({str(s.run_id) for s in shards} & set(self.models)), None
        run = getattr(model, "run_id", None)
        return ([str(run)] if run in self.models else []), None

    def _match(self, inputs: Sequence[ModelInput]) -> list[tuple[list[str], ModelInput]]:
        """Pair each input with the affected runs it covers; raise on any mismatch."""
        matched: list[tuple[list[str], ModelInput]] = []
        for given in inputs:
            runs, index = self._runs_of(given)
            if not runs:
                raise InvalidInputError(
                    f"model of erase must be a model whose training rowtrail recorded and "
                    f"that used the erased rows; got {type(given.model).__name__} (training.fit "
                    f"{index}). Affected runs: {sorted(self.models)}. Nothing was written."
                )
            matched.append((runs, given))
        covered = {run for runs, _ in matched for run in runs}
        missing = [
            run for run, w in self.models.items() if run not in covered and needs_model(w.roles)
        ]
        if missing:
            raise InvalidInputError(
                f"models of erase must include every model trained on the erased rows; missing "
                f"runs {missing}. Pass ModelInput(model=..., X_rebuilt=..., y_rebuilt=...) for "
                "each (rowtrail keeps no training matrices). Nothing was written."
            )
        return matched

    def _work(self, runs: list[str]) -> ModelWork:
        """Return the merged work of the runs one model covers (a sharded model's shards)."""
        return _merged(",".join(runs), [self.models[r] for r in runs])

    def _commitment(self, row_ids: NDArray[np.int64]) -> dict[str, Any]:
        """Keyed per-row commitments to the rows, as a blob (no raw ids in the log)."""
        blob = row_commitments(self.ws.secret, self.job_id, row_ids)
        return {
            "scheme": SCHEME,
            "n": int(np.unique(row_ids).size),
            "blob": self.ws.ledger.put_blob(blob),
        }

    # ------------------------------------------------------------------ the run
    def run(
        self,
        models: Sequence[ModelInput] | ModelInput | None = None,
        *,
        method: str = "auto",
        tol: float | None = None,
    ) -> ErasureResult:
        """Update every affected model, shred the subjects' payloads and record it all.

        Parameters
        ----------
        models : ModelInput or sequence of ModelInput, optional
            One per affected model (see :class:`ModelInput`); none when no model used the
            rows (``job.models`` is empty).
        method : {"auto", "newton", "retrain", "sisa"}
            See :mod:`rowtrail.unlearning._methods`.
        tol : float, optional
            Gradient-residual tolerance of Newton removal.

        Raises
        ------
        InvalidInputError
            A model rowtrail did not see trained, a missing model, rebuilt data still holding
            erased rows: nothing is written.
        StateError
            The job already ran.
        """
        if self.result is not None:
            raise StateError(
                f"job {self.job_id} already ran (erasure.completed at ledger entry "
                f"{self.result.completed_index}); make a new job with ws.erase(...)"
            )
        given = [models] if isinstance(models, ModelInput) else list(models or [])
        matched = [(self._work(runs), item) for runs, item in self._match(given)]
        for work, item in matched:
            choose(method, item, work.refits_statistics)
            check_rebuilt(item, self.row_ids, work.removed_ids)
        updates = [
            update_model(
                work.run_id,
                item,
                method=method,
                removed=work.removed_ids,
                recomputed=work.recomputed_ids,
                statistics=work.refits_statistics,
                tol=tol,
            )
            for work, item in sorted(matched, key=lambda pair: pair[0].run_id)
        ]
        return self._record(updates)

    def _record(self, updates: list[ModelUpdate]) -> ErasureResult:
        ledger = self.ws.ledger
        result = ErasureResult(self.job_id, updates)
        events = result.events
        requested = self._requested_payload()
        events["erasure.requested"] = [
            ledger.append(
                "erasure.requested",
                requested,
                subjects=self.pseudonyms,
                blobs=[r["rows"]["blob"] for r in requested["requests"]],
            )
        ]
        for update in updates:
            blobs = []
            payload = update.to_json() | {"job": self.job_id}
            if update.theta is not None:
                blob = ledger.put_blob(np.ascontiguousarray(update.theta, "<f8").tobytes())
                payload["theta_blob"] = blob
                blobs.append(blob)
            events.setdefault("erasure.model_updated", []).append(
                ledger.append("erasure.model_updated", payload, blobs=blobs)
            )
        events["erasure.redacted"] = self._redact()
        result.key_ids = self._shred(events)
        done = {
            "job": self.job_id,
            "status": "completed",
            "n_requests": len(self.requests),
            "n_models": len(updates),
            # Runs that trained without row ids: whether they used the rows is unknown, so
            # this job cannot have changed them; said here, never hidden.
            "unknown_runs": sorted({run for r in self.requests for run, _ in r.plan.unknown_runs}),
            "events": {k: v for k, v in sorted(events.items())},
        }
        events["erasure.completed"] = [
            ledger.append("erasure.completed", done, subjects=self.pseudonyms)
        ]
        ledger.checkpoint()
        self.result = result
        return result

    def _requested_payload(self) -> dict[str, Any]:
        items = []
        for request in self.requests:
            plan = request.plan
            target = (
                {"subject": plan.pseudonym}
                if plan.pseudonym is not None
                else {"source": plan.request["source"]}
            )
            items.append(
                target
                | {
                    "reason": request.reason,
                    "requested_at": request.requested_at.isoformat(),
                    "received_at": request.received_at.isoformat(),
                    "n_rows": plan.n_rows,
                    "rows": self._commitment(plan.row_ids),
                    "n_models": len(plan.models),
                    "n_predictions": len(plan.predictions),
                    "unknown_runs": [run for run, _ in plan.unknown_runs],
                }
            )
        return {
            "job": self.job_id,
            "requests": items,
            "models": [w.to_json() for _, w in sorted(self.models.items())],
        }

    def _redact(self) -> list[int]:
        from rowtrail.training._redact import redact_feature_rows

        samples = _union(
            [
                *(w.removed_ids for w in self.models.values()),
                *(w.recomputed_ids for w in self.models.values()),
            ]
        )
        keys = sorted({k for r in self.requests for k in r.plan.feature_sets})
        found = [redact_feature_rows(self.ws, key, samples, job=self.job_id) for key in keys]
        return [i for i in found if i is not None] + self._redact_signals(samples)

    def _redact_signals(self, samples: NDArray[np.int64]) -> list[int]:
        """Remove the samples' values from the per-sample signal blobs of their chunks."""
        from rowtrail.training import sample_usage
        from rowtrail.training._redact import redact_signal_values

        signals = sorted({i for r in self.requests for i in r.plan.signals})
        if not signals or not samples.size:
            return []
        positions: dict[int, set[int]] = {}
        offsets: dict[int, int] = {}  # batch event -> its first position in the chunk
        for use in sample_usage(self.ws, row_ids=samples.tolist()):
            if use.kind != "batch" or use.chunk_proof is None or use.position_in_batch is None:
                continue
            if use.ledger_index not in offsets:
                event = self.ws.ledger.entry(use.ledger_index).event
                offsets[use.ledger_index] = int(event.payload["ids"][0])
            offset = offsets[use.ledger_index]
            chunk = positions.setdefault(use.chunk_proof.index, set())
            chunk.add(int(offset) + int(use.position_in_batch))
        return redact_signal_values(self.ws, signals, positions, job=self.job_id)

    def _shred(self, events: dict[str, list[int]]) -> list[str]:
        """Destroy the subjects' data keys; record which decisions lost their inputs."""
        from rowtrail.ledger import is_encrypted, key_id_of

        store = subject_keys(self.ws)
        predictions = sorted({i for r in self.requests for i in r.plan.predictions})
        encrypted: dict[int, str] = {}
        for index in predictions:
            info = self.ws.ledger.entry(index).event.payload.get("attribution") or {}
            digest = info.get("query_blob") if isinstance(info, dict) else None
            if isinstance(digest, str):
                blob = self.ws.ledger.blobs.get(digest)
                if is_encrypted(blob):
                    encrypted[index] = key_id_of(blob)
        key_ids = sorted({k for p in self.pseudonyms for k in store.key_ids(p)})
        payload = {
            "job": self.job_id,
            "key_ids": key_ids,
            "predictions": sorted(i for i, k in encrypted.items() if k in key_ids),
            # Decisions stored in clear (logged without subject=) cannot be shredded: named,
            # not hidden. (Per-sample signal values are removed by erasure.redacted events.)
            "not_shredded": sorted(
                i for i in predictions if i not in encrypted or encrypted[i] not in key_ids
            ),
        }
        # The event is written before the keys go: a crash between leaves keys to destroy
        # again, never destroyed keys without a record.
        events["erasure.shredded"] = [
            self.ws.ledger.append("erasure.shredded", payload, subjects=self.pseudonyms)
        ]
        for pseudonym in self.pseudonyms:
            store.destroy(pseudonym)
        return key_ids
