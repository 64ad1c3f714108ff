"""Custom per-sample signals (per-sample loss, attention weights, ...) logged during a run.

Per-sample values of one flush are stored as one little-endian float32 blob per signal,
aligned with the flush's positions blob (NaN where a batch did not log the signal); each batch
event carries a summary (mean, min, max) so curves can be drawn without reading blobs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError

__all__ = ["SignalBuffer", "check_signal", "decode_signal", "scalar_of"]


def scalar_of(values: Any) -> float | None:
    """Return ``values`` as a float when it is a scalar (0-d), else ``None``."""
    if isinstance(values, int | float):
        return float(values)
    shape = getattr(values, "shape", None)
    if shape is not None and len(shape) == 0:
        return float(values.item())
    return None


def check_signal(name: str, values: Any, batch_size: int) -> Any:
    """Return per-sample ``values`` detached, or raise unless there is one per sample."""
    length = int(values.shape[0]) if hasattr(values, "shape") else len(values)
    if length != batch_size:
        raise InvalidInputError(
            f"values of TrainingRun.log_signal must have one value per sample of the batch "
            f"({batch_size}) or be a scalar; got {length} values for {name!r}"
        )
    return values.detach() if hasattr(values, "detach") else values


def _to_numpy(values: Any) -> NDArray[np.float32]:
    if hasattr(values, "detach"):
        values = values.detach().to("cpu").numpy()
    return np.asarray(values, dtype=np.float32).reshape(-1)


class SignalBuffer:
    """Per-sample signal values of the batches pending in a run, keyed by signal name."""

    def __init__(self) -> None:
        self._values: dict[str, dict[int, Any]] = {}

    def add(self, name: str, batch_slot: int, values: Any) -> None:
        """Keep one batch's values (checked by :func:`check_signal`; converted at write)."""
        self._values.setdefault(name, {})[batch_slot] = values

    def summaries(self, offsets: list[int], n_batches: int) -> list[dict[str, Any]]:
        """Return, for each pending batch, ``{name: {"mean", "min", "max"}}``."""
        result: list[dict[str, Any]] = [{} for _ in range(n_batches)]
        for name, by_slot in self._values.items():
            for slot, values in by_slot.items():
                array = _to_numpy(values)
                by_slot[slot] = array
                finite = array[np.isfinite(array)]
                if finite.size:
                    result[slot][name] = {
                        "mean": _round(float(finite.mean())),
                        "min": _round(float(finite.min())),
                        "max": _round(float(finite.max())),
                    }
        return result

    def write(
        self, ledger: Any, offsets: list[int], total: int, *, order: Any = None
    ) -> list[tuple[str, str]]:
        """Store one float32 blob per signal; clear the buffer; return ``(name, digest)``.

        ``order`` reorders the values like the chunk's ids were (``batch_order="set"``).
        """
        written = []
        for name, by_slot in sorted(self._values.items()):
            column = np.full(total, np.nan, dtype="<f4")
            for slot, values in by_slot.items():
                column[offsets[slot] : offsets[slot + 1]] = _to_numpy(values)
            if order is not None:
                column = column[order]
            written.append((name, ledger.put_blob(column.tobytes())))
        self._values = {}
        return written


def decode_signal(blob: bytes) -> NDArray[np.float32]:
    """Return the float32 values of a signal blob."""
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _round(value: float) -> float | None:
    return float(np.float32(value)) if math.isfinite(value) else None
