"""Which rows an erasure job erased: per-row commitments, and the lookup usage answers rest on.

An erasure job records its rows as keyed per-row commitments, never as raw ids: for each
erased row id ``r``, ``HMAC-SHA256(k, job id ‖ 0x00 ‖ r as 8 bytes little-endian)`` with
``k = HMAC-SHA256(workspace subject key, "rowtrail.dev/erasure-rows/v1")``, sorted and
concatenated in a blob that the ``erasure.requested`` event names. Someone without the
workspace key learns only how many rows there were; the workspace (or an auditor given a row
id and the key) can test membership.

:func:`find_erasures` answers "was row R erased, when, by which job?" from completed jobs
only (an ``erasure.completed`` event naming its ``erasure.requested`` event), both proven
against the signed checkpoint before the answer is released.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from rowtrail.ledger import InclusionProof

__all__ = ["Erasure", "find_erasures", "row_commitments"]

_LABEL = b"rowtrail.dev/erasure-rows/v1"
_MAC = 32
SCHEME = "hmac-sha256/row/v1"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, _LABEL, hashlib.sha256).digest()


def row_commitments(secret: bytes, job_id: str, row_ids: ArrayLike) -> bytes:
    """Return the sorted per-row commitments of ``row_ids`` for job ``job_id`` (a blob)."""
    key, prefix = _key(secret), job_id.encode("utf-8") + b"\x00"
    ids = np.unique(np.asarray(row_ids, dtype=np.int64))
    macs = sorted(
        hmac.new(key, prefix + int(r).to_bytes(8, "little"), hashlib.sha256).digest()
        for r in ids.tolist()
    )
    return b"".join(macs)


@dataclass(frozen=True)
class Erasure:
    """A completed erasure job that erased a row: "erased on ``erased_on`` by ``job_id``"."""

    job_id: str
    erased_on: str
    row_ids: tuple[int, ...]
    requested_index: int
    completed_index: int
    proof: InclusionProof
    requested_proof: InclusionProof

    def text(self) -> str:
        """Return the answer in words."""
        return f"erased on {self.erased_on} by job {self.job_id}"


def find_erasures(ws: Any, row_ids: ArrayLike) -> list[Erasure]:
    """Return the completed erasure jobs that erased any of ``row_ids``, with proofs.

    Raises
    ------
    VerificationError
        A record the answer rests on fails its proof (no answer is released then).
    """
    from rowtrail.training._status import prove_verified

    ids = np.unique(np.asarray(row_ids, dtype=np.int64))
    done = ws.ledger.entries_of_kind("erasure.completed")
    if not ids.size or not done:
        return []
    key = _key(ws.secret)
    found: list[tuple[Any, Any, tuple[int, ...]]] = []
    for entry in done:
        events = entry.event.payload.get("events", {})
        requested = events.get("erasure.requested", []) if isinstance(events, dict) else []
        if not requested:
            continue
        asked = ws.ledger.entry(int(requested[0]))
        job = str(asked.event.payload.get("job"))
        if asked.event.kind != "erasure.requested" or job != entry.event.payload.get("job"):
            continue
        prefix = job.encode("utf-8") + b"\x00"
        macs = {
            hmac.new(key, prefix + int(r).to_bytes(8, "little"), hashlib.sha256).digest(): r
            for r in ids.tolist()
        }
        hit: set[int] = set()
        for request in asked.event.payload.get("requests", []):
            rows = request.get("rows") if isinstance(request, dict) else None
            if not isinstance(rows, dict) or rows.get("scheme") != SCHEME:
                continue  # not a record this version wrote: it names no rows to match
            blob = ws.ledger.blobs.get(str(rows["blob"]))  # re-hashed on read
            stored = {blob[i : i + _MAC] for i in range(0, len(blob), _MAC)}
            hit.update(int(r) for mac, r in macs.items() if mac in stored)
        if hit:
            found.append((entry, asked, tuple(sorted(hit))))
    proofs = prove_verified(ws, [i for e, a, _ in found for i in (e.index, a.index)])
    return [
        Erasure(
            str(e.event.payload["job"]),
            e.event.time.date().isoformat(),
            rows,
            a.index,
            e.index,
            proofs[e.index],
            proofs[a.index],
        )
        for e, a, rows in found
    ]
