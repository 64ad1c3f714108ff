"""The seal of a run: the ``training.completed`` event linking data, code, environment, model.

``data`` lists every source the run's samples came from (index, name, digest; with the tables
joined or aggregated into them and the rows of fitted statistics), the row-id blobs of its
splits (with ``row_ids: false`` for a split whose ids are stand-in positions) and, where the
datasets carried one, the digest of their lineage DAG;
``code`` is the git commit and dirty flag; ``environment`` the Python version and packages
lock digest; ``model`` the digest of the final weights blob (or of a convex fit's parameters,
or of a fitted scikit-learn estimator's pickled bytes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rowtrail.hashing import canonical_json, sha256_digest

if TYPE_CHECKING:
    from rowtrail.training._run import TrainingRun

__all__ = ["seal_payload"]


def _data_section(run: TrainingRun) -> dict[str, Any]:
    sources: dict[int, dict[str, Any]] = {}
    splits = []
    for split in run.splits.values():
        entry = run.ws.ledger.entry(split.ledger_index)
        payload = entry.event.payload
        lineage = payload.get("lineage") or {}
        for source in [*payload["sources"], *lineage.get("sources", [])]:
            sources[source["source_index"]] = source
        splits.append(
            {
                "dataset": split.key,
                "role": split.role,
                "n_samples": int(split.row_ids.size),
                "ledger_index": split.ledger_index,
                "ids_blob": payload.get("ids_blob") or entry.event.blobs[0],
                "row_ids": bool(payload.get("row_ids", True)),
            }
        )
    dags = sorted(run.lineage_digests)
    return {
        "sources": [sources[key] for key in sorted(sources)],
        "splits": splits,
        "lineage_dag_digest": (
            None if not dags else dags[0] if len(dags) == 1
            else sha256_digest(canonical_json(dags))
        ),
    }


def _model_section(run: TrainingRun) -> tuple[dict[str, Any] | None, list[str]]:
    if run.model is not None:
        from rowtrail.training._torchio import serialize_state

        digest = run.ws.ledger.put_blob(serialize_state(run.model.state_dict()))
        return {"kind": "torch", "class": type(run.model).__qualname__, "digest": digest}, [digest]
    if run.fits:
        fit = run.fits[-1]
        return {"kind": fit["model"], "digest": fit["blobs"]["theta"]}, [fit["blobs"]["theta"]]
    if run.estimators:
        estimator = run.estimators[-1]
        return {"kind": "sklearn", **estimator}, [estimator["digest"]]
    return None, []


def seal_payload(
    run: TrainingRun, *, status: str, code: dict[str, Any], environment: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """Return the ``training.completed`` payload of ``run`` and the blobs it references."""
    model, blobs = _model_section(run)
    payload = {
        "run": run.run_id,
        "name": run.name,
        "status": status,
        "started_index": run.started_index,
        "data": _data_section(run),
        "code": code,
        "environment": environment,
        "model": model,
        "checkpoints": [c["checkpoint"] for c in run.checkpoints],
        "totals": {
            "epochs": dict(run.epochs),
            "batches": dict(run.batches),
            "optimizer_steps": run.n_steps,
            "sample_uses": run.n_sample_uses,
            "fits": len(run.fits),
        },
    }
    if run.replay_index is not None:
        payload["replay"] = run.replay_index  # ledger index of the training.replay event
    return payload, blobs
