r"""C2SP ``tlog-cosignature`` v1: timestamped Ed25519 cosignatures of checkpoints.

A cosignature is a note signature line (C2SP ``signed-note``) on a checkpoint, made by a
*cosigner* (a witness) to state that, as of a time, the largest consistent tree it observed
for the checkpoint's origin has the checkpoint's root hash::

    — <cosigner name> base64(key id || u64 timestamp || Ed25519 signature)

* the key id is ``SHA-256(<name> || "\n" || 0x04 || 32-byte public key)[:4]`` (signature type
  0x04, so the same key can never pass for a plain 0x01 note signer);
* the signed message is ``"cosignature/v1\n" + "time <timestamp>\n" + <checkpoint body>``,
  the whole note body including extension lines and its final newline, no signature lines;
* the timestamp is big-endian, seconds since the Epoch, at most ``2**63 - 1``; rowtrail also
  refuses zero (the witness protocol forbids omitting it).

A verifier key (vkey) of a cosigner is ``<name>+<hex key id>+base64(0x04 || public key)``.
Verification raises :class:`~rowtrail.errors.WitnessError` (a
:class:`~rowtrail.errors.CheckpointError`); it never returns a bool.

Examples
--------
>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> signer = CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())
>>> body = "example.com/log\n1\n" + "A" * 43 + "=\n"
>>> line = signer.cosign(body, timestamp=1679315147).line
>>> line.startswith("\u2014 witness.example/w1 ")
True
>>> signer.verifier.verify(body, parse_cosignature_line(line)).timestamp
1679315147
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

from rowtrail.errors import InvalidInputError, WitnessError
from rowtrail.ledger._checkpoint import _split_note, parse_checkpoint_body

__all__ = [
    "COSIGNATURE_TYPE",
    "Cosignature",
    "CosignatureSigner",
    "CosignatureVerifier",
    "cosignature_message",
    "cosignatures_of",
    "parse_cosignature_line",
]

#: The C2SP signed-note signature type byte of Ed25519 cosignature/v1.
COSIGNATURE_TYPE = b"\x04"
_SIG_PREFIX = "\u2014 "
_MAX_TIMESTAMP = (1 << 63) - 1
_SIGNATURE_BYTES = 4 + 8 + 64  # key id, timestamp, Ed25519 signature


def _key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode("utf-8") + b"\n" + COSIGNATURE_TYPE + public).digest()[:4]


def _check_name(name: object, caller: str) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name) or "+" in name:
        raise InvalidInputError(
            f"name of {caller} must be a non-empty key name with no spaces or '+'; got {name!r}"
        )
    return name


def _check_timestamp(timestamp: object, caller: str) -> int:
    if type(timestamp) is not int or not 0 < timestamp <= _MAX_TIMESTAMP:
        raise InvalidInputError(
            f"timestamp of {caller} must be an int in [1, 2**63 - 1] (POSIX seconds); "
            f"got {timestamp!r}"
        )
    return timestamp


def cosignature_message(body: str, timestamp: int) -> bytes:
    r"""Return the message a cosignature/v1 signs: header, time line, then the note body.

    Examples
    --------
    >>> cosignature_message("example.com/log\n0\nroot\n", 7)
    b'cosignature/v1\ntime 7\nexample.com/log\n0\nroot\n'
    """
    _check_timestamp(timestamp, "cosignature_message()")
    return f"cosignature/v1\ntime {timestamp}\n{body}".encode()


@dataclass(frozen=True, slots=True)
class Cosignature:
    """One cosignature: the cosigner's key name and id, its timestamp and Ed25519 signature."""

    name: str
    key_id: bytes
    timestamp: int
    signature: bytes

    @property
    def line(self) -> str:
        """Return the note signature line, newline included."""
        raw = self.key_id + self.timestamp.to_bytes(8, "big") + self.signature
        return f"{_SIG_PREFIX}{self.name} {base64.b64encode(raw).decode()}\n"


def _from_raw(name: str, raw: bytes) -> Cosignature:
    if len(raw) != _SIGNATURE_BYTES:
        raise WitnessError(
            f"cosignature of {name!r} must be {_SIGNATURE_BYTES} bytes (key id, timestamp, "
            f"Ed25519 signature); got {len(raw)}: truncated or not a cosignature/v1"
        )
    timestamp = int.from_bytes(raw[4:12], "big")
    return Cosignature(name, raw[:4], timestamp, raw[12:])


def parse_cosignature_line(line: str) -> Cosignature:
    """Parse one ``— <name> <base64>`` line (trailing newline optional); nothing is verified."""
    text = line[:-1] if line.endswith("\n") else line
    if not text.startswith(_SIG_PREFIX) or "\n" in text:
        raise WitnessError(f"a cosignature is one line '\u2014 <name> <base64>'; got {line!r:.120}")
    name, _, encoded = text[len(_SIG_PREFIX) :].rpartition(" ")
    if not name:
        raise WitnessError(f"cosignature line has no key name: {line!r:.120}")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise WitnessError(f"cosignature of {name!r} is not base64") from exc
    return _from_raw(name, raw)


class CosignatureVerifier:
    """Verifies cosignature/v1 signatures by one named cosigner key."""

    def __init__(self, name: str, public_key: bytes) -> None:
        self.name = _check_name(name, "CosignatureVerifier")
        if len(public_key) != 32:
            raise InvalidInputError(
                f"public_key of CosignatureVerifier must be 32 bytes; got {public_key!r:.80}"
            )
        self.public_key = public_key
        self.key_id = _key_id(name, public_key)
        self._key = Ed25519PublicKey.from_public_bytes(public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Build a verifier from ``<name>+<hex key id>+<base64(0x04 || key)>``."""
        parts = vkey.strip().split("+", 2)  # the base64 key may itself contain "+"
        if len(parts) != 3:
            raise InvalidInputError(
                f"vkey of CosignatureVerifier.from_vkey must be name+keyid+key; got {vkey!r}"
            )
        name, hex_id, encoded = parts
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise InvalidInputError(f"key material of vkey {vkey!r} is not base64") from exc
        if len(raw) != 33 or raw[:1] != COSIGNATURE_TYPE:
            raise InvalidInputError(
                f"vkey of CosignatureVerifier.from_vkey must be an Ed25519 cosignature/v1 key "
                f"(type 0x04); got {vkey!r}. A 0x01 key signs checkpoints, not cosignatures."
            )
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != hex_id.lower():
            raise InvalidInputError(f"key id {hex_id} of vkey {vkey!r} does not match its key")
        return verifier

    @property
    def vkey(self) -> str:
        """Return this key in verifier-key text form."""
        encoded = base64.b64encode(COSIGNATURE_TYPE + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{encoded}"

    def matches(self, cosignature: Cosignature) -> bool:
        """Return whether ``cosignature`` names this key (same key name and key id)."""
        return cosignature.name == self.name and hmac.compare_digest(
            cosignature.key_id, self.key_id
        )

    def verify(self, body: str, cosignature: Cosignature) -> Cosignature:
        """Return ``cosignature`` if it is this key's valid cosignature of ``body``; else raise.

        Raises :class:`~rowtrail.errors.WitnessError` for another key, a zero or oversized
        timestamp, or a signature that does not verify (another body, another timestamp).
        """
        if not self.matches(cosignature):
            raise WitnessError(
                f"cosignature is by {cosignature.name!r} key {cosignature.key_id.hex()}, not "
                f"by {self.name!r} key {self.key_id.hex()}"
            )
        if not 0 < cosignature.timestamp <= _MAX_TIMESTAMP:
            raise WitnessError(
                f"cosignature by {self.name!r} has timestamp {cosignature.timestamp}: it must "
                "be in [1, 2**63 - 1]"
            )
        message = f"cosignature/v1\ntime {cosignature.timestamp}\n{body}".encode()
        try:
            self._key.verify(cosignature.signature, message)
        except InvalidSignature as exc:
            raise WitnessError(
                f"cosignature by {self.name!r} (time {cosignature.timestamp}) does not verify "
                "over this checkpoint: forged, or made for another checkpoint"
            ) from exc
        return cosignature


class CosignatureSigner:
    """Makes cosignature/v1 signatures with an Ed25519 private key under a cosigner name."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        _check_name(name, "CosignatureSigner")
        if not isinstance(private_key, Ed25519PrivateKey):
            raise InvalidInputError(
                f"private_key of CosignatureSigner must be an Ed25519PrivateKey; got "
                f"{type(private_key).__name__}"
            )
        self.name = name
        self._key = private_key
        self.verifier = CosignatureVerifier(name, private_key.public_key().public_bytes_raw())

    @property
    def private_key(self) -> Ed25519PrivateKey:
        """The signing key (to store it; never logged)."""
        return self._key

    def cosign(self, body: str, *, timestamp: int) -> Cosignature:
        """Cosign a checkpoint body (origin, size, root and any extension lines) at a time."""
        parse_checkpoint_body(body)
        message = cosignature_message(body, _check_timestamp(timestamp, "cosign()"))
        return Cosignature(self.name, self.verifier.key_id, timestamp, self._key.sign(message))


def cosignatures_of(
    note: str, verifiers: Iterable[CosignatureVerifier], *, not_after: int | None = None
) -> list[Cosignature]:
    """Verify and return every cosignature in ``note`` by one of ``verifiers``.

    Signature lines by other keys (the log's own signature, unknown witnesses) are ignored,
    as C2SP signed-note requires; a line whose key name and id match a known cosigner must
    verify, or the whole note is refused (:class:`~rowtrail.errors.WitnessError`). With
    ``not_after``, a cosignature timestamped later than it (a time in the future) is refused.
    The log's signature is *not* checked here (see
    :func:`~rowtrail.ledger.open_checkpoint`).
    """
    body, signatures = _split_note(note)
    known = list(verifiers)
    found: list[Cosignature] = []
    for name, key_id, rest in signatures:
        verifier = next(
            (v for v in known if v.name == name and hmac.compare_digest(v.key_id, key_id)), None
        )
        if verifier is None:
            continue
        cosignature = verifier.verify(body, _from_raw(name, key_id + rest))
        if not_after is not None and cosignature.timestamp > not_after:
            raise WitnessError(
                f"cosignature by {name!r} is dated {cosignature.timestamp}, after "
                f"{not_after}: a time in the future"
            )
        found.append(cosignature)
    return found
