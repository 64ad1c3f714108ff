"""Records built from proven registry events (pure functions of the events' payloads)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from rowtrail.errors import InvalidInputError
from rowtrail.ledger import LedgerEntry
from rowtrail.registry._records import (
    AliasChange,
    Approval,
    Attestation,
    DatasetVersion,
    Override,
    Refusal,
)

__all__ = [
    "alias_change",
    "approval",
    "attestation",
    "dataset_version",
    "override",
    "parse_when",
    "refusal",
    "roles_before",
]


def _ints(values: Any) -> tuple[int, ...]:
    return tuple(int(v) for v in values or ())


def dataset_version(entry: LedgerEntry, failed_sources: set[int]) -> DatasetVersion:
    """Return the dataset version a ``registry.dataset`` event records."""
    p, event = entry.event.payload, entry.event
    sources = tuple(dict(s) for s in p["sources"])
    failed = any(int(s.get("source_index", -1)) in failed_sources for s in sources)
    return DatasetVersion(
        name=str(p["name"]),
        version=int(p["version"]),
        sources=sources,
        lineage_digest=p.get("lineage_digest"),
        lineage_status=str(p["lineage_status"]),
        schema_status="failed" if failed else "none_recorded",
        index=entry.index,
        actor=event.actor,
        created_at=event.time,
    )


def approval(entry: LedgerEntry) -> Approval:
    """Return the approval a ``registry.approval`` event records."""
    p = entry.event.payload
    return Approval(str(p["model"]), int(p["version"]), str(p["stage"]), str(p.get("comment", "")),
                    entry.index, entry.event.actor, entry.event.time)


def attestation(entry: LedgerEntry) -> Attestation:
    """Return the attestation a ``registry.attestation`` event records."""
    p = entry.event.payload
    return Attestation(str(p["model"]), int(p["version"]), str(p["kind"]), bool(p["passed"]),
                       p.get("report_digest"), entry.index, entry.event.actor, entry.event.time)


def alias_change(entry: LedgerEntry) -> AliasChange:
    """Return the alias move a ``registry.alias`` event records."""
    p = entry.event.payload
    version, previous = p.get("version"), p.get("previous")
    return AliasChange(
        model=str(p["model"]),
        alias=str(p["alias"]),
        version=None if version is None else int(version),
        previous=None if previous is None else int(previous),
        via=str(p["via"]),
        approvals=_ints(p.get("approvals")),
        attestations=_ints(p.get("attestations")),
        overrides=_ints(p.get("overrides")),
        index=entry.index,
        actor=entry.event.actor,
        created_at=entry.event.time,
    )


def override(entry: LedgerEntry) -> Override:
    """Return the override a ``registry.override`` event records."""
    p = entry.event.payload
    return Override(str(p["target_key"]), tuple(str(c) for c in p["checks"]), str(p["reason"]),
                    entry.index, entry.event.actor, entry.event.time)


def refusal(entry: LedgerEntry) -> Refusal:
    """Return the refusal a ``registry.refusal`` event records."""
    p = entry.event.payload
    return Refusal(str(p["action"]), str(p["target_key"]), tuple(str(r) for r in p["reasons"]),
                   entry.index, entry.event.actor, entry.event.time)


def roles_before(role_entries: Iterable[LedgerEntry], index: int) -> dict[str, set[str]]:
    """Return the roles each actor held just before ledger ``index`` (role events replayed).

    A ``bootstrap`` grant (the first one in a log that has no admin) also makes its own actor
    an admin.
    """
    roles: dict[str, set[str]] = {}
    for entry in role_entries:
        if entry.index >= index:
            break
        p = entry.event.payload
        if p.get("bootstrap"):
            roles.setdefault(entry.event.actor, set()).add("admin")
        held = roles.setdefault(str(p["grantee"]), set())
        if p.get("granted", True):
            held.add(str(p["role"]))
        else:
            held.discard(str(p["role"]))
    return roles


def parse_when(when: object, caller: str) -> datetime:
    """Return an aware datetime from a datetime or an ISO 8601 text with an offset."""
    moment = when
    if isinstance(when, str):
        try:
            moment = datetime.fromisoformat(when.replace("Z", "+00:00"))
        except ValueError:
            moment = None
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise InvalidInputError(
            f"when of {caller} must be a timezone-aware datetime or ISO 8601 text with an "
            f"offset (e.g. '2026-01-31T12:00:00+00:00'); got {when!r}"
        )
    return moment


def latest_by(items: Sequence[Any], key: str) -> Mapping[str, Any]:
    """Return the last item of each ``getattr(item, key)`` value (items in ledger order)."""
    return {getattr(item, key): item for item in items}
