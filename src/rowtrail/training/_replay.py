"""Replay of a recorded training run: bit-identical re-execution, data weights, unlearning.

**The contract** a loop keeps for ``ws.training_run(..., replayable=True, loss_fn=...)`` to
replay bit for bit on CPU (checked while training where it can be; a replay that still
diverges raises :class:`~rowtrail.errors.ReplayMismatchError` naming the first step):

1. Train batches come from ``run.track(loader)`` of a map-style dataset with automatic
   batching and ``num_workers=0``; a batch is ``(inputs, targets, ...)`` and the model is
   called as ``model(inputs)``.
2. Each train batch backpropagates ``loss_fn(model(inputs), targets).mean()``, divided by
   ``k`` when gradients are accumulated over ``k`` batches per ``optimizer.step()`` (``k`` is
   taken from the first step); the optimizer is a fresh ``torch.optim`` optimizer over the
   model's parameters; ``optimizer.step()`` follows the batches whose gradients it applies.
3. Nothing else changes the weights, buffers or gradients: no manual edits, no gradient
   clipping, no forward pass in train mode on untracked data; randomness comes from the global
   torch generator (dropout, ``__getitem__`` augmentation), never from a source replay cannot
   restore (NumPy or Python ``random`` in the loop body).
4. Replay runs with the recorded thread count (it sets it) and the same torch build.

The recorded batch order makes the sampler's own randomness moot: replay never asks the
sampler, it fetches the recorded positions (``dataset.__getitems__`` or ``dataset[i]``, then
the loader's ``collate_fn``), restoring the torch RNG state recorded at the draw.

**Data weights.** ``weights`` gives each training sample a weight ``w_i >= 0`` (default 1).
A batch then backpropagates the *weighted mean* ``sum_i w_i l_i / sum_i w_i`` over its samples
with ``w_i != 0`` (divided by ``k`` as above): samples of weight 0 are *removed from the batch*
(so they are absent from BatchNorm's batch statistics and draw no dropout mask), a batch left
empty is skipped, and a step whose batches are all empty is skipped (its schedule entry is
still consumed). Hence ``w = 1`` everywhere is the original loop bit for bit (the mean is
computed as ``.mean()``), and ``w_i = 0`` for ``i`` in a set ``S`` is exactly the loop trained
without ``S``, each recorded batch averaging over the samples it has left, with the same
initial weights, batch order (minus ``S``), schedule and RNG states. The weighted mean is a
smooth function of ``w`` whose derivative at ``w = 1`` includes the renormalisation of the
other samples of each batch, so the metagradient's first-order prediction of dropping ``S``
is ``-sum_{i in S} d out / d w_i``.

**Unlearning by replay** (:func:`unlearn_by_replay`): replay with the forget set's weights 0
from the last checkpoint taken before its first use (checkpoints of a replayable run record the
optimizer state); cost is proportional to the steps after that checkpoint.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, ReplayMismatchError, StateError
from rowtrail.training._replay_plan import ReplayPlan, load_replay_plan
from rowtrail.training._replay_record import (
    RecordedBatch,
    decode_hyper,
    decode_optimizer_state,
    state_digest,
)
from rowtrail.training._torchio import deserialize_state

if TYPE_CHECKING:
    import torch

    from rowtrail.lineage import LineageWorkspace
    from rowtrail.training._run import TrainingRun

__all__ = [
    "ReplayResult",
    "ReplayUnlearning",
    "Replayer",
    "counterfactual",
    "load_replayer",
    "replay_run",
    "unlearn_by_replay",
]

Weights = Mapping[int, Any] | Any


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of a replay.

    Attributes
    ----------
    model : torch.nn.Module
        A copy of the model holding the replayed weights.
    first_step, n_steps : int
        The first optimizer step replayed and how many were replayed.
    digest : str
        Digest of the replayed state dict (the checkpoint/seal digest format).
    verified : bool
        Whether every replayed step was compared with the recorded weights digest (only an
        unweighted replay is; a mismatch raises instead of returning).
    seconds : float
        Wall-clock time of the replay.
    """

    model: Any
    first_step: int
    n_steps: int
    digest: str
    verified: bool
    seconds: float

    @property
    def state_dict(self) -> dict[str, Any]:
        """The replayed weights (``model.state_dict()``)."""
        state: dict[str, Any] = self.model.state_dict()
        return state


@dataclass(frozen=True)
class ReplayUnlearning:
    """Exact unlearning of a forget set by replay (see :func:`unlearn_by_replay`).

    ``model_state`` is the state dict the run would have produced without the forget set;
    ``first_step`` the step replay resumed at (from ``checkpoint``, or step 0 when it is
    ``None``); ``steps_replayed`` how many steps it re-executed; ``verified`` whether a full
    replay from step 0 with the same weights gave the same bits.
    """

    model_state: dict[str, Any]
    first_step: int
    steps_replayed: int
    seconds: float
    digest: str
    checkpoint: str | None
    verified: bool
    method: str = "replay (exact)"


def _select(batch: Any, keep: Any) -> Any:
    """Rows ``keep`` of every tensor of a collated batch (tuples, lists and dicts kept)."""
    if hasattr(batch, "shape") and hasattr(batch, "__getitem__"):
        return batch[keep]
    if isinstance(batch, Mapping):
        return {k: _select(v, keep) for k, v in batch.items()}
    if isinstance(batch, list | tuple):
        return type(batch)(_select(v, keep) for v in batch)
    return batch


@contextmanager
def _replay_environment(torch: Any, threads: int) -> Iterator[None]:
    """Run with the recorded thread count; restore the caller's RNG and threads after."""
    saved_rng, saved_threads = torch.get_rng_state(), torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved_threads)
        torch.set_rng_state(saved_rng)


class Replayer:
    """Re-executes a recorded run: ``replay``, ``counterfactual``, ``unlearn``.

    Build it with ``run.replayer()`` (a sealed run in memory) or :func:`load_replayer` (a
    finished run read from the ledger in a new process).

    Parameters
    ----------
    plan : ReplayPlan
        What the run recorded.
    model : torch.nn.Module or callable
        A module of the run's architecture (its weights are replaced), or a zero-argument
        callable returning one; replay works on a deep copy.
    datasets : mapping of int to Dataset
        The train dataset of each recorded dataset key.
    loss_fn : callable
        The per-sample loss ``(output, target) -> (batch,)`` the run was trained with.
    collate_fns : mapping of int to callable, optional
        Each dataset's ``collate_fn`` (default: torch's ``default_collate``).
    """

    def __init__(
        self,
        plan: ReplayPlan,
        model: Any,
        datasets: Mapping[int, Any],
        loss_fn: Callable[..., Any],
        *,
        collate_fns: Mapping[int, Callable[..., Any]] | None = None,
    ) -> None:
        torch = require("torch", extra="torch", feature="training replay")
        self.torch = torch
        self.plan = plan
        self._model = model
        self.loss_fn = loss_fn
        missing = sorted(set(plan.row_ids) - set(datasets))
        if missing:
            raise InvalidInputError(
                f"datasets of Replayer must hold every train dataset key of the run "
                f"{sorted(plan.row_ids)}; got {sorted(datasets)}. Pass the run's train dataset."
            )
        self.datasets = dict(datasets)
        default = torch.utils.data.default_collate
        self.collate = {k: (collate_fns or {}).get(k, default) for k in self.datasets}
        self._starts = plan.step_starts()

    # ------------------------------------------------------------------ building blocks
    def fresh_model(self) -> torch.nn.Module:
        """Return a new module with the run's initial weights loaded."""
        template = self._model
        if not isinstance(template, self.torch.nn.Module):
            template = template()
        model: torch.nn.Module = copy.deepcopy(template)
        model.load_state_dict(self.plan.initial_state)
        return model

    def make_optimizer(self, model: torch.nn.Module) -> Any:
        """Return the recorded optimizer (class and initial hyper-parameters) over ``model``."""
        optim = self.torch.optim
        cls = getattr(optim, self.plan.optimizer_class, None)
        if not (isinstance(cls, type) and issubclass(cls, optim.Optimizer)):
            raise InvalidInputError(
                f"the run's optimizer must be a torch.optim class; got "
                f"{self.plan.optimizer_class!r}."
            )
        params = dict(model.named_parameters())
        groups = [
            {"params": [params[name] for name in group["params"]],
             **{k: decode_hyper(v) for k, v in group["hyper"].items()}}
            for group in self.plan.groups
        ]
        return cls(groups)

    def fetch(self, batch: RecordedBatch) -> Any:
        """Return the collated batch of recorded positions (as the DataLoader built it)."""
        dataset = self.datasets[batch.dataset]
        indices = batch.positions.tolist()
        getitems = getattr(dataset, "__getitems__", None)
        items = getitems(indices) if getitems else [dataset[i] for i in indices]
        return self.collate[batch.dataset](items)

    def set_rng(self, number: int) -> None:
        """Restore the torch RNG state recorded at the draw of batch ``number`` (if stored)."""
        state = self.plan.rng.get(number)
        if state is not None:
            torch = self.torch
            torch.set_rng_state(torch.frombuffer(bytearray(state), dtype=torch.uint8))

    def weight_vectors(self, weights: Weights | None) -> dict[int, NDArray[np.float64]] | None:
        """Return one float64 weight per sample of each train dataset (``None``: all ones)."""
        if weights is None:
            return None
        if not isinstance(weights, Mapping):
            if len(self.plan.row_ids) != 1:
                raise InvalidInputError(
                    "weights of replay must be a mapping {dataset key: array} when the run "
                    f"trained on several datasets ({sorted(self.plan.row_ids)})."
                )
            weights = {next(iter(self.plan.row_ids)): weights}
        out = {}
        for key, ids in self.plan.row_ids.items():
            w = np.asarray(weights.get(key, np.ones(ids.size)), dtype=np.float64).reshape(-1)
            if w.shape != ids.shape or not np.all(np.isfinite(w) & (w >= 0)):
                raise InvalidInputError(
                    f"weights of replay must hold {ids.size} finite values >= 0 for dataset {key}; "
                    f"got shape {w.shape!r}. Give one weight per training sample."
                )
            out[key] = w
        return out

    def batch_loss(self, model: Any, batch: RecordedBatch, weights: Any) -> Any:
        """Return the loss a batch backpropagates (module docstring), or ``None`` if empty."""
        data = self.fetch(batch)
        if weights is not None:
            w = weights[batch.dataset][batch.positions]
            keep = w != 0
            if not keep.any():
                return None
            if not keep.all():
                data = _select(data, self.torch.from_numpy(keep))
                w = w[keep]
        output = model(data[0])
        losses = self.loss_fn(output, data[1])
        if weights is None or bool(np.all(w == 1.0)):
            loss = losses.mean()
        else:
            tensor = self.torch.as_tensor(w, dtype=losses.dtype)
            loss = (tensor * losses).sum() / tensor.sum()
        if self.plan.accumulation > 1:
            loss = loss / self.plan.accumulation
        return loss

    def _apply_hypers(self, optimizer: Any, step: int) -> None:
        for group, key, value in self.plan.hyper_changes.get(step, ()):
            optimizer.param_groups[group][key] = value

    def _checkpoint(self, checkpoint: str) -> dict[str, Any]:
        for payload in self.plan.checkpoints:
            if payload["checkpoint"] == checkpoint:
                if not payload.get("resumable", False):
                    raise InvalidInputError(
                        f"from_checkpoint of replay must name a checkpoint taken between "
                        f"optimizer steps; {checkpoint!r} was taken mid-accumulation."
                    )
                return payload
        raise InvalidInputError(
            f"from_checkpoint of replay must name a checkpoint of run {self.plan.run_id!r} "
            f"recorded for replay; got {checkpoint!r}. Choices: "
            f"{[c['checkpoint'] for c in self.plan.checkpoints]}."
        )

    # ------------------------------------------------------------------ replay
    def replay(
        self,
        *,
        weights: Weights | None = None,
        until: int | None = None,
        from_checkpoint: str | None = None,
        verify: bool = True,
    ) -> ReplayResult:
        """Re-execute the recorded loop; see the module docstring for ``weights``.

        Parameters
        ----------
        weights : array of shape (n,) or mapping of dataset key to array, optional
            A weight per training sample (dataset position); 0 removes the sample.
        until : int, optional
            Stop after this many optimizer steps (absolute; default: all of them).
        from_checkpoint : str, optional
            Resume from a checkpoint id of the run (weights and optimizer state).
        verify : bool, default True
            For an unweighted replay, compare the weights after every step with the recorded
            digest (and at the end with the sealed model digest).

        Raises
        ------
        ReplayMismatchError
            The unweighted replay diverged; ``.step`` is the first step that differs.
        """
        torch = self.torch
        started = time.perf_counter()
        vectors = self.weight_vectors(weights)
        stop = self.plan.n_steps if until is None else int(until)
        if not 0 <= stop <= self.plan.n_steps:
            raise InvalidInputError(
                f"until of replay must be between 0 and {self.plan.n_steps}; got {until!r}."
            )
        model = self.fresh_model()
        optimizer = self.make_optimizer(model)
        first = 0
        if from_checkpoint is not None:
            payload = self._checkpoint(from_checkpoint)
            model.load_state_dict(deserialize_state(self.plan.blob(payload["model_digest"])))
            optimizer.load_state_dict(
                decode_optimizer_state(self.plan.blob(payload["optimizer_digest"]))
            )
            first = int(payload["step"])
            if first > stop:
                raise InvalidInputError(
                    f"until of replay ({stop}) must not precede the checkpoint's step ({first})."
                )
        check = verify and vectors is None
        with _replay_environment(torch, self.plan.threads):
            for step in range(first):
                self._apply_hypers(optimizer, step)
            for step in range(first, stop):
                self.run_step(model, optimizer, step, vectors)
                if check:
                    self._verify_step(model, step)
        digest = state_digest(model)
        final = self.plan.final_digest
        if check and stop == self.plan.n_steps and final is not None and digest != final:
            raise ReplayMismatchError(
                    f"replay of run {self.plan.run_id!r} matched every step but not the sealed "
                    "final weights: the loop changed the model after its last optimizer step.",
                    step=None,
                )
        return ReplayResult(model, first, stop - first, digest, check,
                            time.perf_counter() - started)

    def run_step(self, model: Any, optimizer: Any, step: int, weights: Any) -> bool:
        """Replay one optimizer step in place; return whether it updated the weights."""
        ran = False
        for number in range(self._starts[step], self._starts[step + 1]):
            batch = self.plan.batches[number]
            self.set_rng(number)
            model.train(batch.training)
            loss = self.batch_loss(model, batch, weights)
            if loss is not None:
                loss.backward()
                ran = True
        self._apply_hypers(optimizer, step)
        if ran:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return ran

    def _verify_step(self, model: Any, step: int) -> None:
        digest = state_digest(model)
        recorded = self.plan.step_digests[step]
        if digest != recorded:
            raise ReplayMismatchError(
                f"replay of run {self.plan.run_id!r} diverged at optimizer step {step}: the "
                f"weights hash to {digest}, the run recorded {recorded}. The loop broke the "
                f"replay contract there, or the data, code or environment differ (recorded "
                f"torch {self.plan.torch_version}, {self.plan.threads} thread(s); this is "
                f"torch {self.torch.__version__}).",
                step=step,
            )

    # ------------------------------------------------------------------ counterfactuals
    def drop_weights(self, row_ids: Any, *, caller: str) -> dict[int, NDArray[np.float64]]:
        """Return weights that are 0 for the samples of ``row_ids`` and 1 elsewhere."""
        found = self.plan.positions_of(row_ids, caller=caller)
        out = {}
        for key, ids in self.plan.row_ids.items():
            w = np.ones(ids.size)
            w[found[key]] = 0.0
            out[key] = w
        return out

    def counterfactual(self, drop_row_ids: Any) -> ReplayResult:
        """Return the model this run would have produced without the rows ``drop_row_ids``."""
        return self.replay(weights=self.drop_weights(drop_row_ids, caller="counterfactual"))

    def unlearn(self, forget_row_ids: Any, *, verify: bool = False) -> ReplayUnlearning:
        """Exact unlearning by replay; see :func:`unlearn_by_replay`."""
        started = time.perf_counter()
        weights = self.drop_weights(forget_row_ids, caller="unlearn_by_replay")
        first_use = next(
            (n for n, b in enumerate(self.plan.batches)
             if b.step < self.plan.n_steps and not weights[b.dataset][b.positions].all()),
            None,
        )
        if first_use is None:  # never drawn: the trained model already excludes the rows
            final = self.plan.final_digest or ""
            if verify and self.replay(weights=weights).digest != final:
                raise ReplayMismatchError(
                    f"the forget rows were never drawn, yet a full replay without them differs "
                    f"from the sealed model {final}.",
                    step=None,
                )
            state = deserialize_state(self.plan.blob(final))
            return ReplayUnlearning(state, self.plan.n_steps, 0, time.perf_counter() - started,
                                    final, None, verify)
        usable = [c for c in self.plan.checkpoints
                  if c.get("resumable") and int(c["replay_batches"]) <= first_use
                  and int(c["step"]) <= self.plan.batches[first_use].step]
        chosen = max(usable, key=lambda c: int(c["replay_batches"]), default=None)
        name = None if chosen is None else str(chosen["checkpoint"])
        result = self.replay(weights=weights, from_checkpoint=name)
        if verify:
            full = self.replay(weights=weights)
            if full.digest != result.digest:
                raise ReplayMismatchError(
                    f"unlearning by replay from checkpoint {name!r} gave {result.digest} but a "
                    f"full replay with the same weights gave {full.digest}.",
                    step=None,
                )
        return ReplayUnlearning(result.state_dict, result.first_step, result.n_steps,
                                time.perf_counter() - started, result.digest, name, verify)


def _replayer_of(run: TrainingRun | Replayer) -> Replayer:
    if isinstance(run, Replayer):
        return run
    replayer: Replayer = run.replayer()
    return replayer


def counterfactual(run: TrainingRun | Replayer, drop_row_ids: Any) -> ReplayResult:
    """Return the model ``run`` would have produced without the rows ``drop_row_ids``.

    Same initial weights, batch order (minus the rows), schedule and RNG states: see the
    module docstring. ``run`` is a sealed replayable run or a :class:`Replayer`.
    """
    return _replayer_of(run).counterfactual(drop_row_ids)


def unlearn_by_replay(
    run: TrainingRun | Replayer, forget_row_ids: Any, *, verify: bool = False
) -> ReplayUnlearning:
    """Exactly unlearn ``forget_row_ids`` from a replayable run by replaying without them.

    Replay resumes from the last resumable checkpoint taken before the first batch that drew
    a forget row (step 0 if none), with the forget rows' weights 0; the cost is proportional
    to the steps after that checkpoint. The result is bit-identical to a full replay from step
    0 with the same weights; ``verify=True`` runs that full replay too and raises
    :class:`~rowtrail.errors.ReplayMismatchError` if the bits differ.
    """
    return _replayer_of(run).unlearn(forget_row_ids, verify=verify)


def load_replayer(
    workspace: LineageWorkspace,
    run_id: str,
    *,
    model: Any,
    dataset: Any,
    loss_fn: Callable[..., Any],
    collate_fn: Callable[..., Any] | None = None,
) -> Replayer:
    """Return a :class:`Replayer` of a finished run read from the ledger (new process).

    ``dataset`` is the train dataset (or a mapping ``{dataset key: dataset}``); its row ids
    are resolved as ``run.track`` resolved them and must equal the recorded ones.
    """
    from rowtrail.training._rows import resolve_rows

    plan = load_replay_plan(workspace, run_id)
    datasets = dict(dataset) if isinstance(dataset, Mapping) else {
        key: dataset for key in plan.row_ids}
    for key, ids in plan.row_ids.items():
        if key not in datasets:
            continue
        found = resolve_rows(workspace, datasets[key], name=f"replay/{run_id}",
                             caller="load_replayer").row_ids
        if not np.array_equal(found, ids):
            raise InvalidInputError(
                f"dataset of load_replayer must be the run's train dataset {key}: its row ids "
                f"differ from the {ids.size} recorded ones. Pass the same data the run used."
            )
    collate = None if collate_fn is None else {key: collate_fn for key in datasets}
    return Replayer(plan, model, datasets, loss_fn, collate_fns=collate)


def replay_run(
    workspace: LineageWorkspace,
    run_id: str,
    *,
    model: Any,
    dataset: Any,
    loss_fn: Callable[..., Any],
    collate_fn: Callable[..., Any] | None = None,
    weights: Weights | None = None,
    until: int | None = None,
    from_checkpoint: str | None = None,
) -> ReplayResult:
    """Replay a finished run from the ledger (see :func:`load_replayer`, :meth:`Replayer.replay`).

    In a new process: ``replay_run(ws, run_id, model=make_model, dataset=train,
    loss_fn=per_sample_loss)`` returns a :class:`ReplayResult` whose ``verified`` is true when
    every step matched the recorded weights (a divergence raises
    :class:`~rowtrail.errors.ReplayMismatchError`).
    """
    replayer = load_replayer(workspace, run_id, model=model, dataset=dataset, loss_fn=loss_fn,
                             collate_fn=collate_fn)
    return replayer.replay(weights=weights, until=until, from_checkpoint=from_checkpoint)


def check_replayable(run: TrainingRun) -> None:
    """Raise :class:`StateError` unless ``run`` was recorded with ``replayable=True``."""
    if run._replay is None:
        raise StateError(
            f"run {run.name!r} was not recorded for replay; open it with "
            "ws.training_run(..., replayable=True, loss_fn=...)"
        )
