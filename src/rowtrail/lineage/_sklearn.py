"""scikit-learn with row lineage: ``rt.sklearn.trace(estimator)``, train_test_split, shuffle.

**Splits need nothing.** ``train_test_split``, ``shuffle`` and ``KFold`` indices applied with
``X.iloc[idx]`` select rows with ``take`` / ``iloc`` / ``X[idx, ...]``, which the traced arrays
and frames follow exactly (:mod:`rowtrail.lineage.frames._take`); the wrappers here only name
the ops.

**Estimators need one line**: ``model = rt.sklearn.trace(make_pipeline(...))``, after which
``fit`` / ``transform`` / ``predict`` are called as before with traced arrays or traced pandas /
polars frames (``ColumnTransformer`` selects their columns by name). The wrapper
(:class:`LineageEstimator`) gives scikit-learn plain data (:mod:`._sklearn_inputs`), then

- after ``fit``, records one statistics node per fitted part of the estimator
  (:mod:`._sklearn_fits`): each imputer, scaler, encoder, discretizer and the final estimator,
  fitted on all the rows given to ``fit`` (and their targets);
- wraps every row-wise output (``transform``, ``predict``, ``predict_proba``, ...) as a
  :class:`~rowtrail.lineage.TracedArray` whose row ``i`` is input row ``i``, depending on
  each fitted part through a statistics edge (``rt.lineage(Z).statistics()``);
- inside ``with ws.training_run(...)``, records the fit of the final estimator (a predictor)
  in that run through the training layer's own recorder: ``training.split`` with row ids,
  the role and each sample's source rows, plus ``training.fit`` (parameters, Hessian) for
  the models ``record_sklearn_fit`` handles (binary L2 ``LogisticRegression``, ``Ridge``).

A part whose row semantics rowtrail cannot vouch for (a ``FunctionTransformer`` running user
code, an estimator from another package) makes outputs depend on all input rows, with a
:class:`~rowtrail.errors.LineageFallbackWarning` naming it; ``row_wise=(MyTransformer,)``
declares a class row-wise. Sparse outputs are returned dense; DataFrame outputs
(``set_output(transform="pandas")``) are returned untraced, with a warning.

**Why a wrapper.** scikit-learn converts its inputs with ``np.asarray`` / narwhals and builds
outputs itself, so lineage cannot ride inside the data: something must see the call. The
alternatives were weighed: ``set_output(transform="pandas")`` builds new, plain frames (only
the index survives, which is not lineage); metadata routing passes per-sample values to ``fit``
only, never to ``transform`` / ``predict``, and needs every estimator to request them;
patching scikit-learn's classes changes every estimator in the process and breaks with private
API changes. A wrapper around the user's own object uses only the public fitted-estimator API
(``steps``, ``transformers_``, ``transformer_list``, ``get_params``), which is stable across
releases, and leaves the estimator itself unchanged (pickling it, or the wrapper, drops only
the in-process lineage).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, LineageFallbackWarning, RowtrailWarning
from rowtrail.lineage._array import TracedArray, n_rows_of
from rowtrail.lineage._array import wrap as wrap_array
from rowtrail.lineage._node import Node, materialize
from rowtrail.lineage._rowmap import ALL, STAT
from rowtrail.lineage._sklearn_fits import components, fit_nodes, not_row_wise, statistic_ids
from rowtrail.lineage._sklearn_inputs import as_input, plain_input
from rowtrail.lineage._sklearn_runs import FitRows, active_run

__all__ = [
    "LineageEstimator",
    "shuffle",
    "trace",
    "train_test_split",
    "wrap",
    "wrap_estimator",
]

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


def _plain(values: Any) -> list[Any]:
    """Replace traced arrays and frames among ``values`` by what scikit-learn should get."""
    return [plain_input(v) for v in values]


def _dense(result: Any) -> Any:
    return result.toarray() if hasattr(result, "toarray") else result


def _is_class_tuple(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(c, type) for c in value)


class LineageEstimator:
    """A scikit-learn estimator that keeps row lineage (see module docstring).

    Parameters
    ----------
    estimator : scikit-learn estimator
        Any object with ``fit`` (a ``Pipeline``, ``ColumnTransformer``, transformer or model).
    row_wise : tuple of type, optional
        Estimator classes from outside scikit-learn whose ``transform`` / ``predict`` map
        input row ``i`` to output row ``i`` (given their fitted state).

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> from sklearn.preprocessing import StandardScaler
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> X = rt.track(np.arange(8.0).reshape(4, 2), source="x", workspace=ws)
    >>> Z = rt.sklearn.trace(StandardScaler()).fit_transform(X[1:])
    >>> dict(rt.lineage(Z).rows_of(0)), rt.lineage(Z).statistics()[0].fitted_on["x"]
    ({'x': [1]}, [1, 2, 3])
    """

    def __init__(self, estimator: Any, *, row_wise: tuple[type, ...] = ()) -> None:
        if not hasattr(estimator, "fit"):
            raise InvalidInputError(
                "estimator of rt.sklearn.trace must have a fit method; "
                f"got {type(estimator).__name__}. Pass a scikit-learn estimator or Pipeline."
            )
        if not _is_class_tuple(row_wise):
            raise InvalidInputError(
                f"row_wise of rt.sklearn.trace must be a tuple of classes; got {row_wise!r}. "
                "Pass e.g. row_wise=(MyTransformer,)."
            )
        self.estimator = estimator
        self.row_wise = row_wise
        self.fit_nodes_: list[Node] = []
        self.fit_parts_: list[Any] = []
        self.not_row_wise_: list[str] = []
        self.warned_ = False
        # What the open training run recorded of the last fit: a ``ConvexFit`` for the models
        # ``record_sklearn_fit`` expresses (usable by exact-influence attribution), else None.
        self.training_fit_: Any = None

    @property
    def _label(self) -> str:
        return type(self.estimator).__name__

    @property
    def fit_node_(self) -> Node | None:
        """The statistics node of the whole estimator's last fit (``None`` before one)."""
        return self.fit_nodes_[0] if self.fit_nodes_ else None

    # ------------------------------------------------------------ fitting
    def _inputs(self, X: Any, y: Any, method: str) -> tuple[Any, Any, Node | None, Node | None]:  # noqa: N803 - scikit-learn's name
        data, x_node = as_input(X, f"{self._label}.{method}[X]")
        target, y_node = as_input(y, f"{self._label}.{method}[y]")
        return data, target, x_node, y_node

    def _fitted(self, method: str, data: Any, target: Any, nodes: list[Node | None]) -> None:
        inputs = [n for n in nodes if n is not None]
        self.fit_nodes_ = fit_nodes(self.estimator, inputs, method=method)
        # The fitted object behind each node (same order), so a slice can keep its own.
        self.fit_parts_ = [part for _, part in components(self.estimator)][: len(self.fit_nodes_)]
        self.not_row_wise_ = not_row_wise(self.estimator, self.row_wise)
        self.warned_ = False
        if inputs:
            self._warn_not_row_wise()
        self.training_fit_ = _record_in_run(self.estimator, data, target, nodes[0], nodes[1])

    def _warn_not_row_wise(self) -> None:
        """Warn (once per fit) that outputs depend on all input rows, naming the parts."""
        if not self.not_row_wise_ or self.warned_:
            return
        self.warned_ = True
        warnings.warn(
            f"rowtrail cannot vouch that {', '.join(self.not_row_wise_)} map(s) input row i "
            "to output row i; outputs of this estimator are recorded as depending on all "
            "input rows (sound, not exact). Pass row_wise=(TheClass,) to rt.sklearn.trace "
            "if it is row-wise.",
            LineageFallbackWarning,
            stacklevel=4,
        )

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> LineageEstimator:  # noqa: N803 - scikit-learn's name
        """Fit the estimator and record the rows each fitted part learned from."""
        data, target, x_node, y_node = self._inputs(X, y, "fit")
        self.estimator.fit(data, target, **fit_params)
        self._fitted("fit", data, target, [x_node, y_node])
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """Fit, record, and return the transformed rows (row ``i`` from input row ``i``)."""
        data, target, x_node, y_node = self._inputs(X, y, "fit_transform")
        result = self.estimator.fit_transform(data, target, **fit_params)
        self._fitted("fit_transform", data, target, [x_node, y_node])
        return self._rowwise("fit_transform", result, x_node)

    def fit_predict(self, X: Any, y: Any = None, **fit_params: Any) -> Any:  # noqa: N803 - scikit-learn's name
        """Fit, record, and return the predictions (row ``i`` from input row ``i``)."""
        data, target, x_node, y_node = self._inputs(X, y, "fit_predict")
        result = self.estimator.fit_predict(data, target, **fit_params)
        self._fitted("fit_predict", data, target, [x_node, y_node])
        return self._rowwise("fit_predict", result, x_node)

    # ------------------------------------------------------------ outputs
    def _rowwise(self, name: str, result: Any, x_node: Node | None) -> Any:
        result = _dense(result)
        op = f"{self._label}.{name}"
        if x_node is None:
            return result
        if not isinstance(result, np.ndarray):
            if hasattr(result, "shape") and hasattr(result, "columns"):
                warnings.warn(
                    f"rowtrail keeps lineage of array outputs only; the DataFrame returned by "
                    f"{op} (set_output) carries none. Use the default array output to keep it.",
                    LineageFallbackWarning,
                    stacklevel=3,
                )
            return result
        self._warn_not_row_wise()
        self._warn_fit_lost()
        n_out = n_rows_of(result)
        exact = result.ndim > 0 and n_out == x_node.n_rows and not self.not_row_wise_
        if not exact and not self.not_row_wise_:
            warnings.warn(
                f"{op} returned {n_out} rows for {x_node.n_rows} input rows; its rows are "
                "recorded as depending on all input rows (sound, not exact).",
                LineageFallbackWarning,
                stacklevel=3,
            )
        parents = (x_node, *self.fit_nodes_)
        maps = (None if exact else ALL, *(STAT for _ in self.fit_nodes_))
        params = {"estimator": self._label}
        node = Node(op, "transformation" if exact else "unknown", parents, maps, n_out, params)
        node.fallback = not exact
        return wrap_array(result, node)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("estimator", "row_wise"):
            raise AttributeError(name)
        attr = getattr(self.estimator, name)
        if not callable(attr):
            return attr
        if name not in _ROWWISE:
            # Other calls (score, ...) get plain data, as fit does; their results keep no rows.
            def plain(*args: Any, **kwargs: Any) -> Any:
                return attr(*_plain(args), **{k: plain_input(v) for k, v in kwargs.items()})

            plain.__name__ = name
            return plain

        def method(X: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N803
            data, x_node = as_input(X, f"{self._label}.{name}[X]")
            return self._rowwise(name, attr(data, *args, **kwargs), x_node)

        method.__name__ = name
        return method

    def __getitem__(self, key: Any) -> Any:
        """Return a step or slice of a wrapped ``Pipeline`` (``model[:-1]``), traced likewise.

        The slice keeps the statistics nodes of the fitted parts inside it.
        """
        part = self.estimator[key]
        if not hasattr(part, "fit"):
            return part  # "passthrough"
        inside = {id(p) for _, p in components(part)}
        sub = LineageEstimator(part, row_wise=self.row_wise)
        kept = [
            (n, p) for n, p in zip(self.fit_nodes_, self.fit_parts_, strict=True) if id(p) in inside
        ]
        sub.fit_nodes_ = [n for n, _ in kept]
        sub.fit_parts_ = [p for _, p in kept]
        sub.not_row_wise_ = not_row_wise(part, self.row_wise)
        sub.warned_ = self.warned_
        return sub

    # ------------------------------------------------------------ scikit-learn protocol
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Parameters of the wrapper (``estimator``, ``row_wise``; ``estimator__*`` if deep)."""
        params: dict[str, Any] = {"estimator": self.estimator, "row_wise": self.row_wise}
        if deep and hasattr(self.estimator, "get_params"):
            inner = self.estimator.get_params(deep=True)
            params.update({f"estimator__{k}": v for k, v in inner.items()})
        return params

    def set_params(self, **params: Any) -> LineageEstimator:
        """Set ``estimator`` / ``row_wise``; other names go to the wrapped estimator."""
        if "estimator" in params:
            self.estimator = params.pop("estimator")
        if "row_wise" in params:
            self.row_wise = params.pop("row_wise")
        inner = {k.removeprefix("estimator__"): v for k, v in params.items()}
        if inner:
            self.estimator.set_params(**inner)
        return self

    def __sklearn_tags__(self) -> Any:
        # A classifier stays a classifier (stratified CV, is_classifier) once wrapped.
        return self.estimator.__sklearn_tags__()

    def __getstate__(self) -> dict[str, Any]:
        # Lineage stays in this process (like a TracedArray's): pickle the estimator only.
        fitted = bool(self.fit_nodes_) or getattr(self, "fit_lost_", False)
        return {"estimator": self.estimator, "row_wise": self.row_wise, "fitted": fitted}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["estimator"], row_wise=state["row_wise"])  # type: ignore[misc]
        # Unpickled after a traced fit: the rows its statistics came from are unknown here.
        self.fit_lost_ = bool(state.get("fitted"))

    def _warn_fit_lost(self) -> None:
        if getattr(self, "fit_lost_", False) and not self.fit_nodes_:
            warnings.warn(
                f"this {self._label} was unpickled: the rows its fitted statistics came from "
                "were not pickled, so its outputs name only their own input rows. Fit it again "
                "in this process to record them.",
                RowtrailWarning,
                stacklevel=4,
            )

    def __repr__(self) -> str:
        return f"LineageEstimator({self.estimator!r})"


def _is_pipeline(estimator: Any) -> bool:
    steps = getattr(estimator, "steps", None)
    return isinstance(steps, list) and len(steps) > 1


def _fit_rows(x_node: Node, y_node: Node | None, with_statistics: bool) -> FitRows:
    from rowtrail.lineage.frames._convert import aggregated_ids
    from rowtrail.lineage.frames._torch import primary_ids

    ids = materialize(x_node)
    offsets = np.asarray(ids.csr_offsets(), dtype=np.int64)
    own = np.asarray(ids.ids, dtype=np.int64)
    parts = [statistic_ids(x_node), np.asarray(ids.shared, dtype=np.int64)]
    if with_statistics:  # the preprocessing parts were fitted on every row (and target)
        parts.append(ids.all_ids())
        if y_node is not None:
            parts.append(materialize(y_node).all_ids())
    return FitRows(
        row_ids=primary_ids(offsets, own),
        offsets=offsets,
        ids=own,
        aggregated=np.intersect1d(aggregated_ids(x_node), own).astype(np.int64),
        statistic=np.unique(np.concatenate(parts)).astype(np.int64),
    )


def fit_rows_of(obj: Any) -> FitRows | None:
    """Return the :class:`FitRows` of a traced array or frame used as a design matrix.

    ``None`` for untraced input. Fitted statistics that reached the rows are included.
    """
    _, node = as_input(obj, "fit[X]")
    if node is None:
        return None
    return _fit_rows(node, None, with_statistics=False)


def _record_in_run(
    estimator: Any,
    data: Any,
    target: Any,
    x_node: Node | None,
    y_node: Node | None,
) -> Any:
    """Record the fit of the final estimator in the open training run, if there is one.

    Returns what the run's recorder returns (the recorded ``ConvexFit``, or ``None``).
    """
    active = active_run()
    if active is None:
        return None
    final = estimator.steps[-1][1] if _is_pipeline(estimator) else estimator
    if not hasattr(final, "predict") or target is None:
        return None  # a transformer alone is preprocessing, not a trained model
    run, recorder = active
    if x_node is None:
        warnings.warn(
            f"the fit of {type(final).__name__} inside training run {run.name!r} was not "
            "recorded: its input carries no row lineage. Pass a traced array or frame "
            "(rt.track, rt.pandas.read_csv, rt.polars.read_csv) or record the fit with "
            "rowtrail.training.record_sklearn_fit(..., row_ids=...).",
            RowtrailWarning,
            stacklevel=4,
        )
        return None
    design = _dense(estimator[:-1].transform(data)) if final is not estimator else data
    rows = _fit_rows(x_node, y_node, final is not estimator)
    return recorder(run, final, design, np.asarray(target), rows)


def wrap_estimator(estimator: Any, *, row_wise: tuple[type, ...] = ()) -> LineageEstimator:
    """Return ``estimator`` wrapped so that its fits and outputs keep row lineage.

    Parameters
    ----------
    estimator : scikit-learn estimator
        A ``Pipeline``, ``ColumnTransformer``, transformer or model (left unchanged).
    row_wise : tuple of type, optional
        Classes from outside scikit-learn to treat as row-wise (see :class:`LineageEstimator`).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd, rowtrail as rt
    >>> from sklearn.compose import ColumnTransformer
    >>> from sklearn.preprocessing import StandardScaler
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> df = rt.pandas.track(pd.DataFrame({"a": [1.0, 2.0, 4.0]}), source="t", workspace=ws)
    >>> prep = rt.sklearn.trace(ColumnTransformer([("num", StandardScaler(), ["a"])]))
    >>> Z = prep.fit(df[df.a > 1]).transform(df)
    >>> dict(rt.lineage(Z).rows_of(2)), rt.lineage(Z).statistics()[-1].fitted_on["t"]
    ({'t': [2]}, [1, 2])
    """
    return LineageEstimator(estimator, row_wise=row_wise)


trace = wrap_estimator  # the public name: rt.sklearn.trace(pipeline)
wrap = wrap_estimator  # the earlier name, kept


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
