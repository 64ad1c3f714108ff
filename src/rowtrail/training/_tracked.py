"""A DataLoader seen through a run: iterating it records the indices of every batch it yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rowtrail.training._torchio import recording_loader

if TYPE_CHECKING:
    from rowtrail.training._run import TrainingRun

__all__ = ["TrackedLoader"]


class TrackedLoader:
    """A DataLoader seen through a run: iterating it records every batch it yields."""

    def __init__(self, run: TrainingRun, loader: Any, *, role: str, dataset_key: int) -> None:
        self.run = run
        self.loader = loader
        self.role = role
        self.dataset_key = dataset_key
        self._clone, self._recorder = recording_loader(loader)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        run, role = self.run, self.role
        epoch = run._start_epoch(role)
        self._recorder.queue.clear()
        queue = self._recorder.queue
        exhausted = False
        try:
            for batch in self._clone:
                run._begin_batch(role, epoch, self.dataset_key, queue.popleft())
                yield batch
            exhausted = True
        finally:
            run._end_batch()
            run._end_epoch(role, epoch, complete=exhausted)
