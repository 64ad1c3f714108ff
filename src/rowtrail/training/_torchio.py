"""PyTorch adapters: capture the indices a DataLoader's sampler draws; serialise weights.

**Batch capture.** A DataLoader asks its *index sampler* (``batch_sampler``, or ``sampler``
when automatic batching is off) for the next batch's indices in the main process, also with
``num_workers > 0``, and yields batches in that order when ``in_order`` is true (the default).
:func:`recording_loader` returns a shallow copy of the user's loader whose index sampler is
wrapped by :class:`RecordingSampler`, which appends each drawn index list to a FIFO queue;
the trail pops one entry per batch it yields. The user's loader, sampler and generator are
shared, not copied, so the random stream is exactly the one the unwrapped loop would draw
(``shuffle=True``, ``WeightedRandomSampler``, custom batch samplers, worker prefetching).

**Weights.** :func:`serialize_state` writes a state dict as a canonical byte string (a
canonical-JSON header listing ``name, dtype, shape, offset, nbytes`` sorted by name, then the
raw tensor bytes), so the SHA-256 of the blob *is* the model digest and loading it needs no
pickle.
"""

from __future__ import annotations

import copy
import struct
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, StorageError
from rowtrail.hashing import canonical_json, decode_canonical_json

if TYPE_CHECKING:
    import torch

__all__ = ["RecordingSampler", "deserialize_state", "recording_loader", "serialize_state"]

_STATE_MAGIC = b"RTSD\x01"


class RecordingSampler:
    """Wraps an index sampler; every index list it yields is also appended to ``queue``."""

    def __init__(self, inner: Iterable[Any], *, batched: bool) -> None:
        self.inner = inner
        self.batched = batched
        self.queue: deque[Any] = deque()
        # With ``capture`` set (replayable runs), the global torch RNG state at each draw is
        # appended to ``states``: random augmentation in ``__getitem__`` starts from it.
        self.capture: Callable[[], Any] | None = None
        self.states: deque[Any] = deque()

    def __iter__(self) -> Iterator[Any]:
        queue = self.queue  # bound now: a new epoch installs a new queue before iterating
        if self.batched:
            for indices in self.inner:
                if self.capture is not None:
                    self.states.append(self.capture())
                queue.append(indices)
                yield indices
        else:
            for index in self.inner:
                queue.append((index,))
                yield index

    def __len__(self) -> int:
        return len(self.inner)  # type: ignore[arg-type]


def recording_loader(loader: Any) -> tuple[Any, RecordingSampler]:
    """Return a shallow copy of ``loader`` drawing through a :class:`RecordingSampler`."""
    torch = require("torch", extra="torch", feature="TrainingRun.track()")
    if not isinstance(loader, torch.utils.data.DataLoader):
        raise InvalidInputError(
            f"loader of TrainingRun.track must be a torch.utils.data.DataLoader; "
            f"got {type(loader).__name__}. Wrap your dataset in a DataLoader."
        )
    if isinstance(loader.dataset, torch.utils.data.IterableDataset):
        raise InvalidInputError(
            "loader of TrainingRun.track must read a map-style dataset (indices come from its "
            "sampler); got an IterableDataset. Use a map-style Dataset, or record ids yourself "
            "with TrainingRun.log_split()."
        )
    if loader.num_workers > 0 and getattr(loader, "in_order", True) is False:
        raise InvalidInputError(
            "loader of TrainingRun.track must yield batches in order (in_order=True) when "
            "num_workers > 0; got in_order=False. Batches out of order cannot be matched to "
            "the indices the sampler drew."
        )
    clone = copy.copy(loader)
    batched = loader.batch_sampler is not None
    inner = loader.batch_sampler if batched else loader.sampler
    recorder = RecordingSampler(inner, batched=batched)
    # DataLoader forbids setting these after __init__; the clone is ours, so bypass the guard.
    object.__setattr__(clone, "batch_sampler" if batched else "sampler", recorder)
    object.__setattr__(clone, "_iterator", None)
    return clone, recorder


def serialize_state(state: Mapping[str, torch.Tensor]) -> bytes:
    """Serialise a state dict canonically (sorted names, raw bytes, no pickle)."""
    torch = require("torch", extra="torch", feature="TrainingRun.checkpoint()")
    header: list[list[Any]] = []
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            continue  # extra state (e.g. Python objects) is not part of the weights
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        data = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
        header.append([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape), offset])
        chunks.append(data)
        offset += len(data)
    head = canonical_json(header)
    return _STATE_MAGIC + struct.pack("<Q", len(head)) + head + b"".join(chunks)


def deserialize_state(blob: bytes) -> dict[str, torch.Tensor]:
    """Inverse of :func:`serialize_state`."""
    torch = require("torch", extra="torch", feature="load_checkpoint()")
    if not blob.startswith(_STATE_MAGIC):
        raise StorageError("blob is not a rowtrail weights blob (bad magic)")
    start = len(_STATE_MAGIC) + 8
    (size,) = struct.unpack_from("<Q", blob, len(_STATE_MAGIC))
    header = decode_canonical_json(blob[start : start + size])
    body = bytearray(blob[start + size :])
    state: dict[str, Any] = {}
    for position, (name, dtype_name, shape, offset) in enumerate(header):
        end = header[position + 1][3] if position + 1 < len(header) else len(body)
        dtype = getattr(torch, dtype_name)
        raw = torch.frombuffer(body[offset:end], dtype=torch.uint8) if end > offset else None
        if raw is None:
            state[name] = torch.zeros(shape, dtype=dtype)
        else:
            state[name] = raw.view(dtype).reshape(shape).clone()
    return state
