"""Type aliases shared across rowtrail."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
from numpy.typing import NDArray

__all__ = ["IdArray", "JSONScalar", "JSONValue"]

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
IdArray: TypeAlias = NDArray[np.int64]
