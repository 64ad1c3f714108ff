"""Hypothesis: random pipelines of row-moving ops over 1-3 sources stay exact.

The ground truth is carried separately from the data (a set of global ids per row), so ops
that destroy column values (matmul, elementwise) are checked as well.
"""

# ruff: noqa: N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rowtrail.lineage import lineage

from .conftest import Sources

Item = tuple[Any, list[frozenset[int]]]  # numpy stubs type traced results as ndarray


def _apply(op: str, item: Item, other: Item, data: st.DataObject) -> Item:
    X, truth = item
    plain = np.asarray(X)
    n = len(truth)
    if op == "elementwise":
        return np.tanh(X * 0.5 - 1.0) + X, truth
    if op == "standardize":
        return (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0), truth
    if op == "filter":
        mask = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        mask[data.draw(st.integers(0, n - 1))] = True
        return X[mask], [t for t, keep in zip(truth, mask, strict=True) if keep]
    if op == "take":
        index = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=8))
        return X[np.array(index)], [truth[i] for i in index]
    if op == "slice":
        step = data.draw(st.sampled_from([1, 2, -1, -3]))
        sliced = list(range(n))[::step]
        return X[::step], [truth[i] for i in sliced]
    if op == "sort":
        order = np.argsort(plain[:, 1], kind="stable")
        return X[np.argsort(X[:, 1], kind="stable")], [truth[i] for i in order]
    if op == "concat" and other[0].shape[1:] == X.shape[1:]:
        return np.concatenate([X, other[0]]), truth + other[1]
    if op == "hstack" and len(other[1]) == n:
        return np.hstack([X, other[0]]), [a | b for a, b in zip(truth, other[1], strict=True)]
    if op == "matmul":
        return X @ np.ones((X.shape[1], 3)), truth
    if op == "where":
        return np.where(X > 0, X, -X), truth
    if op == "unique":
        values, inverse = np.unique(plain, axis=0, return_inverse=True)
        merged = [
            frozenset().union(*(truth[i] for i in np.flatnonzero(inverse.ravel() == u)))
            for u in range(len(values))
        ]
        return np.unique(X, axis=0), merged
    if op == "split":
        pieces = data.draw(st.integers(1, n))
        j = data.draw(st.integers(0, pieces - 1))
        bounds = np.array_split(np.arange(n), pieces)[j]
        return np.array_split(X, pieces)[j], [truth[i] for i in bounds]
    if op == "reshape":
        return X.reshape(n, X.shape[1], 1).reshape(n, X.shape[1]), truth
    return item


OPS = [
    "elementwise",
    "standardize",
    "filter",
    "take",
    "slice",
    "sort",
    "concat",
    "hstack",
    "matmul",
    "where",
    "unique",
    "split",
    "reshape",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_pipelines_report_exactly_the_true_source_rows(data: st.DataObject) -> None:
    sources = Sources()
    n_sources = data.draw(st.integers(1, 3))
    items: list[Item] = []
    for k in range(n_sources):
        X = sources.make(f"s{k}", data.draw(st.integers(1, 12)))
        items.append((X, [frozenset([int(g)]) for g in np.asarray(X)[:, 0]]))
    for op in data.draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=6)):
        k = data.draw(st.integers(0, len(items) - 1))
        other = items[data.draw(st.integers(0, len(items) - 1))]
        items[k] = _apply(op, items[k], other, data)
    result, truth = items[data.draw(st.integers(0, len(items) - 1))]
    view = lineage(result)
    assert view.n_rows == len(truth)
    for i, expected in enumerate(truth):
        pairs = sorted(p for g in expected for p in sources.pairs(g))
        assert view.rows_of(i).pairs() == pairs, f"row {i}"
    every: dict[str, set[int]] = {}
    for expected in truth:
        for g in expected:
            name, row = sources.pairs(g)[0]
            every.setdefault(name, set()).add(row)
    assert view.sources() == {k: sorted(v) for k, v in sorted(every.items())}
