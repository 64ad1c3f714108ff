"""A DataLoader seen through a run: iterating it records the indices of every batch it yields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from rowtrail._optional import require
from rowtrail.training._torchio import recording_loader

if TYPE_CHECKING:
    from rowtrail.training._run import TrainingRun

__all__ = ["TrackedLoader"]


class TrackedLoader:
    """A DataLoader seen through a run: iterating it records every batch it yields."""

    def __init__(
        self,
        run: TrainingRun,
        loader: Any,
        *,
        role: str,
        dataset_key: int,
        capture_rng: bool = False,
    ) -> None:
        self.run = run
        self.loader = loader
        self.role = role
        self.dataset_key = dataset_key
        self._clone, self._recorder = recording_loader(loader)
        self._capture = capture_rng
        if capture_rng:
            torch = require("torch", extra="torch", feature="replayable training runs")
            self._recorder.capture = torch.get_rng_state

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        run, role = self.run, self.role
        epoch = run._start_epoch(role)
        self._recorder.queue.clear()
        queue = self._recorder.queue
        exhausted = False
        replay = run._replay if self._capture else None
        states = self._recorder.states
        states.clear()
        try:
            iterator = iter(self._clone)
            while True:
                if replay is not None:
                    replay.before_draw()
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                drawn = states.popleft() if replay is not None else None
                run._begin_batch(role, epoch, self.dataset_key, queue.popleft(), drawn=drawn)
                yield batch
            exhausted = True
        finally:
            run._end_batch()
            run._end_epoch(role, epoch, complete=exhausted)
