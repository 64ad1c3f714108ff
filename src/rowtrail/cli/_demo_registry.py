"""Demo section: the registry audit trail — register, attest, approve, a refused promotion, deploy.

Uses the logistic regression the training section fitted (``ctx.state["training"]``) and the
traced training frame of the frames section (``ctx.state["credit_train"]``) when present;
otherwise it registers the dataset from its source names (lineage "unknown", which the
provenance policy then names). Roles and policy are ledger events; the refused promotion is
one too, with every reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.errors import PolicyRefusedError
from rowtrail.registry import Registry

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]

_POLICY = {
    "stages": {
        "production": {
            "approvals": 2,
            "distinct_actors": True,
            "approver_role": "approver",
            "attestations": {"tests": "passed"},
        }
    },
    "provenance": {
        "lineage": "known",
        "schema": "valid",
        "records": "verified",
        "override_role": "risk-officer",
    },
}


def _dataset(ctx: DemoContext, reg: Registry) -> Any:
    traced = (ctx.state.get("credit_train") or {}).get("X_traced")
    if traced is not None:
        return reg.register_dataset("credit-train", sources=traced)
    names = sorted({s.name for s in ctx.ws.lineage_store.list_sources()})
    return reg.register_dataset("credit-train", sources=names[:1])


def _model(ctx: DemoContext, reg: Registry, dataset: Any) -> Any:
    trained = ctx.state.get("training") or {}
    fit, run_id = trained.get("logistic"), trained.get("logistic_run")
    if dataset.lineage_status != "recorded":
        waiver = Registry(ctx.ws, actor="rita").override(
            dataset, checks=["lineage"], reason="demo without the traced frame")
        ctx.say(f"provenance override by rita (risk officer): event {waiver.index}")
    run = reg.log_run("credit-scorecard", params={"l2": 1.0}, metrics={
        "n_train": int(fit.row_ids.size) if fit is not None else 0,
    }, datasets=[dataset], training_run=run_id)
    # The seal names the fit's parameters blob: registering those bytes binds the version.
    weights = (np.ascontiguousarray(fit.theta, dtype="<f8").tobytes() if fit is not None
               else b"demo-weights")
    return run, reg.register_model("credit-scorecard", weights, run=run, flavor="bytes")


def section(ctx: DemoContext) -> None:
    """Register, attest, approve, refuse a promotion with its reasons, promote, deploy."""
    ctx.heading("Registry: who approved which model, what served when")
    ws, admin = ctx.ws, ctx.ws.registry
    admin.grant_role("alice", "approver")  # the first grant makes its actor ("demo") admin
    admin.grant_role("bob", "approver")
    admin.grant_role("rita", "risk-officer")
    admin.set_policy(_POLICY)
    ctx.say("policy (a ledger event): production needs 2 approvals by distinct approvers and "
            "a passing 'tests' attestation; inputs need known lineage, valid schemas, "
            "verified records")
    dataset = _dataset(ctx, admin)
    run, model = _model(ctx, admin, dataset)
    ctx.say(f"dataset {dataset.name} v{dataset.version}: lineage {dataset.lineage_status}, "
            f"{len(dataset.sources)} source(s); run {run.run_id} (code "
            f"{run.code.get('git_commit') or 'unknown'}); model v{model.version} artifact "
            f"{model.artifact_digest[:23]}… bound to the sealed fit: {model.binding}")
    alice, bob = Registry(ws, actor="alice"), Registry(ws, actor="bob")
    admin.attest(model.name, model.version, kind="tests", passed=True,
                 report={"suite": "scorecard-checks", "passed": 12, "failed": 0})
    alice.approve(model.name, model.version, stage="production", comment="metrics reviewed")
    try:
        admin.promote(model.name, model.version, stage="production")
    except PolicyRefusedError as refused:
        ctx.say(f"[yellow]promotion refused[/] (logged as ledger event {refused.index}): "
                + "; ".join(refused.reasons))
        refusal = {"index": refused.index, "reasons": list(refused.reasons)}
    bob.approve(model.name, model.version, stage="production", comment="fairness reviewed")
    change = admin.promote(model.name, model.version, stage="production")
    ctx.say(f"second approval by bob -> promoted to production (event {change.index}, "
            f"approvals {list(change.approvals)})")
    dep = admin.deploy(model.name, "production", environment="prod-eu",
                       config={"threshold": 0.5, "replicas": 2})
    found = admin.deployment(dep.deployment_id)
    mv = found.model_version
    source = mv.run.datasets[0].sources[0]["name"] if mv.run and mv.run.datasets else None
    ctx.say(f"deployment {dep.deployment_id} -> {mv.name} v{mv.version} -> run "
            f"{mv.run.run_id if mv.run else None} -> dataset -> {source}; config "
            f"{dep.config_digest[:23]}…")
    before = admin.alias_at(model.name, "production", change.created_at.replace(year=2000))
    ctx.say(f"production served at the promotion: v{change.version}; in 2000: {before}")
    ctx.state["deployment"] = dep
    ctx.record("registry", {
        "dataset": dataset.to_json(), "run_id": run.run_id, "model_version": model.version,
        "binding": model.binding, "refusal": refusal, "promotion_index": change.index,
        "deployment_id": dep.deployment_id, "history": len(admin.history(model.name)),
    })
