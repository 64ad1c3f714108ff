"""Demo section: serving — predictions logged per request, then one reproduced.

The training section's logistic fit, as a scikit-learn estimator with the same parameters, is
registered with the registry section's run (bound to the fit's seal by its parameters) and
deployed; a :class:`PredictionLogger` serves a few
held-out applicants through it (each input sealed under the applicant's data key), and one
prediction is reproduced: prediction -> deployment -> model -> run -> dataset -> commit, every
record proven, the logged input re-scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.registry import PredictionLogger, reproduce

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]


def _deployment(ctx: DemoContext, fit: Any) -> Any:
    """Deploy the training section's logistic fit as a scikit-learn estimator.

    The estimator carries the recorded fit's very parameters, so the registry binds it to
    that run's seal ("parameters") and the erasure section's update covers it.
    """
    from sklearn.linear_model import LogisticRegression

    reg = ctx.ws.registry
    estimator = LogisticRegression(C=1.0)
    estimator.classes_ = np.array([0.0, 1.0])
    estimator.coef_ = np.asarray(fit.coef_, dtype=np.float64)[np.newaxis, :]
    estimator.intercept_ = np.array([fit.intercept_])
    estimator.n_features_in_ = estimator.coef_.shape[1]
    (run, *_) = reg.runs("credit-scorecard")[-1:]  # the registry section's run of this fit
    version = reg.register_model("credit-scorecard-sklearn", estimator, run=run,
                                 flavor="sklearn")
    return reg.deploy(version.name, version.version, environment="prod-eu",
                      config={"threshold": 0.5})


def section(ctx: DemoContext) -> None:
    """Serve held-out applicants through a deployment with logging; reproduce one."""
    ctx.heading("Serving: every prediction logged, then reproduced back to the commit")
    trained = ctx.state.get("training") or {}
    data, train = trained["data"], trained["train"]
    held_out = np.setdiff1d(np.arange(len(data["y"])), train)[:8]
    deployment = _deployment(ctx, trained["logistic"])
    subjects = data.get("subjects")
    pseudonyms = [ctx.ws.pseudonymize(subjects[i]) if subjects else None for i in held_out]
    with PredictionLogger(ctx.ws, deployment) as logger:
        outputs = logger.predict(data["X"][held_out], subjects=pseudonyms)
        ids = logger.last_ids
    ctx.say(f"deployment {deployment.deployment_id}: {len(ids)} requests served and logged "
            f"(ids {ids[0]} … {ids[-1]}), decisions {outputs.tolist()}; inputs sealed under "
            "each applicant's data key")
    result = reproduce(ctx.ws, ids[0])
    code = result.chain.get("code") or {}
    ctx.say(f"rowtrail reproduce {ids[0]}: {result.status.upper()} (logged "
            f"{result.logged_output}, re-scored {result.rescored_output}); chain proven over "
            f"{len(result.records)} records: deployment -> model v"
            f"{result.chain['model_version']['version']} -> run -> "
            f"{[d['name'] for d in result.chain['datasets']]} -> commit "
            f"{code.get('git_commit') or 'unknown'}")
    ctx.state["serving"] = {"prediction_ids": ids, "deployment": deployment}
    ctx.record("serving", {
        "deployment_id": deployment.deployment_id,
        "prediction_ids": ids,
        "reproduced": result.status,
        "records_proven": len(result.records),
    })
