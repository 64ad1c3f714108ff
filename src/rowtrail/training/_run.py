"""The training run context: what really happened during training, as ledger events.

Events written by a run (``run`` is the run id in every payload):

``training.started``      name, params, model class and size, optimizer, policy, and the
                          process running it (host, pid, start time, boot id: see
                          :mod:`._status`, which tells a killed run from a running one)
``training.split``        a dataset's role (train / validation / test) and its row ids (blob);
                          ``row_ids`` says whether they are real row ids (false: the dataset
                          carried none and its positions stand in, so "was row R used?" is
                          "unknown" for the run); ``lineage``, when samples were built from
                          several rows (joins, group-bys, fitted statistics), the blobs of
                          every sample's source rows (see :mod:`._rows`)
``training.chunk``        one per flush: the run and the positions blob (dataset indices drawn,
                          see :mod:`rowtrail.training._codec`) of the batches that follow
``training.batch``        one per batch: ``chunk`` (ledger index of its chunk event), dataset
                          (split key, hence role), epoch, batch, optimizer step, lr, loss,
                          signal summaries, and ``ids = [offset, count]`` into the chunk's blob
``training.signals``      per-sample custom signals of a chunk, aligned with its positions blob
``training.checkpoint``   weights digest (= digest of the weights blob), step, epoch, reason
``training.validation``   validation loss of an epoch
``training.fit``          a convex fit (parameters, Hessian; see :mod:`._convex`)
``training.completed``    the seal: status (``completed``, ``failed:<Error>``,
                          ``aborted:<KeyboardInterrupt|SystemExit>``), data, code,
                          environment, model artifact digest, totals

A batch's ``step`` is the 0-based index of the optimizer update that applies its gradient
(``optimizer.step()`` calls completed before it was drawn): accumulated batches share one.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, StateError
from rowtrail.lineage._sklearn_runs import enter_run, leave_run
from rowtrail.training._checks import (
    as_ints,
    check_args,
    check_role,
    finite,
    is_identifier,
    sources_of,
)
from rowtrail.training._codec import encode_batch_sets, encode_positions
from rowtrail.training._env import code_info, environment_info
from rowtrail.training._replay_record import ReplayRecorder
from rowtrail.training._rows import (
    SampleRows,
    check_row_ids,
    encode_sample_rows,
    resolve_rows,
    stand_in_sources,
)
from rowtrail.training._signals import SignalBuffer, check_signal, scalar_of
from rowtrail.training._sklearn_fit import record_estimator_fit
from rowtrail.training._status import process_info
from rowtrail.training._tracked import TrackedLoader
from rowtrail.training._writer import BackgroundWriter

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace

__all__ = ["TrackedLoader", "TrainingRun"]

# Leaving the run's context through these is an interruption, not a failure of the training.
_ABORTS = (KeyboardInterrupt, SystemExit, GeneratorExit)


@dataclass
class _Batch:
    role: str
    epoch: int
    batch: int
    dataset: int
    indices: Any
    step: int | None
    loss: Any = None
    scalars: dict[str, float] = field(default_factory=dict)
    signals: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Split:
    key: int
    role: str
    row_ids: NDArray[np.int64]
    ledger_index: int


class TrainingRun:
    """Records a training run in the workspace ledger; use ``ws.training_run(...)``.

    Parameters
    ----------
    workspace : Workspace
        Where events and blobs go.
    name : str
        Human name of the run (e.g. ``"scorecard-v3"``).
    model : torch.nn.Module, optional
        The model being trained; needed for checkpoints and the sealed model digest.
    params : mapping, optional
        Hyper-parameters (JSON values) recorded with the run.
    optimizer : torch.optim.Optimizer, optional
        Gives the step counter and learning rate of every batch (via step hooks).
    checkpoint_every : int, optional
        Save a checkpoint every this many ``checkpoint_unit`` (epochs of the train role, or
        optimizer steps).
    checkpoint_unit : {"epoch", "step"}
    checkpoint_policy : {None, "val_curve"}
        ``"val_curve"`` saves a checkpoint whenever :meth:`log_validation` sees the validation
        loss drop by at least ``val_min_delta`` (relative) since the last checkpoint it chose,
        which places checkpoints where the learning curve moves (FG-Trac's selection).
    loss_callback : callable, optional
        Called when each batch ends; its return value (float or tensor) is the batch loss
        unless :meth:`log_loss` was called.
    batch_order : {"exact", "set"}
        ``"exact"`` keeps each batch's ids in the order the sampler drew them (bit-packed,
        ``ceil(log2 n)`` bits per sample-use); ``"set"`` stores each batch as a sorted set
        (Elias-Fano, about ``2 + log2(n / batch_size)`` bits), which is all that "when was S
        used" needs; per-sample signals are reordered with their ids.
    flush_every : int
        Batches buffered before their events and positions blob are written (group commit).
    run_id : str, optional
        Identifier of the run (default: 16 random hex digits).
    code_path : path, optional
        Directory whose git commit and dirty flag the seal records (default: cwd).
    replayable : bool, default False
        Record what :meth:`replay` needs to re-execute the loop bit for bit on CPU (see
        :mod:`rowtrail.training._replay` for the contract the loop must keep; it is checked
        while training and violations raise :class:`~rowtrail.errors.StateError`). Needs
        ``model``, ``optimizer`` (a fresh ``torch.optim`` optimizer) and ``loss_fn``.
    loss_fn : callable, optional
        The per-sample loss ``loss_fn(model(inputs), targets) -> tensor of shape (batch,)``
        of a replayable run; the loop must backpropagate ``loss_fn(...).mean()`` of each batch
        (divided by the number of batches per optimizer step when it accumulates gradients).
    scheduler : torch.optim.lr_scheduler.LRScheduler, optional
        Named in the replay record; replay applies the hyper-parameters each step actually
        used (recorded through the optimizer's step hooks), so any schedule replays exactly.
    provenance_gate : callable, optional
        Called with ``(run_id, split payload)`` before each split is recorded; raises to refuse
        the run's inputs. ``ws.training_run`` passes the registry's provenance policy
        (:meth:`rowtrail.registry.Registry.gate_training`).

    Notes
    -----
    **Replay contract** (``replayable=True``; details in :mod:`rowtrail.training._replay`):
    train batches come from ``run.track(loader)`` with ``num_workers=0``; each backpropagates
    ``loss_fn(model(inputs), targets).mean()`` (divided by ``k`` when ``k`` batches accumulate
    into one ``optimizer.step()``); nothing but ``optimizer.step()`` changes the weights, and
    no forward pass in train mode runs on untracked data; randomness comes only from torch's
    global generator. Violations that can be seen while training (a step with no tracked batch,
    weights or buffers changed outside the loop, a worker loader, a tensor hyper-parameter)
    raise :class:`~rowtrail.errors.StateError` / :class:`~rowtrail.errors.InvalidInputError`;
    any other divergence makes :meth:`replay` raise
    :class:`~rowtrail.errors.ReplayMismatchError` naming the first step that differs.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from rowtrail.training import fit_logistic
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> X = np.random.default_rng(0).normal(size=(50, 3)); y = (X[:, 0] > 0).astype(float)
    >>> with ws.training_run("lr", params={"l2": 1.0}) as run:
    ...     fit = fit_logistic(X, y, l2=1.0, run=run)
    >>> fit.converged
    True
    """

    def __init__(
        self,
        workspace: LineageWorkspace,
        name: str,
        *,
        model: Any = None,
        params: Mapping[str, Any] | None = None,
        optimizer: Any = None,
        checkpoint_every: int | None = None,
        checkpoint_unit: str = "epoch",
        checkpoint_policy: str | None = None,
        val_min_delta: float = 0.05,
        loss_callback: Callable[[], Any] | None = None,
        batch_order: str = "exact",
        flush_every: int = 256,
        run_id: str | None = None,
        code_path: str | None = None,
        replayable: bool = False,
        loss_fn: Callable[..., Any] | None = None,
        scheduler: Any = None,
        provenance_gate: Callable[[str, Mapping[str, Any]], None] | None = None,
    ) -> None:
        check_args(name, checkpoint_every, checkpoint_unit, checkpoint_policy, flush_every)
        if batch_order not in ("exact", "set"):
            raise InvalidInputError(
                f"batch_order of training_run must be 'exact' or 'set'; got {batch_order!r}"
            )
        self.batch_order = batch_order
        self.ws = workspace
        self.name = name
        self.model = model
        self.params = dict(params or {})
        self.optimizer = optimizer
        self.run_id = run_id or uuid.uuid4().hex[:16]
        self.checkpoint_every = checkpoint_every
        self.checkpoint_unit = checkpoint_unit
        self.checkpoint_policy = checkpoint_policy
        self.val_min_delta = float(val_min_delta)
        self.loss_callback = loss_callback
        self.flush_every = flush_every
        self.code_path = code_path
        # Called with (run id, split payload) before each split is recorded; raises to refuse
        # inputs a provenance policy rejects (``ws.training_run`` passes the registry's).
        self.provenance_gate = provenance_gate
        self.finished = False
        self.n_steps = 0
        self.n_sample_uses = 0
        self.checkpoints: list[dict[str, Any]] = []
        self.splits: dict[int, _Split] = {}
        self.lineage_digests: set[str] = set()
        self._datasets: dict[tuple[int, str], int] = {}
        self._keep_alive: list[Any] = []
        self.epochs: dict[str, int] = {}
        self.batches: dict[str, int] = {}
        self._pending: list[_Batch] = []
        self._current: _Batch | None = None
        self._step_lr: dict[int, float] = {}
        self._val_best: float | None = None
        self._hooks: list[Any] = []
        self.fits: list[dict[str, Any]] = []
        # Fitted estimators without a convex fit record (rt.sklearn.trace): class and the
        # digest of their pickled bytes, a blob; the seal names the last as the run's model.
        self.estimators: list[dict[str, str]] = []
        self._replay: ReplayRecorder | None = None
        self.replay_index: int | None = None
        self.sealed_index: int | None = None
        if replayable:
            self._replay = ReplayRecorder(self, loss_fn, scheduler)
        self._writer = BackgroundWriter(f"rowtrail-run-{self.run_id}")
        self.started_index = self._start()

    # ------------------------------------------------------------------ lifecycle
    def _start(self) -> int:
        model: dict[str, Any] | None = None
        if self.model is not None:
            n_params = sum(int(p.numel()) for p in self.model.parameters())
            model = {"class": type(self.model).__qualname__, "n_params": n_params}
        if self.optimizer is not None:
            self._hooks.append(self.optimizer.register_step_pre_hook(self._before_step))
            self._hooks.append(self.optimizer.register_step_post_hook(self._after_step))
        payload = {
            "run": self.run_id,
            "name": self.name,
            "params": self.params,
            "model": model,
            "optimizer": None if self.optimizer is None else type(self.optimizer).__qualname__,
            "checkpoint": {
                "every": self.checkpoint_every,
                "unit": self.checkpoint_unit,
                "policy": self.checkpoint_policy,
            },
            "process": process_info(),
            "replayable": self._replay is not None,
        }
        index: int = self.ws.ledger.append("training.started", payload)
        return index

    def __enter__(self) -> TrainingRun:
        # Fits of rt.sklearn.trace(...) estimators inside the block are recorded in this run.
        enter_run(self, record_estimator_fit)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.finished:
            return
        if exc is None:
            status = "completed"
        elif isinstance(exc, _ABORTS):
            status = f"aborted:{type(exc).__name__}"
        else:
            status = f"failed:{type(exc).__name__}"
        self.finish(status=status)

    def _check_live(self, what: str) -> None:
        if self.finished:
            raise StateError(
                f"{what} was called after run {self.name!r} was sealed; start a new run"
            )

    # ------------------------------------------------------------------ splits
    def log_split(
        self,
        role: str,
        row_ids: Any,
        *,
        known: bool | None = None,
        lineage: SampleRows | None = None,
    ) -> int:
        """Record that the samples with ``row_ids`` have ``role`` in this run; return its key.

        Parameters
        ----------
        role : {"train", "validation", "test"}
            The samples' role in the run.
        row_ids : array_like of int64
            One row id per sample.
        known : bool, optional
            Whether ``row_ids`` are real row ids. Default: False exactly when some of them
            are rows of a stand-in source (dataset positions registered for lack of ids).
        lineage : SampleRows, optional
            Every source row of each sample (joins, aggregations, fitted statistics),
            recorded as blobs of the split event.
        """
        self._check_live("log_split")
        check_role(role, "log_split")
        # Reads below (sources, lineage) check the signed head: let the background writer
        # finish the chunks it is committing first, so they see one committed state.
        self._writer.drain()
        ids = check_row_ids(row_ids, len(np.asarray(row_ids)), caller="TrainingRun.log_split")
        if known is None:
            known = not stand_in_sources(self.ws, ids)
        if lineage is not None and lineage.n_samples != ids.size:
            raise InvalidInputError(
                f"lineage of TrainingRun.log_split must describe {ids.size} samples; "
                f"got {lineage.n_samples}"
            )
        key = len(self.splits)
        base = int(ids.min()) if ids.size else 0
        ledger = self.ws.ledger
        blobs = [ledger.put_blob(encode_positions(ids - base))]
        payload: dict[str, Any] = {
            "run": self.run_id,
            "dataset": key,
            "role": role,
            "n_samples": int(ids.size),
            "id_base": base,
            "sources": sources_of(self.ws, ids),
            "row_ids": bool(known),
            # Named here because an event's blobs are kept in canonical (sorted) order.
            "ids_blob": blobs[0],
        }
        if self.provenance_gate is not None:
            self.provenance_gate(self.run_id, payload)
        if lineage is not None:
            payload["lineage"], more = encode_sample_rows(ledger, lineage)
            every = [lineage.ids, lineage.aggregated, lineage.statistic]
            payload["lineage"]["sources"] = sources_of(self.ws, np.concatenate(every))
            blobs.extend(more)
        index: int = ledger.append("training.split", payload, blobs=blobs)
        self.splits[key] = _Split(key, role, ids, index)
        return key

    # ------------------------------------------------------------------ batches
    def track(self, loader: Any, *, role: str = "train", row_ids: Any = None) -> TrackedLoader:
        """Return ``loader`` seen through the run; iterate it exactly like the loader.

        Parameters
        ----------
        loader : torch.utils.data.DataLoader
            The user's loader, unchanged (shuffle, workers and samplers all work).
        role : {"train", "validation", "test"}
            The role of the loader's samples (recorded once per dataset as a split).
        row_ids : array_like of int64, optional
            One row id per dataset sample; default: found from the dataset (with each
            sample's source rows, see :mod:`._rows`), or its positions registered as a
            stand-in source, in which case the split records ``"row_ids": false`` and usage
            queries answer "unknown" for this run.

        Notes
        -----
        Datasets whose row ids are found without ``row_ids=``:

        - ``rt.torch.dataset(...)`` and any dataset with a ``row_ids`` attribute;
        - ``TensorDataset`` whose tensors share memory with traced arrays:
          ``torch.as_tensor(X)`` or ``torch.from_numpy(np.asarray(X))`` (or a column slice of
          it) with ``X`` from ``rt.to_numpy`` / ``rt.track`` / ``rt.load_csv`` and NumPy ops
          on them; sample ``i`` has the source rows of row ``i`` of ``X``;
        - ``Subset`` of these (nested too, and ``random_split``: indices compose) and
          ``ConcatDataset`` of these.

        Anything else, e.g. tensors that are copies (``torch.tensor(X)``, ``.float()`` of a
        float64 array, ``.to("cuda")``) or datasets of other classes, is recorded with
        ``"row_ids": false``: ``sample_usage`` then answers ``kind="unknown"`` for the run.
        """
        self._check_live("track")
        check_role(role, "track")
        dataset = loader.dataset
        lineage_digest = getattr(dataset, "lineage_digest", None)
        if isinstance(lineage_digest, str):
            self.lineage_digests.add(lineage_digest)
        key = self._datasets.get((id(dataset), role))
        if key is None or row_ids is not None:
            self._writer.drain()  # resolving reads the ledger: see log_split
            resolved = resolve_rows(
                self.ws,
                dataset,
                row_ids=row_ids,
                name=f"{self.name}/{role}",
                caller="TrainingRun.track",
            )
            ids = resolved.row_ids
            if key is None or not np.array_equal(ids, self.splits[key].row_ids):
                key = self.log_split(role, ids, known=resolved.known, lineage=resolved.lineage)
                # keep the dataset alive with its key: a recycled id() must not alias it
                self._datasets[(id(dataset), role)] = key
                self._keep_alive.append(dataset)
        capture = self._replay is not None and role == "train"
        if capture and self._replay is not None:
            self._replay.check_loader(loader, key)
        return TrackedLoader(self, loader, role=role, dataset_key=key, capture_rng=capture)

    def _start_epoch(self, role: str) -> int:
        self._check_live("iterating a tracked loader")
        epoch = self.epochs.get(role, 0)
        self.epochs[role] = epoch + 1
        return epoch

    def _begin_batch(
        self, role: str, epoch: int, dataset: int, indices: Any, *, drawn: Any = None
    ) -> None:
        self._end_batch()
        number = self.batches.get(role, 0)
        self.batches[role] = number + 1
        step = self.n_steps if role == "train" else None
        if self._replay is not None and role == "train":
            self._replay.on_batch(dataset, indices, self.n_steps, drawn)
        self._current = _Batch(role, epoch, number, dataset, indices, step)

    def _end_batch(self) -> None:
        current = self._current
        if current is None:
            return
        if current.loss is None and self.loss_callback is not None:
            current.loss = self.loss_callback()
        self._pending.append(current)
        self._current = None
        if len(self._pending) >= self.flush_every:
            self.flush()

    def _end_epoch(self, role: str, epoch: int, *, complete: bool) -> None:
        self.flush()
        every = self.checkpoint_every
        if every is None or self.checkpoint_unit != "epoch" or not complete or role != "train":
            return
        if (epoch + 1) % every == 0:
            self.checkpoint(reason=f"every {every} epoch(s)")

    def log_loss(self, loss: Any) -> None:
        """Attach the loss (float or tensor; read lazily) to the batch being processed."""
        self._require_batch("log_loss").loss = loss.detach() if hasattr(loss, "detach") else loss

    def log_signal(self, name: str, values: Any) -> None:
        """Attach a custom signal to the current batch: a scalar, or one value per sample.

        Per-sample signals (e.g. per-sample loss, attention weights) are stored as float32
        blobs aligned with the batch's ids, and summarised (mean, min, max) in the batch event.
        """
        current = self._require_batch("log_signal")
        if not is_identifier(name):
            raise InvalidInputError(
                f"name of TrainingRun.log_signal must be an identifier; got {name!r}"
            )
        scalar = scalar_of(values)
        if scalar is not None:
            current.scalars[name] = scalar
            return
        current.signals[name] = check_signal(name, values, len(current.indices))

    def _require_batch(self, what: str) -> _Batch:
        self._check_live(what)
        if self._current is None:
            raise StateError(
                f"TrainingRun.{what} was called outside a batch; call it inside "
                "`for batch in run.track(loader):`"
            )
        return self._current

    # ------------------------------------------------------------------ optimizer hooks
    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._replay is not None:
            self._replay.before_step(optimizer, self.n_steps)
        self._step_lr[self.n_steps] = float(optimizer.param_groups[0]["lr"])

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._replay is not None:
            self._replay.after_step(self.n_steps)
        self.n_steps += 1
        every = self.checkpoint_every
        if self.checkpoint_unit == "step" and every is not None and self.n_steps % every == 0:
            self.checkpoint(reason=f"every {every} step(s)")

    def _lr_of(self, step: int | None) -> float | None:
        if step is not None and step in self._step_lr:
            return self._step_lr[step]
        if self.optimizer is None:
            return None
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ flush
    def flush(self, *, wait: bool = False) -> None:
        """Hand buffered batches to the writer; with ``wait=True`` also wait until written.

        A chunk is written as one positions blob, one ``training.chunk`` event and one
        ``training.batch`` event per batch (group commit), on the run's writer thread.
        """
        pending, self._pending = self._pending, []
        if pending:
            lrs = [self._lr_of(record.step) for record in pending]
            self.n_sample_uses += sum(len(record.indices) for record in pending)
            self._writer.submit(lambda: self._write_chunk(pending, lrs))
        if wait:
            self._writer.drain()

    def _write_chunk(self, pending: list[_Batch], lrs: list[float | None]) -> None:
        signals = SignalBuffer()
        for slot, record in enumerate(pending):
            for name, values in record.signals.items():
                signals.add(name, slot, values)
        counts = [len(b.indices) for b in pending]
        total = sum(counts)
        flat = np.fromiter(
            itertools.chain.from_iterable(as_ints(b.indices) for b in pending),
            dtype=np.int64,
            count=total,
        )
        ledger = self.ws.ledger
        order: NDArray[np.int64] | None = None
        if self.batch_order == "set":
            blob, order = encode_batch_sets(flat, counts)
        else:
            blob = encode_positions(flat)
        digest = ledger.put_blob(blob)
        offsets = np.concatenate([[0], np.cumsum(counts)]).tolist()
        summaries = signals.summaries(offsets, len(pending))
        # The chunk event names the run and the positions blob once; each batch event points
        # at it by ledger index, which keeps a batch record near 200 bytes.
        chunk = ledger.append(
            "training.chunk",
            {"run": self.run_id, "n_batches": len(pending), "n_samples": total,
             "batch_order": self.batch_order},
            blobs=[digest],
        )
        with ledger.batch(max_events=len(pending) + 8) as batch:
            for i, record in enumerate(pending):
                payload = self._batch_payload(record, chunk, offsets[i], summaries[i], lrs[i])
                batch.append("training.batch", payload)
            for name, values_digest in signals.write(ledger, offsets, total, order=order):
                batch.append(
                    "training.signals",
                    {"run": self.run_id, "name": name, "chunk": chunk},
                    blobs=[values_digest],
                )

    def _batch_payload(
        self, record: _Batch, chunk: int, offset: int, signals: dict[str, Any], lr: float | None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "chunk": chunk,
            "epoch": record.epoch,
            "batch": record.batch,
            "step": record.step,
            "dataset": record.dataset,
            "ids": [offset, len(record.indices)],
            "lr": lr,
            "loss": finite(record.loss),
        }
        if signals or record.scalars:
            payload["signals"] = {**signals, **{k: finite(v) for k, v in record.scalars.items()}}
        return payload

    # ------------------------------------------------------------------ checkpoints
    def checkpoint(self, *, reason: str = "explicit") -> str:
        """Save the model's weights as a blob and record their digest; return the checkpoint id."""
        from rowtrail.training._torchio import serialize_state

        self._check_live("checkpoint")
        if self.model is None:
            raise StateError(
                f"checkpoint of run {self.name!r} needs a model; pass model= to training_run()"
            )
        self.flush(wait=True)
        digest = self.ws.ledger.put_blob(serialize_state(self.model.state_dict()))
        checkpoint_id = f"{self.run_id}:{len(self.checkpoints)}"
        extra: dict[str, Any] = {}
        blobs = [digest]
        if self._replay is not None:
            extra, more = self._replay.checkpoint_extra()
            blobs = sorted({*blobs, *more})
        payload = {
            **extra,
            "run": self.run_id,
            "checkpoint": checkpoint_id,
            "model_digest": digest,
            "step": self.n_steps,
            "epoch": self.epochs.get("train", 0),
            "train_batches": self.batches.get("train", 0),
            "reason": reason,
        }
        index = self.ws.ledger.append("training.checkpoint", payload, blobs=blobs)
        payload["ledger_index"] = index
        self.checkpoints.append(payload)
        return checkpoint_id

    def log_validation(self, loss: float) -> str | None:
        """Record an epoch's validation loss; under ``"val_curve"`` maybe checkpoint.

        Returns the id of the checkpoint saved, if any.
        """
        self._check_live("log_validation")
        value = finite(loss)
        if value is None:
            raise InvalidInputError(
                f"loss of TrainingRun.log_validation must be a finite number; got {loss!r}"
            )
        self.flush(wait=True)
        self.ws.ledger.append(
            "training.validation",
            {"run": self.run_id, "epoch": self.epochs.get("train", 0), "step": self.n_steps,
             "loss": value},
        )
        if self.checkpoint_policy != "val_curve" or self.model is None:
            return None
        best = self._val_best
        if best is None or value <= best * (1.0 - self.val_min_delta):
            self._val_best = value
            return self.checkpoint(reason="validation curve")
        return None

    # ------------------------------------------------------------------ replay
    def replayer(self) -> Any:
        """Return a :class:`~rowtrail.training._replay.Replayer` of this sealed run.

        Replay works on a deep copy of ``model``; the datasets and ``collate_fn`` are those
        of the loaders passed to :meth:`track`.
        """
        from rowtrail.training._replay import Replayer, check_replayable
        from rowtrail.training._replay_plan import plan_of_run

        check_replayable(self)
        recorder = self._replay
        if recorder is None:  # pragma: no cover - excluded by check_replayable
            raise StateError("run is not replayable")
        plan = plan_of_run(self)
        loaders = recorder.loaders
        datasets = {key: loaders[key].dataset for key in plan.row_ids}
        collate = {key: loaders[key].collate_fn for key in plan.row_ids}
        return Replayer(plan, self.model, datasets, recorder.loss_fn,
                        collate_fns=collate)

    def replay(
        self,
        *,
        weights: Any = None,
        until: int | None = None,
        from_checkpoint: str | None = None,
        verify: bool = True,
    ) -> Any:
        """Re-execute this sealed replayable run; return a ``ReplayResult``.

        Without ``weights`` the final weights are reproduced bit for bit on CPU, and a
        divergence raises :class:`~rowtrail.errors.ReplayMismatchError` naming the first
        step whose weights differ from the recorded digest. See
        :meth:`rowtrail.training._replay.Replayer.replay` for the parameters and
        :mod:`rowtrail.training._replay` for the contract and how weights enter the loss.
        """
        return self.replayer().replay(weights=weights, until=until,
                                      from_checkpoint=from_checkpoint, verify=verify)

    # ------------------------------------------------------------------ seal
    def finish(self, *, status: str = "completed", sign: bool = True) -> int:
        """Seal the run: write ``training.completed`` and return its ledger index."""
        from rowtrail.training._seal import seal_payload

        self._check_live("finish")
        leave_run(self)
        self._end_batch()
        self.flush()
        for hook in self._hooks:
            hook.remove()
        self._writer.close()
        if self._replay is not None and status == "completed":
            self.replay_index = self._replay.write()
        payload, blobs = seal_payload(self, status=status, code=code_info(self.code_path),
                                      environment=environment_info())
        index: int = self.ws.ledger.append("training.completed", payload, blobs=blobs)
        self.sealed_index = index
        self.finished = True
        if sign:
            self.ws.ledger.checkpoint()
        return index
