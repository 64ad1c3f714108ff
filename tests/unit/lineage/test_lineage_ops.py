"""Row maps of every op family against the hand-carried ground-truth id column."""

# ruff: noqa: N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

import numpy as np
import pytest

from rowtrail.errors import (
    InvalidInputError,
    LineageError,
    LineageFallbackWarning,
    UnknownSourceError,
)
from rowtrail.lineage import ArrayLineage, LineageView, TracedArray, lineage

from .conftest import Sources


def test_seed_example_runs_unchanged_and_is_exact(sources: Sources) -> None:
    X = sources.make("credit", 50, 5)
    X_norm = (X - X.mean(axis=0)) / X.std(axis=0)
    X_filt = X_norm[X_norm[:, 3] > 0]
    plain = np.asarray(X)
    expected_rows = np.flatnonzero(((plain - plain.mean(0)) / plain.std(0))[:, 3] > 0)
    assert isinstance(X_filt, TracedArray)
    np.testing.assert_allclose(
        np.asarray(X_filt), ((plain - plain.mean(0)) / plain.std(0))[expected_rows]
    )
    view = lineage(X_filt)
    assert view.sources() == {"credit": expected_rows.tolist()}
    for i, row in enumerate(expected_rows):
        assert view.rows_of(i).pairs() == [("credit", int(row))]
    stats = view.statistics()
    assert [s.op for s in stats] == ["mean", "std"]
    assert all(s.fitted_on["credit"] == list(range(50)) for s in stats)


def test_elementwise_and_broadcast_keep_rows(sources: Sources) -> None:
    X = sources.make("a", 20)
    Y = np.tanh(X * 2 + 1) - np.sqrt(np.abs(X)) + X[0:1]
    sources.assert_exact(Y, np.asarray(X)[:, 0])
    assert [s.fitted_on.pairs() for s in lineage(Y).statistics()] == [[("a", 0)]]


def test_boolean_mask_is_copied_so_later_mutation_changes_nothing(sources: Sources) -> None:
    X = sources.make("a", 30)
    mask = np.asarray(X)[:, 1] > 0
    Y = X[mask]
    mask[:] = ~mask
    sources.assert_exact(Y)


@pytest.mark.parametrize(
    "key",
    [np.array([3, -1, 3, 0]), [5, 2], slice(None, None, -2), slice(3, 17, 4), 7],
    ids=["int-array-negative-repeat", "list", "negative-step", "strided", "int"],
)
def test_integer_and_slice_indexing(sources: Sources, key: object) -> None:
    X = sources.make("a", 20)
    out = X[key]
    if np.ndim(out) == 1:  # X[7]: every element comes from row 7
        assert lineage(out).sources() == {"a": [7]}
    else:
        sources.assert_exact(out)


def test_take_sort_and_argsort_reorders(sources: Sources) -> None:
    X = sources.make("a", 25)
    sources.assert_exact(X[np.argsort(X[:, 1])])
    sources.assert_exact(np.take(X, [4, 1, 1], axis=0))
    sources.assert_exact(X.take(np.array([2, 0]), axis=0))
    column = X[:, 0]
    order = np.sort(column[::-1])
    truth = np.sort(np.asarray(column))
    view = lineage(order)
    assert [view.rows_of(i).pairs() for i in range(5)] == [sources.pairs(g) for g in truth[:5]]


def test_concatenate_and_vstack_of_three_sources(sources: Sources) -> None:
    A, B, C = sources.make("a", 4), sources.make("b", 3), sources.make("c", 5)
    sources.assert_exact(np.concatenate([A, B[::-1], C]))
    sources.assert_exact(np.vstack([C[:2], A]))
    assert lineage(np.vstack([A, B])).sources() == {"a": [0, 1, 2, 3], "b": [0, 1, 2]}


def test_hstack_unites_the_rows_side_by_side(sources: Sources) -> None:
    A, B = sources.make("a", 4), sources.make("b", 4)
    H = np.hstack([A, B[::-1]])
    view = lineage(H)
    assert view.rows_of(0).pairs() == [("a", 0), ("b", 3)]
    assert dict(view.rows_of(3)) == {"a": [3], "b": [0]}


def test_where_unique_matmul_reshape_split(sources: Sources) -> None:
    X = sources.make("a", 12, 4)
    sources.assert_exact(np.where(X > 0, X, 0.0), np.asarray(X)[:, 0])
    sources.assert_exact(X @ np.ones((4, 2)), np.asarray(X)[:, 0])
    sources.assert_exact(X.reshape(12, 2, 2).reshape(12, 4))
    for piece in np.array_split(X, 5):
        sources.assert_exact(piece)
    rows = np.where(X[:, 1] > 0)[0]
    sources.assert_exact(X[rows])
    flat = X[:3].reshape(-1)
    assert lineage(flat).rows_of(5).pairs() == [("a", 1)]


def test_unique_rows_collect_every_duplicate(sources: Sources) -> None:
    X = sources.make("a", 6, 2)
    keys = np.floor(X[:, 1:2] * 0) + np.array([[1], [0], [1], [2], [0], [1]])
    values = np.unique(keys, axis=0)
    view = lineage(values)
    assert np.asarray(values).ravel().tolist() == [0, 1, 2]
    assert [view.rows_of(i)["a"] for i in range(3)] == [[1, 4], [0, 2, 5], [3]]
    assert view.derived_from("a", 5).tolist() == [1]


def test_reductions_along_rows_depend_on_all_rows_along_columns_on_one(sources: Sources) -> None:
    X = sources.make("a", 8)
    assert lineage(X.sum(axis=0)).rows_of(1)["a"] == list(range(8))
    sources.assert_exact(X.sum(axis=1).reshape(-1, 1), np.asarray(X)[:, 0])
    assert lineage(X.T).rows_of(0)["a"] == list(range(8))


def test_unknown_op_falls_back_soundly_and_says_so(sources: Sources) -> None:
    X = sources.make("a", 6)
    with pytest.warns(LineageFallbackWarning, match="diff"):
        D = np.diff(X, axis=0)
    view = lineage(D)
    assert view.rows_of(0)["a"] == list(range(6))
    assert [op.name for op in view.fallbacks()] == ["diff"]
    assert view.ops()[-1].fallback


def test_setitem_is_recorded_as_an_op(sources: Sources) -> None:
    X = sources.make("a", 10)
    before = lineage(X)
    X[X[:, 1] > 0, 2] = 0.0
    after = lineage(X)
    assert [op.name for op in after.ops()][-1] == "setitem"
    assert after.ops()[-1].kind == "write"
    assert before.ops()[-1].name == "source"  # a view is a snapshot of the array's state
    sources.assert_exact(X)


def test_plain_numpy_and_untraced_code_get_plain_arrays(sources: Sources) -> None:
    X = sources.make("a", 5)
    assert type(np.asarray(X)) is np.ndarray
    assert np.asarray(X) is np.asarray(X)
    assert float(X[0, 1]) == float(np.asarray(X)[0, 1])
    assert f"{X.mean():.3f}" == f"{np.asarray(X).mean():.3f}"
    assert (len(X), X.shape) == (5, (5, 3))
    assert X.dtype == np.float64


def test_ops_are_oldest_first_with_location_and_ancestors_nearest_first(sources: Sources) -> None:
    X = sources.make("a", 5)
    Y = (X + 1)[1:]
    ops = lineage(Y).ops()
    assert [op.name for op in ops] == ["source", "add", "getitem[slice]"]
    assert ops[1].location.startswith(__file__)
    assert ops[1].created_at <= ops[2].created_at
    ancestors = lineage(Y).ancestors()
    assert [a.name for a in ancestors] == ["add", "source"]
    assert [a.depth for a in ancestors] == [1, 2]
    assert len(lineage(Y).ancestors(depth=1)) == 1


def test_derived_from_finds_every_reached_row(sources: Sources) -> None:
    X = sources.make("a", 10)
    Y = np.concatenate([X[[3, 1, 3]], X[::-1]])
    assert lineage(Y).derived_from("a", 3).tolist() == [0, 2, 9]


def test_queries_reject_bad_input_with_typed_errors(sources: Sources) -> None:
    X = sources.make("a", 4)
    view = lineage(X[1:])
    with pytest.raises(InvalidInputError, match=r"i of rows_of must be a row number in \[0, 3\)"):
        view.rows_of(3)
    with pytest.raises(UnknownSourceError, match="must be one of \\['a'\\]"):
        view.derived_from("nope", 0)
    with pytest.raises(InvalidInputError, match="row of derived_from"):
        view.derived_from("a", 4)
    with pytest.raises(InvalidInputError, match="depth of ancestors"):
        view.ancestors(depth=-1)
    with pytest.raises(LineageError, match="carries no lineage"):
        lineage(np.ones(3))


def test_rowtrail_lineage_is_both_the_package_and_the_query(sources: Sources) -> None:
    import rowtrail
    import rowtrail.lineage as package

    X = sources.make("a", 3)
    assert package.__name__ == "rowtrail.lineage"
    view = rowtrail.lineage(X)
    assert isinstance(view, ArrayLineage)
    assert isinstance(view, LineageView)
    assert rowtrail.lineage(view) is view


def test_stacks_place_rows_or_whole_inputs(sources: Sources) -> None:
    A, B = sources.make("a", 3), sources.make("b", 3)
    stacked = np.stack([A, B])  # output row k is input k as a whole
    assert lineage(stacked).rows_of(1).pairs() == [("b", 0), ("b", 1), ("b", 2)]
    side = np.stack([A, B], axis=1)  # rows kept, inputs side by side
    assert lineage(side).rows_of(2).pairs() == [("a", 2), ("b", 2)]
    columns = np.column_stack([A[:, 1], B[:, 2]])
    assert lineage(columns).rows_of(0).pairs() == [("a", 0), ("b", 0)]
    rows = np.vstack([A[0], B[1]])  # 1-D inputs become single rows
    assert [lineage(rows).rows_of(i).pairs() for i in range(2)] == [[("a", 0)], [("b", 1)]]


def test_pickling_sends_the_plain_array_and_scalars_stay_traced(sources: Sources) -> None:
    import pickle

    X = sources.make("a", 4)
    restored = pickle.loads(pickle.dumps(X * 2))
    assert type(restored) is np.ndarray
    np.testing.assert_array_equal(restored, np.asarray(X) * 2)
    total = X[:, 1].sum() + 1.0
    assert float(total) == float(np.asarray(X)[:, 1].sum() + 1.0)
    assert lineage(total).sources() == {"a": [0, 1, 2, 3]}


def test_temporaries_are_reused_but_named_arrays_never_change(sources: Sources) -> None:
    """Like NumPy's temporary elision: only an operand nobody else holds gives its buffer."""
    X = sources.make("a", 40_000, 4)  # 1.28 MB: above the 256 KiB elision threshold
    plain = np.asarray(X).copy()
    named = X * 2.0
    before = np.asarray(named).copy()
    held = [X * 3.0]
    result = np.tanh(named) * 0.5 + named - held[0] + (1.0 - (X * 4.0))
    expected = np.tanh(plain * 2.0) * 0.5 + plain * 2.0 - plain * 3.0 + (1.0 - plain * 4.0)
    np.testing.assert_allclose(np.asarray(result), expected)
    np.testing.assert_array_equal(np.asarray(named), before)
    np.testing.assert_array_equal(np.asarray(held[0]), plain * 3.0)
    np.testing.assert_array_equal(np.asarray(X), plain)
    sources.assert_exact(result, plain[:, 0])
