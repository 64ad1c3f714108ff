"""Re-check every registry decision against the policy and roles in force when it was made.

Registry events are written through :class:`~rowtrail.registry.Registry`, which checks roles
and gates first; but anyone who can append to the ledger could write a ``registry.alias``
event directly and so claim a promotion no gate allowed. :func:`verify_registry_decisions`
replays the registry's events in ledger order and raises for any event that the rules in
force at its index would have refused: a role granted by a non-admin, a policy set by a
non-admin, an override by an actor without the override role, an approval without the
approver role, a gated alias move whose approvals and attestations do not satisfy the gate,
a reference to a missing or later event, or a version number used twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rowtrail.errors import LogIntegrityError
from rowtrail.ledger import LedgerEntry
from rowtrail.lineage import LineageWorkspace
from rowtrail.registry import _build
from rowtrail.registry._policy import DEFAULT_POLICY, stage_reasons
from rowtrail.registry._state import ProvenEvents

__all__ = ["verify_registry", "verify_registry_decisions"]

_ADMIN = "admin"


def _fail(entry: LedgerEntry, why: str) -> LogIntegrityError:
    return LogIntegrityError(
        f"registry event {entry.index} ({entry.event.kind} by {entry.event.actor!r}) was not "
        f"allowed when it was made: {why}. It was appended around the registry's checks; do "
        "not rely on it.",
        index=entry.index,
    )


class _Replay:
    """The registry's rule-relevant state, advanced event by event in ledger order."""

    def __init__(self, events: ProvenEvents) -> None:
        self.roles = events.entries("registry.role")
        self.policies = events.entries("registry.policy")
        self.approvals = [_build.approval(e) for e in events.entries("registry.approval")]
        self.attestations = [
            _build.attestation(e) for e in events.entries("registry.attestation")
        ]
        self.overrides = {e.index: e for e in events.entries("registry.override")}

    def policy(self, at: int) -> dict[str, Any]:
        found = [e for e in self.policies if e.index < at]
        return dict(found[-1].event.payload["policy"]) if found else dict(DEFAULT_POLICY)

    def has_role(self, actor: str, role: str, at: int) -> bool:
        return role in _build.roles_before(self.roles, at).get(actor, set())

    def any_admin(self, at: int) -> bool:
        return any(_ADMIN in held for held in _build.roles_before(self.roles, at).values())


def _check_admin_events(replay: _Replay) -> int:
    for entry in replay.roles + replay.policies:
        actor, at = entry.event.actor, entry.index
        if entry.event.kind == "registry.role" and entry.event.payload.get("bootstrap"):
            if replay.any_admin(at):
                raise _fail(entry, "a bootstrap grant while an admin already existed")
        elif not replay.has_role(actor, _ADMIN, at):
            raise _fail(entry, f"{actor!r} did not hold the {_ADMIN!r} role")
    return len(replay.roles) + len(replay.policies)


def _check_overrides(replay: _Replay) -> int:
    for entry in replay.overrides.values():
        role = replay.policy(entry.index)["provenance"]["override_role"]
        if role is None or not replay.has_role(entry.event.actor, role, entry.index):
            raise _fail(entry, f"the override role was {role!r} and the actor did not hold it")
    return len(replay.overrides)


def _check_approvals(replay: _Replay, entries: Sequence[LedgerEntry]) -> int:
    for entry, approval in zip(entries, replay.approvals, strict=True):
        gate = replay.policy(entry.index)["stages"].get(approval.stage)
        role = None if gate is None else gate["approver_role"]
        if role is not None and not replay.has_role(approval.actor, role, entry.index):
            raise _fail(entry, f"approving for {approval.stage!r} needed the {role!r} role")
    return len(entries)


def _check_alias(replay: _Replay, entry: LedgerEntry) -> None:
    change = _build.alias_change(entry)
    cited = [*change.approvals, *change.attestations, *change.overrides]
    if any(i >= entry.index for i in cited):
        raise _fail(entry, "it cites an event made after it")
    if any(i not in replay.overrides for i in change.overrides):
        raise _fail(entry, "it cites an override that is not a registry.override event")
    if change.version is None:
        return
    gate = replay.policy(entry.index)["stages"].get(change.alias)
    if gate is None:
        return
    before = [a for a in replay.approvals if a.index < entry.index and a.model == change.model
              and a.version == change.version and a.stage == change.alias]
    latest = {a.kind: (a.index, a.passed) for a in replay.attestations
              if a.index < entry.index and a.model == change.model
              and a.version == change.version}
    reasons, _, _ = stage_reasons(gate, [(a.index, a.actor) for a in before], latest,
                                  replay.has_role)
    if reasons:
        raise _fail(entry, "; ".join(reasons))


def _check_versions(events: ProvenEvents) -> int:
    count = 0
    for kind in ("registry.dataset", "registry.model"):
        seen: set[tuple[str, int]] = set()
        for entry in events.entries(kind):
            key = (str(entry.event.payload.get("name")), int(entry.event.payload["version"]))
            if key in seen:
                raise _fail(entry, f"version {key[1]} of {key[0]!r} was already registered")
            seen.add(key)
            count += 1
    ids: set[str] = set()
    for entry in events.entries("registry.deployment"):
        deployment_id = str(entry.event.payload.get("deployment_id"))
        if deployment_id in ids:
            raise _fail(entry, f"deployment id {deployment_id!r} was already used")
        ids.add(deployment_id)
        count += 1
    return count


def verify_registry_decisions(events: ProvenEvents) -> int:
    """Raise :class:`LogIntegrityError` for any registry event its rules would have refused.

    Returns the number of registry events checked. Reads never write.
    """
    replay = _Replay(events)
    count = _check_admin_events(replay) + _check_overrides(replay)
    count += _check_approvals(replay, events.entries("registry.approval"))
    aliases = events.entries("registry.alias")
    for entry in aliases:
        _check_alias(replay, entry)
    return count + len(aliases) + _check_versions(events)


def verify_registry(workspace: LineageWorkspace) -> int:
    """Re-check every registry decision of ``workspace`` from freshly proven events.

    Called by ``Workspace.verify``; returns the number of registry events checked.

    Raises
    ------
    LogIntegrityError
        Naming the first registry event that its rules would have refused.
    """
    return verify_registry_decisions(ProvenEvents(workspace.ledger))
