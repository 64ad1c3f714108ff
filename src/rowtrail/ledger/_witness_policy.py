r"""The log's side of witnessing: collect cosignatures, and check them against a policy.

* :func:`collect_cosignatures` is what a log calls after it signs a checkpoint: it sends the
  checkpoint with a consistency proof to each witness (in-process :class:`~rowtrail.ledger.Witness`
  or :class:`~rowtrail.ledger.WitnessClient`), follows a 409 answer once (proving from the size
  the witness reports), verifies every cosignature it gets back with the key *it* was configured
  with, and returns the checkpoint with the cosignatures. A witness that answers 422 (the log is
  inconsistent with what it cosigned) or 409 with a size above the checkpoint's (the log is
  behind what the witness saw: rolled back) is never outvoted: the call raises.
* :class:`WitnessPolicy` says which witnesses a verifier trusts and how many must have cosigned
  (k of n); :meth:`WitnessPolicy.verify` checks a note and its cosignatures.
* :func:`verify_no_split_view` checks a set of cosigned checkpoints of one log: two roots for
  one size, or a witness that cosigned a smaller tree after a larger one, is tampering.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rowtrail.errors import ConsistencyProofError, InvalidInputError, WitnessError
from rowtrail.ledger._checkpoint import Checkpoint, NoteVerifier, open_checkpoint
from rowtrail.ledger._cosignature import (
    Cosignature,
    CosignatureVerifier,
    cosignatures_of,
    parse_cosignature_line,
)
from rowtrail.ledger._merkle import verify_consistency

__all__ = [
    "WitnessEndpoint",
    "WitnessPolicy",
    "WitnessedCheckpoint",
    "collect_cosignatures",
    "verify_no_split_view",
    "verify_witnessed_prefix",
]


class WitnessEndpoint(Protocol):
    """A witness the log can submit checkpoints to (in process, or over HTTP)."""

    @property
    def name(self) -> str:
        """The witness's key name."""
        ...

    @property
    def verifier(self) -> CosignatureVerifier:
        """The cosignature key this endpoint is trusted under (configured, not fetched)."""
        ...

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> str:
        """Submit a checkpoint; return the cosignature lines or raise ``WitnessError``."""
        ...


@dataclass(frozen=True, slots=True)
class WitnessedCheckpoint:
    """A log-signed checkpoint and the verified cosignatures collected for it."""

    checkpoint: Checkpoint
    cosignatures: tuple[Cosignature, ...]
    failures: Mapping[str, str] = field(default_factory=dict)

    @property
    def note(self) -> str:
        """Return the checkpoint note with every cosignature line appended."""
        note = self.checkpoint.note
        extra = [c.line for c in self.cosignatures if c.line not in note]
        return note + "".join(extra)

    @property
    def cosigners(self) -> list[str]:
        """Return the names of the witnesses that cosigned, sorted."""
        return sorted({c.name for c in self.cosignatures})


def _submit(
    witness: WitnessEndpoint,
    checkpoint: Checkpoint,
    prove: Callable[[int, int], Sequence[bytes]],
    old_size: int,
) -> Cosignature:
    """Submit to one witness, following one 409; raise on any refusal."""
    for attempt in range(2):
        same = old_size in (0, checkpoint.size)
        proof = [] if same else list(prove(old_size, checkpoint.size))
        try:
            response = witness.add_checkpoint(old_size, proof, checkpoint.note)
        except WitnessError as exc:
            if exc.status == 409 and exc.size is not None and exc.size > checkpoint.size:
                raise WitnessError(
                    f"witness {witness.name!r} already cosigned size {exc.size} of "
                    f"{checkpoint.origin!r}, above this checkpoint's {checkpoint.size}: the log "
                    "was rolled back (or a newer checkpoint was witnessed since: submit the "
                    "latest one)",
                    status=409,
                    size=exc.size,
                ) from exc
            if exc.status == 409 and exc.size is not None and attempt == 0:
                old_size = exc.size
                continue
            raise
        lines = [line for line in response.splitlines() if line]
        for line in lines:
            cosignature = parse_cosignature_line(line)
            if witness.verifier.matches(cosignature):
                return witness.verifier.verify(checkpoint.note.partition("\n\n")[0] + "\n",
                                               cosignature)
        raise WitnessError(
            f"witness {witness.name!r} answered no cosignature by its key "
            f"{witness.verifier.vkey!r}",
        )
    raise AssertionError("unreachable: the second attempt returns or raises")  # pragma: no cover


def collect_cosignatures(
    note: str,
    witnesses: Sequence[WitnessEndpoint],
    *,
    log_verifiers: Sequence[NoteVerifier],
    prove: Callable[[int, int], Sequence[bytes]],
    quorum: int | None = None,
    sizes: Mapping[str, int] | None = None,
) -> WitnessedCheckpoint:
    """Have ``witnesses`` cosign the signed checkpoint ``note``; return it with the cosignatures.

    Parameters
    ----------
    note : str
        The checkpoint note the log just signed.
    witnesses : sequence of WitnessEndpoint
        Where to submit it; each carries the cosignature key it is trusted under.
    log_verifiers : sequence of NoteVerifier
        The log's keys (the note is checked before anything is sent).
    prove : callable
        ``prove(old_size, new_size)`` returns the RFC 9162 consistency path between two sizes
        of this log (e.g. ``lambda a, b: ledger.consistency(a, b).path``).
    quorum : int, optional
        How many witnesses must cosign (default: all of them).
    sizes : mapping, optional
        The size each witness (by name) last cosigned, if known; otherwise the first request
        says old size 0 and the witness's 409 answer gives it.

    Raises
    ------
    WitnessError
        A witness found the log inconsistent (422) or behind what it cosigned (409 with a
        larger size) — raised even if other witnesses cosigned; or fewer than ``quorum``
        witnesses cosigned (the others' reasons are in the message).
    """
    checkpoint = open_checkpoint(note, log_verifiers)
    wanted = len(witnesses) if quorum is None else quorum
    if type(wanted) is not int or not 0 <= wanted <= len(witnesses):
        raise InvalidInputError(
            f"quorum of collect_cosignatures must be an int in [0, {len(witnesses)}]; "
            f"got {quorum!r}"
        )
    cosignatures: list[Cosignature] = []
    failures: dict[str, str] = {}
    for witness in witnesses:
        try:
            start = (sizes or {}).get(witness.name, 0)
            cosignatures.append(_submit(witness, checkpoint, prove, start))
        except WitnessError as exc:
            if exc.status == 422 or (exc.status == 409 and exc.size is not None
                                     and exc.size > checkpoint.size):
                raise
            failures[witness.name] = str(exc)
    if len(cosignatures) < wanted:
        raise WitnessError(
            f"only {len(cosignatures)} of the {wanted} witnesses required cosigned size "
            f"{checkpoint.size} of {checkpoint.origin!r}: "
            + "; ".join(f"{name}: {why}" for name, why in failures.items())
        )
    return WitnessedCheckpoint(checkpoint, tuple(cosignatures), failures)


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Which witnesses a verifier trusts, and how many of them must have cosigned.

    Examples
    --------
    >>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    >>> from rowtrail.ledger import CosignatureSigner
    >>> keys = [CosignatureSigner(f"w.example/{i}", Ed25519PrivateKey.generate()).verifier
    ...         for i in range(3)]
    >>> WitnessPolicy(tuple(keys), quorum=2).quorum
    2
    """

    witnesses: tuple[CosignatureVerifier, ...]
    quorum: int

    def __post_init__(self) -> None:
        ids = {(w.name, w.key_id) for w in self.witnesses}
        if len(ids) != len(self.witnesses) or not all(
            isinstance(w, CosignatureVerifier) for w in self.witnesses
        ):
            raise InvalidInputError(
                "witnesses of WitnessPolicy must be distinct CosignatureVerifier keys; got "
                f"{[getattr(w, 'name', w) for w in self.witnesses]!r}"
            )
        if type(self.quorum) is not int or not 1 <= self.quorum <= len(self.witnesses):
            raise InvalidInputError(
                f"quorum of WitnessPolicy must be an int in [1, {len(self.witnesses)}]; got "
                f"{self.quorum!r}. Give at least one witness key."
            )

    @classmethod
    def from_vkeys(cls, vkeys: Iterable[str], quorum: int | None = None) -> WitnessPolicy:
        """Build a policy from cosigner vkeys; ``quorum`` defaults to all of them."""
        keys = tuple(CosignatureVerifier.from_vkey(v) for v in vkeys)
        return cls(keys, len(keys) if quorum is None else quorum)

    def verify(
        self,
        note: str,
        log_verifiers: Sequence[NoteVerifier],
        *,
        origin: str | None = None,
        not_after: int | None = None,
    ) -> WitnessedCheckpoint:
        """Verify the log's signature and at least ``quorum`` trusted cosignatures.

        Every line by a trusted witness key must verify (a forged cosignature, or one made for
        another checkpoint, raises even if enough others verify); cosignatures by unknown keys
        are ignored. ``not_after`` refuses cosignatures dated later than it.
        """
        checkpoint = open_checkpoint(note, log_verifiers, origin=origin)
        found = cosignatures_of(note, self.witnesses, not_after=not_after)
        distinct = {(c.name, c.key_id) for c in found}
        if len(distinct) < self.quorum:
            raise WitnessError(
                f"checkpoint of size {checkpoint.size} of {checkpoint.origin!r} carries "
                f"{len(distinct)} trusted cosignature(s); the policy needs {self.quorum} of "
                f"{[w.name for w in self.witnesses]}"
            )
        return WitnessedCheckpoint(checkpoint, tuple(found))


def verify_no_split_view(checkpoints: Iterable[WitnessedCheckpoint]) -> None:
    """Raise :class:`~rowtrail.errors.WitnessError` on evidence the log showed two histories.

    Checks verified cosigned checkpoints (e.g. those a log stored, gathered from several
    witnesses, or kept by third parties): two roots for one size of one origin is a split
    view; a witness that cosigned a smaller tree at a later time than a larger one lost or
    rolled back its state (its cosignature says "the largest tree I saw as of then"). That
    two different sizes belong to one history needs a consistency proof, which this function
    does not have: see :func:`~rowtrail.ledger.verify_consistency`.
    """
    roots: dict[tuple[str, int], bytes] = {}
    seen: dict[tuple[str, str, bytes], list[tuple[int, int]]] = {}
    for item in checkpoints:
        head = item.checkpoint
        key = (head.origin, head.size)
        if key in roots and roots[key] != head.root:
            raise WitnessError(
                f"split view: {head.origin!r} has two roots at size {head.size}, "
                f"{roots[key].hex()} and {head.root.hex()}"
            )
        roots[key] = head.root
        for cosignature in item.cosignatures:
            who = (head.origin, cosignature.name, cosignature.key_id)
            seen.setdefault(who, []).append((cosignature.timestamp, head.size))
    for (origin, name, _), stamps in seen.items():
        stamps.sort()
        largest = (0, 0)
        for timestamp, size in stamps:
            if size < largest[1] and timestamp > largest[0]:
                raise WitnessError(
                    f"witness {name!r} cosigned size {largest[1]} of {origin!r} at "
                    f"{largest[0]} and the smaller size {size} at {timestamp}: its state was "
                    "rolled back or deleted, and the log it cosigned may have forked"
                )
            if size > largest[1]:
                largest = (timestamp, size)



def verify_witnessed_prefix(
    checkpoints: Iterable[WitnessedCheckpoint],
    *,
    size: int,
    root: bytes,
    prove: Callable[[int, int], Sequence[bytes]],
) -> None:
    """Raise unless the log's current tree (``size``, ``root``) extends every witnessed one.

    This is what catches a log rolled back and regrown on another history even by witnesses
    that lost their state: a checkpoint cosigned earlier (kept by the log, a third party or a
    git witness) must be a prefix of the current tree, proven by ``prove(old, new)``; a tree
    smaller than a witnessed one was rolled back. Raises :class:`~rowtrail.errors.WitnessError`.
    """
    for item in checkpoints:
        head = item.checkpoint
        where = f"checkpoint of size {head.size} cosigned by {item.cosigners}"
        if head.size > size:
            raise WitnessError(
                f"the log has {size} entries but a {where} exists: it was rolled back"
            )
        if head.size == 0:
            continue
        try:
            verify_consistency(head.size, size, head.root, root, list(prove(head.size, size))
                               if head.size < size else [])
        except ConsistencyProofError as exc:
            raise WitnessError(
                f"the log's tree of size {size} does not extend the {where}: the log was "
                f"rewritten ({exc})"
            ) from exc
