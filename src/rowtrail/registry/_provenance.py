"""Provenance findings of registry inputs: unknown lineage, failed schemas, unproven records.

Each function returns :class:`~rowtrail.registry._policy.Finding` objects; the policy decides
which of them refuse an action (see :mod:`rowtrail.registry._policy`).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rowtrail.errors import VerificationError
from rowtrail.ledger import LedgerEntry
from rowtrail.registry._policy import Finding
from rowtrail.registry._records import DatasetVersion

if TYPE_CHECKING:
    from rowtrail.ledger import Ledger

__all__ = ["dataset_findings", "input_findings", "split_findings", "training_findings"]


def _prove_sources(ledger: Ledger, sources: list[Mapping[str, Any]], target: str) -> list[Finding]:
    """Prove each source's registration event and compare its digest with the one named."""
    indices = [s.get("ledger_index") for s in sources]
    if any(not isinstance(i, int) for i in indices):
        return [Finding("records", target, f"{target}: a source names no registration event")]
    try:
        entries = ledger.proven([int(i) for i in indices if isinstance(i, int)])
    except VerificationError as exc:
        return [Finding("records", target, f"{target}: its source records do not verify ({exc})")]
    found = []
    for source, entry in zip(sources, entries, strict=True):
        payload = entry.event.payload
        if entry.event.kind != "source.registered" or not hmac.compare_digest(
            str(payload.get("digest")), str(source.get("digest"))
        ):
            found.append(Finding(
                "records", target,
                f"{target}: source {source.get('name')!r} is not the one event "
                f"{entry.index} registered",
            ))
    return found


def dataset_findings(ledger: Ledger, dataset: DatasetVersion) -> list[Finding]:
    """Return the provenance findings of one dataset version."""
    target = dataset.key
    found = []
    if dataset.lineage_status != "recorded":
        found.append(Finding(
            "lineage", target,
            f"{target} has unknown lineage (registered from source names, not from traced data)",
        ))
    if dataset.schema_status == "failed":
        found.append(Finding(
            "schema", target, f"{target}: a source recorded schema violations at ingestion",
        ))
    return found + _prove_sources(ledger, list(dataset.sources), target)


def input_findings(target: str, n_datasets: int, training_run: object) -> list[Finding]:
    """Return the lineage finding of a run that names neither a dataset version nor a training run.

    Such a run (e.g. one imported from another tracker) says nothing about the data it used:
    its lineage is unknown, not clean.
    """
    if n_datasets or training_run is not None:
        return []
    return [Finding(
        "lineage", target,
        f"{target} names no dataset version and no training run: the data it used is unknown",
    )]


def split_findings(
    target: str, payload: Mapping[str, Any], failed_sources: set[int]
) -> list[Finding]:
    """Return the provenance findings of a ``training.split`` about to be recorded.

    A split without row ids has unknown lineage; rows of a source no registration event
    records cannot be proven; a source that recorded schema violations fails the schema check.
    """
    what = f"{target} ({payload.get('role')} split)"
    found = []
    if not payload.get("row_ids", False):
        found.append(Finding(
            "lineage", target, f"{what} has no row ids: the data it trains on has unknown lineage",
        ))
    sources = list(payload.get("sources") or [])
    unregistered = sorted(int(s.get("source_index", -1)) for s in sources if s.get("name") is None)
    if unregistered:
        found.append(Finding(
            "records", target,
            f"{what} uses rows of sources no registration event records: {unregistered}",
        ))
    failed = sorted(str(s.get("name")) for s in sources
                    if int(s.get("source_index", -1)) in failed_sources)
    if failed:
        found.append(Finding(
            "schema", target, f"{what} uses sources that failed schema validation: {failed}",
        ))
    return found


def training_findings(
    ledger: Ledger, run_id: str, seal: LedgerEntry | None, failed_sources: set[int]
) -> list[Finding]:
    """Return the provenance findings of a training run from its (proven) seal."""
    target = f"training:{run_id}"
    if seal is None:
        return [Finding("lineage", target, f"{target} has no seal: it did not complete")]
    payload = seal.event.payload
    found = []
    status = str(payload.get("status", ""))
    if status != "completed":
        found.append(Finding("records", target, f"{target} ended with status {status!r}"))
    data = payload.get("data") or {}
    splits = list(data.get("splits") or [])
    without = sorted({str(s.get("dataset")) for s in splits if not s.get("row_ids", True)})
    if not splits:
        found.append(Finding("lineage", target, f"{target} recorded no training data"))
    if without:
        found.append(Finding(
            "lineage", target, f"{target} was trained without row ids for {without}",
        ))
    sources = list(data.get("sources") or [])
    failed = sorted(str(s.get("name")) for s in sources
                    if int(s.get("source_index", -1)) in failed_sources)
    if failed:
        found.append(Finding(
            "schema", target, f"{target} used sources that failed schema validation: {failed}",
        ))
    split_indices = [s.get("ledger_index") for s in splits]
    try:
        ledger.proven([int(i) for i in split_indices if isinstance(i, int)])
    except VerificationError as exc:
        found.append(Finding("records", target, f"{target}: its split records do not verify "
                                                f"({exc})"))
    return found
