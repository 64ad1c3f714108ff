"""scikit-learn with row lineage: ``rt.sklearn.wrap(estimator)``, ``train_test_split``, ``shuffle``.

scikit-learn calls ``np.asarray`` on its inputs, so a transformer's output is a plain array.
:class:`LineageEstimator` wraps any estimator (``StandardScaler``, ``OneHotEncoder``,
``SimpleImputer``, ``Pipeline``, ``ColumnTransformer``, a classifier): ``fit`` records a node
fitted on every input row, and each row-wise output (``transform``, ``predict``, ...) maps row
``i`` to input row ``i`` with a statistics dependency on the fit. ``train_test_split`` and
``shuffle`` already keep traced arrays traced (they index them); the wrappers here only name
the ops. scikit-learn is optional: it is imported when this module is.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError
from rowtrail.lineage._array import TracedArray, fallback, n_rows_of, unwrap
from rowtrail.lineage._array import wrap as wrap_array
from rowtrail.lineage._node import Node
from rowtrail.lineage._rowmap import ALL, STAT

__all__ = ["LineageEstimator", "shuffle", "train_test_split", "wrap", "wrap_estimator"]

_sklearn = require("sklearn", extra="sklearn", feature="rt.sklearn")
_ROWWISE = (
    "transform",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "inverse_transform",
    "score_samples",
)


def _params(estimator: Any) -> dict[str, str]:
    try:
        params = estimator.get_params(deep=False)
    except AttributeError:
        return {}
    return {str(k): repr(v)[:200] for k, v in sorted(params.items())}


def _dense(result: Any) -> Any:
    return result.toarray() if hasattr(result, "toarray") else result


class LineageEstimator:
    """A scikit-learn estimator that keeps row lineage (see module docstring).

    Parameters
    ----------
    estimator : scikit-learn estimator
        Any object with ``fit`` and row-wise output methods. Sparse outputs are returned dense.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from sklearn.preprocessing import StandardScaler
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> X = rt.track(np.arange(8.0).reshape(4, 2), source="x", workspace=ws)
    >>> Z = rt.sklearn.wrap(StandardScaler()).fit_transform(X[1:])
    >>> dict(rt.lineage(Z).rows_of(0)), rt.lineage(Z).statistics()[0].fitted_on["x"]
    ({'x': [1]}, [1, 2, 3])
    """

    def __init__(self, estimator: Any) -> None:
        if not hasattr(estimator, "fit"):
            raise InvalidInputError(
                "estimator of rt.sklearn.wrap must have a fit method; "
                f"got {type(estimator).__name__}"
            )
        self.estimator = estimator
        self.fit_node_: Node | None = None

    @property
    def _label(self) -> str:
        return type(self.estimator).__name__

    def _record_fit(self, X: Any, y: Any) -> None:  # noqa: N803 - scikit-learn's name
        traced = [a for a in (X, y) if type(a) is TracedArray]
        self.fit_node_ = Node(
            f"{self._label}.fit",
            "aggregation",
            tuple(a._n for a in traced),
            (ALL,) * len(traced),
            1,
            {"estimator": self._label, "params": _params(self.estimator)},
        )

    def _rowwise(self, name: str, result: Any, X: Any) -> Any:  # noqa: N803 - scikit-learn's name
        result = _dense(result)
        if type(X) is not TracedArray or not isinstance(result, np.ndarray):
            return result
        if result.ndim == 0 or n_rows_of(result) != len(X._a):
            return fallback(f"{self._label}.{name}", result, [X])
        parents: list[Node] = [X._n]
        maps: list[Any] = [None]
        if self.fit_node_ is not None:
            parents.append(self.fit_node_)
            maps.append(STAT)
        node = Node(
            f"{self._label}.{name}",
            "transformation",
            tuple(parents),
            tuple(maps),
            n_rows_of(result),
            {"estimator": self._label},
        )
        return wrap_array(result, node)

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> LineageEstimator:  # noqa: N803 - scikit-learn's name
        """Fit the estimator and record the rows it was fitted on."""
        self.estimator.fit(unwrap(X), unwrap(y), **fit_params)
        self._record_fit(X, y)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """Fit, record, and return the transformed rows (row ``i`` from input row ``i``)."""
        result = self.estimator.fit_transform(unwrap(X), unwrap(y), **fit_params)
        self._record_fit(X, y)
        return self._rowwise("fit_transform", result, X)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "estimator":
            raise AttributeError(name)
        attr = getattr(self.estimator, name)
        if name not in _ROWWISE:
            return attr

        def method(X: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
            return self._rowwise(name, attr(unwrap(X), *args, **kwargs), X)

        method.__name__ = name
        return method

    def __repr__(self) -> str:
        return f"LineageEstimator({self.estimator!r})"


def wrap_estimator(estimator: Any) -> LineageEstimator:
    """Return ``estimator`` wrapped so that its fits and outputs keep row lineage."""
    return LineageEstimator(estimator)


wrap = wrap_estimator  # the public name is rt.sklearn.wrap


def _named(outputs: Any, names: list[str]) -> Any:
    for output, name in zip(outputs, names, strict=False):
        if type(output) is TracedArray:
            output._n.name = name
    return outputs


def train_test_split(*arrays: Any, **options: Any) -> list[Any]:
    """``sklearn.model_selection.train_test_split`` with the split ops named in the lineage."""
    model_selection = require(
        "sklearn.model_selection", extra="sklearn", feature="train_test_split"
    )
    outputs = model_selection.train_test_split(*arrays, **options)
    names = [f"train_test_split[{role}]" for _ in arrays for role in ("train", "test")]
    return list(_named(outputs, names))


def shuffle(*arrays: Any, **options: Any) -> Any:
    """``sklearn.utils.shuffle`` with the op named in the lineage."""
    utils = require("sklearn.utils", extra="sklearn", feature="shuffle")
    outputs = utils.shuffle(*arrays, **options)
    if len(arrays) == 1:
        return _named([outputs], ["shuffle"])[0]
    return _named(outputs, ["shuffle"] * len(arrays))
