"""Resolve an erasure request through lineage into an :class:`ErasurePlan`; nothing is written.

A request names a subject (pseudonym or raw identifier) or rows of a source. The plan is built
only from verified records (DESIGN, the rule at the top): the subject's rows come from the
``subject.ingested`` records (proven with the answer), their uses in training from
:func:`rowtrail.training.sample_usage` (every split, fit and batch event proven against the
signed checkpoint), and the decisions that used them from the ``prediction.made`` events
and their checked input-lineage documents. No cache table is read unchecked.

For each recorded training run the plan separates:

- **removed** samples: the sample *is* an erased row (its recorded row id is erased);
- **recomputed** samples: the sample was *built from* an erased row through a join or an
  aggregation (a bureau row summed into an applicant's features) while its own row stays: its
  features must be recomputed without the row and the sample replaced, not removed;
- **statistic** rows: erased rows that entered a fitted statistic (a scaler's mean) applied to
  every sample: the statistic is refitted and every sample's features change with it.

Runs that trained without row ids make the answer "unknown" for them (never "not used"); the
plan lists them so that the job refuses to certify an erasure it cannot show.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.ids import ROW_BITS, is_pseudonym
from rowtrail.lineage import list_sources

if TYPE_CHECKING:
    from rowtrail.training import SampleUse
    from rowtrail.training._erased import Erasure

__all__ = ["ErasurePlan", "ModelWork", "erasure_status", "resolve_request"]

_EMPTY: NDArray[np.int64] = np.zeros(0, dtype=np.int64)


def _ids(values: Sequence[int] | set[int]) -> NDArray[np.int64]:
    return np.unique(np.asarray(sorted(values), dtype=np.int64))


@dataclass(frozen=True)
class ModelWork:
    """What one recorded training run must change to forget the erased rows.

    Attributes
    ----------
    run_id : str
        The run (``training.started`` ``run``).
    run_status : str
        ``"completed"``, ``"failed"``, ``"aborted"``, ``"running"`` or ``"incomplete"``.
    fit_indices : tuple of int
        Ledger indices of the run's ``training.fit`` events (convex fits, scikit-learn
        pipelines) that used the rows; empty for a network trained batch by batch.
    split_indices : tuple of int
        Ledger indices of the run's ``training.split`` events that hold the rows.
    removed_ids : ndarray of int64
        Recorded row ids of training samples that *are* erased rows (to remove).
    recomputed_ids : ndarray of int64
        Recorded row ids of training samples built from erased rows by a join or an
        aggregation whose own row stays (to recompute and replace).
    statistic_ids : ndarray of int64
        Erased rows that entered a fitted statistic applied to every sample (to refit).
    roles : tuple of str
        Split roles touched (``"train"``, ``"test"``, ...).
    """

    run_id: str
    run_status: str
    fit_indices: tuple[int, ...]
    split_indices: tuple[int, ...]
    removed_ids: NDArray[np.int64]
    recomputed_ids: NDArray[np.int64]
    statistic_ids: NDArray[np.int64]
    roles: tuple[str, ...]

    @property
    def refits_statistics(self) -> bool:
        """Whether a fitted statistic of the run used an erased row."""
        return bool(self.statistic_ids.size)

    def to_json(self) -> dict[str, Any]:
        """Return counts and record indices (no raw ids): what events and ``--dry-run`` show."""
        return {
            "run": self.run_id,
            "run_status": self.run_status,
            "fits": list(self.fit_indices),
            "splits": list(self.split_indices),
            "roles": list(self.roles),
            "n_removed": int(self.removed_ids.size),
            "n_recomputed": int(self.recomputed_ids.size),
            "n_statistic_rows": int(self.statistic_ids.size),
        }


@dataclass(frozen=True)
class ErasurePlan:
    """Everything of a request that reached a model or a stored payload (see the module doc).

    Attributes
    ----------
    request : dict
        The request as recorded: ``{"subject": pseudonym}`` or ``{"source": name, "rows":
        [...]}``. Only a pseudonym is ever kept for a subject, never the raw identifier.
    pseudonym : str or None
        The subject's pseudonym (a subject request), else ``None``.
    row_ids : ndarray of int64
        The erased source row ids (sorted).
    evidence : tuple of int
        Ledger indices of the records the rows rest on (``subject.ingested`` records for a
        subject, proven when the plan was made).
    models : tuple of ModelWork
        One entry per recorded run that used the rows.
    unknown_runs : tuple of (str, str)
        ``(run id, reason)`` of runs that trained without row ids: whether they used the rows
        is unknown.
    predictions : tuple of int
        Ledger indices of ``prediction.made`` events whose input was built from the rows or
        that name the subject (their stored inputs are shredded).
    feature_sets : tuple of str
        Ids of stored gradient-feature sets holding a row of a removed or recomputed sample.
    signals : tuple of int
        Ledger indices of ``training.signals`` events (per-sample signal blobs) of chunks
        that drew a sample built from the rows.
    """

    request: dict[str, Any]
    pseudonym: str | None
    row_ids: NDArray[np.int64]
    evidence: tuple[int, ...]
    models: tuple[ModelWork, ...]
    unknown_runs: tuple[tuple[str, str], ...] = ()
    predictions: tuple[int, ...] = ()
    feature_sets: tuple[str, ...] = field(default_factory=tuple)
    signals: tuple[int, ...] = ()

    @property
    def n_rows(self) -> int:
        """Number of erased source rows."""
        return int(self.row_ids.size)

    @property
    def has_model_work(self) -> bool:
        """Whether a recorded model used the rows (a plan without any is still valid)."""
        return bool(self.models)

    def to_json(self) -> dict[str, Any]:
        """Return the plan as JSON without raw ids (counts per source, record indices)."""
        per_source: dict[int, int] = defaultdict(int)
        for index in (self.row_ids >> np.int64(ROW_BITS)).tolist():
            per_source[int(index)] += 1
        return {
            "request": dict(self.request),
            "n_rows": self.n_rows,
            "rows_per_source": {str(k): v for k, v in sorted(per_source.items())},
            "evidence": list(self.evidence),
            "models": [m.to_json() for m in self.models],
            "unknown_runs": [{"run": r, "reason": why} for r, why in self.unknown_runs],
            "predictions": list(self.predictions),
            "feature_sets": list(self.feature_sets),
            "signals": list(self.signals),
        }


# ---------------------------------------------------------------------- the request
def _check_rows(rows: object) -> list[int]:
    numbers = np.atleast_1d(np.asarray(rows))
    if numbers.ndim != 1 or not numbers.size or numbers.dtype.kind not in "iu":
        raise InvalidInputError(
            f"rows of erase must be a non-empty sequence of row numbers (int); got {rows!r}. "
            "Give the 0-based data rows of the source, e.g. rows=[1, 2, 5]."
        )
    return sorted({int(n) for n in numbers.tolist()})


def _request_rows(
    ws: Any, subject: object, source: object, rows: object
) -> tuple[dict[str, Any], str | None, NDArray[np.int64], tuple[int, ...]]:
    """Return the recorded request, the pseudonym, the erased row ids and their evidence."""
    from rowtrail.training._status import prove_verified
    from rowtrail.training._targets import subject_targets, target_ids

    if (subject is None) == (source is None) or (subject is not None and rows is not None):
        raise InvalidInputError(
            "erase needs exactly one of subject= or source= (with rows=); got "
            f"subject={'<given>' if subject is not None else None}, source={source!r}, "
            f"rows={rows!r}. Nothing was written."
        )
    if subject is not None:
        pseudonym = str(subject if is_pseudonym(subject) else ws.pseudonymize(subject))
        found = subject_targets(ws, pseudonym)
        if not found.rows:
            raise InvalidInputError(
                f"subject of erase must be a subject with recorded rows; got {pseudonym!r}: no "
                "rows of this subject are recorded in this workspace (check the identifier and "
                "that its source was read with subject=<column>). Nothing was erased."
            )
        prove_verified(ws, found.records)
        return ({"subject": pseudonym}, pseudonym, _ids(found.rows), tuple(found.records))
    if rows is None:
        raise InvalidInputError(
            f"rows of erase must name the rows of source {source!r} to erase; got None. "
            "Give rows=[...] (erasing a whole source is not a request about a person)."
        )
    numbers = _check_rows(rows)
    try:
        ids = np.unique(target_ids(ws, None, None, source, numbers))  # type: ignore[arg-type]
    except (InvalidInputError, UnknownSourceError) as exc:
        # The shared check names its own caller; say which call was refused.
        text = str(exc).replace(" of sample_usage ", " of erase ")
        raise type(exc)(f"{text} Nothing was written.") from None
    return (
        {"source": source if not isinstance(source, tuple) else list(source), "rows": numbers},
        None,
        ids,
        (),
    )


# ---------------------------------------------------------------------- training uses
def _models(uses: list[SampleUse]) -> tuple[list[ModelWork], list[tuple[str, str]]]:
    removed: dict[str, set[int]] = defaultdict(set)
    linked: dict[str, set[int]] = defaultdict(set)
    statistic: dict[str, set[int]] = defaultdict(set)
    fits: dict[str, set[int]] = defaultdict(set)
    splits: dict[str, set[int]] = defaultdict(set)
    roles: dict[str, set[str]] = defaultdict(set)
    status: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for use in uses:
        run = use.run_id
        if use.kind == "unknown":
            unknown[run] = use.reason or "trained without row ids"
            continue
        status[run] = use.run_status or "incomplete"
        roles[run].add(use.role)
        if use.kind == "fit":
            fits[run].add(use.ledger_index)
        elif use.kind == "split":
            splits[run].add(use.ledger_index)
        if use.via == "statistic" and use.row_id is not None:
            statistic[run].add(use.row_id)
        elif use.via == "row" and use.sample_row_id is not None:
            removed[run].add(use.sample_row_id)
        elif use.sample_row_id is not None:
            linked[run].add(use.sample_row_id)
    work = []
    for run in sorted(status):
        gone = _ids(removed[run])
        work.append(
            ModelWork(
                run,
                status[run],
                tuple(sorted(fits[run])),
                tuple(sorted(splits[run])),
                gone,
                np.setdiff1d(_ids(linked[run]), gone).astype(np.int64),
                _ids(statistic[run]),
                tuple(sorted(roles[run])),
            )
        )
    return work, sorted(unknown.items())


# ---------------------------------------------------------------------- payloads
def _predictions(ws: Any, row_ids: NDArray[np.int64], pseudonym: str | None) -> list[int]:
    """Return the ``prediction.made`` events built from the rows or naming the subject."""
    from rowtrail.attribution._decision import load_decision_lineage
    from rowtrail.training._status import prove_verified

    entries = ws.ledger.entries_of_kind("prediction.made")
    if not entries:
        return []
    prove_verified(ws, [e.index for e in entries])
    names = {s.index: s.name for s in list_sources(ws)}
    erased = {
        (names.get(int(i) >> ROW_BITS), int(i) & ((1 << ROW_BITS) - 1)) for i in row_ids.tolist()
    }
    found = []
    for entry in entries:
        if pseudonym is not None and pseudonym in entry.event.subjects:
            found.append(entry.index)
            continue
        lineage = load_decision_lineage(ws, entry.index, entry.event.payload, entry.event.blobs)
        named = pseudonym is not None and pseudonym in lineage.subjects
        if named or any((name, n) in erased for name, rows in lineage.rows.items() for n in rows):
            found.append(entry.index)
    return found


def _signals(ws: Any, uses: list[SampleUse]) -> list[int]:
    """Return the per-sample signal events of the chunks that drew the rows' samples."""
    from rowtrail.training._status import prove_verified

    chunks = {u.chunk_proof.index for u in uses if u.chunk_proof is not None}
    if not chunks:
        return []
    found = [
        e.index
        for e in ws.ledger.entries_of_kind("training.signals")
        if e.event.payload.get("chunk") in chunks
    ]
    prove_verified(ws, found)
    return found


def _feature_sets(ws: Any, models: list[ModelWork]) -> list[str]:
    """Return the ids of feature sets holding a removed or recomputed sample's features."""
    from rowtrail.training import list_feature_sets, open_feature_set

    samples = np.concatenate(
        [_EMPTY, *(np.concatenate([m.removed_ids, m.recomputed_ids]) for m in models)]
    )
    if not samples.size:
        return []
    found = []
    for key in list_feature_sets(ws):
        if np.isin(open_feature_set(ws, key).row_ids, samples).any():  # checked on open
            found.append(key)
    return found


def resolve_request(
    ws: Any,
    *,
    subject: object = None,
    source: str | int | tuple[str, int] | None = None,
    rows: ArrayLike | None = None,
) -> ErasurePlan:
    """Resolve an erasure request into an :class:`ErasurePlan`; nothing is written.

    Parameters
    ----------
    ws : Workspace
        The workspace whose records are read.
    subject : str or int, optional
        A subject pseudonym (``ps:...``) or raw identifier; all of its recorded rows.
    source : str, int or (str, int), optional
        A source name (every version), index or ``(name, version)``, with ``rows``.
    rows : array_like of int, optional
        0-based data row numbers within ``source``.

    Returns
    -------
    ErasurePlan

    Raises
    ------
    InvalidInputError
        No rows of the subject are recorded ("unknown subject": never "done"), rows out of
        range for the source, or the request names neither or both of subject and source.
    UnknownSourceError
        ``source`` is not registered (the message lists the registered ones).
    VerificationError
        A record the plan rests on fails its proof.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from rowtrail.unlearning._resolve import resolve_request
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> _ = rt.track(np.zeros((4, 2)), source="t", workspace=ws)
    >>> plan = resolve_request(ws, source="t", rows=[1])
    >>> plan.n_rows, plan.has_model_work
    (1, False)
    """
    from rowtrail.training import sample_usage

    request, pseudonym, row_ids, evidence = _request_rows(ws, subject, source, rows)
    with ws.ledger.snapshot():
        uses = sample_usage(ws, row_ids=row_ids)
        models, unknown = _models(uses)
        predictions = _predictions(ws, row_ids, pseudonym)
        feature_sets = _feature_sets(ws, models)
        signals = _signals(ws, uses)
    return ErasurePlan(
        request,
        pseudonym,
        row_ids,
        evidence,
        tuple(models),
        tuple(unknown),
        tuple(predictions),
        tuple(feature_sets),
        tuple(signals),
    )


def merge_rows(plans: Sequence[ErasurePlan]) -> Mapping[str, NDArray[np.int64]]:
    """Return, per run, the union of removed sample ids of several plans (a batch job)."""
    found: dict[str, set[int]] = defaultdict(set)
    for plan in plans:
        for work in plan.models:
            found[work.run_id].update(work.removed_ids.tolist())
    return {run: _ids(ids) for run, ids in found.items()}


def erasure_status(
    ws: Any,
    *,
    subject: object = None,
    source: str | int | tuple[str, int] | None = None,
    rows: ArrayLike | None = None,
) -> list[Erasure]:
    """Return the completed erasure jobs that erased the rows of a subject or source rows.

    Each answer reads "erased on D by job J" (:meth:`Erasure.text`) and carries the verified
    proofs of the job's ``erasure.completed`` and ``erasure.requested`` events; an empty list
    means no completed job erased them. Raises like :func:`resolve_request` for a subject
    with no recorded rows, rows out of range or an unknown source.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> _ = rt.track(np.zeros((4, 2)), source="t", workspace=ws)
    >>> job = ws.erase(source="t", rows=[1], reason="GDPR Art. 17")
    >>> _ = job.run()
    >>> [e.job_id == job.job_id for e in erasure_status(ws, source="t", rows=[1, 2])]
    [True]
    """
    from rowtrail.training._erased import find_erasures

    _, _, row_ids, _ = _request_rows(ws, subject, source, rows)
    return find_erasures(ws, row_ids)
