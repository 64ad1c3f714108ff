"""The training runs open in this context, so that a traced estimator's fit is recorded in one.

The lineage layer cannot import the training layer above it, so a run announces itself: a
``TrainingRun`` entered as a context manager calls :func:`enter_run` with itself and the
function that records an estimator fit in it (``rowtrail.training`` owns the event format),
and :func:`leave_run` when it is sealed. :func:`active_run` gives the innermost open run. The
stack is a ``ContextVar``, so threads and asyncio tasks see only the runs they opened.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FitRows", "FitRecorder", "active_run", "enter_run", "leave_run"]


@dataclass(frozen=True)
class FitRows:
    """The rows an estimator was fitted on, as the training trail records them.

    Attributes
    ----------
    row_ids : ndarray of int64
        One packed row id per sample (its first own source row).
    offsets, ids : ndarray of int64
        CSR of every own source row of each sample (joins, aggregations).
    aggregated : ndarray of int64
        Sorted ids among ``ids`` that entered through an aggregation.
    statistic : ndarray of int64
        Sorted ids of the rows fitted statistics applied to every sample were computed from.
    """

    row_ids: NDArray[np.int64]
    offsets: NDArray[np.int64]
    ids: NDArray[np.int64]
    aggregated: NDArray[np.int64]
    statistic: NDArray[np.int64]


#: ``recorder(run, estimator, X, y, rows)`` records a fitted final estimator in ``run`` and
#: returns what it recorded (the training layer's ``ConvexFit``, or ``None``).
FitRecorder = Callable[[Any, Any, Any, Any, FitRows], Any]

_runs: ContextVar[tuple[tuple[Any, FitRecorder], ...]] = ContextVar("rowtrail_runs", default=())


def enter_run(run: Any, recorder: FitRecorder) -> None:
    """Make ``run`` the innermost open run; fits are recorded with ``recorder``."""
    _runs.set((*_runs.get(), (run, recorder)))


def leave_run(run: Any) -> None:
    """Forget ``run`` (sealed); a no-op if it was never entered."""
    _runs.set(tuple(entry for entry in _runs.get() if entry[0] is not run))


def active_run() -> tuple[Any, FitRecorder] | None:
    """Return ``(run, recorder)`` of the innermost open run, or ``None``."""
    runs = _runs.get()
    return runs[-1] if runs else None
