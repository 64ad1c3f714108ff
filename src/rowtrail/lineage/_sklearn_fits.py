"""The fitted parts of a scikit-learn estimator, their statistics nodes, and row-wise checks.

:func:`components` walks a fitted estimator (``Pipeline`` steps, ``ColumnTransformer``
transformers, ``FeatureUnion`` members, a search's refitted ``best_estimator_``) down to the
estimators that learned something. Every one of them was fitted on the rows given to the
top-level ``fit``: a scaler's mean and scale, an encoder's categories, an imputer's fill
values, a discretizer's bin edges, a ``TargetEncoder``'s per-category target means (which
shrink towards the mean over all rows, and whose ``fit_transform`` is cross-fitted on the other
folds' rows), a classifier's coefficients. :func:`fit_nodes` records one statistics node per
fitted part whose row map is "all rows" of the fit input (and target); outputs depend on them
through ``STAT`` edges, so ``rt.lineage(Z).statistics()`` lists each part with its rows.

:func:`not_row_wise` names the parts whose ``transform`` / ``predict`` rowtrail cannot vouch
for: by scikit-learn's estimator contract output row ``i`` is computed from input row ``i``
and the fitted state, which holds for scikit-learn's own estimators; a ``FunctionTransformer``
runs arbitrary user code and an estimator from another package may mix rows, so those are
recorded as depending on all input rows (with a warning) unless the user declares them
row-wise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.lineage._node import Node, ancestor_nodes, materialize
from rowtrail.lineage._rowmap import ALL, STAT

__all__ = ["components", "estimator_params", "fit_nodes", "not_row_wise", "statistic_ids"]

_EMPTY = np.zeros(0, dtype=np.int64)


def estimator_params(estimator: Any) -> dict[str, str]:
    """Return the estimator's own parameters as short strings (recorded with its fit)."""
    try:
        params = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        return {}
    return {str(k): repr(v)[:200] for k, v in sorted(params.items())}


def _children(estimator: Any) -> list[tuple[str, Any]] | None:
    """Named sub-estimators of a composite, or ``None`` for a leaf."""
    if hasattr(estimator, "transformers_"):  # fitted ColumnTransformer (remainder included)
        return [(name, part) for name, part, _ in estimator.transformers_]
    for attribute in ("steps", "transformer_list"):  # Pipeline, FeatureUnion
        parts = getattr(estimator, attribute, None)
        if isinstance(parts, list):
            return [(str(name), part) for name, part in parts]
    best = getattr(estimator, "best_estimator_", None)  # GridSearchCV & co. (refit=True)
    if best is not None:
        return [("best_estimator_", best)]
    return None


def components(estimator: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(path, estimator)`` for the estimator and every fitted part inside it.

    Composites come before their parts; ``"drop"`` / ``"passthrough"`` entries are skipped.
    """
    label = type(estimator).__name__
    here = f"{path}/{label}" if path else label
    yield here, estimator
    for name, part in _children(estimator) or []:
        if isinstance(part, str) or part is None:
            continue
        yield from components(part, f"{here}[{name}]")


def _is_row_wise(estimator: Any, declared: tuple[type, ...]) -> bool:
    if declared and isinstance(estimator, declared):
        return True
    module = type(estimator).__module__
    if not (module == "sklearn" or module.startswith("sklearn.")):
        return False
    # FunctionTransformer without a function is the identity; with one, it is user code.
    return type(estimator).__name__ != "FunctionTransformer" or (
        getattr(estimator, "func", None) is None
    )


def _sub_estimators(estimator: Any) -> Iterator[tuple[str, Any]]:
    """Named estimators among ``estimator``'s parameters (``steps``, ``estimators``, ...)."""
    try:
        params = estimator.get_params(deep=False)
    except (AttributeError, TypeError):
        return
    for key, value in sorted(params.items()):
        if hasattr(value, "fit") and not isinstance(value, type):
            yield str(key), value
        elif isinstance(value, list | tuple):
            for item in value:
                part = item[1] if isinstance(item, tuple) and len(item) > 1 else item
                name = str(item[0]) if isinstance(item, tuple) else key
                if hasattr(part, "fit") and not isinstance(part, type):
                    yield name, part


def not_row_wise(estimator: Any, declared: tuple[type, ...], path: str = "") -> list[str]:
    """Return the paths of the parts whose outputs rowtrail cannot map row to row.

    Every estimator inside ``estimator`` counts, found through its parameters (a ``Pipeline``'s
    steps, a ``VotingClassifier``'s estimators, a ``BaggingClassifier``'s estimator): a
    scikit-learn meta-estimator is only as row-wise as what it calls.
    """
    here = f"{path}/{type(estimator).__name__}" if path else type(estimator).__name__
    found = [] if _is_row_wise(estimator, declared) else [here]
    for name, part in _sub_estimators(estimator):
        found.extend(not_row_wise(part, declared, f"{here}[{name}]"))
    return found


def _fitted_attributes(estimator: Any) -> list[str]:
    state = getattr(estimator, "__dict__", {})
    return sorted(k for k in state if k.endswith("_") and not k.startswith("_"))


def fit_nodes(estimator: Any, inputs: list[Node], *, method: str = "fit") -> list[Node]:
    """Record one statistics node per fitted part of ``estimator`` (see module docstring).

    Parameters
    ----------
    estimator : scikit-learn estimator
        Fitted on the rows of ``inputs``.
    inputs : list of Node
        Lineage nodes of the fit input (and target); each part depends on all their rows.
    method : str
        The call that fitted it (``"fit"``, ``"fit_transform"``): ``fit_transform`` of a
        ``TargetEncoder`` is cross-fitted, which the node's parameters say.
    """
    if not inputs:
        return []
    parents = tuple(inputs)
    nodes = []
    for path, part in components(estimator):
        label = type(part).__name__
        params: dict[str, Any] = {
            "estimator": label,
            "path": path,
            "params": estimator_params(part),
            "fitted": _fitted_attributes(part),
            "method": method,
        }
        node = Node(f"{label}.fit", "aggregation", parents, (ALL,) * len(parents), 1, params)
        nodes.append(node)
    return nodes


def statistic_ids(node: Node) -> NDArray[np.int64]:
    """Return the source row ids of every fitted statistic ``node`` depends on."""
    parts = [_EMPTY]
    for member in [node, *ancestor_nodes(node)[0]]:
        for k, parent in enumerate(member.parents):
            if member.map_of(k) is STAT:
                parts.append(materialize(parent).all_ids())
    return np.unique(np.concatenate(parts)).astype(np.int64)
