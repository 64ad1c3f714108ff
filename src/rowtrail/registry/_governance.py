"""Approvals, attestations, aliases and stages, policy, roles and overrides.

:class:`Governance` is the part of :class:`~rowtrail.registry.Registry` that decides who may
do what: every change is a ``registry.*`` ledger event carrying its actor, every refusal is a
``registry.refusal`` event listing all of its reasons, and every answer (an alias's history,
what an alias pointed to at a time, who holds a role) is replayed from proven events.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rowtrail.errors import InvalidInputError, PolicyRefusedError, StateError
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.ledger import LedgerEntry
from rowtrail.registry import _build
from rowtrail.registry._policy import (
    CHECKS,
    DEFAULT_POLICY,
    Finding,
    check_policy,
    required_findings,
    stage_reasons,
)
from rowtrail.registry._provenance import input_findings
from rowtrail.registry._records import (
    AliasChange,
    Approval,
    Attestation,
    ModelVersion,
    Override,
    Refusal,
)
from rowtrail.registry._state import ProvenEvents

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["Governance", "check_name"]

_ADMIN = "admin"


def check_name(value: object, what: str, caller: str) -> str:
    """Raise unless ``value`` is a non-empty one-line name of at most 200 characters."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or "\n" in value:
        raise InvalidInputError(
            f"{what} of {caller} must be a non-empty one-line str of at most 200 characters; "
            f"got {value!r}. Nothing was written."
        )
    return value


def _check_version(version: object, caller: str) -> int:
    if type(version) is not int or version < 1:
        raise InvalidInputError(f"version of {caller} must be an int >= 1; got {version!r}")
    return version


class Governance(ABC):
    """Who may do what in the registry, as ledger events (see the module docstring)."""

    def __init__(self, workspace: Workspace, *, actor: str | None = None) -> None:
        if actor is not None:
            check_name(actor, "actor", "Registry")
        self.ws = workspace
        self._actor = actor
        self._events = ProvenEvents(workspace.ledger)

    @property
    def actor(self) -> str:
        """Who acts through this handle (recorded on every event it writes)."""
        return self._actor if self._actor is not None else self.ws.ledger.actor

    # ------------------------------------------------------------ plumbing
    def _check_writable(self) -> None:
        if getattr(self.ws, "read_only", False):
            raise StateError(
                "the workspace is open read-only; open it with rowtrail.open(path) to write "
                "to the registry"
            )

    def _append(self, kind: str, payload: Mapping[str, Any], blobs: Sequence[str] = ()) -> int:
        return int(self.ws.ledger.append(kind, payload, actor=self.actor, blobs=list(blobs)))

    def _append_versioned(
        self,
        kind: str,
        table: str,
        column: str,
        payload: dict[str, Any],
        proven_versions: Sequence[int],
        blobs: Sequence[str] = (),
    ) -> int:
        """Append ``payload`` as the next version of its name, numbered under the write lock.

        The number is one past both the proven versions and the cache table's (read inside the
        write transaction, so a concurrent writer's version is seen).
        """
        with self.ws.ledger.transaction():
            rows = self.ws.db.query(
                f"SELECT max(version) FROM {table} WHERE {column} = ?", (payload[column],)
            )
            stored = rows[0][0] if rows and rows[0][0] is not None else 0
            payload["version"] = max([int(stored), *proven_versions, 0]) + 1
            return self._append(kind, payload, blobs)

    def _entry(self, kind: str, index: int) -> LedgerEntry:
        for entry in self._events.entries(kind):
            if entry.index == index:
                return entry
        raise InvalidInputError(f"ledger entry {index} is not a proven {kind!r} event")

    def _append_if(
        self,
        action: str,
        target: str,
        kind: str,
        decide: Callable[[], tuple[list[str], dict[str, Any]]],
        blobs: Sequence[str] = (),
    ) -> int:
        """Append ``kind`` with the payload ``decide()`` returns, unless it gives reasons.

        ``decide`` runs under the write lock, in the state the event commits in, so a
        concurrent revocation or policy change cannot slip between the check and the event.
        A refusal is recorded (once the lock is released) and raised.
        """
        with self.ws.ledger.transaction():
            reasons, payload = decide()
            index = None if reasons else self._append(kind, payload, blobs)
        if index is None:
            raise self._refuse(action, target, reasons)
        return index

    def _refuse(self, action: str, target: str, reasons: Sequence[str]) -> PolicyRefusedError:
        """Record a refusal with every reason and return the error to raise."""
        index = self._append(
            "registry.refusal", {"action": action, "target_key": target, "reasons": list(reasons)}
        )
        listed = "; ".join(reasons)
        return PolicyRefusedError(
            f"{action} of {target} was refused by the registry policy: {listed}. The refusal "
            f"is recorded as ledger event {index}.",
            reasons=reasons,
            index=index,
        )

    def _gate_provenance(
        self, action: str, target: str, findings: Sequence[Finding], *, scopes: Sequence[str]
    ) -> list[int]:
        """Refuse (logged) unless every finding the policy requires is waived; return waivers.

        An override of a finding's own target, or of one of ``scopes`` (the run or model
        version the finding is an input of), waives it.
        """
        policy = self.policy()
        waivers: dict[tuple[str, str], int] = {}
        for item in self.overrides():
            for check in item.checks:
                for finding in findings:
                    if item.target in (finding.target, *scopes) and finding.check == check:
                        waivers[(finding.target, check)] = item.index
        reasons, used = required_findings(policy, findings, waivers)
        if reasons:
            raise self._refuse(action, target, reasons)
        return used

    # ------------------------------------------------------------ roles and policy
    def roles(self, at: int | None = None) -> dict[str, set[str]]:
        """Return the roles each actor holds (just before ledger index ``at``; default now)."""
        entries = self._events.entries("registry.role")
        return _build.roles_before(entries, self.ws.ledger.size if at is None else at)

    def has_role(self, actor: str, role: str, at: int | None = None) -> bool:
        """Return whether ``actor`` holds ``role`` (just before ledger index ``at``)."""
        return role in self.roles(at).get(actor, set())

    def _admin_reasons(self) -> tuple[list[str], bool]:
        """Return why this actor may not administer, and whether no admin exists yet.

        No reasons for an admin; while no admin exists (the bootstrap) none either.
        """
        roles = self.roles()
        if not any(_ADMIN in held for held in roles.values()):
            return [], True
        if _ADMIN not in roles.get(self.actor, set()):
            return [f"role: {self.actor!r} does not hold the {_ADMIN!r} role"], False
        return [], False

    def grant_role(self, actor: str, role: str) -> int:
        """Grant ``role`` to ``actor``; return the ledger index of the ``registry.role`` event.

        Only an admin may grant; the first grant in a workspace (while no admin exists) is
        the bootstrap and also makes the granting actor an admin.
        """
        self._check_writable()
        check_name(actor, "actor", "Registry.grant_role")
        check_name(role, "role", "Registry.grant_role")

        def decide() -> tuple[list[str], dict[str, Any]]:
            reasons, bootstrap = self._admin_reasons()
            return reasons, {"grantee": actor, "role": role, "granted": True,
                             "bootstrap": bootstrap}

        return self._append_if("grant_role", f"role:{actor}:{role}", "registry.role", decide)

    def revoke_role(self, actor: str, role: str) -> int:
        """Revoke ``role`` from ``actor`` (admin only); return the event's ledger index."""
        self._check_writable()
        check_name(actor, "actor", "Registry.revoke_role")
        check_name(role, "role", "Registry.revoke_role")

        def decide() -> tuple[list[str], dict[str, Any]]:
            reasons, bootstrap = self._admin_reasons()
            if bootstrap:
                raise InvalidInputError(
                    "Registry.revoke_role: no role has been granted yet, so there is nothing "
                    "to revoke. Nothing was written."
                )
            return reasons, {"grantee": actor, "role": role, "granted": False,
                             "bootstrap": False}

        return self._append_if("revoke_role", f"role:{actor}:{role}", "registry.role", decide)

    def set_policy(self, policy: Mapping[str, Any]) -> int:
        """Set the declarative policy (admin only); return the ledger index of its event.

        See :mod:`rowtrail.registry._policy` for the format. Policy changes are audited: each
        is a ``registry.policy`` event naming its actor.
        """
        self._check_writable()
        checked = check_policy(policy)

        def decide() -> tuple[list[str], dict[str, Any]]:
            reasons, bootstrap = self._admin_reasons()
            if bootstrap:
                reasons = ["role: no admin exists yet; grant a role first (the first grant "
                           "makes its actor an admin)"]
            return reasons, {"policy": checked}

        return self._append_if("set_policy", "policy", "registry.policy", decide)

    def policy(self) -> dict[str, Any]:
        """Return the policy in force (the latest ``registry.policy`` event's, or none)."""
        entries = self._events.entries("registry.policy")
        return dict(entries[-1].event.payload["policy"]) if entries else dict(DEFAULT_POLICY)

    def override(self, target: object, *, checks: Sequence[str], reason: str) -> Override:
        """Approve a provenance override of ``checks`` for ``target`` (logged).

        Parameters
        ----------
        target : DatasetVersion, RunRecord, ModelVersion or str
            What is overridden, or its key (``dataset:NAME:VERSION``, ``run:RUN_ID``,
            ``model:NAME:VERSION``, ``training:RUN_ID``).
        checks : sequence of {"lineage", "schema", "records"}
            The provenance checks waived for ``target``.
        reason : str
            Why (recorded).

        Raises
        ------
        PolicyRefusedError
            This actor does not hold the policy's ``override_role`` (refusal logged).
        """
        self._check_writable()
        key = getattr(target, "key", target)
        if not isinstance(key, str) or key.split(":", 1)[0] not in (
            "dataset", "run", "model", "training"
        ):
            raise InvalidInputError(
                "target of Registry.override must be a DatasetVersion, RunRecord, ModelVersion "
                f"or a key such as 'dataset:credit:1'; got {target!r}"
            )
        if isinstance(checks, str) or not checks or any(c not in CHECKS for c in checks):
            raise InvalidInputError(
                f"checks of Registry.override must be a non-empty list of {sorted(CHECKS)}; "
                f"got {checks!r}"
            )
        check_name(reason, "reason", "Registry.override")

        def decide() -> tuple[list[str], dict[str, Any]]:
            role = self.policy()["provenance"]["override_role"]
            if role is None or not self.has_role(self.actor, role):
                why = ("the policy names no override_role" if role is None
                       else f"{self.actor!r} does not hold the {role!r} role")
                return [f"role: {why}"], {}
            return [], {"target_key": key, "checks": sorted(set(checks)), "reason": reason,
                        "role": role}

        index = self._append_if("override", key, "registry.override", decide)
        return _build.override(self._entry("registry.override", index))

    def overrides(self) -> list[Override]:
        """Return every provenance override, in ledger order."""
        return [_build.override(e) for e in self._events.entries("registry.override")]

    def refusals(self, target: str | None = None) -> list[Refusal]:
        """Return every recorded refusal, or those of ``target`` and the keys below it.

        ``target`` is a key such as ``model:NAME:VERSION``, which also selects refusals of
        ``model:NAME:VERSION:STAGE``.
        """
        found = [_build.refusal(e) for e in self._events.entries("registry.refusal")]
        return [r for r in found
                if target is None or r.target == target or r.target.startswith(target + ":")]

    # ------------------------------------------------------------ reviews
    def _model(self, name: str, version: int, caller: str) -> ModelVersion:
        check_name(name, "name", caller)
        _check_version(version, caller)
        return self.model_version(name, version)

    @abstractmethod
    def model_version(self, name: str, version: int | str | None = None) -> ModelVersion:
        """Return a model version (defined by :class:`~rowtrail.registry.Registry`)."""

    def attest(
        self,
        name: str,
        version: int,
        *,
        kind: str,
        passed: bool,
        report: Mapping[str, Any] | None = None,
    ) -> Attestation:
        """Record a check of a model version (``"tests"``, ``"fairness"``, ``"drift"``).

        ``report`` (JSON-ready) is stored as a blob; its digest is recorded.
        """
        self._check_writable()
        found = self._model(name, version, "Registry.attest")
        check_name(kind, "kind", "Registry.attest")
        if not isinstance(passed, bool):
            raise InvalidInputError(f"passed of Registry.attest must be a bool; got {passed!r}")
        digest = None
        if report is not None:
            if not isinstance(report, Mapping):
                raise InvalidInputError(
                    f"report of Registry.attest must be a mapping; got {type(report).__name__}"
                )
            data = canonical_json(dict(report))
            digest = sha256_digest(data)
            self.ws.ledger.put_blob(data)
        index = self._append("registry.attestation", {
            "model": found.name, "version": found.version, "model_index": found.index,
            "kind": kind, "passed": passed, "report_digest": digest,
        }, blobs=[] if digest is None else [digest])
        return _build.attestation(self._entry("registry.attestation", index))

    def attestations(self, name: str, version: int | None = None) -> list[Attestation]:
        """Return the attestations of model ``name`` (version ``version``), in ledger order."""
        found = [_build.attestation(e) for e in self._events.entries("registry.attestation")]
        return [a for a in found if a.model == name and version in (None, a.version)]

    def approve(self, name: str, version: int, *, stage: str, comment: str = "") -> Approval:
        """Approve a model version for ``stage`` as this handle's actor.

        When the policy names an ``approver_role`` for the stage, only its holders may
        approve (others are refused, logged). Approving twice is recorded twice; the gate
        counts distinct actors.
        """
        self._check_writable()
        found = self._model(name, version, "Registry.approve")
        check_name(stage, "stage", "Registry.approve")
        if not isinstance(comment, str):
            raise InvalidInputError(f"comment of Registry.approve must be a str; got {comment!r}")

        def decide() -> tuple[list[str], dict[str, Any]]:
            gate = self.policy()["stages"].get(stage)
            role = None if gate is None else gate["approver_role"]
            if role is not None and not self.has_role(self.actor, role):
                return [f"role: {self.actor!r} does not hold the {role!r} role needed to "
                        f"approve for {stage!r}"], {}
            return [], {"model": found.name, "version": found.version,
                        "model_index": found.index, "stage": stage, "comment": comment}

        index = self._append_if("approve", found.key, "registry.approval", decide)
        return _build.approval(self._entry("registry.approval", index))

    def approvals(self, name: str, version: int | None = None) -> list[Approval]:
        """Return the approvals of model ``name`` (version ``version``), in ledger order."""
        found = [_build.approval(e) for e in self._events.entries("registry.approval")]
        return [a for a in found if a.model == name and version in (None, a.version)]

    # ------------------------------------------------------------ aliases and stages
    def promote(self, name: str, version: int, *, stage: str) -> AliasChange:
        """Move stage ``stage`` of model ``name`` to ``version``, through the policy's gates.

        The stage's gate (approvals by distinct actors holding the approver role, required
        attestations) and the provenance checks of the version's run must pass, or an
        override cover them.

        Raises
        ------
        PolicyRefusedError
            With every reason; the refusal is a ``registry.refusal`` event.
        """
        return self._move(name, version, stage, via="promote")

    def set_alias(self, name: str, alias: str, version: int | None) -> AliasChange:
        """Point ``alias`` of model ``name`` at ``version`` (``None`` removes it).

        An alias that the policy gates as a stage goes through the same gates as
        :meth:`promote`.
        """
        if version is None:
            self._check_writable()
            check_name(name, "name", "Registry.set_alias")
            check_name(alias, "alias", "Registry.set_alias")
            current = self.current_alias(name, alias)
            if current is None:
                raise InvalidInputError(
                    f"alias of Registry.set_alias: {alias!r} of model {name!r} is not set, so "
                    "there is nothing to remove. Nothing was written."
                )
            index = self._append("registry.alias", {
                "model": name, "alias": alias, "version": None, "via": "set_alias",
                "previous": current.version,
                "approvals": [], "attestations": [], "overrides": [],
            })
            return _build.alias_change(self._entry("registry.alias", index))
        return self._move(name, version, alias, via="set_alias")

    def _move(self, name: str, version: int, alias: str, *, via: str) -> AliasChange:
        self._check_writable()
        caller = f"Registry.{via}"
        found = self._model(name, version, caller)
        check_name(alias, "stage" if via == "promote" else "alias", caller)

        def decide() -> tuple[list[str], dict[str, Any]]:
            reasons, relied = self._gate_move(found, alias)
            current = self.current_alias(name, alias)
            return reasons, {
                "model": name, "alias": alias, "version": found.version,
                "model_index": found.index, "via": via,
                "previous": None if current is None else current.version, **relied,
            }

        index = self._append_if(via, f"{found.key}:{alias}", "registry.alias", decide)
        return _build.alias_change(self._entry("registry.alias", index))

    def _gate_move(self, found: ModelVersion, alias: str) -> tuple[list[str], dict[str, Any]]:
        """Return why the policy refuses moving ``alias`` to ``found``, and what it relies on.

        The second item holds the ledger indices of the approvals, attestations and
        overrides the move relies on.
        """
        policy = self.policy()
        gate = policy["stages"].get(alias)
        reasons: list[str] = []
        approvals: list[int] = []
        attestations: list[int] = []
        if gate is not None:
            listed = [(a.index, a.actor) for a in self.approvals(found.name, found.version)
                      if a.stage == alias]
            latest = {a.kind: (a.index, a.passed)
                      for a in self.attestations(found.name, found.version)}
            reasons, approvals, attestations = stage_reasons(
                gate, listed, latest, lambda who, role, at: self.has_role(who, role, at)
            )
        findings = (
            input_findings(found.key, 0, None) if found.run is None
            else self._run_findings(found.run)
        )
        scopes = (found.key,) if found.run is None else (found.key, found.run.key)
        waivers: dict[tuple[str, str], int] = {}
        for item in self.overrides():
            for finding in findings:
                if finding.check in item.checks and item.target in (finding.target, *scopes):
                    waivers[(finding.target, finding.check)] = item.index
        more, overrides = required_findings(policy, findings, waivers)
        relied = {"approvals": approvals, "attestations": attestations, "overrides": overrides}
        return reasons + more, relied

    @abstractmethod
    def _run_findings(self, run: Any) -> list[Finding]:
        """Return the provenance findings of a run (defined by the Registry)."""

    def history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Return every move of the aliases/stages of model ``name`` (or of one), in order."""
        found = [_build.alias_change(e) for e in self._events.entries("registry.alias")]
        return [c for c in found if c.model == name and alias in (None, c.alias)]

    def current_alias(self, name: str, alias: str) -> AliasChange | None:
        """Return the move that set ``alias`` of model ``name`` now (``None``: not set)."""
        changes = self.history(name, alias)
        return changes[-1] if changes and changes[-1].version is not None else None

    def alias_at(self, name: str, alias: str, when: datetime | str) -> AliasChange | None:
        """Return what ``alias`` of model ``name`` pointed to at ``when`` (``None``: unset).

        The answer is the last move recorded at or before ``when`` (event times, in ledger
        order), replayed from proven events.
        """
        moment = _build.parse_when(when, "Registry.alias_at")
        current = None
        for change in self.history(name, alias):
            if change.created_at <= moment:
                current = change
        return current if current is not None and current.version is not None else None
