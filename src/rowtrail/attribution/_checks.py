"""Argument checks shared by the attribution modules (they take ``object`` on purpose)."""

from __future__ import annotations

import numpy as np

__all__ = ["is_count", "is_real"]


def is_count(value: object, low: int = 0) -> bool:
    """Return whether ``value`` is an integer (not a bool) of at least ``low``."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= low


def is_real(value: object, low: float = 0.0, *, strict: bool = False, high: float = np.inf) -> bool:
    """Return whether ``value`` is a finite real number above ``low`` (and below ``high``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        return False
    number = float(value)
    above = number > low if strict else number >= low
    return bool(np.isfinite(number)) and above and number < high
