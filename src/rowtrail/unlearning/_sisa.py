"""Sharded (SISA) training of neural networks, and exact unlearning by retraining shards.

:func:`train_sharded` splits a dataset into ``n_shards`` disjoint shards by a keyed hash of each
sample's subject pseudonym (so one subject touches exactly one shard; samples without a subject
are sharded by row id, see :mod:`._sisa_shards`), trains one model per shard as its own recorded
training run, and records a ``sharded.trained`` ledger event. The returned
:class:`ShardedModel` predicts with the **mean of the shard models' probabilities**.

:meth:`ShardedModel.unlearn` removes samples by retraining only the shards that hold them, from
their recorded seeds. Because a shard's training is a pure function of its retained samples (in
ascending dataset position), its seed, batch size and thread count, the result is bit-identical
to training that shard from scratch without the removed samples: exact unlearning, not an
approximation (Bourtoule et al. 2021, "Machine Unlearning", IEEE S&P, §IV). With ``slices=R``
each shard trains in R incremental stages whose weights are checkpointed, and retraining
resumes from the checkpoint before the first stage that used a removed sample. Each step
records a ``sharded.unlearned`` event. :meth:`ShardedModel.full_retrain` retrains every shard
(exact), or continues every shard from its current weights (``warm_start=True``: labelled
approximate, since the starting weights still carry the removed rows' influence).

Determinism: CPU only (the models are used where ``make_model`` puts them; retraining on a GPU
is not claimed bit-identical); ``train_shard`` must draw randomness only from the torch global
RNG or the loader, and an op with no deterministic kernel raises under
``torch.use_deterministic_algorithms(True)``.

Events (``sharded`` is the id of the sharded model, kept across unlearning steps):

``sharded.trained``    name, n_shards, n_slices, seed, aggregation rule, batch size, thread
                       count, the assignment blob (row id, shard and slice of every sample)
                       and per shard its seed, run id, sample count, final model digest and
                       slice-stage checkpoint digests; the sharded model's digest
``sharded.unlearned``  the event it follows, method, exact flag, affected and retrained shards,
                       the stage each retraining resumed from, the removed row ids (blob), the
                       new assignment blob and shard table, model digests before and after
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail._types import IdArray
from rowtrail.errors import InvalidInputError
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.unlearning._sisa_shards import (
    ShardTraining,
    TrainedShard,
    assign_shards,
    assign_slices,
    check_counts,
    check_known_rows,
    default_to_proba,
    put_assignment,
    run_params,
    shard_seed,
    subjects_of,
    train_shard_run,
)

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace
    from rowtrail.training import TrainingRun

__all__ = [
    "AGGREGATION",
    "METHOD_FULL_RETRAIN",
    "METHOD_SHARD_RETRAIN",
    "METHOD_WARM_START",
    "SHARDED_EVENT_KINDS",
    "ShardUnlearning",
    "ShardedModel",
    "train_sharded",
]

AGGREGATION = "mean-probability"
SHARDED_EVENT_KINDS = ("sharded.trained", "sharded.unlearned")
METHOD_SHARD_RETRAIN = "sisa-shard-retrain (exact)"
METHOD_FULL_RETRAIN = "sisa-full-retrain (exact)"
METHOD_WARM_START = "warm-start-retrain (approximate)"


@dataclass(frozen=True)
class ShardUnlearning:
    """The outcome of removing rows from a :class:`ShardedModel`.

    Attributes
    ----------
    method : str
        ``"sisa-shard-retrain (exact)"``, ``"sisa-full-retrain (exact)"`` or
        ``"warm-start-retrain (approximate)"``.
    exact : bool
        Whether the result equals training from scratch without the removed rows.
    affected_shards : tuple of int
        Shards that held a removed row (and were retrained).
    retrained_shards : tuple of int
        Shards actually retrained (all of them for the full methods).
    resumed_from_stage : dict of int to int
        For each retrained shard, its first slice stage retrained (0: from scratch; with
        slices, shard retraining resumes from the recorded checkpoint before that stage).
    removed_row_ids : ndarray of int64
        The removed row ids, ascending, without repeats.
    n_removed_samples : int
        Training samples removed (a row id may name several samples).
    seconds : float
        Wall-clock time of the retraining and its records.
    model_digest_before, model_digest_after : str
        Digests of the sharded model before and after.
    ledger_index : int
        Index of the ``sharded.unlearned`` event.
    model : ShardedModel
        The model after removal (the one unlearned from is left unchanged).
    """

    method: str
    exact: bool
    affected_shards: tuple[int, ...]
    retrained_shards: tuple[int, ...]
    resumed_from_stage: dict[int, int]
    removed_row_ids: IdArray
    n_removed_samples: int
    seconds: float
    model_digest_before: str
    model_digest_after: str
    ledger_index: int
    model: ShardedModel


class ShardedModel:
    """An ensemble of shard models trained by :func:`train_sharded`; predicts by mean probability.

    Parameters
    ----------
    workspace : Workspace
        Where the shards' runs and the sharded events are recorded.
    spec : ShardTraining
        How every shard is trained (model factory, training loop, dataset, batch size, threads).
    shards : sequence of TrainedShard
        The trained shards, in shard order.
    sharded_id : str
        Id of the sharded model (kept across unlearning steps).
    seed : int
        The sharded run's seed (keys the assignment, derives the shard seeds).
    ledger_index : int
        Index of the event that recorded this state (``sharded.trained`` or ``.unlearned``).
    assignment_digest : str
        Digest of the assignment blob (row id and shard of every sample).

    Attributes
    ----------
    digest : str
        ``sha256`` of the canonical JSON of the aggregation rule and the shard model digests.
    row_ids : ndarray of int64
        Row ids of every sample the model is trained on (shard by shard).
    """

    def __init__(
        self,
        workspace: LineageWorkspace,
        spec: ShardTraining,
        shards: Sequence[TrainedShard],
        *,
        sharded_id: str,
        seed: int,
        ledger_index: int,
        assignment_digest: str,
    ) -> None:
        self.workspace = workspace
        self.spec = spec
        self.shards = tuple(shards)
        self.sharded_id = sharded_id
        self.seed = seed
        self.ledger_index = ledger_index
        self.assignment_digest = assignment_digest
        self.digest = sharded_digest([s.model_digest for s in self.shards])
        self.row_ids: IdArray = np.concatenate([s.row_ids for s in self.shards])

    @property
    def n_shards(self) -> int:
        """Number of shards."""
        return len(self.shards)

    @property
    def name(self) -> str:
        """Name of the sharded model."""
        return self.spec.name

    def shard_proba(self, x: Any) -> NDArray[np.float32]:
        """Return every shard model's probabilities, stacked: shape ``(n_shards, n, ...)``."""
        torch = require("torch", extra="torch", feature="ShardedModel.predict_proba()")
        inputs = torch.as_tensor(x)
        with torch.no_grad():
            out = [self.spec.to_proba(s.model(inputs)) for s in self.shards]
        stacked: NDArray[np.float32] = torch.stack(out).cpu().numpy()
        return stacked

    def predict_proba(self, x: Any) -> NDArray[np.float32]:
        """Return the mean over shards of the shard models' probabilities for inputs ``x``.

        With the default ``to_proba`` a single-logit model gives P(y=1) of shape ``(n,)`` and a
        multi-output model class probabilities of shape ``(n, n_classes)``.
        """
        mean: NDArray[np.float32] = self.shard_proba(x).mean(axis=0)
        return mean

    def shard_of_rows(self, row_ids: Any) -> dict[int, tuple[int, ...]]:
        """Return, for each given row id, the shards whose samples have it (empty: none)."""
        ids = np.asarray(row_ids, dtype=np.int64).reshape(-1)
        return {
            int(r): tuple(s.index for s in self.shards if bool(np.isin(r, s.row_ids)))
            for r in ids.tolist()
        }

    # ------------------------------------------------------------------ unlearning
    def unlearn(self, row_ids: Any) -> ShardUnlearning:
        """Remove the samples with ``row_ids`` by retraining only the shards that hold them.

        Exact: each affected shard is trained from scratch on its retained samples with its
        recorded seed, which is the computation a from-scratch training without those rows
        performs (see :mod:`._sisa_shards`). Unaffected shards keep their models.

        Parameters
        ----------
        row_ids : array_like of int64
            Row ids to remove (e.g. ``rows_of_subject(ws, pseudonym)`` or the training samples
            an erasure request resolved to). Every one must be a training sample of this model.

        Returns
        -------
        ShardUnlearning
            Labelled ``"sisa-shard-retrain (exact)"``; ``.model`` is the new model.

        Raises
        ------
        UnknownSourceError
            A row id names no registered source row.
        InvalidInputError
            ``row_ids`` is empty or not integers, or a row is not among the training samples
            (never trained on, or already removed). Nothing is retrained or recorded then.
        """
        forget = self._check_forget(row_ids, "ShardedModel.unlearn")
        affected = tuple(s.index for s in self.shards if np.isin(s.row_ids, forget).any())
        return self._retrain(forget, affected, affected, METHOD_SHARD_RETRAIN, warm=False)

    def full_retrain(self, row_ids: Any, *, warm_start: bool = False) -> ShardUnlearning:
        """Remove ``row_ids`` by retraining every shard (the cost baseline of :meth:`unlearn`).

        Parameters
        ----------
        row_ids : array_like of int64
            Row ids to remove (checked as in :meth:`unlearn`).
        warm_start : bool
            False (default): every shard from its recorded seed and initialisation, labelled
            ``"sisa-full-retrain (exact)"``. True: every shard continues from its current
            weights on its retained samples, labelled ``"warm-start-retrain (approximate)"``:
            the removed rows' influence on the starting weights is not removed exactly.
        """
        forget = self._check_forget(row_ids, "ShardedModel.full_retrain")
        affected = tuple(s.index for s in self.shards if np.isin(s.row_ids, forget).any())
        every = tuple(s.index for s in self.shards)
        method = METHOD_WARM_START if warm_start else METHOD_FULL_RETRAIN
        return self._retrain(forget, affected, every, method, warm=warm_start)

    def _check_forget(self, row_ids: Any, caller: str) -> IdArray:
        ids = np.asarray(row_ids)
        if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
            raise InvalidInputError(
                f"row_ids of {caller} must be a non-empty 1-d array of integer row ids; got "
                f"shape {ids.shape} dtype {ids.dtype}. Pass e.g. rows_of_subject(ws, pseudonym)."
            )
        forget = np.unique(ids.astype(np.int64))
        check_known_rows(self.workspace, forget, caller)
        missing = forget[~np.isin(forget, self.row_ids)]
        if missing.size:
            raise InvalidInputError(
                f"row_ids of {caller} must be training samples of sharded model {self.name!r} "
                f"({self.row_ids.size} samples); got {missing.size} that are not, e.g. "
                f"{missing[:5].tolist()!r}. They were never trained on or were already removed."
            )
        for shard in self.shards:
            if np.isin(shard.row_ids, forget).all():
                raise InvalidInputError(
                    f"row_ids of {caller} must leave every shard at least one sample; got all "
                    f"{shard.row_ids.size} samples of shard {shard.index}. Retrain the sharded "
                    "model from scratch with fewer shards."
                )
        return forget

    def _retrain(
        self,
        forget: IdArray,
        affected: tuple[int, ...],
        retrain: tuple[int, ...],
        method: str,
        *,
        warm: bool,
    ) -> ShardUnlearning:
        started = time.perf_counter()
        shards = list(self.shards)
        n_removed = 0
        resumed: dict[int, int] = {}
        for k in retrain:
            old = shards[k]
            keep = ~np.isin(old.row_ids, forget)
            n_removed += int((~keep).sum())
            # Only the exact shard retraining resumes after the last stage the rows missed.
            sliced = method == METHOD_SHARD_RETRAIN and self.spec.n_slices > 1
            start = int(old.slices[~keep].min()) if sliced else 0
            resumed[k] = start
            params = run_params(self.sharded_id, self.spec, k, old.seed, method)
            params["sisa"]["resumed_from_stage"] = start
            if start:
                params["sisa"]["resumed_from_digest"] = old.stage_digests[start - 1]
            shards[k] = train_shard_run(
                self.workspace, self.spec, k, old.seed, old.positions[keep],
                row_ids=old.row_ids[keep], slices=old.slices[keep], params=params,
                resume=old, start=start,
                initial_state=old.model.state_dict() if warm else None,
            )
        after = ShardedModel(
            self.workspace, self.spec, shards, sharded_id=self.sharded_id, seed=self.seed,
            ledger_index=-1, assignment_digest="",
        )
        removed_digest = self.workspace.ledger.put_blob(forget.astype("<i8").tobytes())
        assignment = put_assignment(self.workspace, shards)
        payload = {
            **_state_payload(after, assignment),
            "follows": self.ledger_index,
            "method": method,
            "exact": method != METHOD_WARM_START,
            "affected_shards": list(affected),
            "retrained_shards": list(retrain),
            "resumed_from_stage": {str(k): v for k, v in resumed.items()},
            "removed": {"n_rows": int(forget.size), "n_samples": n_removed,
                        "row_ids_blob": removed_digest},
            "model_digest_before": self.digest,
        }
        index = self.workspace.ledger.append(
            "sharded.unlearned", payload, blobs=sorted({assignment, removed_digest})
        )
        self.workspace.ledger.checkpoint()
        after.ledger_index, after.assignment_digest = index, assignment
        return ShardUnlearning(
            method=method,
            exact=method != METHOD_WARM_START,
            affected_shards=affected,
            retrained_shards=retrain,
            resumed_from_stage=resumed,
            removed_row_ids=forget,
            n_removed_samples=n_removed,
            seconds=time.perf_counter() - started,
            model_digest_before=self.digest,
            model_digest_after=after.digest,
            ledger_index=index,
            model=after,
        )


def sharded_digest(shard_digests: Sequence[str]) -> str:
    """Return the digest of a sharded model: its aggregation rule and shard model digests."""
    return sha256_digest(canonical_json({"aggregation": AGGREGATION,
                                         "shards": list(shard_digests)}))


def _state_payload(model: ShardedModel, assignment: str) -> dict[str, Any]:
    spec = model.spec
    return {
        "sharded": model.sharded_id,
        "name": spec.name,
        "n_shards": model.n_shards,
        "n_slices": spec.n_slices,
        "seed": model.seed,
        "aggregation": AGGREGATION,
        "batch_size": spec.batch_size,
        "torch_threads": spec.n_threads,
        "keying": "hmac-sha256(seed key, subject pseudonym or 'row:<id>') mod n_shards",
        "assignment_blob": assignment,
        "n_samples": int(model.row_ids.size),
        "shards": [
            {"shard": s.index, "seed": s.seed, "run": s.run_id, "n_samples": int(s.row_ids.size),
             "model_digest": s.model_digest, "stage_digests": list(s.stage_digests)}
            for s in model.shards
        ],
        "model_digest": model.digest,
    }


def train_sharded(
    workspace: LineageWorkspace,
    name: str,
    *,
    make_model: Callable[[], Any],
    train_shard: Callable[[Any, Any, TrainingRun], Any],
    dataset: Any,
    n_shards: int,
    seed: int = 0,
    row_ids: Any = None,
    subjects: Sequence[str | None] | None = None,
    batch_size: int = 64,
    slices: int = 1,
    to_proba: Callable[[Any], Any] | None = None,
) -> ShardedModel:
    """Train ``n_shards`` models on disjoint shards of ``dataset``, each as a recorded run.

    Parameters
    ----------
    workspace : Workspace
        Where the runs and the ``sharded.trained`` event are recorded.
    name : str
        Name of the sharded model; shard ``k``'s run is ``"<name>/shard-<k>"``.
    make_model : callable
        ``make_model() -> torch.nn.Module``; called with the torch RNG seeded by the shard seed.
    train_shard : callable
        ``train_shard(model, loader, run)``: an ordinary PyTorch loop that creates its
        optimizer and iterates ``run.track(loader)`` for its epochs. It must be deterministic
        given the model, the loader and the torch RNG (no other randomness).
    dataset : torch.utils.data.Dataset
        Map-style dataset; every sample's row id comes from ``row_ids`` or the dataset.
    n_shards : int
        Number of shards (1 gives an ordinary, unsharded model trained the same way).
    seed : int
        Seeds the shard assignment and every shard's seed.
    row_ids : array_like of int64, optional
        One row id per sample; default: found from the dataset as ``TrainingRun.track`` does.
    subjects : sequence of str or None, optional
        The subject pseudonym of every sample; default: looked up for each row id in the
        workspace's subject rows. Samples without one are sharded by row id.
    batch_size : int
        Batch size of every shard's loader (shuffled by a generator seeded per stage).
    slices : int
        Slices per shard (SISA's slicing): stage ``s`` trains on slices ``0..s`` (calling
        ``train_shard`` once per stage) and its weights are checkpointed, so unlearning
        resumes from the checkpoint before the first stage that used a removed sample.
        1 (default): no slicing, ``train_shard`` is called once per shard.
    to_proba : callable, optional
        Maps a shard model's output to probabilities (default: sigmoid of one logit, softmax
        of several); :meth:`ShardedModel.predict_proba` averages them.

    Returns
    -------
    ShardedModel

    Examples
    --------
    >>> import tempfile, numpy as np, torch, rowtrail as rt
    >>> from rowtrail.lineage import register_source, rows_of_subject
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> x = torch.randn(40, 3, generator=torch.Generator().manual_seed(0))
    >>> y = (x[:, 0] > 0).float()
    >>> people = register_source(ws, name="people.csv", digest="sha256:" + "0" * 64,
    ...     format="csv", schema={"a": "float"}, n_rows=40, subject_column="id",
    ...     subject_ids=[f"p{i % 20}" for i in range(40)])
    >>> def train_shard(model, loader, run):
    ...     opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ...     for _ in range(2):
    ...         for xb, yb in run.track(loader):
    ...             loss = torch.nn.functional.binary_cross_entropy_with_logits(
    ...                 model(xb).squeeze(1), yb)
    ...             opt.zero_grad(); loss.backward(); opt.step()
    >>> sharded = train_sharded(ws, "mlp", make_model=lambda: torch.nn.Linear(3, 1),
    ...     train_shard=train_shard, dataset=torch.utils.data.TensorDataset(x, y),
    ...     row_ids=people.row_ids(), n_shards=2, seed=0, batch_size=8)
    >>> sharded.predict_proba(x[:2]).shape
    (2,)
    >>> # Pseudonyms are keyed per workspace, so shards differ run to run: erase a subject
    >>> # whose shard holds others too (emptying a shard is refused).
    >>> where = sharded.shard_of_rows(people.row_ids())  # row id -> its shards
    >>> sizes = np.bincount([shards[0] for shards in where.values()], minlength=2)
    >>> who = next(f"p{i}" for i in range(20)
    ...            if sizes[where[int(rows_of_subject(ws, f"p{i}")[0])][0]] > 2)
    >>> done = sharded.unlearn(rows_of_subject(ws, who))
    >>> done.method, len(done.affected_shards)
    ('sisa-shard-retrain (exact)', 1)
    >>> ws.close()
    """
    from rowtrail.training._rows import dataset_row_ids

    torch = require("torch", extra="torch", feature="train_sharded()")
    check_counts(n_shards, batch_size, seed, slices)
    ids = dataset_row_ids(workspace, dataset, row_ids=row_ids, name=name, caller="train_sharded")
    labels = subjects_of(workspace, ids, subjects)
    which = assign_shards(ids, labels, n_shards=n_shards, seed=seed)
    stage_of = assign_slices(ids, labels, n_slices=slices, seed=seed)
    spec = ShardTraining(name, make_model, train_shard, dataset, batch_size,
                         torch.get_num_threads(), to_proba or default_to_proba, slices)
    sharded_id = uuid.uuid4().hex[:16]
    shards = []
    for k in range(n_shards):
        positions = np.flatnonzero(which == k).astype(np.int64)
        k_seed = shard_seed(seed, k)
        params = run_params(sharded_id, spec, k, k_seed, None)
        shards.append(train_shard_run(workspace, spec, k, k_seed, positions,
                                      row_ids=ids[positions], slices=stage_of[positions],
                                      params=params))
    model = ShardedModel(workspace, spec, shards, sharded_id=sharded_id, seed=seed,
                         ledger_index=-1, assignment_digest="")
    assignment = put_assignment(workspace, shards)
    index = workspace.ledger.append(
        "sharded.trained", _state_payload(model, assignment), blobs=[assignment]
    )
    workspace.ledger.checkpoint()
    model.ledger_index, model.assignment_digest = index, assignment
    return model
