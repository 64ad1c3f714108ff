"""Registry audit trail: datasets, runs, model versions, approvals, deployments, predictions.

Every entity is an append-only series of ``registry.*`` ledger events naming their actor;
answers (an alias's history, what served an alias at a time, a deployment's model, run, data
and code) are replayed from proven events, and the registry's tables are caches that
``Workspace.verify`` rebuilds from the ledger. Promotions and provenance are gated by a
declarative policy; refusals are ledger events too.

- :class:`Registry` (``ws.registry``): ``register_dataset``, ``log_run``, ``register_model``
  (``ModelVersion.load()``), ``attest``, ``approve``, ``promote``, ``set_alias``,
  ``history``, ``alias_at``, ``deploy``, ``deployment``, ``deployment_at``, ``set_policy``,
  ``grant_role``, ``override``, ``prediction_logger``, ``prediction``, ``reproduce``.
- Serving: :class:`PredictionLogger` (batched, asynchronous, crash-safe through a spool),
  :func:`find_prediction`, :func:`reproduce` (prediction -> deployment -> model -> run ->
  data -> commit, re-scored), :func:`reconcile` (every blob re-hashed), retention
  (:func:`set_retention_policy`, :func:`apply_retention`: payloads expire, proofs stay).
- :func:`verify_registry` (run by ``Workspace.verify``): re-checks every registry decision
  against the roles and policy in force when it was made.
- Records: :class:`DatasetVersion`, :class:`RunRecord`, :class:`ModelVersion`,
  :class:`Deployment`, :class:`AliasChange`, :class:`Approval`, :class:`Attestation`,
  :class:`Override`, :class:`Refusal`.
"""

from __future__ import annotations

from rowtrail.registry._audit import verify_registry
from rowtrail.registry._policy import check_policy
from rowtrail.registry._records import (
    AliasChange,
    Approval,
    Attestation,
    DatasetVersion,
    Deployment,
    ModelVersion,
    Override,
    Refusal,
    RunRecord,
)
from rowtrail.registry._registry import Registry

__all__ = [
    "AliasChange",
    "Approval",
    "Attestation",
    "DatasetVersion",
    "Deployment",
    "ModelVersion",
    "Override",
    "Refusal",
    "Registry",
    "RunRecord",
    "check_policy",
    "verify_registry",
]

# Serving: prediction logging, reproduce, reconcile, retention.
from rowtrail.registry._prediction_logger import PredictionLogger
from rowtrail.registry._predictions import (
    PREDICTION_BATCH_KIND,
    PredictionRecord,
    find_prediction,
    load_prediction_input,
    replay_prediction_spool,
)
from rowtrail.registry._reconcile import Mismatch, ReconcileReport, reconcile
from rowtrail.registry._reproduce import ReproduceResult, reproduce
from rowtrail.registry._retention import (
    LEGAL_MINIMUM_DAYS,
    ExpiredPayload,
    RetentionPolicy,
    RetentionReport,
    apply_retention,
    retention_policy,
    set_retention_policy,
    verify_retention,
)

__all__ += [
    "LEGAL_MINIMUM_DAYS",
    "PREDICTION_BATCH_KIND",
    "ExpiredPayload",
    "Mismatch",
    "PredictionLogger",
    "PredictionRecord",
    "ReconcileReport",
    "ReproduceResult",
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
    "find_prediction",
    "load_prediction_input",
    "reconcile",
    "replay_prediction_spool",
    "reproduce",
    "retention_policy",
    "set_retention_policy",
    "verify_retention",
]
__all__.sort(key=lambda n: (0 if n.isupper() else 1 if n[:1].isupper() else 2, n))
