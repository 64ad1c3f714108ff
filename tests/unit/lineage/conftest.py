"""Traced arrays over in-memory sources (no workspace: unit tests stay pure).

Column 0 of every source holds the hand-carried ground truth ``index * 1_000_000 + row``, so any op
that moves whole rows carries it along and tests can compare lineage with it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from rowtrail.lineage import SourceInfo, TracedArray, lineage
from rowtrail.lineage._array import wrap
from rowtrail.lineage._node import reset_fallback_warnings
from rowtrail.lineage._track import source_node


class Sources:
    """Factory of traced sources with a ground-truth id column."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def make(self, name: str, n_rows: int, n_cols: int = 3, *, seed: int = 0) -> TracedArray:
        index = len(self.names) + 1
        self.names[index] = name
        rng = np.random.default_rng(seed + index)
        data = rng.normal(size=(n_rows, n_cols))
        data[:, 0] = index * 1_000_000 + np.arange(n_rows)
        info = SourceInfo(
            name=name,
            digest="sha256:" + "0" * 64,
            format="numpy",
            schema={},
            n_rows=n_rows,
            index=index,
            version=1,
        )
        return wrap(data, source_node(info, None))

    def pairs(self, global_id: float) -> list[tuple[str, int]]:
        """Return the one true ``(source, row)`` of a ground-truth id."""
        g = int(global_id)
        return [(self.names[g // 1_000_000], g % 1_000_000)]

    def assert_exact(self, out: Any, truth_ids: np.ndarray | None = None) -> None:
        """Every row's lineage is exactly its true source row (precision and soundness)."""
        ids = np.asarray(out)[:, 0] if truth_ids is None else truth_ids
        view = lineage(out)
        assert view.n_rows == len(ids)
        for i, g in enumerate(ids):
            assert view.rows_of(i).pairs() == self.pairs(g), f"row {i}"


@pytest.fixture
def sources() -> Sources:
    reset_fallback_warnings()
    return Sources()
