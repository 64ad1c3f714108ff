"""How one affected model forgets: the method chosen by model class, and its figures.

rowtrail does not keep training matrices, so the caller supplies, per affected model, a
:class:`ModelInput`: the model (a :class:`~rowtrail.training.ConvexFit`, a traced
scikit-learn estimator or pipeline whose fit a run recorded, or a sharded model), the
training data it was fitted on (for Newton removal) and/or the training data **rebuilt** by
re-running the user's own pipeline on the sources with the erased rows left out (for
retraining, for samples recomputed after an aggregation lost a row, and for refitted
statistics). The rebuilt data's lineage is checked: if a traced rebuild still holds an erased
row, or a sample the plan removes, the job refuses it.

Methods (labels recorded in ``erasure.model_updated``):

- ``"newton"`` (convex, approximate to a certified residual): Newton/influence removal and
  replacement, iterated to tolerance by :func:`rowtrail.unlearning._convex.unlearn_convex`;
- ``"retrain"`` (exact): warm-started retraining of a convex fit on the rebuilt data, or a
  fresh fit of a clone of a scikit-learn estimator/pipeline (statistics refitted with it);
- ``"sisa"`` (exact): retraining the affected shards of a sharded model
  (:class:`rowtrail.unlearning._sisa.ShardedModel`).

``method="auto"`` picks ``"newton"`` for a convex fit given with its training data whose fitted
statistics the rows did not enter, ``"retrain"`` when they did (every sample's features
change), when only rebuilt data is given, or for an estimator, and ``"sisa"`` for a sharded
model.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError, LineageError
from rowtrail.hashing import DIGEST_PREFIX
from rowtrail.training import ConvexFit

__all__ = ["METHODS", "ModelInput", "ModelUpdate", "fit_index_of", "update_model"]

METHODS = ("auto", "newton", "retrain", "sisa", "replay")
_HELD_OUT_ROLES = frozenset({"test", "val", "valid", "validation", "holdout", "calibration"})


@dataclass
class ModelInput:
    """What the caller gives the job for one affected model (see the module docstring).

    Attributes
    ----------
    model : object
        A ``ConvexFit``, a traced scikit-learn estimator/pipeline (``rt.sklearn.trace``) fitted
        in a training run, or a sharded model with ``unlearn(row_ids)``.
    X, y : array_like, optional
        The training data the model was fitted on, row ``i`` being sample ``fit.row_ids[i]``
        (Newton removal).
    X_rebuilt, y_rebuilt : array_like, optional
        The training data rebuilt without the erased rows (retraining; replacement features).
    row_ids : array_like of int64, optional
        Sample row ids of ``X_rebuilt`` (default: its ``row_ids`` when traced).
    test : (X, y), optional
        Held-out data: with it, Newton removal is verified against the model retrained
        without the forget set (:func:`rowtrail.unlearning._verify.compare_with_retraining`).
    run_id : str, optional
        The recorded run the model is the result of, for models that do not name it
        themselves (a ``torch.nn.Module``); convex fits, traced estimators and sharded models
        are matched to their runs by rowtrail.
    retrain : callable, optional
        ``retrain() -> new model``: the caller's own training code, run from scratch on the
        training data rebuilt without the erased rows (a network trained by an ordinary
        loop, ideally inside a new recorded run). The job calls it, records the new model's
        digest and labels the update ``"retrain"`` (exact: the model is retrained without the
        rows).
    replay : TrainingRun or Replayer, optional
        A replayable run (``ws.training_run(..., replayable=True)``) or its
        :class:`~rowtrail.training.Replayer` (``load_replayer`` in a new process): the job
        unlearns by replay (``"replay"``, exact): the recorded training re-executed from the
        last checkpoint before the rows' first use with their weights 0, bit-identical to a
        full replay without them.
    """

    model: Any
    X: Any = None
    y: Any = None
    X_rebuilt: Any = None
    y_rebuilt: Any = None
    row_ids: Any = None
    test: tuple[Any, Any] | None = None
    run_id: str | None = None
    retrain: Callable[[], Any] | None = None
    replay: Any = None


@dataclass
class ModelUpdate:
    """The result of one model's update: what ``erasure.model_updated`` records."""

    run_id: str
    fit_index: int | None
    method: str
    exact: bool
    digest_before: str
    digest_after: str
    residual: float | None
    bound: float | None
    tolerance: float | None
    steps: int | None
    seconds: float
    model: Any
    verification: dict[str, Any] = field(default_factory=dict)
    theta: NDArray[np.float64] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the event payload fields (no raw ids)."""
        return {
            "run": self.run_id,
            "fit": self.fit_index,
            "method": self.method,
            "exact": self.exact,
            "approximate": not self.exact,
            "model_digest_before": self.digest_before,
            "model_digest_after": self.digest_after,
            "residual": self.residual,
            "bound": self.bound,
            "tolerance": self.tolerance,
            "steps": self.steps,
            "seconds": round(self.seconds, 6),
            "verification": dict(self.verification),
        }


def needs_model(roles: tuple[str, ...]) -> bool:
    """Whether a run whose splits of ``roles`` used the rows must change its model."""
    return any(role not in _HELD_OUT_ROLES for role in roles)


def _convex_of(model: Any) -> ConvexFit | None:
    if isinstance(model, ConvexFit):
        return model
    fit = getattr(model, "training_fit_", None)
    return fit if isinstance(fit, ConvexFit) else None


def fit_index_of(model: Any) -> int | None:
    """Return the ledger index of the ``training.fit`` a model's fit was recorded as."""
    fit = _convex_of(model)
    return None if fit is None else fit.ledger_index


def params_digest(model: Any) -> str:
    """Return ``sha256:`` of a model's parameters (θ, or coef_ and intercept_, little-endian)."""
    if isinstance(model, ConvexFit):
        data = np.ascontiguousarray(model.theta, dtype="<f8").tobytes()
    elif isinstance(getattr(model, "digest", None), str):  # a sharded model's own digest
        return str(model.digest)
    elif callable(getattr(model, "state_dict", None)):  # a torch module: its weights
        from rowtrail.training._torchio import serialize_state

        data = serialize_state(model.state_dict())
    else:
        final = model.steps[-1][1] if hasattr(model, "steps") else model
        final = getattr(final, "estimator", final)
        parts = [
            np.ravel(np.asarray(getattr(final, a), dtype="<f8"))
            for a in ("coef_", "intercept_")
            if hasattr(final, a)
        ]
        if not parts:
            raise InvalidInputError(
                f"model of erase must be a fitted convex model, estimator or sharded model; got "
                f"{type(model).__name__} without coef_. Pass the model the run trained."
            )
        data = np.concatenate(parts).astype("<f8").tobytes()
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------- rebuilt data
def _rebuilt_ids(given: ModelInput, n: int) -> NDArray[np.int64] | None:
    ids = given.row_ids if given.row_ids is not None else getattr(given.X_rebuilt, "row_ids", None)
    if ids is None:  # a traced rebuild (rt.to_numpy of a joined frame): its samples' own rows
        from rowtrail.lineage._sklearn import fit_rows_of

        rows = fit_rows_of(given.X_rebuilt)
        ids = None if rows is None else rows.row_ids
    if ids is None:
        return None
    array = np.asarray(ids, dtype=np.int64).reshape(-1)
    if array.size != n:
        raise InvalidInputError(
            f"row_ids of erase must give one sample row id per rebuilt row ({n}); got "
            f"{array.size}. Pass the ids of X_rebuilt or a traced X_rebuilt."
        )
    return array


def check_rebuilt(given: ModelInput, erased: NDArray[np.int64], removed: NDArray[np.int64]) -> None:
    """Refuse rebuilt data that still holds an erased source row or a removed sample."""
    if given.X_rebuilt is None:
        return
    n = len(given.X_rebuilt)
    ids = _rebuilt_ids(given, n)
    if ids is not None and np.isin(ids, removed).any():
        raise InvalidInputError(
            f"X_rebuilt of erase must leave out the erased samples; it holds "
            f"{int(np.isin(ids, removed).sum())} of them. Rebuild the training data from the "
            "sources with the erased rows excluded. Nothing was written."
        )
    from rowtrail.lineage import lineage

    try:
        view = lineage(given.X_rebuilt)
    except LineageError:  # an untraced rebuild has no lineage to check
        return
    held = [np.asarray(view.row_ids(i), dtype=np.int64) for i in range(int(view.n_rows))]
    if held and np.isin(np.concatenate(held), erased).any():
        raise InvalidInputError(
            "X_rebuilt of erase must be built without the erased rows; its lineage still "
            "holds some of them (filter them out of every source frame before joining and "
            "aggregating). Nothing was written."
        )


# ---------------------------------------------------------------------- methods
def choose(method: str, given: ModelInput, statistics: bool) -> str:
    """Return the method ``method`` resolves to for the model of ``given``."""
    model = given.model
    if method not in METHODS:
        raise InvalidInputError(f"method of erase must be one of {list(METHODS)}; got {method!r}")
    if method == "newton" and statistics:
        raise InvalidInputError(
            "method of erase must not be 'newton' here: the erased rows entered fitted "
            "statistics (a scaler's mean), so every sample's features change; use 'retrain' "
            "(or 'auto') with the rebuilt data. Nothing was written."
        )
    if method != "auto":
        return method
    if given.replay is not None:
        return "replay"
    if hasattr(model, "shards") and callable(getattr(model, "unlearn", None)):
        return "sisa"
    if _convex_of(model) is not None and not statistics and given.X is not None:
        return "newton"
    return "retrain"


def _retrain_convex(fit: ConvexFit, given: ModelInput) -> tuple[ConvexFit, float, int]:
    """Warm-started exact retraining of a convex fit on the rebuilt data."""
    from rowtrail.training._convex import _penalty
    from rowtrail.unlearning._convex import gradient_norm, retrain_design

    design = fit.design(given.X_rebuilt)
    target = np.asarray(given.y_rebuilt, dtype=np.float64).reshape(-1)
    pen = _penalty(design.shape[1], fit.l2, fit.fit_intercept)
    theta, steps = retrain_design(fit.model, design, target, pen, init=fit.theta)
    new = copy.copy(fit)
    new.theta, new.ledger_index, new.blobs = theta, None, {}
    ids = _rebuilt_ids(given, design.shape[0])
    new.row_ids = ids if ids is not None else np.zeros(0, dtype=np.int64)
    return new, gradient_norm(fit.model, design, target, pen, theta), steps


def _retrain_estimator(model: Any, given: ModelInput) -> Any:
    """Fit a clone of the estimator/pipeline on the rebuilt data (statistics refitted)."""
    from rowtrail._optional import require
    from rowtrail.lineage._sklearn_inputs import plain_input

    base = require("sklearn.base", extra="sklearn", feature="erase(method='retrain')")
    estimator = getattr(model, "estimator", model)
    # The rebuilt data's lineage was checked (check_rebuilt); the refit sees plain data.
    return base.clone(estimator).fit(plain_input(given.X_rebuilt), plain_input(given.y_rebuilt))


def _newton(
    fit: ConvexFit,
    given: ModelInput,
    remove: NDArray[np.int64],
    replace: NDArray[np.int64],
    tol: float | None,
) -> Any:
    """Newton removal/replacement to tolerance (:func:`._convex.unlearn_convex`)."""
    from rowtrail.unlearning._convex import unlearn_convex

    options: dict[str, Any] = {"remove": remove, "tol": tol}
    if replace.size:
        rebuilt = np.asarray(given.X_rebuilt, dtype=np.float64)
        ids = _rebuilt_ids(given, rebuilt.shape[0])
        if ids is None:
            raise InvalidInputError(
                "X_rebuilt of erase needs row ids (a traced array, or row_ids=) to replace the "
                "recomputed samples. Nothing was written."
            )
        where = {int(r): i for i, r in enumerate(ids.tolist())}
        order = [where[int(r)] for r in fit.row_ids[replace].tolist()]
        options["replace"] = (replace, rebuilt[order])
    return unlearn_convex(fit, given.X, given.y, **options)


def _refuse_recomputed(recomputed: NDArray[np.int64], method: str, instead: str) -> None:
    """Raise when samples must be recomputed: ``method`` can only remove samples."""
    if recomputed.size:
        raise InvalidInputError(
            f"model of erase: {method} removes samples but cannot recompute the "
            f"{recomputed.size} sample(s) built from the erased rows by a join or aggregation; "
            f"rebuild the dataset and {instead}. Nothing was written."
        )


def _sisa(
    run_id: str,
    given: ModelInput,
    removed: NDArray[np.int64],
    recomputed: NDArray[np.int64],
    before: str,
    start: float,
) -> ModelUpdate:
    """Retrain the affected shards (:meth:`ShardedModel.unlearn`)."""
    _refuse_recomputed(recomputed, "sharded retraining", "train the sharded model again")
    out = given.model.unlearn(removed)
    after = getattr(out, "model", given.model)
    figures: dict[str, Any] = {
        "affected_shards": list(getattr(out, "affected_shards", ())),
        "sharded_event": getattr(out, "ledger_index", None),
    }
    return ModelUpdate(
        run_id,
        None,
        str(getattr(out, "method", "sisa")),
        bool(getattr(out, "exact", True)),
        str(getattr(out, "model_digest_before", before)),
        str(getattr(out, "model_digest_after", None) or params_digest(after)),
        None,
        None,
        None,
        None,
        time.perf_counter() - start,
        after,
        figures,
    )


def _replay(
    run_id: str,
    given: ModelInput,
    removed: NDArray[np.int64],
    recomputed: NDArray[np.int64],
    before: str,
    start: float,
) -> ModelUpdate:
    """Unlearn by replaying the recorded training without the rows (exact)."""
    from rowtrail.training import unlearn_by_replay

    if given.replay is None:
        raise InvalidInputError(
            "replay of erase(method='replay') must be the replayable run or its Replayer. "
            "Nothing was written."
        )
    _refuse_recomputed(recomputed, "replay", "retrain (retrain=...)")
    out = unlearn_by_replay(given.replay, removed)
    model = given.model
    if callable(getattr(model, "load_state_dict", None)):
        model = copy.deepcopy(model)
        model.load_state_dict(out.model_state)
    figures: dict[str, Any] = {
        "first_step": out.first_step,
        "steps_replayed": out.steps_replayed,
        "resumed_from_checkpoint": out.checkpoint,
    }
    return ModelUpdate(
        run_id, None, str(out.method).split(" ")[0], True, before, out.digest, None, 0.0,
        None, out.steps_replayed, time.perf_counter() - start, model, figures,
    )


def _verification(
    fit: ConvexFit,
    theta: NDArray[np.float64],
    given: ModelInput,
    remove: NDArray[np.int64],
    replace: NDArray[np.int64],
) -> dict[str, Any]:
    """Compare Newton removal with exact retraining on the retained data (when ``test``).

    Calls :func:`._verify.compare_with_retraining`; without ``test`` no figures are
    recorded (the event then says ``"not verified"``).
    """
    if given.test is None:
        return {"status": "not verified: no test data given"}
    from rowtrail.unlearning import _verify
    X = np.asarray(given.X, dtype=np.float64)  # noqa: N806 - X as in sklearn
    y = np.asarray(given.y, dtype=np.float64).reshape(-1)
    keep = np.setdiff1d(np.arange(X.shape[0]), remove)
    retained = X.copy()
    if replace.size:  # the recomputed samples enter the reference with their new features
        rebuilt = np.asarray(given.X_rebuilt, dtype=np.float64)
        ids = _rebuilt_ids(given, rebuilt.shape[0])
        if ids is not None:
            lookup = {int(r): i for i, r in enumerate(ids.tolist())}
            for position in replace.tolist():
                retained[position] = rebuilt[lookup[int(fit.row_ids[position])]]
    reference, _, _ = _retrain_convex(
        fit, ModelInput(fit, X_rebuilt=retained[keep], y_rebuilt=y[keep])
    )
    view = _verify.ModelView.from_linear
    result = _verify.compare_with_retraining(
        view(fit.theta, fit_intercept=fit.fit_intercept),
        view(theta, fit_intercept=fit.fit_intercept),
        view(reference.theta, fit_intercept=fit.fit_intercept),
        # What is forgotten: the removed samples, or (a replacement alone) the old versions of
        # the recomputed samples, which held the erased rows.
        forget=(X[remove], y[remove]) if remove.size else (X[replace], y[replace]),
        test=(np.asarray(given.test[0], np.float64), np.asarray(given.test[1], np.float64)),
    )
    figures: dict[str, Any] = {
        k: (None if isinstance(v, float) and not np.isfinite(v) else v)
        for k, v in vars(result).items()
        if isinstance(v, int | float | bool | str) or v is None
    }
    figures["failures"] = list(getattr(result, "failures", ()))
    figures["status"] = "passed" if getattr(result, "passed", False) else "failed"
    return figures


def update_model(
    run_id: str,
    given: ModelInput,
    *,
    method: str,
    removed: NDArray[np.int64],
    recomputed: NDArray[np.int64],
    statistics: bool,
    tol: float | None = None,
) -> ModelUpdate:
    """Apply the chosen method to one model and return its :class:`ModelUpdate`."""
    chosen = choose(method, given, statistics)
    before = params_digest(given.model)
    fit = _convex_of(given.model)
    start = time.perf_counter()
    if chosen == "sisa":
        return _sisa(run_id, given, removed, recomputed, before, start)
    if chosen == "replay":
        return _replay(run_id, given, removed, recomputed, before, start)
    if chosen == "newton":
        if fit is None or given.X is None or given.y is None:
            raise InvalidInputError(
                "model of erase(method='newton') must be a convex fit given with its training "
                "data X, y. Nothing was written."
            )
        remove = np.flatnonzero(np.isin(fit.row_ids, removed)).astype(np.int64)
        replace = np.flatnonzero(np.isin(fit.row_ids, recomputed)).astype(np.int64)
        out = _newton(fit, given, remove, replace, tol)
        new = copy.copy(fit)
        new.theta = np.asarray(out.theta, dtype=np.float64)
        # Newton removal iterated until the retained-data gradient residual is below the
        # tolerance is exact to that tolerance (residual and parameter bound recorded); a
        # "retrain-warm" fallback is retrained to the same tolerance. Neither is a first-order
        # approximation, which rowtrail labels "approximate".
        exact = True
        figures = _verification(fit, new.theta, given, remove, replace)
        return ModelUpdate(
            run_id,
            fit.ledger_index,
            str(out.method),
            exact,
            before,
            params_digest(new),
            float(out.residual),
            float(out.bound),
            float(out.tolerance),
            int(out.steps),
            time.perf_counter() - start,
            new,
            figures | {"exact_label": str(getattr(out, "exact_label", ""))},
            theta=new.theta,
        )
    if given.retrain is not None:
        return _retrained(
            run_id, given, before, start, given.retrain(), by="the caller's training"
        )
    if given.X_rebuilt is None or given.y_rebuilt is None:
        raise InvalidInputError(
            f"X_rebuilt and y_rebuilt of erase are needed to retrain run {run_id}: rebuild the "
            "training data from the sources without the erased rows. Nothing was written."
        )
    if isinstance(given.model, ConvexFit):
        new_fit, residual, steps = _retrain_convex(given.model, given)
        return _retrained(
            run_id, given, before, start, new_fit, residual=residual, steps=steps,
            theta=new_fit.theta,
        )
    return _retrained(run_id, given, before, start, _retrain_estimator(given.model, given))


def _retrained(
    run_id: str,
    given: ModelInput,
    before: str,
    start: float,
    model: Any,
    *,
    by: str = "",
    residual: float | None = None,
    steps: int | None = None,
    theta: NDArray[np.float64] | None = None,
) -> ModelUpdate:
    """Return the update of a model retrained without the rows (exact; bound 0)."""
    reference = "is the model retrained without the rows" + (f" ({by})" if by else "")
    return ModelUpdate(
        run_id,
        fit_index_of(given.model),
        "retrain",
        True,
        before,
        params_digest(model),
        residual,
        0.0,
        None,
        steps,
        time.perf_counter() - start,
        model,
        {"reference": reference},
        theta=theta,
    )
