from __future__ import annotations

import numpy as np
import pytest

from rowtrail.attribution import RowMapLineage, linear_query_features
from rowtrail.errors import InvalidInputError
from rowtrail.ids import row_id
from rowtrail.lineage import OpInfo, SourceRows, StatisticsDependency


class ListLineage:
    """A SampleLineage over plain lists (what rt.lineage views provide)."""

    def __init__(self, rows: list[list[int]]) -> None:
        self.rows = rows

    def row_ids(self, i: int) -> np.ndarray:
        return np.asarray(self.rows[i], dtype=np.int64)

    def ops(self) -> list[OpInfo]:
        from datetime import UTC, datetime

        return [OpInfo("merge", "join", {}, "x.py:1", datetime(2026, 1, 1, tzinfo=UTC))]

    def statistics(self) -> list[StatisticsDependency]:
        return [StatisticsDependency("scaler", "n1", SourceRows({"a.csv": [0, 1, 2]}))]


def test_from_view_take_and_summaries() -> None:
    rows = [
        [row_id(1, 0), row_id(2, 5)],
        [row_id(1, 1)],
        [row_id(1, 2), row_id(2, 6), row_id(2, 7)],
    ]
    lineage = RowMapLineage.from_view(ListLineage(rows), 3)
    assert lineage.n_samples == 3
    assert lineage.row_ids(2).tolist() == rows[2]
    taken = lineage.take([2, 0])
    assert taken.row_ids(0).tolist() == rows[2]
    assert taken.row_ids(1).tolist() == rows[0]
    assert taken.ops()[0]["name"] == "merge"
    assert taken.statistics() == [{"op": "scaler", "location": "", "fitted_on_rows": {"a.csv": 3}}]
    assert lineage.take([]).n_samples == 0
    with pytest.raises(InvalidInputError, match=r"positions of RowMapLineage\.take"):
        lineage.take([3])
    with pytest.raises(InvalidInputError, match=r"i of RowMapLineage\.row_ids"):
        lineage.row_ids(-1)
    with pytest.raises(InvalidInputError, match="offsets of RowMapLineage"):
        RowMapLineage([0, 2], [1])


def test_query_features_explain_the_requested_class() -> None:
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    coef = np.array([1.0, 0.0])
    predicted = linear_query_features(x, coef)
    np.testing.assert_array_equal(predicted.grads, [[1.0, 2.0], [1.0, -0.5]])
    default = linear_query_features(x, coef, target=1)
    np.testing.assert_array_equal(default.grads, x)
    assert default.p_correct is not None
    assert default.p_correct[1] < 0.5
    with pytest.raises(InvalidInputError, match="target of linear_query_features"):
        linear_query_features(x, coef, target=2)
