"""Retention per event kind: payloads expire, leaf hashes and proofs stay (issue 13).

A retention policy is a ledger event (``retention.policy``) giving, per event kind whose
payload may expire, how many days its payload blobs are kept. A policy shorter than a kind's
legal minimum is refused: prediction logs of a high-risk AI system are kept at least six
months (EU AI Act, Regulation 2024/1689, Art. 19(1) for providers and Art. 26(6) for deployers:
"a period appropriate to the intended purpose ..., of at least six months"), which
:data:`LEGAL_MINIMUM_DAYS` rounds up to 183 days.

:func:`apply_retention` finds the events whose retention ran out, appends one
``retention.expired`` event naming their blobs (written *before* anything is deleted: a crash
leaves blobs to delete again, never deleted blobs without a record), then deletes the blob
files. The events themselves stay, so every leaf hash, tree node, checkpoint and proof is
unchanged; ``ws.verify()`` accepts a missing blob that a later ``retention.expired`` event
names, and checks (:func:`verify_retention`) that every such event followed the policy in
force: no payload expired before its kind's days had run out. Nothing is deleted before its
kind's time has run out by the ledger's clock, and no policy means nothing expires (the
retention of a kind nobody set is unknown, never guessed).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rowtrail.errors import BlobNotFoundError, InvalidInputError, LogIntegrityError, StorageError
from rowtrail.ledger import LedgerEntry
from rowtrail.ledger._events import format_time
from rowtrail.registry._predictions import PREDICTION_BATCH_KIND

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "LEGAL_MINIMUM_DAYS",
    "RETENTION_EXPIRED_KIND",
    "RETENTION_POLICY_KIND",
    "ExpiredPayload",
    "RetentionPolicy",
    "RetentionReport",
    "apply_retention",
    "expiry_of",
    "retention_policy",
    "set_retention_policy",
    "verify_retention",
]

RETENTION_POLICY_KIND = "retention.policy"
RETENTION_EXPIRED_KIND = "retention.expired"
#: Days a kind's payloads must be kept at least (EU AI Act Art. 19(1), 26(6): six months).
LEGAL_MINIMUM_DAYS: Mapping[str, int] = {PREDICTION_BATCH_KIND: 183}
# The payload field naming the blob that may expire, per expirable kind. Only blobs written
# for one event (a prediction batch's inputs: its random ids make the bytes unique) are
# expirable: a blob shared with an event whose retention has not run out is never deleted.
_PAYLOAD_BLOB: Mapping[str, str] = {PREDICTION_BATCH_KIND: "blob"}
_LEGAL_BASIS = "EU AI Act Art. 19(1) and 26(6): logs kept at least six months"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days each expirable kind's payloads are kept, as a proven ``retention.policy`` event.

    Attributes
    ----------
    days : dict of str to int
        Kind -> days kept after the event's time.
    ledger_index : int
        The policy event.
    set_by : str
        The actor who set it.
    """

    days: dict[str, int]
    ledger_index: int
    set_by: str

    def to_json(self) -> dict[str, Any]:
        """Return the policy as JSON-ready data."""
        return {"days": dict(self.days), "ledger_index": self.ledger_index, "set_by": self.set_by}


@dataclass(frozen=True)
class ExpiredPayload:
    """One payload blob whose retention ran out."""

    kind: str
    ledger_index: int
    blob: str
    expires_at: datetime
    size: int

    def to_json(self) -> dict[str, Any]:
        """Return it as JSON-ready data."""
        return {
            "kind": self.kind,
            "ledger_index": self.ledger_index,
            "blob": self.blob,
            "expires_at": format_time(self.expires_at),
            "bytes": self.size,
        }


@dataclass(frozen=True)
class RetentionReport:
    """What :func:`apply_retention` found and did."""

    now: datetime
    dry_run: bool
    policy: RetentionPolicy | None
    expired: list[ExpiredPayload] = field(default_factory=list)
    event_index: int | None = None
    n_deleted: int = 0

    @property
    def n_bytes(self) -> int:
        """Bytes of the expired payloads."""
        return sum(item.size for item in self.expired)

    def to_json(self) -> dict[str, Any]:
        """Return the report as JSON-ready data."""
        return {
            "now": format_time(self.now),
            "dry_run": self.dry_run,
            "policy": None if self.policy is None else self.policy.to_json(),
            "expired": [item.to_json() for item in self.expired],
            "event_index": self.event_index,
            "n_deleted": self.n_deleted,
            "bytes": self.n_bytes,
        }


def _check_days(days: object) -> dict[str, int]:
    if not isinstance(days, Mapping) or not days:
        raise InvalidInputError(
            f"days of set_retention_policy must be a non-empty mapping of event kind to days; "
            f"got {days!r}. Expirable kinds: {sorted(_PAYLOAD_BLOB)}."
        )
    checked = {}
    for kind, value in days.items():
        if kind not in _PAYLOAD_BLOB:
            raise InvalidInputError(
                f"days of set_retention_policy must name expirable kinds {sorted(_PAYLOAD_BLOB)}; "
                f"got {kind!r}. Other kinds' records are kept for good."
            )
        minimum = LEGAL_MINIMUM_DAYS.get(kind, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidInputError(
                f"days[{kind!r}] of set_retention_policy must be an int >= {minimum} "
                f"({_LEGAL_BASIS}); got {value!r}. Nothing was written."
            )
        checked[str(kind)] = int(value)
    return checked


def set_retention_policy(ws: Workspace, days: Mapping[str, int]) -> RetentionPolicy:
    """Record a retention policy (a ``retention.policy`` event); return it.

    Parameters
    ----------
    ws : Workspace
        Opened for writing; the event's actor is the workspace handle's.
    days : mapping of str to int
        Days each expirable kind's payloads are kept (at least :data:`LEGAL_MINIMUM_DAYS`).

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> set_retention_policy(ws, {"registry.prediction_batch": 365}).days
    {'registry.prediction_batch': 365}
    >>> set_retention_policy(ws, {"registry.prediction_batch": 30})
    Traceback (most recent call last):
    ...
    rowtrail.errors.InvalidInputError: days['registry.prediction_batch'] of ...
    """
    checked = _check_days(days)
    index = ws.ledger.append(RETENTION_POLICY_KIND, {"days": checked})
    return RetentionPolicy(checked, index, ws.ledger.actor)


def retention_policy(ws: Workspace) -> RetentionPolicy | None:
    """Return the latest retention policy, its event proven; ``None`` when none was set."""
    entries = ws.ledger.entries_of_kind(RETENTION_POLICY_KIND)
    if not entries:
        return None
    (latest,) = ws.ledger.proven([entries[-1].index])
    days = latest.event.payload.get("days")
    return RetentionPolicy(
        {str(k): int(v) for k, v in dict(days or {}).items()}, latest.index, latest.event.actor
    )


def _expired_events(ws: Workspace) -> list[LedgerEntry]:
    entries = ws.ledger.entries_of_kind(RETENTION_EXPIRED_KIND)
    return ws.ledger.proven([e.index for e in entries]) if entries else []


def expiry_of(ws: Workspace, blob: str) -> tuple[int, datetime] | None:
    """Return ``(ledger index, time)`` of the ``retention.expired`` event naming ``blob``."""
    for entry in _expired_events(ws):
        if blob in entry.event.payload.get("blobs", ()):
            return entry.index, entry.event.time
    return None


def _blob_size(ws: Workspace, digest: str) -> int | None:
    try:
        return ws.blobs.path_of(digest).stat().st_size
    except (BlobNotFoundError, FileNotFoundError):
        return None


def _due(ws: Workspace, policy: RetentionPolicy, now: datetime, done: set[str]) -> list[Any]:
    due = []
    for kind, days in sorted(policy.days.items()):
        entries = ws.ledger.entries_of_kind(kind)
        old = [e for e in entries if e.event.time + timedelta(days=days) <= now]
        for entry in ws.ledger.proven([e.index for e in old]) if old else []:
            digest = entry.event.payload.get(_PAYLOAD_BLOB[kind])
            if not isinstance(digest, str) or digest not in entry.event.blobs:
                continue
            size = _blob_size(ws, digest)
            if digest in done or size is None:
                continue
            expires = entry.event.time + timedelta(days=days)
            due.append(ExpiredPayload(kind, entry.index, digest, expires, size))
    return due


def _delete(ws: Workspace, digests: list[str]) -> int:
    deleted = 0
    for digest in digests:
        with contextlib.suppress(BlobNotFoundError, FileNotFoundError):
            path = ws.blobs.path_of(digest)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise StorageError(f"could not delete expired blob {path}: {exc}") from exc
            deleted += 1
    return deleted


def _is_aware(value: object) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def apply_retention(
    ws: Workspace, *, now: datetime | None = None, dry_run: bool = False
) -> RetentionReport:
    """Delete the payload blobs whose retention ran out, recorded by a ``retention.expired`` event.

    Parameters
    ----------
    ws : Workspace
        Opened for writing (unless ``dry_run``).
    now : datetime, optional
        The time to judge expiry at; default and upper bound: the ledger's clock (a later
        time is refused, so nothing is deleted early).
    dry_run : bool
        Only report what would expire.

    Returns
    -------
    RetentionReport
        The payloads expired (or due, for a dry run), the event written and the files deleted.
    """
    clock = ws.ledger.now()
    if now is None:
        now = clock
    elif not _is_aware(now) or now > clock:
        raise InvalidInputError(
            f"now of apply_retention must be an aware datetime no later than the ledger's "
            f"clock ({format_time(clock)}); got {now!r}. Nothing is deleted early."
        )
    policy = retention_policy(ws)
    if policy is None:
        return RetentionReport(now, dry_run, None)
    named = [e.event.payload.get("blobs", []) for e in _expired_events(ws)]
    done = {str(d) for blobs in named for d in blobs}
    due = _due(ws, policy, now, done)
    # Named by an earlier run that crashed before deleting: delete them now, no new event.
    leftover = sorted(d for d in done if _blob_size(ws, d) is not None)
    if dry_run:
        return RetentionReport(now, True, policy, due)
    index = None
    if due:
        index = ws.ledger.append(
            RETENTION_EXPIRED_KIND,
            {
                "policy": policy.ledger_index,
                "now": format_time(now),
                "events": [item.ledger_index for item in due],
                "kinds": [item.kind for item in due],
                "blobs": [item.blob for item in due],
                "expires_at": [format_time(item.expires_at) for item in due],
            },
        )
    deleted = _delete(ws, [item.blob for item in due] + leftover)
    return RetentionReport(now, False, policy, due, index, deleted)


def _expiry_error(index: int, what: str) -> LogIntegrityError:
    return LogIntegrityError(
        f"retention.expired event {index} {what}: a payload was deleted before its retention "
        "ran out, or the record was forged. The deleted payloads cannot be restored from the "
        "ledger; restore them from a backup.",
        index=index,
    )


def verify_retention(ws: Workspace) -> int:
    """Check that every recorded expiry followed the retention policy in force; return the count.

    Each ``retention.expired`` event must name a ``retention.policy`` event recorded before it
    that keeps each kind at least its legal minimum, and for each payload the event that
    wrote it, of that kind, naming that blob; its time plus the policy's days must not be
    later than the expiry. ``ws.verify()`` accepts the missing blobs only of such events.

    Raises
    ------
    LogIntegrityError
        An expiry names no policy, a policy below the legal minimum, an event or blob it does
        not match, or a payload whose retention had not run out.
    """
    ledger = ws.ledger
    count = 0
    for expiry in ledger.entries_of_kind(RETENTION_EXPIRED_KIND):
        payload = expiry.event.payload
        at = payload.get("policy")
        if not isinstance(at, int) or not 0 <= at < expiry.index:
            raise _expiry_error(expiry.index, f"names no earlier retention policy ({at!r})")
        policy = ledger.entry(at)
        days = policy.event.payload.get("days")
        if policy.event.kind != RETENTION_POLICY_KIND or not isinstance(days, dict):
            raise _expiry_error(expiry.index, f"names event {at}, which is not a retention policy")
        columns = [payload.get(k) for k in ("events", "kinds", "blobs")]
        lists = [c for c in columns if isinstance(c, list)]
        if len(lists) != len(columns) or len({len(c) for c in lists}) != 1:
            raise _expiry_error(expiry.index, "lists events, kinds and blobs that do not pair up")
        for index, kind, blob in zip(*lists, strict=True):
            kept = days.get(kind)
            if kind not in _PAYLOAD_BLOB or not isinstance(kept, int) or isinstance(kept, bool):
                raise _expiry_error(expiry.index, f"expires kind {kind!r}, which policy {at} "
                                                  "does not keep for a number of days")
            if kept < LEGAL_MINIMUM_DAYS.get(kind, 0):
                raise _expiry_error(expiry.index, f"follows policy {at}, which keeps {kind} "
                                                  f"{kept} days (legal minimum "
                                                  f"{LEGAL_MINIMUM_DAYS[kind]})")
            if not isinstance(index, int) or not 0 <= index < expiry.index:
                raise _expiry_error(expiry.index, f"names event {index!r}, not an earlier one")
            written = ledger.entry(index)
            if written.event.kind != kind or written.event.payload.get(_PAYLOAD_BLOB[kind]) != blob:
                raise _expiry_error(expiry.index, f"names blob {blob!r} of event {index}, which "
                                                  "did not write it")
            if written.event.time + timedelta(days=kept) > expiry.event.time:
                raise _expiry_error(expiry.index, f"expired the payload of event {index} before "
                                                  f"its {kept} days had run out")
            count += 1
    return count
