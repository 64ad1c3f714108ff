"""Argument checks and small conversions used by :mod:`rowtrail.training._run`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import get_source

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace

__all__ = [
    "ROLES",
    "as_ints",
    "check_args",
    "check_role",
    "finite",
    "is_identifier",
    "sources_of",
]

ROLES = ("train", "validation", "test")
_POLICIES = (None, "val_curve")
_UNITS = ("epoch", "step")


def check_args(
    name: object, every: object, unit: object, policy: object, flush_every: object
) -> None:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(f"name of training_run must be a non-empty str; got {name!r}")
    if every is not None and (not isinstance(every, int) or isinstance(every, bool) or every < 1):
        raise InvalidInputError(
            f"checkpoint_every of training_run must be an int >= 1 or None; got {every!r}"
        )
    if unit not in _UNITS:
        raise InvalidInputError(
            f"checkpoint_unit of training_run must be one of {_UNITS}; got {unit!r}"
        )
    if policy not in _POLICIES:
        raise InvalidInputError(
            f"checkpoint_policy of training_run must be one of {_POLICIES}; got {policy!r}"
        )
    if not isinstance(flush_every, int) or flush_every < 1:
        raise InvalidInputError(
            f"flush_every of training_run must be an int >= 1; got {flush_every!r}"
        )


def is_identifier(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier()


def check_role(role: object, caller: str) -> None:
    if role not in ROLES:
        raise InvalidInputError(
            f"role of TrainingRun.{caller} must be one of {ROLES}; got {role!r}"
        )


def as_ints(indices: Any) -> Any:
    if type(indices) is list:  # what BatchSampler yields: the hot path, no copy
        return indices
    if hasattr(indices, "tolist"):
        return indices.tolist()
    return (int(i) for i in indices)


def finite(value: Any) -> float | None:
    """Return a finite float rounded to 7 significant digits (float32 precision), or None."""
    if value is None:
        return None
    number = float(value.item() if hasattr(value, "item") else value)
    return float(f"{number:.7g}") if math.isfinite(number) else None


def sources_of(ws: LineageWorkspace, ids: NDArray[np.int64]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for index in np.unique(ids >> ROW_BITS).tolist():
        try:
            info = get_source(ws, int(index))
        except UnknownSourceError:  # ids from outside the registry are recorded as such
            found.append({"source_index": int(index), "name": None, "digest": None})
            continue
        found.append({"source_index": info.index, "name": info.name, "digest": info.digest})
    return found
