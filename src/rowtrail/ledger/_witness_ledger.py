"""Witnessing a :class:`~rowtrail.ledger.Ledger`: the two calls the workspace makes.

* :func:`cosign_ledger` — after the ledger signs a checkpoint: send it to the witnesses and
  return it with their cosignatures (to be stored, e.g. as a ledger event or a file kept
  beside the trust state);
* :func:`verify_witnessed_log` — in ``verify``: every stored cosigned checkpoint meets the
  witness policy, no two show different roots for one size (or a witness going backwards),
  and the log's current tree extends each of them (so a log rolled back and regrown on another
  history fails here even if every witness lost its state).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from rowtrail.ledger._log import Ledger
from rowtrail.ledger._witness_policy import (
    WitnessedCheckpoint,
    WitnessEndpoint,
    WitnessPolicy,
    collect_cosignatures,
    verify_no_split_view,
    verify_witnessed_prefix,
)

__all__ = ["cosign_ledger", "verify_witnessed_log"]


def cosign_ledger(
    ledger: Ledger,
    witnesses: Sequence[WitnessEndpoint],
    *,
    quorum: int | None = None,
    sizes: Mapping[str, int] | None = None,
) -> WitnessedCheckpoint:
    """Have ``witnesses`` cosign the ledger's latest signed checkpoint.

    See :func:`~rowtrail.ledger.collect_cosignatures` for ``quorum``, ``sizes`` and the errors.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> from rowtrail.ledger import Witness
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> _ = ws.ledger.append("note.added", {"n": 1})
    >>> witness = Witness.open("w.example/1", {ws.origin: [ws.ledger.verifier]},
    ...                        state_dir=tempfile.mkdtemp())
    >>> cosign_ledger(ws.ledger, [witness]).cosigners
    ['w.example/1']
    """
    note = ledger.checkpoint().note
    return collect_cosignatures(
        note,
        witnesses,
        log_verifiers=[ledger.verifier],
        prove=lambda old, new: ledger.consistency(old, new).path,
        quorum=quorum,
        sizes=sizes,
    )


def verify_witnessed_log(
    ledger: Ledger,
    notes: Iterable[str],
    policy: WitnessPolicy,
    *,
    not_after: int | None = None,
) -> list[WitnessedCheckpoint]:
    """Verify stored cosigned checkpoint notes of ``ledger`` against ``policy``; return them.

    Raises :class:`~rowtrail.errors.WitnessError` (or another
    :class:`~rowtrail.errors.CheckpointError`) on a note without enough trusted cosignatures,
    a forged cosignature, a split view, a witness that went backwards, or a log that does not
    extend a witnessed checkpoint (rolled back or rewritten).
    """
    checked = [
        policy.verify(note, [ledger.verifier], origin=ledger.origin, not_after=not_after)
        for note in notes
    ]
    verify_no_split_view(checked)
    head = ledger.head()
    verify_witnessed_prefix(
        checked,
        size=head.size,
        root=head.root,
        prove=lambda old, new: ledger.consistency(old, new).path,
    )
    return checked
