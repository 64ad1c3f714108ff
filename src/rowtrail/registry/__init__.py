"""Registry audit trail: datasets, runs, model versions, approvals, deployments.

Every entity is an append-only series of ``registry.*`` ledger events naming their actor;
answers (an alias's history, what served an alias at a time, a deployment's model, run, data
and code) are replayed from proven events, and the registry's tables are caches that
``Workspace.verify`` rebuilds from the ledger. Promotions and provenance are gated by a
declarative policy; refusals are ledger events too.

- :class:`Registry` (``ws.registry``): ``register_dataset``, ``log_run``, ``register_model``
  (``ModelVersion.load()``), ``attest``, ``approve``, ``promote``, ``set_alias``,
  ``history``, ``alias_at``, ``deploy``, ``deployment``, ``set_policy``, ``grant_role``,
  ``override``.
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
