"""``rowtrail demo`` section: an applicant asks to be erased (GDPR Art. 17).

The training applicant whose record most supported the explained decline asks to be
forgotten. The section does what a data protection officer would: one erasure job for the
applicant's application row (by subject) and their bureau and previous-application records
(by rows, found by the applicant's key in those tables); the plan says what the rows reached;
every model the rows reached is updated by the method its class allows: the scikit-learn
scorecard is refitted on the user's own pipeline re-run with the rows left out
(``job.excluding()``; exact: the rows entered the scaler's statistics, so every sample's
features change), the convex logistic fit by Newton removal to a certified tolerance, checked
against retraining, and the MLP by replaying its recorded training without the rows; the
job shreds, records
``erasure.*`` events, and issues a signed certificate, which the CLI then verifies with
nothing but the file and the public key. Last, the subject's usage audit answers "erased on D
by job J".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.training import sample_usage
from rowtrail.unlearning import ModelInput, render_certificate_html, verify_certificate

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]

_REASON = "GDPR Art. 17 request"


def _requests(shared: dict[str, Any], key: int, applicant: str) -> list[dict[str, Any]]:
    """Return the requests for the applicant's rows: by subject, and by key in other tables."""
    import pandas as pd

    requests: list[dict[str, Any]] = [{"subject": applicant, "reason": _REASON}]
    for table in ("bureau", "previous_application"):
        keys = pd.read_csv(shared["paths"][table], usecols=["SK_ID_CURR"])["SK_ID_CURR"]
        rows = np.flatnonzero(keys.to_numpy() == key).tolist()
        if rows:
            requests.append({"source": table, "rows": rows, "reason": _REASON})
    return requests


def _who(ctx: DemoContext, train: Any) -> tuple[int, str]:
    """Return the top supporting training applicant of the explained decision (or the first)."""
    top = ctx.state.get("top_supporting")
    keys = np.asarray(train["SK_ID_CURR"])
    position = 0
    if top is not None and top.source == "application":
        found = np.flatnonzero(keys == int(_application_keys(ctx)[top.row_number]))
        position = int(found[0]) if found.size else 0
    row = train.iloc[position]
    return int(row["SK_ID_CURR"]), str(row["applicant_id"])


def _scorecard_input(ctx: DemoContext, job: Any, shared: dict[str, Any], key: int) -> Any:
    """Return the scorecard's input: the user's pipeline re-run without the rows."""
    from rowtrail.cli._demo_frames import build_table

    train, columns, model = shared["frame"], shared["model_columns"], shared["model"]
    keep = set(np.asarray(train["SK_ID_CURR"]).tolist()) - {key}
    with job.excluding():  # the user's own pipeline, re-run: the rows are left out on read
        table = build_table(ctx, shared["paths"])
    rebuilt = table[table["SK_ID_CURR"].isin(sorted(keep))]
    return ModelInput(model, X_rebuilt=rebuilt[columns], y_rebuilt=np.asarray(rebuilt["TARGET"]))


def _training_inputs(ctx: DemoContext, job: Any) -> list[Any]:
    """Return the training section's logistic fit (Newton) and MLP (retrained) inputs."""
    trained = ctx.state.get("training") or {}
    data, train = trained.get("data"), trained.get("train")
    if data is None or train is None:
        return []
    out = []
    if trained.get("logistic_run") in job.models:
        X, y = data["X"], data["y"]  # noqa: N806 - X as in scikit-learn
        held = np.setdiff1d(np.arange(len(y)), train)
        out.append(
            ModelInput(trained["logistic"], X=X[train], y=y[train], test=(X[held], y[held]))
        )
    if trained.get("mlp") is not None and trained.get("mlp_run") in job.models:
        # A replayable run: unlearned exactly by replaying its recorded training without the
        # rows, from the last checkpoint before their first use (issue 12).
        out.append(ModelInput(trained["mlp"], replay=ctx.state["mlp_run"]))
    return out


def _application_keys(ctx: DemoContext) -> Any:
    import pandas as pd

    path = ctx.state["credit_train"]["paths"]["application"]
    return pd.read_csv(path, usecols=["SK_ID_CURR"])["SK_ID_CURR"].to_numpy()


def section(ctx: DemoContext) -> None:
    """Erase one applicant: plan, model update, shredding, certificate, CLI verification."""
    ctx.heading("Erasure: an applicant asks to be forgotten (GDPR Art. 17)")
    shared = ctx.state.get("credit_train")
    if not isinstance(shared, dict) or shared.get("model") is None:
        ctx.say("skipped: needs the scikit-learn scorecard of the frames section")
        ctx.record("erasure", {"skipped": "no scikit-learn scorecard"})
        return
    train = shared["frame"]
    key, applicant = _who(ctx, train)
    job = ctx.ws.erase_batch(_requests(shared, key, applicant))
    per_table = {
        name: n
        for request in job.requests
        for name, n in request.plan.to_json()["rows_per_source"].items()
    }
    ctx.say(
        f"request: erase applicant SK_ID_CURR {key} (subject {ctx.ws.pseudonymize(applicant)[:15]}"
        f"…): {int(job.row_ids.size)} source rows in {len(per_table)} tables. They reached "
        f"{len(job.models)} trained models:"
    )
    for work in job.models.values():
        ctx.say(
            f"  run {work.run_id}: {work.removed_ids.size} sample(s) to remove, "
            f"{work.recomputed_ids.size} to recompute, fitted statistics to refit: "
            f"{'yes' if work.statistic_ids.size else 'no'}"
        )
    inputs = [_scorecard_input(ctx, job, shared, key), *_training_inputs(ctx, job)]
    result = job.run([i for i in inputs if i is not None])
    for update in result.updates:
        how = (
            f"residual {update.residual:.1e} <= {update.tolerance:.1e}, |θ - θ*| <= "
            f"{update.bound:.1e}; checked against retraining: {update.verification['status']}"
            if update.method == "newton"
            else f"replayed {update.steps} steps from step {update.verification['first_step']}"
            if update.method == "replay"
            else "retrained without the rows"
        )
        ctx.say(
            f"  run {update.run_id}: {update.method} ({'exact' if update.exact else 'approx.'}"
            f"; {how}); model {update.digest_before[7:19]}… → {update.digest_after[7:19]}…"
        )
    ctx.say(f"{len(result.key_ids)} subject data key(s) shredded")
    data = job.certificate()
    certificate = ctx.workdir / "erasure-certificate.json"
    certificate.write_bytes(data)
    vkey = ctx.workdir / "vkey"
    vkey.write_text(ctx.ws.ledger.verifier.vkey + "\n")
    content = verify_certificate(data, vkey.read_text())
    (ctx.workdir / "erasure-certificate.html").write_text(
        render_certificate_html(content, verified=True)
    )
    ctx.say(
        f"certificate: DSSE envelope of an in-toto statement, {len(data):,} bytes, signed by "
        f"the workspace key; {len(content.row_commitments)} rows as salted commitments (no "
        f"ids), {len(content.event_indices)} erasure events with inclusion proofs"
    )
    if not ctx.quiet:
        from rowtrail.cli import app

        ctx.say(f"$ rowtrail certificate verify {certificate.name} --vkey vkey")
        app(
            ["certificate", "verify", str(certificate), "--vkey", str(vkey)],
            standalone_mode=False,
        )
    uses = sample_usage(ctx.ws, subject=applicant)
    answer = uses[0].erased_by if uses else None
    ctx.say(
        f"was applicant {key} used? {len(uses)} uses, each now answered "
        f"'erased on {uses[0].erased_on} by job {answer}'" if uses else "no recorded uses"
    )
    ctx.record(
        "erasure",
        {
            "job": job.job_id,
            "n_rows": int(job.row_ids.size),
            "rows_per_source": per_table,
            "models": [
                {"run": u.run_id, "method": u.method, "exact": u.exact,
                 "model_digest_before": u.digest_before, "model_digest_after": u.digest_after,
                 "verification": u.verification.get("status")}
                for u in result.updates
            ],
            "certificate_bytes": len(data),
            "certificate_verified": True,
            "usage_erased_by": answer,
        },
    )
