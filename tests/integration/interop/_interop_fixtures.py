"""A small workspace with every event kind the interop exports read, built with the public API.

Sources (a CSV with a subject column, a NumPy array), a persisted pipeline, a completed and a
failed training run, the registry's dataset version, run, model version (the sealed weights)
and deployment, a logged prediction about one subject and that subject's erasure.
"""

# ruff: noqa: N806 - X, y: scikit-learn's naming

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

import rowtrail as rt
from rowtrail.training import fit_logistic
from rowtrail.unlearning._methods import ModelInput

N_APPLICANTS = 24


@dataclass
class Built:
    """The workspace and the facts the tests check the exports against."""

    ws: rt.Workspace
    path: Path
    csv: Path
    subject_raw: str
    subject: str
    prediction: int
    model_digest: str


def _clock(start: datetime) -> object:
    moments = iter(start + timedelta(seconds=i) for i in range(10**6))
    return lambda: next(moments)


def build(root: Path, *, actor: str = "alice") -> Built:
    """Return a fresh workspace under ``root`` holding every exported event kind."""
    rng = np.random.default_rng(7)
    csv = root / "applicants.csv"
    lines = ["applicant_id,age,income,label"]
    for i in range(N_APPLICANTS):
        lines.append(f"app-{i:03d},{30 + i % 20},{1000 + 37 * i},{i % 2}")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ws = rt.init(root / "ws", actor=actor, now=_clock(datetime(2026, 3, 1, tzinfo=UTC)))
    table = rt.load_csv(csv, workspace=ws, subject="applicant_id", columns=["age", "income"])
    labels = rt.load_csv(csv, workspace=ws, name="labels", columns=["label"])
    noise = rt.track(rng.normal(size=(N_APPLICANTS, 2)), source="noise", workspace=ws)
    with ws.pipeline("prep"):
        X = table * np.array([0.05, 0.001]) - 1.5 + 0.01 * noise
        rt.flush(X, name="features")
    y = np.asarray(labels)[:, 0]
    with ws.training_run("scorecard", params={"l2": 1.0}) as run:
        fit = fit_logistic(X, y, l2=1.0, run=run)
    sealed = ws.ledger.entries_of_kind("training.completed")[0].event.payload
    weights = ws.blobs.get(sealed["model"]["digest"])
    dataset = ws.registry.register_dataset("credit", sources=X)
    logged = ws.registry.log_run("scorecard", params={"l2": 1.0}, datasets=[dataset],
                                 training_run=run)
    ws.registry.register_model("scorecard", weights, run=logged, flavor="bytes")
    ws.registry.grant_role(actor, "approver")
    ws.registry.set_policy({"stages": {"production": {
        "approvals": 1, "approver_role": "approver", "attestations": {"tests": "passed"}}}})
    ws.registry.attest("scorecard", 1, kind="tests", passed=True, report={"auc": 0.8})
    ws.registry.approve("scorecard", 1, stage="production", comment="ok")
    ws.registry.promote("scorecard", 1, stage="production")
    ws.registry.deploy("scorecard", "production", environment="prod-eu",
                       config={"threshold": 0.5})
    try:
        with ws.training_run("broken"):
            raise ArithmeticError("diverged")
    except ArithmeticError:
        pass
    subject_raw = "app-003"
    subject = ws.pseudonymize(subject_raw)
    prediction = ws.ledger.append(
        "prediction.made", {"model": "scorecard", "decision": "declined", "score": 0.7},
        subjects=[subject],
    )
    ws.erase(subject=subject_raw, reason="GDPR Art. 17").run(ModelInput(fit, X=X, y=y))
    return Built(ws, root / "ws", csv, subject_raw, subject, prediction,
                 str(sealed["model"]["digest"]))
