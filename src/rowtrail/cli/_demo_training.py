"""Demo section: train on the credit data with the trail, then ask when a subject was used.

Uses ``ctx.state["credit_train"]`` when an earlier section left one (a mapping with ``X``,
``y`` and ``row_ids``); otherwise it generates the credit tables, registers the application
file as a source with its subject column, and builds the design matrix itself. It fits an
L2 logistic regression (NumPy Newton, Hessian recorded) and, when torch is installed, trains a
small MLP with the batch trail and checkpoints; then it answers "when was subject S's row
used?" with a verified inclusion proof for every answer.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.errors import MissingDependencyError
from rowtrail.hashing import file_digest
from rowtrail.lineage import register_source
from rowtrail.training import fit_logistic, sample_usage

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]

_COLUMNS = ("CNT_CHILDREN", "DAYS_BIRTH", "AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY",
            "EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3")


def _credit_data(ctx: DemoContext) -> dict[str, Any]:
    given = ctx.state.get("credit_train")
    if isinstance(given, dict) and {"X", "y", "row_ids"} <= set(given):
        return given
    from rowtrail.datasets import credit

    n = 2_000 if ctx.size == "small" else 20_000
    data = credit(n_applicants=n, seed=ctx.seed, out_dir=ctx.workdir / "credit-training")
    with open(data.application_path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    matrix = np.array([[float(r[c]) if r[c] else np.nan for c in _COLUMNS] for r in rows])
    matrix = np.where(np.isnan(matrix), np.nanmean(matrix, axis=0), matrix)
    matrix = (matrix - matrix.mean(axis=0)) / matrix.std(axis=0)
    subjects = [r[data.subject_column] for r in rows]
    info = register_source(
        ctx.ws, name="application.csv", digest=file_digest(data.application_path),
        format="csv", schema=dict.fromkeys(_COLUMNS, "float"), n_rows=len(rows),
        path=str(data.application_path), subject_column=data.subject_column,
        subject_ids=subjects,
    )
    target = np.array([float(r[data.target_column]) for r in rows])
    return {"X": matrix, "y": target, "row_ids": info.row_ids(), "subjects": subjects}


def _train_mlp(
    ctx: DemoContext, data: dict[str, Any], train: np.ndarray, *, name: str = "credit-mlp"
) -> Any:
    """Train the MLP on rows ``train`` of ``data`` in a recorded run; return the model."""
    try:
        from rowtrail._optional import require

        torch = require("torch", extra="torch", feature="the demo's training section")
    except MissingDependencyError as exc:
        ctx.say(f"[yellow]skipping the PyTorch trail:[/] {exc}")
        return None
    torch.set_num_threads(1)
    torch.manual_seed(ctx.seed)
    inputs = torch.as_tensor(data["X"][train], dtype=torch.float32)
    targets = torch.as_tensor(data["y"][train], dtype=torch.float32)
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(ctx.seed)
    )
    model = torch.nn.Sequential(torch.nn.Linear(inputs.shape[1], 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def per_sample(output: Any, target: Any) -> Any:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            output[:, 0], target, reduction="none"
        )

    # replayable=True: the run records what replays it bit for bit (issue 12), which gives
    # exact attribution of this model's decisions and exact unlearning by replay.
    with ctx.ws.training_run(name, model=model, optimizer=optimizer, replayable=True,
                             loss_fn=per_sample, params={"hidden": 32, "epochs": 3},
                             checkpoint_every=1) as run:
        for _ in range(3):
            for x, y in run.track(loader, row_ids=data["row_ids"][train]):
                loss = per_sample(model(x), y).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.log_loss(loss)
    ctx.say(f"MLP run {run.run_id}: {run.n_sample_uses} sample-uses in "
            f"{sum(run.batches.values())} batch events, {len(run.checkpoints)} checkpoints")
    model.run_id = run.run_id  # which recorded run this model is the result of
    ctx.state["mlp_run"] = run
    return model


def section(ctx: DemoContext) -> None:
    """Train with the trail and answer "when was subject S's row used?" with proofs."""
    ctx.heading("Training trail: which rows were used, when, with proofs")
    data = _credit_data(ctx)
    n = len(data["y"])
    train = np.arange(int(n * 0.8))
    with ctx.ws.training_run("credit-logistic", params={"l2": 1.0}) as run:
        fit = fit_logistic(data["X"][train], data["y"][train], l2=1.0, run=run,
                           row_ids=data["row_ids"][train])
    ctx.say(f"logistic regression: Newton converged in {fit.n_iter} steps "
            f"(|grad| {fit.grad_norm:.1e}); Hessian {fit.hessian.shape} recorded for influence")
    mlp = _train_mlp(ctx, data, train)
    run_id = None if mlp is None else mlp.run_id
    ctx.state["training"] = {
        "data": data, "train": train, "logistic": fit, "logistic_run": run.run_id,
        "mlp": mlp, "mlp_run": run_id,
    }
    if mlp is not None:
        ctx.state["training"].update({"run_id": run_id, "model": mlp,
                                      "row_ids": data["row_ids"][train]})
    subject = (data.get("subjects") or [None])[3]
    if subject is None:
        uses = sample_usage(ctx.ws, row_ids=[int(data["row_ids"][3])])
    else:
        uses = sample_usage(ctx.ws, subject=subject)
    for use in uses:
        use.proof.verify()
        if use.chunk_proof is not None:
            use.chunk_proof.verify()
    batches = [u for u in uses if u.kind == "batch"]
    ctx.say(f"row 3 of application.csv (one applicant's row, asked by subject pseudonym) "
            f"appears {len(uses)} times; each answer has a verified inclusion proof:")
    for use in batches[:6]:
        ctx.say(f"  epoch {use.epoch} step {use.step:>3} batch {use.batch:>3} "
                f"slot {use.position_in_batch:>2} ({use.role}) -> ledger #{use.ledger_index}, "
                f"proof of {len(use.proof.path)} hashes; seen by checkpoints "
                f"{[c.split(':')[1] for c in use.checkpoint_ids]}")
    other = [u.kind for u in uses if u.kind != "batch"]
    ctx.say(f"  also: {', '.join(other)} (split membership and the convex fit)")
    ctx.record("training", {
        "logistic_n_iter": fit.n_iter,
        "logistic_grad_norm": fit.grad_norm,
        "mlp_run": run_id,
        "uses": len(uses),
        "batch_uses": [[u.epoch, u.step, u.batch, u.ledger_index] for u in batches],
        "proofs_verified": True,
    })
