"""The registry's entities as read back from proven ledger events (frozen dataclasses).

Each record names the ``index`` of the ``registry.*`` ledger event it was read from, the
``actor`` that event records and its time (``created_at``), so every answer can be proven.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    "RunRecord",
]


def _common(record: Any) -> dict[str, Any]:
    return {
        "index": record.index,
        "actor": record.actor,
        "created_at": record.created_at.isoformat(),
    }


@dataclass(frozen=True)
class DatasetVersion:
    """A version of a named dataset: the source versions it holds and its lineage.

    ``sources`` are ``{"name", "version", "source_index", "digest"}`` of each source version;
    ``lineage_status`` is ``"recorded"`` (its lineage DAG digest is ``lineage_digest``) or
    ``"unknown"`` (registered from source names only: how it was derived was not traced);
    ``schema_status`` is ``"failed"`` when a source recorded schema violations at ingestion,
    else ``"none_recorded"`` (validated and clean, or never validated: the log does not say
    which, so it is not called valid).
    """

    name: str
    version: int
    sources: tuple[Mapping[str, Any], ...]
    lineage_digest: str | None
    lineage_status: str
    schema_status: str
    index: int
    actor: str
    created_at: datetime

    @property
    def key(self) -> str:
        """The target key overrides name this dataset version by (``dataset:NAME:VERSION``)."""
        return f"dataset:{self.name}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "sources": [dict(s) for s in self.sources],
            "lineage_digest": self.lineage_digest,
            "lineage_status": self.lineage_status,
            "schema_status": self.schema_status,
            **_common(self),
        }


@dataclass(frozen=True)
class RunRecord:
    """A registered run: parameters, metrics, data, code, environment and hardware.

    ``training_run`` is the id of the rowtrail training run it wraps (``None`` when the run
    was logged without one); ``training_seal`` the ledger index of that run's seal and
    ``model_digest`` the weights/fit digest the seal names. ``code`` holds ``git_commit`` and
    ``dirty`` (``None`` when unknown); ``environment`` the Python version and the packages
    lock digest; ``hardware`` the CPU, memory and accelerators; ``origin`` where an imported
    run came from (``None`` for a run recorded here).
    """

    run_id: str
    name: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]
    datasets: tuple[DatasetVersion, ...]
    training_run: str | None
    training_seal: int | None
    model_digest: str | None
    code: Mapping[str, Any]
    environment: Mapping[str, Any]
    hardware: Mapping[str, Any]
    overrides: tuple[int, ...]
    index: int
    actor: str
    created_at: datetime
    origin: Mapping[str, Any] | None = None

    @property
    def key(self) -> str:
        """The target key overrides name this run by (``run:RUN_ID``)."""
        return f"run:{self.run_id}"

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "run_id": self.run_id,
            "name": self.name,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "datasets": [d.to_json() for d in self.datasets],
            "training_run": self.training_run,
            "training_seal": self.training_seal,
            "model_digest": self.model_digest,
            "code": dict(self.code),
            "environment": dict(self.environment),
            "hardware": dict(self.hardware),
            "overrides": list(self.overrides),
            "origin": None if self.origin is None else dict(self.origin),
            **_common(self),
        }


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version: a content-addressed artifact and the run that made it.

    ``weights_digest`` is the weights/fit digest the run's training seal names, ``None`` for a
    run without a training run; ``binding`` says how the artifact was checked against it:
    ``"artifact"`` (the artifact is the sealed blob) or ``"parameters"`` (a linear
    estimator whose parameters are the sealed fit's). :meth:`load` re-hashes the artifact and
    deserializes it.
    """

    name: str
    version: int
    artifact_digest: str
    flavor: str
    size: int
    run: RunRecord | None
    weights_digest: str | None
    binding: str | None
    overrides: tuple[int, ...]
    index: int
    actor: str
    created_at: datetime
    _registry: Registry | None = field(default=None, repr=False, compare=False)

    @property
    def bound(self) -> bool:
        """Whether the artifact was checked to be the model its training run sealed."""
        return self.binding is not None

    @property
    def key(self) -> str:
        """The target key overrides name this model version by (``model:NAME:VERSION``)."""
        return f"model:{self.name}:{self.version}"

    def load(self) -> Any:
        """Re-hash the artifact against the proven event's digest and deserialize it.

        Returns a scikit-learn estimator (``"sklearn"``), a state dict of tensors
        (``"torch"``) or the raw bytes (``"bytes"``).

        Raises
        ------
        VerificationError
            The artifact's bytes no longer hash to the digest the event names.
        """
        if self._registry is None:
            from rowtrail.errors import StateError

            raise StateError("this ModelVersion is not attached to a registry; read it again")
        return self._registry.load_model(self.name, self.version)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "name": self.name,
            "version": self.version,
            "artifact_digest": self.artifact_digest,
            "flavor": self.flavor,
            "size": self.size,
            "run": None if self.run is None else self.run.to_json(),
            "weights_digest": self.weights_digest,
            "binding": self.binding,
            "overrides": list(self.overrides),
            **_common(self),
        }


@dataclass(frozen=True)
class AliasChange:
    """One move of an alias (or stage): ``version`` is ``None`` when the alias was removed.

    ``via`` is ``"promote"`` or ``"set_alias"``; ``approvals``, ``attestations`` and
    ``overrides`` are the ledger indices of the events the policy gate relied on.
    """

    model: str
    alias: str
    version: int | None
    previous: int | None
    via: str
    approvals: tuple[int, ...]
    attestations: tuple[int, ...]
    overrides: tuple[int, ...]
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "previous": self.previous,
            "via": self.via,
            "approvals": list(self.approvals),
            "attestations": list(self.attestations),
            "overrides": list(self.overrides),
            **_common(self),
        }


@dataclass(frozen=True)
class Approval:
    """An approval of a model version for a stage, by ``actor``."""

    model: str
    version: int
    stage: str
    comment: str
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "stage": self.stage,
            "comment": self.comment,
            **_common(self),
        }


@dataclass(frozen=True)
class Attestation:
    """A check of a model version (tests, fairness, drift): passed or not, with its report.

    ``report_digest`` is the SHA-256 of the canonical JSON report (kept as a blob).
    """

    model: str
    version: int
    kind: str
    passed: bool
    report_digest: str | None
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "model": self.model,
            "version": self.version,
            "kind": self.kind,
            "passed": self.passed,
            "report_digest": self.report_digest,
            **_common(self),
        }


@dataclass(frozen=True)
class Deployment:
    """A deployment of a model version to an environment, with its configuration digest."""

    deployment_id: str
    model_version: ModelVersion
    alias: str | None
    environment: str
    config: Mapping[str, Any]
    config_digest: str
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "deployment_id": self.deployment_id,
            "model": self.model_version.name,
            "version": self.model_version.version,
            "model_version": self.model_version.to_json(),
            "alias": self.alias,
            "environment": self.environment,
            "config": dict(self.config),
            "config_digest": self.config_digest,
            **_common(self),
        }


@dataclass(frozen=True)
class Override:
    """A provenance override: ``checks`` of ``target`` are waived, by an authorised actor."""

    target: str
    checks: tuple[str, ...]
    reason: str
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "target": self.target,
            "checks": list(self.checks),
            "reason": self.reason,
            **_common(self),
        }


@dataclass(frozen=True)
class Refusal:
    """An attempt the policy refused, with every reason (itself a ledger event)."""

    action: str
    target: str
    reasons: tuple[str, ...]
    index: int
    actor: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "action": self.action,
            "target": self.target,
            "reasons": list(self.reasons),
            **_common(self),
        }
