"""Queries over recorded runs: the batches of a run, and "when was sample / row / subject S used?".

Answers are built from ledger events only (``training.split``, ``training.batch``,
``training.fit``, ``training.checkpoint``, ``training.started``, ``training.completed``) and
their blobs; every answer carries the inclusion proof of the event it rests on, verified before
it is released (:func:`~rowtrail.training._status.prove_verified`: against the signed,
trusted checkpoint), and blobs are re-hashed when read.

What :func:`sample_usage` reports for a row (DESIGN, the rule at the top: rowtrail says
"unknown", never "not used", when it does not know):

- ``kind="split"`` / ``"batch"`` / ``"fit"``: the row shaped a sample of a split, a batch drawn
  from it, or a convex fit on it. ``via`` tells how the row reached the sample:

  ``"row"``         it is the sample's own row (the id the run recorded for the sample);
  ``"joined"``      it was joined row-for-row into the sample (a lookup table's row);
  ``"aggregated"``  it was one of the rows a group-by folded into the sample (a bureau row
                    summed into an applicant's features);
  ``"statistic"``   it entered a fitted statistic (a scaler's mean and std) applied to every
                    sample of the split; reported once per split (and fit), not per batch.

  ``sample_row_id`` is the recorded id of the sample the row reached.
- ``kind="unknown"``: a run that could have used the row trained without row ids (its dataset
  carried none, so positions stood in for them: ``"row_ids": false`` on its split). One answer
  per such run, with ``row_id=None``, ``role="unknown"``, the ``reason`` and the proof of the
  split event that shows it.

Every answer carries ``run_status`` (see :mod:`rowtrail.training._status`): a row used by a
run that was killed is reported with ``"aborted"``, never as part of a completed run, and
answers about a run that was never sealed carry a ``reason`` saying its last batches may be
missing (a run writes its batches in chunks; a killed process never wrote its last one).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError
from rowtrail.ids import ROW_BITS
from rowtrail.ledger import InclusionProof, LedgerEntry
from rowtrail.lineage import SourceInfo, list_sources
from rowtrail.training._codec import decode_ids_blob
from rowtrail.training._erased import find_erasures
from rowtrail.training._rows import SampleRows, decode_sample_rows, is_stand_in
from rowtrail.training._status import prove_verified, status_of
from rowtrail.training._targets import SourceKey, subject_targets, target_ids

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace, SubjectRows

__all__ = ["BatchRecord", "SampleUse", "load_checkpoint", "read_batches", "sample_usage"]

_BATCH_FIELDS = ("chunk", "dataset", "epoch", "batch", "step", "ids", "lr", "loss")


@dataclass(frozen=True)
class BatchRecord:
    """One recorded batch, with its samples' dataset positions and row ids."""

    run_id: str
    role: str
    epoch: int
    batch: int
    step: int | None
    lr: float | None
    loss: float | None
    positions: NDArray[np.int64]
    row_ids: NDArray[np.int64]
    ledger_index: int


@dataclass(frozen=True)
class SampleUse:
    """One use of a row in a run: a split, a batch it was drawn in, a fit, or "unknown".

    ``kind`` is ``"split"``, ``"batch"``, ``"fit"`` or ``"unknown"`` and ``via`` how the row
    reached the sample: ``"row"``, ``"joined"``, ``"aggregated"`` or ``"statistic"`` (see the
    module docstring); an ``"unknown"`` answer has ``row_id=None``, ``via=None``,
    ``role="unknown"`` and a ``reason``. ``run_status`` is the run's status (``"completed"``,
    ``"failed"``, ``"aborted"``, ``"running"`` or ``"incomplete"``); answers about a run that
    was never sealed also carry a ``reason`` (its last batches may be missing).

    A row that a completed erasure job erased since carries ``erased_by`` (the job id),
    ``erased_on`` (its date) and ``erasure_proof`` (the proof of its ``erasure.completed``
    event): the use happened, and was then erased.

    ``proof`` proves the event at ``ledger_index``; for a batch, ``chunk_proof`` proves the
    ``training.chunk`` event whose blob holds the batch's ids; for a query by subject,
    ``subject_proof`` proves the ``subject.ingested`` event that ties ``row_id`` to the
    subject. All were verified against the signed checkpoint before the answer was returned.
    """

    row_id: int | None
    run_id: str
    kind: str
    role: str
    epoch: int | None
    step: int | None
    batch: int | None
    position_in_batch: int | None
    checkpoint_ids: tuple[str, ...]
    ledger_index: int
    proof: InclusionProof
    chunk_proof: InclusionProof | None = None
    via: str | None = "row"
    sample_row_id: int | None = None
    reason: str | None = None
    run_status: str | None = None
    subject_proof: InclusionProof | None = None
    erased_by: str | None = None
    erased_on: str | None = None
    erasure_proof: InclusionProof | None = None

    @property
    def erased(self) -> bool:
        """Whether a completed erasure job erased this row since (see ``erased_by``)."""
        return self.erased_by is not None


@dataclass(frozen=True)
class _Found:
    """A use before its proofs are attached."""

    ledger_index: int
    row_id: int | None
    run: str
    kind: str
    role: str
    via: str | None = "row"
    sample_row_id: int | None = None
    epoch: int | None = None
    step: int | None = None
    batch: int | None = None
    position: int | None = None
    chunk: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class _Members:
    """The rows of one split that the query asks about, sorted by sample position."""

    entry: LedgerEntry
    positions: IdArray  # sample position of each hit
    row_ids: IdArray  # the asked row
    vias: list[str]
    sample_ids: IdArray  # the sample's recorded row id
    statistic: IdArray  # asked rows that entered a fitted statistic of the split

    def found(self, kind: str, index: int, **extra: Any) -> list[_Found]:
        """Return the uses of every hit (and statistic row) as events of ``kind`` at ``index``."""
        payload = self.entry.event.payload
        run, role = payload["run"], payload["role"]
        uses = [
            _Found(index, int(r), run, kind, role, via, int(s), **extra)
            for r, via, s in zip(self.row_ids.tolist(), self.vias, self.sample_ids.tolist(),
                                 strict=True)
        ]
        uses.extend(_Found(index, int(r), run, kind, role, "statistic", None, **extra)
                    for r in self.statistic.tolist())
        return uses


#: The training records a usage query reads.
_KINDS_READ = (
    "training.split",
    "training.chunk",
    "training.batch",
    "training.fit",
    "training.checkpoint",
    "training.started",
    "training.completed",
)


class _Index:
    """Reads a run's events once: splits (row ids by dataset key) and positions blobs."""

    def __init__(self, ws: LineageWorkspace) -> None:
        self.ws = ws
        self._blobs: dict[str, NDArray[np.int64]] = {}
        # One batched read of every training record (they lie close together in the log),
        # which the per-kind reads below then find checked in the ledger's entry cache.
        ledger = ws.ledger
        ledger.entries([i for kind in _KINDS_READ for i in ledger.indices(kind=kind)])

    def entries(
        self, kind: str, run: str | None, *, needs: tuple[str, ...] = ()
    ) -> list[LedgerEntry]:
        """Return events of ``kind`` (of one run) whose payload has the ``needs`` fields.

        Other writers may use the same kinds with other payloads (the demo's synthetic
        stream does); those are not records of a training run and are skipped.
        """
        found = self.ws.ledger.entries_of_kind(kind)
        return [
            e for e in found
            if (run is None or e.event.payload.get("run") == run)
            and all(name in e.event.payload for name in needs)
        ]

    def ids(self, digest: str, base: int = 0) -> NDArray[np.int64]:
        if digest not in self._blobs:
            self._blobs[digest] = decode_ids_blob(self.ws.ledger.blobs.get(digest))
        return self._blobs[digest] + np.int64(base)

    def chunks(self, run: str | None) -> dict[int, tuple[str, str]]:
        """Map chunk event index -> (run id, positions blob digest)."""
        return {
            e.index: (e.event.payload["run"], e.event.blobs[0])
            for e in self.entries("training.chunk", run, needs=("run",)) if e.event.blobs
        }

    def batches(self, run: str | None) -> list[tuple[LedgerEntry, str, NDArray[np.int64]]]:
        """Return ``(entry, run id, positions)`` of every batch event (of one run)."""
        chunks = self.chunks(run)
        found = []
        for entry in self.entries("training.batch", None, needs=_BATCH_FIELDS):
            payload = entry.event.payload
            chunk = chunks.get(payload["chunk"])
            if chunk is None:
                continue
            offset, count = payload["ids"]
            found.append((entry, chunk[0], self.ids(chunk[1])[offset : offset + count]))
        return found

    def split_entries(self, run: str | None) -> list[LedgerEntry]:
        """Return the ``training.split`` events (of one run)."""
        return self.entries("training.split", run, needs=("run", "dataset", "id_base", "role"))

    def split_ids(self, entry: LedgerEntry) -> IdArray:
        """Return the row id of every sample of a split."""
        payload = entry.event.payload
        return self.ids(payload.get("ids_blob") or entry.event.blobs[0], int(payload["id_base"]))

    def sample_rows(self, entry: LedgerEntry) -> SampleRows | None:
        """Return the per-sample lineage a split recorded, if any."""
        lineage = entry.event.payload.get("lineage")
        if not isinstance(lineage, dict):
            return None
        return decode_sample_rows(self.ids, lineage)

    def splits(self, run: str | None) -> dict[tuple[str, int], tuple[LedgerEntry, IdArray]]:
        return {
            (e.event.payload["run"], int(e.event.payload["dataset"])): (e, self.split_ids(e))
            for e in self.split_entries(run)
        }


def read_batches(
    workspace: LineageWorkspace, run_id: str, *, role: str | None = "train"
) -> list[BatchRecord]:
    """Return every recorded batch of a run (optionally one role), in ledger order."""
    index = _Index(workspace)
    splits = index.splits(run_id)
    records = []
    for entry, _, positions in index.batches(run_id):
        payload = entry.event.payload
        split_entry, dataset_ids = splits[(run_id, int(payload["dataset"]))]
        batch_role = split_entry.event.payload["role"]
        if role is not None and batch_role != role:
            continue
        records.append(
            BatchRecord(run_id, batch_role, payload["epoch"], payload["batch"],
                        payload["step"], payload["lr"], payload["loss"], positions,
                        dataset_ids[positions], entry.index)
        )
    return records


# ---------------------------------------------------------------------- splits
def _members(index: _Index, entry: LedgerEntry, targets: IdArray) -> _Members | None:
    """Return the asked rows that shaped samples of one split, or None if there are none."""
    ids = index.split_ids(entry)
    own = np.flatnonzero(np.isin(ids, targets))
    positions, rows, vias = [own], [ids[own]], ["row"] * own.size
    lineage = index.sample_rows(entry)
    statistic = np.zeros(0, dtype=np.int64)
    if lineage is not None:
        hit = np.flatnonzero(np.isin(lineage.ids, targets))
        owner = (np.searchsorted(lineage.offsets, hit, side="right") - 1).astype(np.int64)
        linked = lineage.ids[hit]
        extra = linked != ids[owner]  # the sample's own row is reported once, as "row"
        owner, linked = owner[extra], linked[extra]
        positions.append(owner)
        rows.append(linked)
        aggregated = np.isin(linked, lineage.aggregated)
        vias.extend("aggregated" if a else "joined" for a in aggregated.tolist())
        statistic = np.intersect1d(lineage.statistic, targets).astype(np.int64)
    pos = np.concatenate(positions).astype(np.int64)
    if not pos.size and not statistic.size:
        return None
    order = np.argsort(pos, kind="stable")
    rid = np.concatenate(rows).astype(np.int64)[order]
    return _Members(entry, pos[order], rid, [vias[i] for i in order.tolist()],
                    ids[pos[order]], statistic)


def _unknown(ws: LineageWorkspace, entries: list[LedgerEntry], targets: IdArray) -> list[_Found]:
    """One "unknown" answer per run whose splits stood positions in for row ids."""
    if not targets.size:
        return []
    asked = set(np.unique(targets >> ROW_BITS).tolist())
    registered: dict[int, SourceInfo] = {}
    if any(not isinstance(e.event.payload.get("row_ids"), bool) for e in entries):
        registered = {s.index: s for s in list_sources(ws)}
    by_run: dict[str, list[LedgerEntry]] = defaultdict(list)
    stand_ins: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        payload = entry.event.payload
        sources = {int(s["source_index"]): s.get("name") for s in payload.get("sources", [])}
        if _has_row_ids(registered, payload, sources):
            continue
        if asked - set(sources):  # some asked rows are not rows of the stand-in itself
            by_run[payload["run"]].append(entry)
            stand_ins[payload["run"]].update(str(n) for n in sources.values())
    found = []
    for run, split_entries in by_run.items():
        roles = " and ".join(dict.fromkeys(e.event.payload["role"] for e in split_entries))
        reason = (
            f"run {run} trained without row ids: its {roles} samples were recorded as "
            f"dataset positions (stand-in source {sorted(stand_ins[run])}), not as rows of "
            "any registered source, so whether these rows were used is unknown"
        )
        found.append(_Found(split_entries[0].index, None, run, "unknown", "unknown", None,
                            reason=reason))
    return found


def _has_row_ids(
    registered: dict[int, SourceInfo], payload: Mapping[str, Any], sources: dict[int, Any]
) -> bool:
    recorded = payload.get("row_ids")
    if isinstance(recorded, bool):
        return recorded
    # Splits written before "row_ids" was recorded: a stand-in source gives it away.
    return not any(i in registered and is_stand_in(registered[i]) for i in sources)


def _batch_uses(index: _Index, member: dict[tuple[str, int], _Members],
                run: str | None) -> list[_Found]:
    found: list[_Found] = []
    for entry, run_id, positions in index.batches(run):
        payload = entry.event.payload
        hits = member.get((run_id, int(payload["dataset"])))
        if hits is None or not hits.positions.size:
            continue
        for slot in np.flatnonzero(np.isin(positions, hits.positions)).tolist():
            position = positions[slot]
            lo, hi = np.searchsorted(hits.positions, [position, position + 1]).tolist()
            found.extend(
                _Found(entry.index, int(hits.row_ids[k]), run_id, "batch",
                       hits.entry.event.payload["role"], hits.vias[k], int(hits.sample_ids[k]),
                       payload["epoch"], payload["step"], payload["batch"], slot,
                       int(payload["chunk"]))
                for k in range(lo, hi)
            )
    for entry in index.entries("training.fit", run, needs=("dataset",)):
        fit = entry.event.payload
        hits = member.get((fit["run"], int(fit["dataset"])))
        if hits is not None:
            found.extend(hits.found("fit", entry.index))
    return found


def _checkpoints_after(index: _Index, run: str | None) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for entry in index.entries("training.checkpoint", run, needs=("train_batches", "checkpoint")):
        payload = entry.event.payload
        found[payload["run"]].append((int(payload["train_batches"]), payload["checkpoint"]))
    return found


def _statuses(index: _Index, runs: set[str]) -> tuple[dict[str, str], set[str], list[int]]:
    """Return each run's status, the runs with no seal, and the events they rest on."""
    started = {e.event.payload["run"]: e for e in index.entries("training.started", None,
                                                                 needs=("run", "name"))}
    sealed = {e.event.payload["run"]: e for e in index.entries("training.completed", None,
                                                                needs=("run", "status"))}
    statuses: dict[str, str] = {}
    unsealed = {run for run in runs if run not in sealed}
    indices: list[int] = []
    for run in runs:
        start, seal = started.get(run), sealed.get(run)
        if start is None:  # pragma: no cover - every run writes training.started first
            statuses[run] = "incomplete"
            continue
        statuses[run] = status_of(start.event.payload, None if seal is None
                                  else seal.event.payload)
        indices.extend(e.index for e in (start, seal) if e is not None)
    return statuses, unsealed, indices


# ---------------------------------------------------------------------- the query
def sample_usage(
    workspace: LineageWorkspace,
    *,
    row_ids: ArrayLike | None = None,
    subject: object = None,
    source: SourceKey | None = None,
    rows: ArrayLike | None = None,
    run: str | None = None,
) -> list[SampleUse]:
    """Return when rows were used: splits, batches (epoch, step, role), fits, or "unknown".

    Parameters
    ----------
    workspace : Workspace
        Where the runs were recorded.
    row_ids : array_like of int64, optional
        The rows to look for. Give exactly one of ``row_ids``, ``subject`` or ``source``.
    subject : str or int, optional
        A subject pseudonym (``ps:...``) or raw identifier (normalised like
        :func:`rowtrail.ids.normalize_subject`: ``42`` and ``"42.0"`` are one subject): all
        rows recorded for it.
    source : str, int or (str, int), optional
        A source name (every registered version of it: re-registering changed bytes never
        hides the uses of an earlier version), a source index, or ``(name, version)`` for one
        version: its rows ``rows``, or all of its rows.
    rows : array_like of int, optional
        Row numbers (0-based data rows) within ``source``.
    run : str, optional
        Restrict to one run id.

    Returns
    -------
    list of SampleUse
        Ordered by ledger index; each with the verified inclusion proof of its event, how the
        row reached the sample (``via``), the run's status and, for training batches, the ids
        of the checkpoints whose weights saw that batch. Runs that trained without row ids
        answer ``kind="unknown"`` (see the module docstring).

    Raises
    ------
    InvalidInputError
        If ``rows`` or ``row_ids`` name rows that do not exist (the message gives the valid
        range), or the arguments do not say what to look for.
    UnknownSourceError
        If ``source`` (or a row id's source index) is not registered.
    VerificationError
        If a proof fails: no answer is released then.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from rowtrail.training import fit_logistic, sample_usage
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> X = rt.track(np.random.default_rng(0).normal(size=(40, 2)), source="t", workspace=ws)
    >>> y = (np.asarray(X)[:, 0] > 0).astype(float)
    >>> with ws.training_run("lr") as run:
    ...     _ = fit_logistic(np.asarray(X), y, l2=1.0, run=run)
    >>> [(u.kind, u.run_status) for u in sample_usage(ws, source="t", rows=[3])]
    [('unknown', 'completed')]
    """
    with workspace.ledger.snapshot():  # every record of the answer from one committed state
        return _sample_usage(workspace, row_ids, subject, source, rows, run)


def _sample_usage(
    workspace: LineageWorkspace,
    row_ids: ArrayLike | None,
    subject: object,
    source: SourceKey | None,
    rows: ArrayLike | None,
    run: str | None,
) -> list[SampleUse]:
    evidence = None
    if subject is not None and row_ids is None and source is None and rows is None:
        # The records tying the rows to the subject are proven with the answer's own.
        evidence = subject_targets(workspace, subject)
        targets = np.unique(np.asarray(evidence.rows, dtype=np.int64))
    else:
        targets = np.unique(target_ids(workspace, row_ids, subject, source, rows))
    index = _Index(workspace)
    entries = index.split_entries(run)
    found: list[_Found] = []
    member: dict[tuple[str, int], _Members] = {}
    for entry in entries:
        hits = _members(index, entry, targets)
        if hits is not None:
            member[(entry.event.payload["run"], int(entry.event.payload["dataset"]))] = hits
            found.extend(hits.found("split", entry.index))
    if member:
        found.extend(_batch_uses(index, member, run))
    found.extend(_unknown(workspace, entries, targets))
    uses = _with_proofs(index, found, run, evidence)
    erasures = find_erasures(workspace, targets) if uses else []
    if not erasures:
        return uses
    by_row = {r: e for e in erasures for r in e.row_ids}  # the latest job wins
    return [
        replace(u, erased_by=by_row[u.row_id].job_id, erased_on=by_row[u.row_id].erased_on,
                erasure_proof=by_row[u.row_id].proof)
        if u.row_id in by_row else u
        for u in uses
    ]


def _with_proofs(
    index: _Index, found: list[_Found], run: str | None, evidence: SubjectRows | None = None
) -> list[SampleUse]:
    checkpoints = _checkpoints_after(index, run)
    statuses, unsealed, status_events = _statuses(index, {f.run for f in found})
    # A batch use rests on two events: the batch record and the chunk holding its ids; a
    # run's status on its start and seal events, verified with them.
    wanted = {f.ledger_index for f in found} | {f.chunk for f in found if f.chunk is not None}
    records = [] if evidence is None else evidence.records
    proofs = prove_verified(index.ws, sorted(wanted | set(status_events) | set(records)))
    record_of = {} if evidence is None else evidence.record_of
    uses = []
    for f in sorted(found, key=lambda f: (f.ledger_index, -1 if f.row_id is None else f.row_id,
                                          f.position or 0)):
        after = tuple(c for n, c in checkpoints.get(f.run, []) if f.batch is not None
                      and f.role == "train" and n > f.batch)
        reason = f.reason
        if reason is None and f.run in unsealed:
            # A run flushes its batches in chunks; a killed one never wrote its last chunk.
            reason = (f"run {f.run} is {statuses[f.run]} (never sealed): batches it drew "
                      "after its last recorded chunk are missing from this answer")
        uses.append(SampleUse(
            f.row_id, f.run, f.kind, f.role, f.epoch, f.step, f.batch, f.position, after,
            f.ledger_index, proofs[f.ledger_index],
            None if f.chunk is None else proofs[f.chunk],
            f.via, f.sample_row_id, reason, statuses[f.run],
            None if f.row_id not in record_of else proofs[record_of[f.row_id]],
        ))
    return uses


def load_checkpoint(
    workspace: LineageWorkspace, checkpoint_id: str, model: Any = None
) -> dict[str, Any]:
    """Return the state dict of a recorded checkpoint; load it into ``model`` if given.

    The ``training.checkpoint`` event is proven (and the proof verified) before its weights
    blob, re-hashed when read, is used.
    """
    from rowtrail.training._torchio import deserialize_state

    for entry in _Index(workspace).entries("training.checkpoint", None, needs=("model_digest",)):
        if entry.event.payload["checkpoint"] == checkpoint_id:
            prove_verified(workspace, [entry.index])
            blob = workspace.ledger.blobs.get(entry.event.payload["model_digest"])
            state = deserialize_state(blob)
            if model is not None:
                model.load_state_dict(state)
            return state
    raise InvalidInputError(
        f"checkpoint_id of load_checkpoint must name a recorded checkpoint; got {checkpoint_id!r}. "
        "Checkpoint ids look like '<run id>:<n>' (see TrainingRun.checkpoints)."
    )
