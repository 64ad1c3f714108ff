"""What a replayable run records, and the run-time checks of the replay contract.

A :class:`ReplayRecorder` rides along a :class:`~rowtrail.training.TrainingRun` opened with
``replayable=True``. It records, besides the batch trail the run keeps anyway:

- the initial weights (a blob of the state dict; its digest), the optimizer class and the
  hyper-parameters of each parameter group (parameters named as in ``named_parameters``),
  every later change of a hyper-parameter (learning-rate and momentum schedules) at the step
  it first applies to, the thread count and torch version;
- the global torch RNG state at the moment each train batch's indices are drawn, stored only
  when it differs from the state right before the draw was asked for (i.e. when something
  outside the batch's own work, such as a new loader iterator or a shuffling sampler's seed,
  drew random numbers); dropout and random augmentation in ``__getitem__`` then replay;
- the digest of the weights (state dict, buffers included) after every optimizer step, so
  that a replay names the first step that diverged;
- with each checkpoint, the optimizer's state (a blob), so that replay can resume from it.

Run-time checks raise :class:`~rowtrail.errors.StateError` naming the violation when the loop
does something replay cannot reproduce: an optimizer step with no batch drawn through
``run.track`` since the previous one, parameters or buffers changed between an optimizer step
and the next train batch (a manual edit, ``load_state_dict``, a validation forward in train
mode), parameters changed other than by ``optimizer.step()``, a hyper-parameter that is not a
JSON scalar (e.g. a tensor learning rate), a loader with worker processes.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, StateError, StorageError
from rowtrail.hashing import canonical_json, decode_canonical_json, sha256_digest
from rowtrail.training._torchio import deserialize_state, serialize_state

if TYPE_CHECKING:
    from rowtrail.training._run import TrainingRun

__all__ = [
    "ReplayRecorder",
    "decode_hyper",
    "decode_optimizer_state",
    "decode_rng_blob",
    "encode_hyper",
    "encode_optimizer_state",
    "optimizer_groups",
    "state_digest",
]

_OPT_MAGIC = b"RTOS\x01"
_RNG_MAGIC = b"RTRG\x01"


def state_digest(model: Any) -> str:
    """Return the digest of the model's state dict blob (the checkpoint/seal digest)."""
    return sha256_digest(serialize_state(model.state_dict()))


def encode_hyper(value: Any, *, key: str) -> Any:
    """Return a hyper-parameter as canonical-JSON data (tuples tagged so they come back)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple | list):
        items = [encode_hyper(v, key=key) for v in value]
        return {"tuple": items} if isinstance(value, tuple) else items
    raise StateError(
        f"optimizer hyper-parameter {key!r} must be a number, string, bool, None or a tuple "
        f"of them for replay; got {type(value).__name__}. Use a float (not a tensor) learning "
        "rate in a replayable run."
    )


def decode_hyper(value: Any) -> Any:
    """Inverse of :func:`encode_hyper`."""
    if isinstance(value, dict) and set(value) == {"tuple"}:
        return tuple(decode_hyper(v) for v in value["tuple"])
    if isinstance(value, list):
        return [decode_hyper(v) for v in value]
    return value


def _hypers(group: dict[str, Any]) -> dict[str, Any]:
    return {k: encode_hyper(v, key=k) for k, v in group.items() if k != "params"}


def optimizer_groups(optimizer: Any, model: Any) -> list[dict[str, Any]]:
    """Return each parameter group as ``{"params": [names], "hyper": {...}}``."""
    names = {id(p): n for n, p in model.named_parameters()}
    groups = []
    for position, group in enumerate(optimizer.param_groups):
        missing = [i for i, p in enumerate(group["params"]) if id(p) not in names]
        if missing:
            raise InvalidInputError(
                f"optimizer of training_run must only hold parameters of model for "
                f"replayable=True; param_groups[{position}] has {len(missing)} other tensor(s). "
                "Build the optimizer from model.parameters()."
            )
        groups.append({"params": [names[id(p)] for p in group["params"]],
                       "hyper": _hypers(group)})
    return groups


def encode_optimizer_state(optimizer: Any) -> bytes:
    """Serialise ``optimizer.state_dict()`` without pickle: JSON header + tensor blob."""
    torch = require("torch", extra="torch", feature="replayable training runs")
    full = optimizer.state_dict()
    tensors: dict[str, Any] = {}
    values: dict[str, dict[str, Any]] = {}
    for index, entry in full["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                values.setdefault(str(index), {})[key] = encode_hyper(value, key=key)
    groups = [{k: (v if k == "params" else encode_hyper(v, key=k)) for k, v in g.items()}
              for g in full["param_groups"]]
    head = canonical_json({"groups": groups, "values": values})
    return _OPT_MAGIC + struct.pack("<Q", len(head)) + head + serialize_state(tensors)


def decode_optimizer_state(blob: bytes) -> dict[str, Any]:
    """Inverse of :func:`encode_optimizer_state`: a dict for ``optimizer.load_state_dict``."""
    if not blob.startswith(_OPT_MAGIC):
        raise StorageError("blob is not a rowtrail optimizer-state blob (bad magic)")
    (size,) = struct.unpack_from("<Q", blob, len(_OPT_MAGIC))
    start = len(_OPT_MAGIC) + 8
    head = decode_canonical_json(blob[start : start + size])
    tensors = deserialize_state(blob[start + size :])
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = tensor
    for index, entry in head["values"].items():
        for key, value in entry.items():
            state.setdefault(int(index), {})[key] = decode_hyper(value)
    groups = [{k: (v if k == "params" else decode_hyper(v)) for k, v in g.items()}
              for g in head["groups"]]
    return {"state": state, "param_groups": groups}


def _encode_rng_blob(states: dict[int, bytes]) -> bytes:
    order = sorted(states)
    head = canonical_json({"batches": order, "sizes": [len(states[b]) for b in order]})
    return _RNG_MAGIC + struct.pack("<Q", len(head)) + head + b"".join(states[b] for b in order)


def decode_rng_blob(blob: bytes) -> dict[int, bytes]:
    """Return ``{train batch number: torch RNG state bytes}`` from a replay RNG blob."""
    if not blob.startswith(_RNG_MAGIC):
        raise StorageError("blob is not a rowtrail RNG-state blob (bad magic)")
    (size,) = struct.unpack_from("<Q", blob, len(_RNG_MAGIC))
    start = len(_RNG_MAGIC) + 8
    head = decode_canonical_json(blob[start : start + size])
    out: dict[int, bytes] = {}
    offset = start + size
    for batch, length in zip(head["batches"], head["sizes"], strict=True):
        out[int(batch)] = blob[offset : offset + length]
        offset += length
    return out


@dataclass
class RecordedBatch:
    """One train batch as replay needs it: dataset key, positions, optimizer step, mode."""

    dataset: int
    positions: NDArray[np.int64]
    step: int
    training: bool


class ReplayRecorder:
    """Records what replay needs and checks the contract while a run trains (see module)."""

    def __init__(
        self, run: TrainingRun, loss_fn: Callable[..., Any] | None, scheduler: Any = None
    ) -> None:
        torch = require("torch", extra="torch", feature="replayable training runs")
        if run.model is None or run.optimizer is None or not callable(loss_fn):
            raise InvalidInputError(
                "model, optimizer and loss_fn of training_run must all be given for "
                f"replayable=True; got model={type(run.model).__name__}, "
                f"optimizer={type(run.optimizer).__name__}, loss_fn={loss_fn!r}. Pass the "
                "per-sample loss (output, target) -> tensor of shape (batch,)."
            )
        optimizer = run.optimizer
        if type(optimizer).__module__.split(".")[:2] != ["torch", "optim"]:
            raise InvalidInputError(
                f"optimizer of training_run must be a torch.optim optimizer for replayable=True;"
                f" got {type(optimizer).__module__}.{type(optimizer).__qualname__}."
            )
        if optimizer.state:
            raise InvalidInputError(
                "optimizer of training_run must be fresh (no state) for replayable=True; got "
                f"state for {len(optimizer.state)} parameter(s). Create the optimizer anew."
            )
        self.torch = torch
        self.run = run
        self.loss_fn = loss_fn
        self.scheduler = None if scheduler is None else type(scheduler).__qualname__
        self.initial_blob = serialize_state(run.model.state_dict())
        self.groups = optimizer_groups(optimizer, run.model)
        self.optimizer_class = type(optimizer).__qualname__
        self.threads = int(torch.get_num_threads())
        self.torch_version = str(torch.__version__)
        self.batches: list[RecordedBatch] = []
        self.rng: dict[int, bytes] = {}
        self.step_digests: list[str] = []
        self.hyper_changes: list[list[Any]] = []
        self._last = [g["hyper"] for g in self.groups]
        self.accumulation: int | None = None
        self.loaders: dict[int, Any] = {}
        self._in_step = 0
        self._force_rng = True
        self._before: Any = None
        self._after_step: tuple[int, ...] | None = self._versions(buffers=True)
        self._params_at: tuple[int, ...] = self._versions(buffers=False)

    # ------------------------------------------------------------------ helpers
    def _versions(self, *, buffers: bool) -> tuple[int, ...]:
        model = self.run.model
        tensors = list(model.parameters()) + (list(model.buffers()) if buffers else [])
        return tuple(int(t._version) for t in tensors)

    def check_loader(self, loader: Any, key: int) -> None:
        """Accept a train loader of a replayable run (single process, batched)."""
        if loader.num_workers != 0 or loader.batch_sampler is None:
            raise InvalidInputError(
                "loader of TrainingRun.track must have num_workers=0 and automatic batching "
                f"(batch_size set) in a replayable run; got num_workers={loader.num_workers}, "
                f"batch_size={loader.batch_size}. Worker processes draw random numbers replay "
                "cannot restore."
            )
        self.loaders[key] = loader

    # ------------------------------------------------------------------ batches
    def before_draw(self) -> None:
        """Note the RNG state before the loader is asked for the next train batch."""
        self._before = self.torch.get_rng_state()

    def on_batch(self, dataset: int, indices: Any, step: int, drawn: Any) -> None:
        """Record a train batch; ``drawn`` is the RNG state when its indices were drawn."""
        if self._after_step is not None and self._versions(buffers=True) != self._after_step:
            raise StateError(
                f"the model's parameters or buffers changed between optimizer step {step} and "
                "the next train batch, outside the recorded loop (a manual edit, "
                "load_state_dict, or a forward pass in train mode on untracked data); a "
                "replayable run cannot reproduce that. Use model.eval() for validation."
            )
        self._after_step = None
        number = len(self.batches)
        if drawn is not None and (
            self._force_rng or self._before is None or not self.torch.equal(drawn, self._before)
        ):
            self.rng[number] = drawn.numpy().tobytes()
        self._force_rng = False
        positions = np.fromiter((int(i) for i in indices), dtype=np.int64)
        self.batches.append(RecordedBatch(dataset, positions, step, bool(self.run.model.training)))
        self._in_step += 1

    # ------------------------------------------------------------------ optimizer steps
    def before_step(self, optimizer: Any, step: int) -> None:
        """Check the step is aligned with recorded batches; record changed hyper-parameters."""
        if self._in_step == 0:
            raise StateError(
                f"optimizer.step() (step {step}) was called with no train batch drawn through "
                "run.track(loader) since the previous step; a replayable run can only "
                "reproduce updates computed from recorded batches."
            )
        if self._versions(buffers=False) != self._params_at:
            raise StateError(
                f"the model's parameters changed before optimizer step {step} other than by "
                "optimizer.step() (a manual edit or load_state_dict); a replayable run cannot "
                "reproduce that."
            )
        if self.accumulation is None:
            self.accumulation = self._in_step
        for position, group in enumerate(optimizer.param_groups):
            hyper = _hypers(group)
            last = self._last[position]
            for key in sorted(hyper):
                if key not in last or hyper[key] != last[key]:
                    self.hyper_changes.append([step, position, key, hyper[key]])
            self._last[position] = hyper

    def after_step(self, step: int) -> None:
        """Record the weights digest after ``step`` and where the weights now stand."""
        self.step_digests.append(state_digest(self.run.model))
        self._in_step = 0
        self._after_step = self._versions(buffers=True)
        self._params_at = self._versions(buffers=False)

    # ------------------------------------------------------------------ checkpoints / seal
    def checkpoint_extra(self) -> tuple[dict[str, Any], list[str]]:
        """Return the replay fields of a checkpoint event and their blobs."""
        digest = self.run.ws.ledger.put_blob(encode_optimizer_state(self.run.optimizer))
        self._force_rng = True  # the next batch starts a resumable segment
        return {
            "optimizer_digest": digest,
            "resumable": self._in_step == 0,
            "replay_batches": len(self.batches),
        }, [digest]

    def write(self) -> int:
        """Append the ``training.replay`` event (before the seal); return its ledger index."""
        ledger = self.run.ws.ledger
        initial = ledger.put_blob(self.initial_blob)
        rng = ledger.put_blob(_encode_rng_blob(self.rng))
        steps = ledger.put_blob(canonical_json(self.step_digests))
        hyper = ledger.put_blob(canonical_json(self.hyper_changes))
        eval_batches = [i for i, b in enumerate(self.batches) if not b.training]
        payload = {
            "run": self.run.run_id,
            "initial_digest": initial,
            "rng_blob": rng,
            "steps_blob": steps,
            "hyper_blob": hyper,
            "optimizer": {"class": self.optimizer_class, "groups": self.groups},
            "loss": getattr(self.loss_fn, "__qualname__", type(self.loss_fn).__name__),
            "scheduler": self.scheduler,
            "threads": self.threads,
            "torch": self.torch_version,
            "accumulation": self.accumulation or 1,
            "n_steps": len(self.step_digests),
            "n_batches": len(self.batches),
            "eval_batches": eval_batches,
        }
        index: int = ledger.append(
            "training.replay", payload, blobs=sorted({initial, rng, steps, hyper})
        )
        return index
