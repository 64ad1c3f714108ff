"""A single background thread that writes a run's chunks, off the training loop's path.

Encoding a chunk, hashing it, the blob's fsync and the ledger's group commit take tens of
milliseconds; done inline at every epoch end they cost several percent of a short epoch. The
run hands each chunk to this writer (FIFO, one thread, so chunks keep their order) and waits
for it only where order matters to the caller: checkpoints, validation records and the seal.
An error in the writer is re-raised in the training thread at the next submit or drain.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

__all__ = ["BackgroundWriter"]


class BackgroundWriter:
    """Runs submitted jobs in order on one daemon thread."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._error is None:
                    job()
            except BaseException as exc:  # handed to the training thread
                self._error = exc
            finally:
                self._jobs.task_done()

    def _raise_pending(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; raise an error a previous job ended with."""
        self._raise_pending()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait until every queued job has run; raise the first error one ended with."""
        self._jobs.join()
        self._raise_pending()

    def close(self) -> None:
        """Drain, then stop the thread."""
        try:
            self.drain()
        finally:
            self._jobs.put(None)
            self._thread.join()
