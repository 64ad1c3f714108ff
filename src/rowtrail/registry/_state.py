"""Proven registry events, read once and kept while the log only grows.

Every registry answer is computed from the entries this cache returns: each was read by kind
(the kind index is checked to tile the log, so no entry can be hidden from or slipped into a
kind) and proven included in the trusted signed checkpoint before it is kept. When the log
grows only the new entries are read and proven; the registry's cache tables are never read
to answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from rowtrail.errors import InvalidInputError, LogIntegrityError
from rowtrail.ledger import Event, LedgerEntry, leaf_hash
from rowtrail.store.registry_tables import REGISTRY_EVENT_KINDS

if TYPE_CHECKING:
    from rowtrail.ledger import Ledger

__all__ = ["KINDS", "EventSource", "ProvenEvents", "VerifiedEvents"]

#: The kinds read: the registry's own, training seals and schema violations it gates on.
KINDS = (*REGISTRY_EVENT_KINDS, "training.completed", "rows.validation_failed")

#: The fields (and their JSON types) every registry event of a kind carries.
_SHAPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "registry.dataset": {"name": str, "version": int, "sources": list, "lineage_status": str},
    "registry.run": {"run_id": str, "name": str, "params": dict, "metrics": dict,
                     "datasets": list},
    "registry.model": {"name": str, "version": int, "artifact_digest": str, "flavor": str,
                       "size": int},
    "registry.alias": {"model": str, "alias": str, "via": str},
    "registry.deployment": {"deployment_id": str, "model": str, "version": int,
                            "environment": str, "config": dict, "config_digest": str},
    "registry.approval": {"model": str, "version": int, "stage": str},
    "registry.attestation": {"model": str, "version": int, "kind": str, "passed": bool},
    "registry.policy": {"policy": dict},
    "registry.role": {"grantee": str, "role": str},
    "registry.override": {"target_key": str, "checks": list, "reason": str},
    "registry.refusal": {"action": str, "target_key": str, "reasons": list},
}

#: Fields that may be absent or null, but have this type when given.
_OPTIONAL: dict[str, dict[str, type | tuple[type, ...]]] = {
    "registry.dataset": {"lineage_digest": str},
    "registry.run": {"code": dict, "environment": dict, "hardware": dict, "origin": dict,
                     "training_run": str, "training_seal": int, "model_digest": str,
                     "overrides": list},
    "registry.model": {"run_id": str, "weights_digest": str, "binding": str, "overrides": list},
    "registry.alias": {"version": int, "previous": int, "approvals": list,
                       "attestations": list, "overrides": list},
    "registry.deployment": {"alias": str},
    "registry.approval": {"comment": str},
    "registry.attestation": {"report_digest": str},
}


def _check_shape(entry: LedgerEntry) -> None:
    """Raise unless a registry event carries the fields its kind needs (typed errors only)."""
    shape = _SHAPES.get(entry.event.kind)
    if shape is None:
        return
    payload: Any = entry.event.payload
    bad = sorted(k for k, t in shape.items() if not isinstance(payload.get(k), t))
    bad += sorted(k for k, t in _OPTIONAL.get(entry.event.kind, {}).items()
                  if payload.get(k) is not None and not isinstance(payload[k], t))
    if not bad and entry.event.kind == "registry.policy":
        from rowtrail.registry._policy import check_policy

        try:
            check_policy(payload["policy"])
        except InvalidInputError:
            bad = ["policy"]
    if bad:
        raise LogIntegrityError(
            f"registry event {entry.index} ({entry.event.kind}) lacks or mistypes {bad}: it "
            "was not written by the registry; run `rowtrail verify`",
            index=entry.index,
        )


class ProvenEvents:
    """The proven entries of :data:`KINDS`, by kind, in ledger order."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._size = -1
        self._root = b""
        self._by_kind: dict[str, dict[int, LedgerEntry]] = {kind: {} for kind in KINDS}

    def _refresh(self) -> None:
        ledger = self._ledger
        with ledger.snapshot():  # the size and every index read in one committed state
            size = ledger.size
            root = ledger.root(size) if size else b""
            if size == self._size and root == self._root:
                return
            if size < self._size or (self._size > 0 and ledger.root(self._size) != self._root):
                # What was kept is not a prefix of this log (a write it saw was rolled back):
                # read everything again.
                self._by_kind = {kind: {} for kind in KINDS}
            wanted: dict[int, str] = {}
            for kind in KINDS:
                known = self._by_kind[kind]
                wanted.update((i, kind) for i in ledger.indices(kind=kind) if i not in known)
            for entry in ledger.proven(sorted(wanted)) if wanted else []:
                kind = wanted[entry.index]
                if entry.event.kind != kind:
                    raise LogIntegrityError(
                        f"kind index lists entry {entry.index} as {kind!r} but it is "
                        f"{entry.event.kind!r}: the index was edited; run `rowtrail verify`",
                        index=entry.index,
                    )
                _check_shape(entry)
                self._by_kind[kind][entry.index] = entry
            self._size, self._root = size, root

    def entries(self, kind: str) -> list[LedgerEntry]:
        """Return the proven entries of ``kind`` (one of :data:`KINDS`), ascending by index."""
        self._refresh()
        found = self._by_kind[kind]
        return [found[i] for i in sorted(found)]


class EventSource(Protocol):
    """Where registry answers and checks read events from, by kind, in ledger order."""

    def entries(self, kind: str) -> list[LedgerEntry]:
        """Return the entries of ``kind``, ascending by index."""
        ...


class VerifiedEvents:
    """Events a full verification has just checked against its trust root (no proofs needed).

    ``Workspace.verify`` checks the log against the trust root it is given (possibly files
    a third party kept, with no trust state of this user), so the registry's decisions are
    re-checked from the events it decoded rather than by proving them again.
    """

    def __init__(self, pairs: Iterable[tuple[int, Event]]) -> None:
        self._by_kind: dict[str, list[LedgerEntry]] = {}
        for index, event in pairs:
            leaf = event.leaf()
            entry = LedgerEntry(index, leaf, leaf_hash(leaf), event)
            _check_shape(entry)
            self._by_kind.setdefault(event.kind, []).append(entry)

    def entries(self, kind: str) -> list[LedgerEntry]:
        """Return the verified entries of ``kind``, ascending by index."""
        return sorted(self._by_kind.get(kind, []), key=lambda entry: entry.index)
