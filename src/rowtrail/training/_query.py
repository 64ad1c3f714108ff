"""Queries over recorded runs: the batches of a run, and "when was sample / row / subject S used?".

Answers are built from ledger events only (``training.split``, ``training.batch``,
``training.fit``, ``training.checkpoint``) and their blobs; every answer carries the inclusion
proof of the event it rests on, verified against the current tree head before it is released
(:meth:`Ledger.prove_many`), and blobs are re-hashed when read.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError
from rowtrail.ids import row_id as pack_row_id
from rowtrail.ledger import InclusionProof, LedgerEntry
from rowtrail.lineage import get_source, rows_of_subject
from rowtrail.training._codec import decode_ids_blob

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
    """One use of a row in a run: a batch it was drawn in, a split it belongs to, or a fit.

    ``proof`` proves the event at ``ledger_index``; for a batch, ``chunk_proof`` proves the
    ``training.chunk`` event whose blob holds the batch's ids. Both were verified against the
    current tree head before the answer was returned.
    """

    row_id: int
    run_id: str
    kind: str  # "split", "batch" or "fit"
    role: str
    epoch: int | None
    step: int | None
    batch: int | None
    position_in_batch: int | None
    checkpoint_ids: tuple[str, ...]
    ledger_index: int
    proof: InclusionProof
    chunk_proof: InclusionProof | None = None


class _Index:
    """Reads a run's events once: splits (row ids by dataset key) and positions blobs."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self._blobs: dict[str, NDArray[np.int64]] = {}

    def entries(
        self, kind: str, run: str | None, *, needs: tuple[str, ...] = ()
    ) -> list[LedgerEntry]:
        """Return events of ``kind`` (of one run) whose payload has the ``needs`` fields.

        Other writers may use the same kinds with other payloads (the demo's synthetic
        stream does); those are not records of a training run and are skipped.
        """
        found = self.ws.ledger.entries(self.ws.ledger.indices(kind=kind))
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

    def splits(self, run: str | None) -> dict[tuple[str, int], tuple[LedgerEntry, IdArray]]:
        result = {}
        for entry in self.entries("training.split", run, needs=("dataset", "id_base", "role")):
            payload = entry.event.payload
            ids = self.ids(entry.event.blobs[0], int(payload["id_base"]))
            result[(payload["run"], int(payload["dataset"]))] = (entry, ids)
        return result


def read_batches(workspace: Any, run_id: str, *, role: str | None = "train") -> list[BatchRecord]:
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


def _target_ids(ws: Any, row_ids: ArrayLike | None, subject: str | None,
                source: str | int | None, rows: ArrayLike | None) -> NDArray[np.int64]:
    given = sum(x is not None for x in (row_ids, subject, source))
    if given != 1 or (rows is not None and source is None):
        raise InvalidInputError(
            "sample_usage needs exactly one of row_ids=, subject= or source= (with rows=); "
            f"got row_ids={row_ids!r}, subject={subject!r}, source={source!r}, rows={rows!r}"
        )
    if subject is not None:
        return rows_of_subject(ws, subject)
    if source is not None:
        info = get_source(ws, source)
        numbers = np.arange(info.n_rows) if rows is None else np.asarray(rows, dtype=np.int64)
        return np.asarray([pack_row_id(info.index, int(n)) for n in numbers], dtype=np.int64)
    return np.atleast_1d(np.asarray(row_ids, dtype=np.int64))


def _checkpoints_after(index: _Index, run: str | None) -> dict[str, list[tuple[int, str]]]:
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for entry in index.entries("training.checkpoint", run, needs=("train_batches", "checkpoint")):
        payload = entry.event.payload
        found[payload["run"]].append((int(payload["train_batches"]), payload["checkpoint"]))
    return found


def sample_usage(
    workspace: Any,
    *,
    row_ids: ArrayLike | None = None,
    subject: str | None = None,
    source: str | int | None = None,
    rows: ArrayLike | None = None,
    run: str | None = None,
) -> list[SampleUse]:
    """Return when rows were used: splits, batches (epoch, step, role) and convex fits.

    Parameters
    ----------
    workspace : Workspace
        Where the runs were recorded.
    row_ids : array_like of int64, optional
        The rows to look for. Give exactly one of ``row_ids``, ``subject`` or ``source``.
    subject : str, optional
        A subject pseudonym (``ps:...``) or raw identifier: all rows recorded for it.
    source : str or int, optional
        A source name or index: its rows ``rows`` (row numbers), or all of its rows.
    rows : array_like of int, optional
        Row numbers within ``source``.
    run : str, optional
        Restrict to one run id.

    Returns
    -------
    list of SampleUse
        Ordered by ledger index; each with the verified inclusion proof of its event and, for
        training batches, the ids of the checkpoints whose weights saw that batch.
    """
    targets = np.unique(_target_ids(workspace, row_ids, subject, source, rows))
    index = _Index(workspace)
    found: list[tuple[int, int, dict[str, Any]]] = []
    member: dict[tuple[str, int], tuple[IdArray, IdArray, str]] = {}
    for key, (entry, ids) in index.splits(run).items():
        hit = np.flatnonzero(np.isin(ids, targets))
        if hit.size:
            member[key] = (hit, ids, entry.event.payload["role"])
            for position in hit.tolist():
                found.append((entry.index, int(ids[position]), {
                    "kind": "split", "run": key[0], "role": entry.event.payload["role"],
                }))
    if member:
        found.extend(_batch_uses(index, member, run))
    checkpoints = _checkpoints_after(index, run)
    # A batch use rests on two events: the batch record and the chunk holding its ids.
    wanted = sorted({f[0] for f in found} | {f[2]["chunk"] for f in found if "chunk" in f[2]})
    proofs = dict(zip(wanted, workspace.ledger.prove_many(wanted), strict=True))
    for proof in proofs.values():
        proof.verify()
    uses = []
    for ledger_index, rid, info in sorted(found, key=lambda f: (f[0], f[1])):
        proof = proofs[ledger_index]
        chunk = info.get("chunk")
        batch = info.get("batch")
        after = tuple(c for n, c in checkpoints.get(info["run"], []) if batch is not None
                      and info["role"] == "train" and n > batch)
        uses.append(SampleUse(rid, info["run"], info["kind"], info["role"],
                              info.get("epoch"), info.get("step"), batch,
                              info.get("position"), after, ledger_index, proof,
                              None if chunk is None else proofs[chunk]))
    return uses


def _batch_uses(index: _Index, member: dict[tuple[str, int], tuple[IdArray, IdArray, str]],
                run: str | None) -> list[tuple[int, int, dict[str, Any]]]:
    found = []
    for entry, run_id, positions in index.batches(run):
        payload = entry.event.payload
        key = (run_id, int(payload["dataset"]))
        if key not in member:
            continue
        hit_positions, ids, role = member[key]
        for slot in np.flatnonzero(np.isin(positions, hit_positions)).tolist():
            found.append((entry.index, int(ids[positions[slot]]), {
                "kind": "batch", "run": run_id, "role": role, "epoch": payload["epoch"],
                "chunk": int(payload["chunk"]),
                "step": payload["step"], "batch": payload["batch"], "position": slot,
            }))
    for entry in index.entries("training.fit", run, needs=("dataset",)):
        payload = entry.event.payload
        if (payload["run"], int(payload["dataset"])) in member:
            hit, ids, _ = member[(payload["run"], int(payload["dataset"]))]
            found.extend((entry.index, int(ids[h]),
                          {"kind": "fit", "run": payload["run"], "role": "train"})
                         for h in hit.tolist())
    return found


def load_checkpoint(workspace: Any, checkpoint_id: str, model: Any = None) -> dict[str, Any]:
    """Return the state dict of a recorded checkpoint; load it into ``model`` if given."""
    from rowtrail.training._torchio import deserialize_state

    for entry in _Index(workspace).entries("training.checkpoint", None, needs=("model_digest",)):
        if entry.event.payload["checkpoint"] == checkpoint_id:
            blob = workspace.ledger.blobs.get(entry.event.payload["model_digest"])
            state = deserialize_state(blob)
            if model is not None:
                model.load_state_dict(state)
            return state
    raise InvalidInputError(
        f"checkpoint_id of load_checkpoint must name a recorded checkpoint; got {checkpoint_id!r}. "
        "Checkpoint ids look like '<run id>:<n>' (see TrainingRun.checkpoints)."
    )
