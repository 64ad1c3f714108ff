"""The replay plan: everything a replayable run recorded, read from the run or the ledger.

:class:`ReplayPlan` is the one input of the replay engine (:mod:`._replay`) and of the
metagradient (:mod:`rowtrail.attribution._metagradient`). :func:`plan_of_run` builds it from a
sealed :class:`~rowtrail.training.TrainingRun` still in memory; :func:`load_replay_plan` from the
ledger alone (the ``training.replay``, ``training.batch``/``chunk``/``split``,
``training.checkpoint`` and ``training.completed`` events of the run, their proofs verified
against the signed checkpoint and every blob re-hashed when read), so that a new process can
replay a finished run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, StateError
from rowtrail.hashing import decode_canonical_json
from rowtrail.training._replay_record import RecordedBatch, decode_hyper, decode_rng_blob
from rowtrail.training._torchio import deserialize_state

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace
    from rowtrail.training._run import TrainingRun

__all__ = ["ReplayPlan", "load_replay_plan", "plan_of_run"]


@dataclass
class ReplayPlan:
    """What a replayable run recorded (see :mod:`._replay_record` for each field's meaning).

    ``batches`` are the train batches in the order they were drawn, each with the optimizer
    step that applied its gradient; ``hyper_changes[s]`` lists ``(group, key, value)`` set
    before step ``s``; ``rng[b]`` is the torch RNG state (bytes) to restore before batch ``b``;
    ``step_digests[s]`` the weights digest after step ``s``; ``checkpoints`` the checkpoint
    payloads (with ``optimizer_digest``, ``replay_batches`` and ``resumable``); ``row_ids``
    the row ids of each train dataset key.
    """

    run_id: str
    initial_state: dict[str, Any]
    optimizer_class: str
    groups: list[dict[str, Any]]
    hyper_changes: dict[int, list[tuple[int, str, Any]]]
    batches: list[RecordedBatch]
    rng: dict[int, bytes]
    step_digests: list[str]
    accumulation: int
    threads: int
    torch_version: str
    final_digest: str | None
    checkpoints: list[dict[str, Any]]
    row_ids: dict[int, NDArray[np.int64]]
    blob: Callable[[str], bytes] = field(repr=False)

    @property
    def n_steps(self) -> int:
        """Number of optimizer steps the run took."""
        return len(self.step_digests)

    def step_starts(self) -> list[int]:
        """Return, per step ``s``, the index of its first batch (``len(batches)`` at the end)."""
        starts = [len(self.batches)] * (self.n_steps + 1)
        for number in range(len(self.batches) - 1, -1, -1):
            step = self.batches[number].step
            if step <= self.n_steps:
                starts[step] = number
        for step in range(self.n_steps - 1, -1, -1):
            starts[step] = min(starts[step], starts[step + 1])
        return starts

    def positions_of(self, row_ids: Any, *, caller: str) -> dict[int, NDArray[np.int64]]:
        """Map row ids to dataset positions, per train dataset key (unknown ids raise)."""
        wanted = np.unique(np.asarray(row_ids, dtype=np.int64).reshape(-1))
        found: dict[int, NDArray[np.int64]] = {}
        seen = np.zeros(wanted.size, dtype=bool)
        for key, ids in self.row_ids.items():
            hit = np.isin(ids, wanted)
            found[key] = np.flatnonzero(hit).astype(np.int64)
            seen |= np.isin(wanted, ids[hit])
        if not seen.all():
            raise InvalidInputError(
                f"row ids of {caller} must be rows of the run's training data; got "
                f"{wanted[~seen][:5].tolist()!r} (first unknown). Pass row ids the run trained on."
            )
        return found


def _hyper_changes(rows: list[list[Any]]) -> dict[int, list[tuple[int, str, Any]]]:
    out: dict[int, list[tuple[int, str, Any]]] = {}
    for step, group, key, value in rows:
        out.setdefault(int(step), []).append((int(group), str(key), decode_hyper(value)))
    return out


def plan_of_run(run: TrainingRun) -> ReplayPlan:
    """Return the plan of a sealed replayable run held in memory."""
    recorder = run._replay
    if recorder is None:
        raise StateError(
            f"run {run.name!r} was not recorded for replay; open it with "
            "ws.training_run(..., replayable=True, loss_fn=...)"
        )
    if not run.finished or run.replay_index is None:
        raise StateError(
            f"run {run.name!r} must be sealed as completed before it is replayed; leave its "
            "`with` block (or call run.finish()) first."
        )
    ledger = run.ws.ledger
    payload = ledger.entry(run.replay_index).event.payload
    sealed = ledger.entry(run.sealed_index).event.payload if run.sealed_index is not None else {}
    train_keys = {b.dataset for b in recorder.batches}
    return ReplayPlan(
        run_id=run.run_id,
        initial_state=deserialize_state(recorder.initial_blob),
        optimizer_class=recorder.optimizer_class,
        groups=recorder.groups,
        hyper_changes=_hyper_changes(recorder.hyper_changes),
        batches=list(recorder.batches),
        rng=dict(recorder.rng),
        step_digests=list(recorder.step_digests),
        accumulation=int(payload["accumulation"]),
        threads=recorder.threads,
        torch_version=recorder.torch_version,
        final_digest=(sealed.get("model") or {}).get("digest"),
        checkpoints=[c for c in run.checkpoints if "optimizer_digest" in c],
        row_ids={key: run.splits[key].row_ids for key in sorted(train_keys)},
        blob=ledger.blobs.get,
    )


def _find(ws: LineageWorkspace, kind: str, run_id: str) -> list[Any]:
    return [e for e in ws.ledger.entries_of_kind(kind) if e.event.payload.get("run") == run_id]


def load_replay_plan(workspace: LineageWorkspace, run_id: str) -> ReplayPlan:
    """Return the plan of a finished replayable run from the ledger (proofs verified).

    Raises
    ------
    InvalidInputError
        ``run_id`` names no run sealed with a replay record.
    VerificationError
        A record relied on fails its inclusion proof, or a blob no longer hashes to its digest.
    """
    from rowtrail.training._query import _Index
    from rowtrail.training._status import prove_verified

    records = _find(workspace, "training.replay", run_id)
    seals = _find(workspace, "training.completed", run_id)
    if not records or not seals:
        raise InvalidInputError(
            f"run_id of load_replay_plan must name a completed run recorded with "
            f"replayable=True; got {run_id!r}."
        )
    record, seal = records[-1], seals[-1]
    index = _Index(workspace)
    splits = index.splits(run_id)
    batches_found = index.batches(run_id)
    checkpoints = [e for e in _find(workspace, "training.checkpoint", run_id)
                   if "optimizer_digest" in e.event.payload]
    prove_verified(workspace, [record.index, seal.index, *(e.index for e, _, _ in batches_found),
                               *(e.index for e in checkpoints),
                               *(e.index for e, _ in splits.values())])
    payload = record.event.payload
    blob = workspace.ledger.blobs.get
    eval_batches = set(payload["eval_batches"])
    batches: list[RecordedBatch] = []
    for entry, _, positions in batches_found:
        batch = entry.event.payload
        key = int(batch["dataset"])
        if splits[(run_id, key)][0].event.payload["role"] != "train":
            continue
        batches.append(RecordedBatch(key, positions.astype(np.int64), int(batch["step"]),
                                     len(batches) not in eval_batches))
    if len(batches) != int(payload["n_batches"]):
        raise InvalidInputError(
            f"run {run_id!r} records {payload['n_batches']} train batches for replay but the "
            f"ledger holds {len(batches)}; the batch trail is incomplete."
        )
    keys = sorted({b.dataset for b in batches})
    return ReplayPlan(
        run_id=run_id,
        initial_state=deserialize_state(blob(payload["initial_digest"])),
        optimizer_class=payload["optimizer"]["class"],
        groups=payload["optimizer"]["groups"],
        hyper_changes=_hyper_changes(decode_canonical_json(blob(payload["hyper_blob"]))),
        batches=batches,
        rng=decode_rng_blob(blob(payload["rng_blob"])),
        step_digests=list(decode_canonical_json(blob(payload["steps_blob"]))),
        accumulation=int(payload["accumulation"]),
        threads=int(payload["threads"]),
        torch_version=str(payload["torch"]),
        final_digest=(seal.event.payload.get("model") or {}).get("digest"),
        checkpoints=[{**e.event.payload, "ledger_index": e.index} for e in checkpoints],
        row_ids={key: splits[(run_id, key)][1] for key in keys},
        blob=blob,
    )
