"""Record a fit made by ``rt.sklearn.trace(estimator)`` in the open training run.

The lineage layer calls :func:`record_estimator_fit` (registered by
:meth:`TrainingRun.__enter__ <rowtrail.training.TrainingRun>` through
:func:`rowtrail.lineage._sklearn_runs.enter_run`) when a traced estimator whose final step is
a predictor is fitted inside ``with ws.training_run(...)``. No new event kind: the samples are
recorded as a ``training.split`` (role ``"train"``, one row id per sample and each sample's
source rows, fitted statistics included), and a model that :func:`record_sklearn_fit` can
express (binary L2 ``LogisticRegression``, ``Ridge``) also as its ``training.fit`` (parameters
and Hessian, whose parameters blob the run's seal names as the model digest). Any other
predictor is kept as a blob of its pickled bytes, whose digest the seal names instead.
"""

from __future__ import annotations

import pickle
import warnings
from typing import Any

import numpy as np

from rowtrail.errors import RowtrailWarning
from rowtrail.lineage._sklearn_runs import FitRows
from rowtrail.training._convex import ConvexFit, record_sklearn_fit
from rowtrail.training._rows import SampleRows

__all__ = ["record_estimator_fit"]

_CONVEX = ("LogisticRegression", "Ridge")


def _convex_ready(estimator: Any, X: Any, y: Any) -> bool:  # noqa: N803 - X as in sklearn
    """Whether ``record_sklearn_fit`` can record this fit (numeric design, 0/1 binary target)."""
    name = type(estimator).__name__
    if name not in _CONVEX or np.asarray(X).dtype.kind not in "biuf":
        return False
    if name == "Ridge":
        return np.asarray(y).dtype.kind in "biuf" and np.asarray(y).ndim == 1
    coef = np.asarray(getattr(estimator, "coef_", np.zeros((2, 0))))
    labels = np.unique(np.asarray(y))
    binary = labels.dtype.kind in "biuf" and set(labels.tolist()) <= {0, 1}
    l2 = getattr(estimator, "penalty", "l2") in ("l2", None, "deprecated") and getattr(
        estimator, "l1_ratio", None
    ) in (None, 0, 0.0)
    return coef.shape[0] == 1 and binary and l2


def record_estimator_fit(
    run: Any,
    estimator: Any,
    X: Any,  # noqa: N803 - X as in sklearn
    y: Any,
    rows: FitRows,
) -> ConvexFit | None:
    """Record ``estimator`` (fitted on ``X``, ``y``; samples ``rows``) in ``run``.

    Parameters
    ----------
    run : TrainingRun
        The open run.
    estimator : scikit-learn estimator
        The fitted final estimator (a predictor).
    X, y : array_like
        Its design matrix and target, as it saw them.
    rows : FitRows
        One row id per sample and every sample's source rows.

    Returns
    -------
    ConvexFit or None
        The recorded fit (parameters and Hessian, for exact-influence attribution) for the
        models ``record_sklearn_fit`` expresses; ``None`` when only the split was recorded.
    """
    lineage = SampleRows(rows.offsets, rows.ids, rows.aggregated, rows.statistic)
    extra = lineage if lineage.adds_to(rows.row_ids) else None
    if _convex_ready(estimator, X, y):
        design = np.asarray(X, dtype=np.float64)
        return record_sklearn_fit(
            estimator, design, y, run=run, row_ids=rows.row_ids, lineage=extra
        )
    run.log_split("train", rows.row_ids, lineage=extra)
    _keep_model(run, estimator)
    return None


def _keep_model(run: Any, estimator: Any) -> None:
    """Store the fitted estimator's pickled bytes as a blob; the run's seal names its digest.

    The bytes are kept as evidence of exactly which model was fitted (content-addressed);
    rowtrail never unpickles them.
    """
    try:
        data = pickle.dumps(estimator, protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        warnings.warn(
            f"the fitted {type(estimator).__name__} of run {run.name!r} cannot be pickled "
            f"({exc}); the run records its rows but no model digest",
            RowtrailWarning,
            stacklevel=4,
        )
        return
    digest = run.ws.ledger.put_blob(data)
    run.estimators.append({"class": type(estimator).__qualname__, "digest": digest})
