r"""C2SP ``tlog-checkpoint`` tree heads as Ed25519 signed notes (C2SP ``signed-note``).

A checkpoint body is three lines, ``<origin>\n<size>\n<base64 root>\n`` (optional extension
lines follow); the note is ``body + "\n"`` plus one signature line per signer,
``"— <key name> <base64(key id || signature)>\n"``. For Ed25519 the key id is the first four
bytes of ``SHA-256(key name || 0x0A || 0x01 || public key)`` and the signature covers the body.
A verifier key is written ``<name>+<hex key id>+<base64(0x01 || public key)>``.

Verification raises :class:`~rowtrail.errors.CheckpointError`; it never returns a bool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rowtrail.errors import CheckpointError, InvalidInputError

__all__ = [
    "Checkpoint",
    "CheckpointRecord",
    "NoteSigner",
    "NoteVerifier",
    "format_checkpoint_body",
    "BUCKET_BITS",
    "bucket_change",
    "bucket_hash",
    "digest_of",
    "format_record_body",
    "open_checkpoint",
    "open_note",
    "open_record",
    "parse_checkpoint_body",
    "subject_ref_text",
    "update_digest",
]

_RECORD_HEADER = "rowtrail.dev/checkpoint-record/v1"

_ED25519 = b"\x01"
_SIG_PREFIX = "\u2014 "


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: origin, size and root (plus the signed note it came from, if any)."""

    origin: str
    size: int
    root: bytes
    note: str = ""

    @property
    def body(self) -> str:
        """Return the checkpoint body text that signatures cover."""
        return format_checkpoint_body(self.origin, self.size, self.root)


def format_checkpoint_body(origin: str, size: int, root: bytes) -> str:
    r"""Return ``<origin>\n<size>\n<base64 root>\n``."""
    if not origin or "\n" in origin or origin != origin.strip():
        raise InvalidInputError(
            f"origin must be a non-empty single line without spaces at the ends; got {origin!r}"
        )
    if size < 0 or len(root) != 32:
        raise InvalidInputError(
            f"size must be >= 0 and root 32 bytes; got {size!r}, {len(root)} bytes"
        )
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def parse_checkpoint_body(body: str) -> Checkpoint:
    """Parse a checkpoint body (the part of a note above the blank line)."""
    lines = body.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise CheckpointError(
            "checkpoint body must have origin, size and root lines, each ending in a newline"
        )
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not origin:
        raise CheckpointError("checkpoint origin line is empty")
    if not size_text.isdigit() or (len(size_text) > 1 and size_text[0] == "0"):
        raise CheckpointError(f"checkpoint size must be a decimal integer; got {size_text!r}")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise CheckpointError(f"checkpoint root is not base64: {root_text!r}") from exc
    if len(root) != 32:
        raise CheckpointError(f"checkpoint root must be 32 bytes; got {len(root)}")
    return Checkpoint(origin=origin, size=int(size_text), root=root)


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ED25519 + public).digest()[:4]


def _check_key_name(name: str) -> None:
    if not name or any(ch.isspace() for ch in name) or "+" in name:
        raise InvalidInputError(f"key name must be non-empty with no spaces or '+'; got {name!r}")


class NoteVerifier:
    """Verifies Ed25519 signatures on notes by one named key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        _check_key_name(name)
        if len(public_key) != 32:
            raise InvalidInputError(f"public_key must be 32 bytes; got {len(public_key)}")
        self.name = name
        self.public_key = public_key
        self.key_id = _key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Build a verifier from ``<name>+<hex key id>+<base64(0x01 || key)>``."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise CheckpointError(f"verifier key must be name+keyid+key; got {vkey!r}")
        name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("verifier key material is not base64") from exc
        if len(raw) != 33 or raw[:1] != _ED25519:
            raise CheckpointError("verifier key is not an Ed25519 note key")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id.lower():
            raise CheckpointError(f"verifier key id {hex_id} does not match its key")
        return verifier

    @property
    def vkey(self) -> str:
        """Return this key in verifier-key text form."""
        encoded = base64.b64encode(_ED25519 + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def verify_signature(self, body: str, signature: bytes) -> None:
        """Raise :class:`CheckpointError` unless ``signature`` signs ``body`` with this key."""
        try:
            self._key.verify(signature, body.encode("utf-8"))
        except InvalidSignature as exc:
            raise CheckpointError(f"signature by {self.name!r} does not verify") from exc


class NoteSigner:
    """Signs notes with an Ed25519 private key under a key name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_key_name(name)
        self.name = name
        self._key = private_key
        public = private_key.public_key().public_bytes_raw()
        self.verifier = NoteVerifier(name, public)

    def sign(self, body: str) -> str:
        """Return the signed note: ``body``, a blank line, and this signer's line."""
        signature = self._key.sign(body.encode("utf-8"))
        encoded = base64.b64encode(self.verifier.key_id + signature).decode()
        return f"{body}\n{_SIG_PREFIX}{self.name} {encoded}\n"


def _split_note(note: object) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    if not isinstance(note, str) or "\n\n" not in note or not note.endswith("\n"):
        raise CheckpointError("a signed note is a body, a blank line and signature lines")
    body, _, signature_block = note.partition("\n\n")
    body += "\n"
    signatures = []
    for line in signature_block[:-1].split("\n"):
        if not line.startswith(_SIG_PREFIX):
            raise CheckpointError(f"malformed signature line {line!r}")
        name, _, encoded = line[len(_SIG_PREFIX) :].rpartition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise CheckpointError(f"signature of {name!r} is not base64") from exc
        if len(raw) < 5:
            raise CheckpointError(f"signature of {name!r} is too short")
        signatures.append((name, raw[:4], raw[4:]))
    if not signatures:
        raise CheckpointError("note carries no signature")
    return body, signatures


def open_note(note: str, verifiers: Iterable[NoteVerifier]) -> str:
    """Verify a signed note by at least one of ``verifiers`` and return its body.

    Every signature by a known key (matched by name and key id) must verify; a note signed
    only by unknown keys raises :class:`CheckpointError`.
    """
    body, signatures = _split_note(note)
    known = {(v.name, v.key_id): v for v in verifiers}
    verified = 0
    for name, key_id, signature in signatures:
        verifier = next(
            (v for (n, k), v in known.items() if n == name and hmac.compare_digest(k, key_id)),
            None,
        )
        if verifier is not None:
            verifier.verify_signature(body, signature)
            verified += 1
    if verified == 0:
        names = sorted({name for name, _, _ in signatures})
        raise CheckpointError(f"note is signed only by unknown keys {names}")
    return body


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """When a checkpoint was signed, chained to the record of the one signed before it.

    The record is a signed note of its own, so the checkpoint history (which checkpoints
    exist and when each was made) cannot be edited or thinned out without the key: each
    record names the SHA-256 of the previous record's note (``previous``, ``"none"`` for the
    first). ``subject_refs`` is the digest of the log's subject index at that size, and
    ``cache_rows`` that of the cache-table rows the store's projections report (sums of
    bucket hashes, :func:`digest_of`), so neither can lose, gain or change a row unnoticed and
    both can be checked without decoding any event. (Rows a projection binds otherwise, such
    as subject rows bound by digests in their source's event, are not reported.)
    """

    origin: str
    size: int
    root: bytes
    created_at: str
    previous: str
    subject_refs: str = "0" * 64
    cache_rows: str = "0" * 64
    note: str = ""

    @property
    def digest(self) -> str:
        """Return ``sha256:<hex>`` of the signed record note (what the next record names)."""
        return "sha256:" + hashlib.sha256(self.note.encode("utf-8")).hexdigest()


_REFS_MODULUS = 1 << 256


#: Index rows are hashed in buckets of 2**BUCKET_BITS consecutive ledger indices.
BUCKET_BITS = 10


def bucket_hash(label: str, items: Iterable[str]) -> int:
    """Hash one bucket of index or cache rows: SHA-256 of its label and its sorted items.

    Sorting makes the hash independent of the order rows are read in, so a bucket can be
    hashed from one ``GROUP BY`` query; an empty bucket counts as 0 (absent).
    """
    ordered = sorted(items)
    if not ordered:
        return 0
    data = (label + "\x1d" + "\x1e".join(ordered)).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest(), "big")


def bucket_change(label: str, rows: Iterable[tuple[int, str]], start: int) -> tuple[int, int]:
    """Return a bucket's ``(old, new)`` hash around a write that added the rows from ``start``.

    ``rows`` are ``(ledger index, text)`` of every row in the bucket after the write.
    """
    rows = list(rows)
    before = bucket_hash(label, [text for index, text in rows if index < start])
    return before, bucket_hash(label, [text for _, text in rows])


def digest_of(hashes: Iterable[int], start: str = "0" * 64) -> str:
    """Add bucket hashes to a digest (sum modulo 2**256) and return it as 64 hex digits.

    The digest of a table is the sum of its buckets' hashes: a write changes only the buckets
    its rows fall in, so it updates the signed digest by ``new - old`` of those buckets
    (:func:`update_digest`), and checking a table is one grouped query and one hash per bucket.
    """
    total = int(start, 16) + sum(hashes)
    return f"{total % _REFS_MODULUS:064x}"


def update_digest(start: str, changes: Iterable[tuple[int, int]]) -> str:
    """Replace bucket hashes in a digest: each change is ``(old hash, new hash)``."""
    total = int(start, 16)
    for old, new in changes:
        total += new - old
    return f"{total % _REFS_MODULUS:064x}"


def subject_ref_text(subject: str, index: int) -> str:
    """Return the canonical text of one subject index row (``subject``, NUL, decimal index)."""
    return f"{subject}\x00{int(index)}"


def format_record_body(
    origin: str,
    size: int,
    root: bytes,
    created_at: str,
    previous: str,
    subject_refs: str = "0" * 64,
    cache_rows: str = "0" * 64,
) -> str:
    """Return the body of a checkpoint record note (see :class:`CheckpointRecord`)."""
    head = format_checkpoint_body(origin, size, root)
    if "\n" in created_at or "\n" in previous or {len(subject_refs), len(cache_rows)} != {64}:
        raise InvalidInputError(
            "created_at and previous of a checkpoint record are single lines; subject_refs "
            "and cache_rows are 64 hex digits"
        )
    return f"{_RECORD_HEADER}\n{head}{created_at}\n{previous}\n{subject_refs}\n{cache_rows}\n"


def open_record(note: str, verifiers: Iterable[NoteVerifier]) -> CheckpointRecord:
    """Verify a checkpoint record note and return the record."""
    body = open_note(note, verifiers)
    header, _, rest = body.partition("\n")
    lines = rest.split("\n")
    if header != _RECORD_HEADER or len(lines) != 8 or lines[-1] != "":
        raise CheckpointError("note is not a rowtrail checkpoint record")
    head = parse_checkpoint_body("\n".join(lines[:3]) + "\n")
    return CheckpointRecord(
        head.origin, head.size, head.root, lines[3], lines[4], lines[5], lines[6], note
    )


def open_checkpoint(
    note: str, verifiers: Iterable[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint note and return its tree head.

    At least one signature must come from one of ``verifiers`` (matched by name and key id)
    and verify; a note signed only by unknown keys raises :class:`CheckpointError`. Every
    known key's signature must verify. ``origin``, when given, must match.
    """
    checkpoint = parse_checkpoint_body(_split_note(note)[0])
    try:
        open_note(note, verifiers)
    except CheckpointError as exc:
        if "unknown keys" in str(exc):
            raise CheckpointError(str(exc).replace("note is", "checkpoint is")) from None
        raise
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint origin is {checkpoint.origin!r}, expected {origin!r}")
    return Checkpoint(checkpoint.origin, checkpoint.size, checkpoint.root, note)
