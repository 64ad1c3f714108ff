"""MLflow: attach rowtrail's evidence to an MLflow run, and read it back.

:func:`attach_to_mlflow` sets ``rowtrail.*`` tags on an MLflow run: the matching registry
record's ledger index, leaf hash and inclusion proof, the signed checkpoint (size, root, note),
the verifier key, and the lineage digest of the run's data, so an MLflow user can find the
evidence and check it (:func:`rowtrail.interop.verify_mlflow_tags`, ``rowtrail mlflow
verify``) with a verifier key they pinned — never the ``rowtrail.vkey`` tag itself, which
anyone who can write tags could replace. The workspace is only read.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError
from rowtrail.interop._evidence import collect_evidence
from rowtrail.interop._mlflow import (
    FEATURE,
    TAG_PREFIX,
    check_tracking_uri,
    mlflow_client,
    mlflow_error,
)

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["attach_to_mlflow", "evidence_tags", "read_mlflow_tags"]


def _matching_import(ws: Workspace, run_id: str) -> Any:
    """Return the latest registry run imported from MLflow run ``run_id``, or ``None``."""
    found = [r for r in ws.registry.runs()
             if (r.origin or {}).get("system") == "mlflow"
             and (r.origin or {}).get("mlflow_run_id") == run_id]
    return found[-1] if found else None


def _lineage_tags(run: Any) -> dict[str, str]:
    datasets = [{"name": d.name, "version": d.version, "lineage_digest": d.lineage_digest,
                 "lineage_status": d.lineage_status} for d in run.datasets]
    known = [d["lineage_digest"] for d in datasets if d["lineage_status"] == "recorded"]
    single = known[0] if len(datasets) == 1 and len(known) == 1 else "unknown"
    return {
        "lineage_digest": str(single),
        "datasets": json.dumps(datasets, sort_keys=True, separators=(",", ":")),
    }


def _check_run_id(run_id: object, caller: str = "attach_to_mlflow") -> None:
    if not isinstance(run_id, str) or not run_id:
        raise InvalidInputError(f"run_id of {caller} must be an MLflow run id; got {run_id!r}")


def attach_to_mlflow(
    ws: Workspace,
    run_id: str,
    *,
    tracking_uri: str,
    registry_run: str | None = None,
) -> dict[str, str]:
    """Set ``rowtrail.*`` tags on MLflow run ``run_id``: where and how to verify its record.

    The registry run is the one imported from ``run_id`` (the latest import) or, for a run
    logged in rowtrail directly, ``registry_run``. Reads the workspace only.

    Tags set: ``rowtrail.origin``, ``rowtrail.vkey`` (the pinned verifier key),
    ``rowtrail.registry_run``, ``rowtrail.ledger_index`` / ``rowtrail.leaf_hash`` /
    ``rowtrail.inclusion_path`` of its ``registry.run`` event, ``rowtrail.checkpoint.size`` /
    ``.root`` / ``.note`` of the signed checkpoint that proof is for,
    ``rowtrail.lineage_digest`` (the lineage DAG digest of its one dataset version;
    ``"unknown"`` when it has none, several, or one whose lineage was not traced),
    ``rowtrail.datasets`` (JSON) and ``rowtrail.model_digest`` (the sealed weights, when the
    run wraps a training run).

    Returns
    -------
    dict
        The tags set.

    Raises
    ------
    InvalidInputError
        Unknown MLflow run, bad URI, or no registry run matches; nothing is written.
    """
    uri = check_tracking_uri(tracking_uri, "attach_to_mlflow")
    _check_run_id(run_id)
    mlflow_exceptions = require("mlflow.exceptions", extra="mlflow", feature=FEATURE)
    client = mlflow_client(uri)
    try:
        client.get_run(run_id)
    except mlflow_exceptions.MlflowException as exc:
        raise mlflow_error(exc, "run_id", "attach_to_mlflow") from exc
    tags = evidence_tags(ws, run_id, registry_run)
    entities = require("mlflow.entities", extra="mlflow", feature=FEATURE)
    try:
        client.log_batch(run_id, tags=[entities.RunTag(k, v) for k, v in sorted(tags.items())])
    except mlflow_exceptions.MlflowException as exc:
        raise mlflow_error(exc, "run_id", "attach_to_mlflow") from exc
    return tags


def evidence_tags(ws: Workspace, mlflow_run_id: str, registry_run: str | None) -> dict[str, str]:
    """Return the ``rowtrail.*`` tags for an MLflow run (see :func:`attach_to_mlflow`)."""
    registry = ws.registry
    if registry_run is None:
        matched = _matching_import(ws, mlflow_run_id)
        if matched is None:
            raise InvalidInputError(
                f"run_id of attach_to_mlflow: MLflow run {mlflow_run_id!r} was not imported "
                "into this workspace. Import it first (rowtrail import mlflow) or name the "
                "registry run it matches (registry_run=). Nothing was written."
            )
        registry_run = str(matched.run_id)
    run = registry.run(registry_run)
    evidence = collect_evidence(ws, ("registry.run",))
    record = next((r for r in evidence.of("registry.run") if r.index == run.index), None)
    if record is None:
        raise InvalidInputError(
            f"registry_run of attach_to_mlflow: run {registry_run!r} is not covered by the "
            "signed checkpoint yet. Nothing was written."
        )
    head = evidence.head
    model_digest = run.model_digest
    tags = {
        "origin": evidence.origin,
        "vkey": ws.trust_root().verifier.vkey,
        "registry_run": run.run_id,
        "ledger_index": str(record.index),
        "leaf_hash": record.leaf_hash_hex,
        "inclusion_path": json.dumps([step.hex() for step in record.proof.path]),
        "checkpoint.size": str(head.size),
        "checkpoint.root": head.root.hex(),
        "checkpoint.note": evidence.checkpoint_note,
        **_lineage_tags(run),
    }
    if model_digest is not None:
        tags["model_digest"] = str(model_digest)
    return {TAG_PREFIX + key: value for key, value in tags.items()}


def read_mlflow_tags(run_id: str, *, tracking_uri: str) -> dict[str, str]:
    """Return the ``rowtrail.*`` tags of MLflow run ``run_id`` (reads MLflow only).

    Raises
    ------
    InvalidInputError
        Unknown run or bad URI.
    """
    uri = check_tracking_uri(tracking_uri, "read_mlflow_tags")
    _check_run_id(run_id, "read_mlflow_tags")
    mlflow_exceptions = require("mlflow.exceptions", extra="mlflow", feature=FEATURE)
    try:
        run = mlflow_client(uri).get_run(run_id)
    except mlflow_exceptions.MlflowException as exc:
        raise mlflow_error(exc, "run_id", "read_mlflow_tags") from exc
    return {k: v for k, v in run.data.tags.items() if k.startswith(TAG_PREFIX)}
