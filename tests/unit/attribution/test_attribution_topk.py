from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rowtrail.attribution import (
    ScoreIndex,
    brute_force_top_k,
    load_feature_matrix,
    save_feature_matrix,
)
from rowtrail.errors import InvalidInputError
from rowtrail.ids import make_row_ids


def _index(
    tmp_path: Path, n: int = 5000, d: int = 12, dtype: str = "float32"
) -> tuple[ScoreIndex, np.ndarray, np.random.Generator]:
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(n, d)).astype(np.float32)
    ids = np.concatenate([make_row_ids(3, n // 2), make_row_ids(7, n - n // 2)])
    save_feature_matrix(tmp_path / "idx", matrix, ids, dtype=dtype)
    mm, row_ids, _ = load_feature_matrix(tmp_path / "idx")
    assert isinstance(mm, np.memmap)
    return ScoreIndex(mm, row_ids, chunk_rows=700), mm, rng


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_top_k_over_memmap_equals_brute_force(tmp_path: Path, dtype: str) -> None:
    index, mm, rng = _index(tmp_path, dtype=dtype)
    queries = rng.normal(size=(5, 12)).astype(np.float32)
    result = index.top_k(queries, k=25)
    full = queries @ np.asarray(mm, dtype=np.float32).T
    want_i, want_s = brute_force_top_k(full, 25)
    np.testing.assert_array_equal(result.indices, want_i)
    np.testing.assert_allclose(result.scores, want_s, rtol=1e-5)
    low_i, _ = brute_force_top_k(-full, 25)
    np.testing.assert_array_equal(result.bottom_indices, low_i)
    assert np.all(np.diff(result.scores, axis=1) <= 0)


def test_totals_per_source_match_brute_force(tmp_path: Path) -> None:
    index, mm, rng = _index(tmp_path)
    q = rng.normal(size=(2, 12)).astype(np.float32)
    result = index.top_k(q, k=3)
    full = q @ np.asarray(mm).T
    assert result.source_indices.tolist() == [3, 7]
    half = mm.shape[0] // 2
    np.testing.assert_allclose(
        result.support[:, 0], np.maximum(full[:, :half], 0).sum(1), rtol=1e-4
    )
    np.testing.assert_allclose(result.oppose[:, 1], np.minimum(full[:, half:], 0).sum(1), rtol=1e-4)
    assert index.samples_per_source().tolist() == [half, mm.shape[0] - half]


def test_k_larger_than_n_returns_everything() -> None:
    index = ScoreIndex(np.eye(3, dtype=np.float32))
    result = index.top_k(np.array([1.0, 3.0, 2.0], np.float32), k=10)
    assert result.indices.tolist() == [[1, 2, 0]]
    assert result.bottom_indices.tolist() == [[0, 2, 1]]


def test_scores_match_matmul(tmp_path: Path) -> None:
    index, mm, rng = _index(tmp_path, n=1500)
    q = rng.normal(size=(3, 12)).astype(np.float32)
    np.testing.assert_allclose(index.scores(q), q @ np.asarray(mm).T, rtol=1e-5, atol=1e-5)


def test_bad_queries_and_parameters() -> None:
    index = ScoreIndex(np.ones((4, 2), np.float32))
    with pytest.raises(InvalidInputError, match=r"queries of ScoreIndex.top_k must have shape"):
        index.top_k(np.ones((1, 3)), k=2)
    with pytest.raises(InvalidInputError, match=r"k of ScoreIndex\.top_k"):
        index.top_k(np.ones(2), k=0)
    with pytest.raises(InvalidInputError, match="row_ids of ScoreIndex"):
        ScoreIndex(np.ones((4, 2)), np.arange(3))
    with pytest.raises(InvalidInputError, match="matrix of ScoreIndex"):
        ScoreIndex(np.ones(4))
    with pytest.raises(InvalidInputError, match="dtype of save_feature_matrix"):
        save_feature_matrix("unused", np.ones((2, 2)), np.arange(2), dtype="int8")
