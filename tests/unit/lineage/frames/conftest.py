"""Traced pandas / polars frames over in-memory tables (no workspace: unit tests stay pure).

Every table has a ground-truth column ``gt_<name>`` holding ``index * 1000 + row``. Ordinary
pandas/polars operations carry that column along (joins keep both sides', a group-by collects
them with a plain, untraced ``set`` aggregation), so each test can compare the lineage of every
result row with the hand-carried truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pytest

from rowtrail.ids import make_row_ids
from rowtrail.lineage import SourceInfo
from rowtrail.lineage.frames._core import IDS, FrameState, RowLineage, fresh_name, record_op


class Tables:
    """Factory of traced tables with ground-truth columns, and the truth checker."""

    def __init__(self) -> None:
        self.names: dict[int, str] = {}

    def _info(self, name: str, n_rows: int) -> SourceInfo:
        index = len(self.names) + 1
        self.names[index] = name
        return SourceInfo(
            name=name,
            digest="sha256:" + "0" * 64,
            format="other",
            schema={},
            n_rows=n_rows,
            index=index,
            version=1,
        )

    def _state(self, info: SourceInfo) -> FrameState:
        return FrameState(
            node=record_op("track", "source", [], {"source": info.name}),
            known={info.index: info},
            workspace=None,
        )

    def pandas(self, name: str, columns: dict[str, list[Any]]) -> Any:
        import pandas as pd

        from rowtrail.lineage.frames._pandas import TracedDataFrame, attach

        n = len(next(iter(columns.values())))
        info = self._info(name, n)
        frame = pd.DataFrame({**columns, f"gt_{name}": info.index * 1000 + np.arange(n)})
        return attach(
            TracedDataFrame(frame), RowLineage.from_ids(info.row_ids()), self._state(info)
        )

    def polars(self, name: str, columns: dict[str, list[Any]], *, lazy: bool = True) -> Any:
        import polars as pl

        from rowtrail.lineage.frames._polars import wrap

        n = len(next(iter(columns.values())))
        info = self._info(name, n)
        hidden = fresh_name()
        frame = pl.DataFrame(
            {
                **columns,
                f"gt_{name}": info.index * 1000 + np.arange(n),
                hidden: make_row_ids(info.index, n),
            }
        )
        return wrap(frame.lazy() if lazy else frame, ((hidden, IDS),), self._state(info))

    def pairs(self, truth: Iterable[Any]) -> list[tuple[str, int]]:
        """``(source, row)`` pairs of ground-truth ids (lists, scalars; NaN/None skipped)."""
        out: set[tuple[str, int]] = set()
        for value in truth:
            values = value if isinstance(value, list | set | tuple | np.ndarray) else [value]
            for g in values:
                if g is None or (isinstance(g, float) and np.isnan(g)):
                    continue
                out.add((self.names[int(g) // 1000], int(g) % 1000))
        return sorted(out)

    def check(self, view: Any, truth_rows: list[list[Any]]) -> None:
        """Assert that row ``i`` of ``view`` has exactly the source rows ``truth_rows[i]``."""
        assert view.n_rows == len(truth_rows)
        for i, truth in enumerate(truth_rows):
            assert view.rows_of(i).pairs() == self.pairs(truth), f"row {i}"


@pytest.fixture
def tables() -> Tables:
    return Tables()
