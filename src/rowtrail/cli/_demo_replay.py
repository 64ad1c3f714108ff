"""``rowtrail demo`` section: one MLP decision explained by replaying its training (issue 12).

The training section's MLP ran as a replayable run. Here its recorded training is replayed
bit for bit (the final weights' digest is checked), and one held-out applicant's score is
explained by the metagradient: the exact derivative of this model's output with respect to
each training row's weight, through the whole recorded training (MAGIC, Ilyas & Engstrom
2025), not an estimate averaged over other models.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]


def section(ctx: DemoContext) -> None:
    """Replay the MLP run bit for bit and explain one of its decisions by metagradient."""
    ctx.heading("Replay: this network's decision, attributed through its own training")
    trained = ctx.state.get("training") or {}
    mlp = trained.get("mlp")
    if mlp is None:
        ctx.say("skipped: needs the training section's MLP (PyTorch)")
        ctx.record("replay", {"skipped": "no replayable MLP"})
        return
    from rowtrail.attribution import MetagradientScorer

    run, data, train = ctx.state["mlp_run"], trained["data"], trained["train"]
    replayed = run.replay()
    ctx.say(
        f"run {run.run_id} replayed: {replayed.n_steps} optimizer steps re-executed from the "
        f"recorded initial weights, batch order and RNG states; final weights "
        f"{replayed.digest[7:19]}… equal the sealed ones bit for bit"
    )
    held = np.setdiff1d(np.arange(len(data["y"])), train)
    row = int(held[0])
    scorer = MetagradientScorer(run)
    explanation = ctx.ws.explain(
        np.asarray(data["X"][row : row + 1], dtype=np.float32), attributor=scorer.attributor(),
        top_k=5,
    )
    ctx.say(f"held-out application row {row}; method: {explanation.method}")
    ctx.say(explanation.to_text(max_rows=5))
    ctx.record(
        "replay",
        {
            "run": run.run_id,
            "n_steps": replayed.n_steps,
            "digest": replayed.digest,
            "verified": replayed.verified,
            "method": explanation.method,
            "top_supporting": [s.row_id for s in explanation.supporting[:5]],
        },
    )
