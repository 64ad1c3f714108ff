"""A sharded model from its ledger record, and the check that a sharded model is what was recorded.

:func:`load_sharded` rebuilds a :class:`~rowtrail.unlearning._sisa.ShardedModel` in a later
process (an erasure job, the CLI) from a ``sharded.trained`` or ``sharded.unlearned`` event: the
event is proven against the signed checkpoint, the assignment and weights blobs are re-hashed
when read, and the dataset given must hold exactly the recorded samples of every shard. The
training code (``make_model``, ``train_shard``) cannot be recorded; the caller passes it again,
and unlearning the loaded model is exact when it is the code that trained it.

:func:`verify_sharded` raises :class:`~rowtrail.errors.VerificationError` unless a model's
weights, shard table and digest are those its event records, and every shard's run was sealed
as completed with those weights.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, VerificationError
from rowtrail.unlearning._sisa import SHARDED_EVENT_KINDS, ShardedModel
from rowtrail.unlearning._sisa_shards import ShardTraining, TrainedShard, default_to_proba

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace
    from rowtrail.training import TrainingRun

__all__ = ["load_sharded", "verify_sharded"]


def _event_payload(workspace: LineageWorkspace, ledger_index: object, caller: str) -> Any:
    if isinstance(ledger_index, bool) or not isinstance(ledger_index, int) or not (
        0 <= ledger_index < workspace.ledger.size
    ):
        raise InvalidInputError(
            f"ledger_index of {caller} must be the index of a sharded.* event in "
            f"[0, {workspace.ledger.size}); got {ledger_index!r}"
        )
    (entry,) = workspace.ledger.proven([ledger_index])
    if entry.event.kind not in SHARDED_EVENT_KINDS:
        raise InvalidInputError(
            f"ledger_index of {caller} must name one of {list(SHARDED_EVENT_KINDS)}; got "
            f"entry {ledger_index} of kind {entry.event.kind!r}"
        )
    return entry.event.payload


def _load_state(workspace: LineageWorkspace, digest: str) -> Any:
    from rowtrail.training._torchio import deserialize_state

    return deserialize_state(workspace.ledger.blobs.get(digest))


def load_sharded(
    workspace: LineageWorkspace,
    ledger_index: int,
    *,
    make_model: Callable[[], Any],
    train_shard: Callable[[Any, Any, TrainingRun], Any],
    dataset: Any,
    row_ids: Any = None,
    to_proba: Callable[[Any], Any] | None = None,
) -> ShardedModel:
    """Rebuild the sharded model recorded by the ``sharded.*`` event at ``ledger_index``.

    Parameters
    ----------
    workspace : Workspace
        The workspace whose ledger holds the event, runs and weights.
    ledger_index : int
        Index of a ``sharded.trained`` or ``sharded.unlearned`` event (``ShardedModel``'s
        ``ledger_index``; the latest one of a model is its current state).
    make_model, train_shard, dataset, row_ids, to_proba
        As given to :func:`~rowtrail.unlearning._sisa.train_sharded`.

    Raises
    ------
    InvalidInputError
        The index names no sharded event, or the dataset does not hold every shard's
        recorded samples.
    VerificationError
        The event's proof, or a blob's digest, does not verify.
    """
    from rowtrail.training._rows import dataset_row_ids
    from rowtrail.training._torchio import deserialize_state

    torch = require("torch", extra="torch", feature="load_sharded()")
    payload = _event_payload(workspace, ledger_index, "load_sharded")
    raw = np.frombuffer(workspace.ledger.blobs.get(payload["assignment_blob"]), dtype="<i8")
    ids, which, stage = raw.reshape(3, -1).astype(np.int64)
    have = dataset_row_ids(workspace, dataset, row_ids=row_ids, name=payload["name"],
                           caller="load_sharded")
    spec = ShardTraining(payload["name"], make_model, train_shard, dataset,
                         int(payload["batch_size"]), int(payload["torch_threads"]),
                         to_proba or default_to_proba, int(payload["n_slices"]))
    shards = []
    for record in payload["shards"]:
        k = int(record["shard"])
        mine = ids[which == k]
        positions = np.flatnonzero(np.isin(have, mine)).astype(np.int64)
        if not np.array_equal(have[positions], mine):
            raise InvalidInputError(
                f"dataset of load_sharded must hold the {mine.size} recorded samples of shard "
                f"{k} of {payload['name']!r} in their recorded order; it does not. Pass the "
                "dataset (and row_ids) the sharded model was trained on."
            )
        with torch.random.fork_rng(devices=[]):  # the initial weights are overwritten
            model = make_model()
        model.load_state_dict(deserialize_state(workspace.ledger.blobs.get(
            record["model_digest"])))
        model.eval()
        digests = tuple(record.get("stage_digests", []))
        states = tuple(_load_state(workspace, d) for d in digests)
        shards.append(TrainedShard(k, int(record["seed"]), positions, mine, stage[which == k],
                                   record["run"], record["model_digest"], model, states,
                                   digests))
    loaded = ShardedModel(workspace, spec, shards, sharded_id=payload["sharded"],
                          seed=int(payload["seed"]), ledger_index=ledger_index,
                          assignment_digest=payload["assignment_blob"])
    verify_sharded(workspace, loaded)
    return loaded


def verify_sharded(workspace: LineageWorkspace, model: ShardedModel) -> None:
    """Raise :class:`VerificationError` unless ``model`` is exactly what its event records.

    Checks, against the proven event at ``model.ledger_index``: the sharded digest, each
    shard's run id and weights digest (recomputed from the weights in memory), the assignment
    digest, and that each shard's run was sealed ``completed`` with those weights.
    """
    from rowtrail.training import model_digest

    payload = _event_payload(workspace, model.ledger_index, "verify_sharded")
    _same(payload["model_digest"], model.digest, "the sharded model digest")
    _same(payload["assignment_blob"], model.assignment_digest, "the assignment digest")
    if len(payload["shards"]) != model.n_shards:
        raise VerificationError(
            f"event {model.ledger_index} records {len(payload['shards'])} shards; the model "
            f"has {model.n_shards}"
        )
    seals = {
        entry.event.payload.get("run"): entry.event.payload
        for entry in workspace.ledger.entries_of_kind("training.completed")
    }
    for record, shard in zip(payload["shards"], model.shards, strict=True):
        what = f"shard {shard.index}"
        _same(record["model_digest"], model_digest(shard.model), f"{what}'s weights")
        _same(record["run"], shard.run_id, f"{what}'s run id")
        seal = seals.get(shard.run_id)
        if seal is None or seal.get("status") != "completed":
            raise VerificationError(
                f"{what}'s run {shard.run_id!r} has no completed seal in the ledger"
            )
        _same(seal["model"]["digest"], record["model_digest"], f"{what}'s sealed weights")


def _same(recorded: str, actual: str, what: str) -> None:
    if not hmac.compare_digest(str(recorded), str(actual)):
        raise VerificationError(f"{what} is {actual!r}; the ledger records {recorded!r}")
