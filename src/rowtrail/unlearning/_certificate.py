"""Erasure certificates: an in-toto Statement v1 in a DSSE envelope, signed with the ledger key.

A certificate is a DSSE envelope (DSSE v1.0.2, ``secure-systems-lab/dsse`` ``envelope.md``
and ``protocol.md``), built and checked with ``securesystemslib.dsse``::

    {"payload": base64(statement), "payloadType": "application/vnd.in-toto+json",
     "signatures": [{"keyid": KEYID, "sig": base64(Ed25519(PAE(payloadType, payload)))}]}

    PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

The payload is the canonical JSON of an in-toto Statement v1 (``in-toto/attestation``
``spec/v1/statement.md``): ``_type`` ``https://in-toto.io/Statement/v1``, ``subject`` the
models after erasure (``{"name", "digest": {"sha256": hex}}``), ``predicateType``
:data:`PREDICATE_TYPE`, and the predicate of
:class:`~rowtrail.unlearning._certificate_content.CertificateContent`.

**Key.** The envelope is signed with the workspace's Ed25519 ledger key (the one that signs
checkpoints), so the one verifier key ``rowtrail ledger export-trust`` writes
(``<origin>+<key id>+<base64(0x01 || key)>``) verifies both. A PEM Ed25519 public key is
accepted too. ``KEYID`` is securesystemslib's default key id: the SHA-256 hex of the canonical
JSON ``{"keytype":"ed25519","keyval":{"public":"<hex key>"},"scheme":"ed25519"}``
(:func:`certificate_keyid`). DSSE key ids are unauthenticated hints; the signature is what counts.

**Verification** (:func:`verify_certificate`) needs only the file and the key: the DSSE
signature (before the payload is parsed), the payload type, the Statement and predicate
schema, the subjects against the "after" digests, the checkpoint note's signature by the same
key, every event's RFC 9162 inclusion proof against the checkpoint's root, that each event is
an ``erasure.*`` event of the certificate's job, and that every verification figure passed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from rowtrail.errors import (
    CanonicalEncodingError,
    CertificateError,
    InvalidInputError,
    MissingKeyError,
    StorageError,
    VerificationError,
)
from rowtrail.hashing import canonical_json, decode_canonical_json, sha256_digest
from rowtrail.ledger import Event, NoteVerifier, leaf_hash, open_checkpoint, parse_checkpoint_body
from rowtrail.ledger import verify_inclusion as verify_leaf_inclusion
from rowtrail.unlearning._certificate_content import (
    CertificateContent,
    LedgerEvidence,
    ProvenEvent,
)

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "CertificateKey",
    "certificate_keyid",
    "envelope_payload",
    "issue_certificate",
    "read_certificate",
    "sign_statement",
    "statement_of",
    "verify_certificate",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://rowtrail.dev/erasure/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
_KIND_PREFIX = "erasure."


def certificate_keyid(public_key: bytes) -> str:
    """Return the DSSE key id of an Ed25519 public key (securesystemslib's default key id).

    Examples
    --------
    >>> len(certificate_keyid(bytes(32)))
    64
    """
    keyval = {"keytype": "ed25519", "keyval": {"public": public_key.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(canonical_json(keyval)).hexdigest()


@dataclass(frozen=True, slots=True)
class CertificateKey:
    """A public key that verifies certificates: raw Ed25519 bytes, and its note name if known.

    ``name`` is the log origin of a C2SP verifier key; a PEM key has none (the checkpoint's
    own origin is used with it).
    """

    public_key: bytes
    name: str | None = None

    @property
    def keyid(self) -> str:
        """The DSSE key id (:func:`certificate_keyid`)."""
        return certificate_keyid(self.public_key)

    @classmethod
    def parse(cls, data: str | bytes) -> CertificateKey:
        """Parse a verifier key (``name+keyid+base64``, as ``export-trust`` writes) or a PEM key.

        Raises
        ------
        InvalidInputError
            The text is neither form, or the PEM key is not Ed25519.
        """
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        if "-----BEGIN" in text:
            try:
                key = serialization.load_pem_public_key(text.encode("utf-8"))
            except ValueError as exc:
                raise InvalidInputError(f"vkey of verify_certificate is not a PEM public key: "
                                        f"{exc}") from exc
            if not isinstance(key, Ed25519PublicKey):
                raise InvalidInputError(
                    f"vkey of verify_certificate must be an Ed25519 key; got "
                    f"{type(key).__name__}. Use the vkey file that `rowtrail ledger "
                    "export-trust` writes."
                )
            return cls(key.public_bytes_raw())
        try:
            verifier = NoteVerifier.from_vkey(text)
        except VerificationError as exc:
            raise InvalidInputError(
                f"vkey of verify_certificate must be a verifier key (name+keyid+key, as written "
                f"by `rowtrail ledger export-trust`) or a PEM Ed25519 public key; {exc}"
            ) from exc
        return cls(verifier.public_key, verifier.name)


def _as_key(vkey: str | bytes | CertificateKey | NoteVerifier | Ed25519PublicKey) -> CertificateKey:
    if isinstance(vkey, CertificateKey):
        return vkey
    if isinstance(vkey, NoteVerifier):
        return CertificateKey(vkey.public_key, vkey.name)
    if isinstance(vkey, Ed25519PublicKey):
        return CertificateKey(vkey.public_bytes_raw())
    if isinstance(vkey, str | bytes):
        return CertificateKey.parse(vkey)
    raise InvalidInputError(
        f"vkey of verify_certificate must be key text, a CertificateKey, a NoteVerifier or an "
        f"Ed25519PublicKey; got {type(vkey).__name__}"
    )


# ---------------------------------------------------------------- issuing
def _signing_key(ws: Workspace) -> Ed25519PrivateKey:
    """Load the workspace's ledger key and check it is the one its checkpoints are signed with."""
    path = Path(ws.path) / "keys" / "ledger.pem"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise MissingKeyError(f"the checkpoint signing key {path} is missing; restore it from "
                              "your backup") from None
    except ValueError as exc:
        raise StorageError(f"{path} does not hold a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey) or not hmac.compare_digest(
        key.public_key().public_bytes_raw(), ws.ledger.verifier.public_key
    ):
        raise StorageError(f"{path} is not the Ed25519 key that signs this workspace's "
                           "checkpoints; restore it from your backup")
    return key


def _ledger_evidence(ws: Workspace, content: CertificateContent) -> LedgerEvidence:
    """Checkpoint note and verified inclusion proofs of the job's events, from one state."""
    indices = list(content.event_indices)
    with ws.ledger.snapshot():
        entries = ws.ledger.proven(indices)
        head, proofs = ws.ledger.prove_signed(indices)
        latest = ws.ledger.latest_checkpoint()
    if latest is None or latest.size != head.size or latest.root != head.root:
        raise StorageError("the latest signed checkpoint is not the trusted head; run "
                           "`rowtrail verify`")
    for entry in entries:
        _check_event(entry.index, entry.event, content.request.job_id, InvalidInputError)
    events = tuple(ProvenEvent(e.index, e.leaf, p.path) for e, p in zip(entries, proofs,
                                                                       strict=True))
    return LedgerEvidence(latest.note, events)


def _check_event(index: int, event: Event, job_id: str, error: type[Exception]) -> None:
    if not event.kind.startswith(_KIND_PREFIX) or event.payload.get("job") != job_id:
        raise error(
            f"event_indices of the erasure certificate must name erasure.* events of job "
            f"{job_id!r} (payload job); entry {index} is {event.kind!r} of job "
            f"{event.payload.get('job')!r}"
        )


LEDGER_SUBJECT = "rowtrail-ledger-checkpoint"


def _subjects(content: CertificateContent) -> list[dict[str, Any]]:
    """Return the Statement's subjects: the models after erasure, or the signed checkpoint.

    A job whose rows reached no recorded model changes no model; its statement is then about
    the ledger state that records the erasure (SHA-256 of the signed checkpoint note).
    """
    if content.models:
        return [
            {"name": model.name, "digest": {"sha256": model.after_digest.split(":", 1)[1]}}
            for model in content.models
        ]
    note = content.ledger.checkpoint if content.ledger is not None else ""
    digest = hashlib.sha256(note.encode()).hexdigest()
    return [{"name": LEDGER_SUBJECT, "digest": {"sha256": digest}}]


def statement_of(content: CertificateContent) -> dict[str, Any]:
    """Return the in-toto Statement v1 of issued content (``ledger`` and ``issued_at`` set)."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": _subjects(content),
        "predicateType": PREDICATE_TYPE,
        "predicate": content.to_json(),
    }


def sign_statement(statement: dict[str, Any], key: Ed25519PrivateKey) -> bytes:
    """Sign a Statement into a DSSE envelope (securesystemslib) and return the file's bytes."""
    # securesystemslib.signer re-exports these without __all__ (ruff: noqa F401).
    from securesystemslib.dsse import Envelope
    from securesystemslib.signer import CryptoSigner, SSlibKey  # type: ignore[attr-defined]

    public = SSlibKey.from_crypto(key.public_key())
    envelope = Envelope(canonical_json(statement), PAYLOAD_TYPE, {})
    envelope.sign(CryptoSigner(key, public))
    return canonical_json(envelope.to_dict()) + b"\n"


def issue_certificate(
    ws: Workspace,
    content: CertificateContent,
    *,
    now: datetime | None = None,
    record: bool = True,
) -> bytes:
    """Sign an erasure certificate with the workspace's ledger key and return its bytes.

    Adds the ledger evidence (the latest trusted checkpoint and the verified inclusion proofs
    of ``content.event_indices``, which must be ``erasure.*`` events whose payload names
    ``content.request.job_id``) and ``issued_at``. With ``record`` it then appends an
    ``erasure.certified`` event holding the certificate's digest.

    Parameters
    ----------
    ws : Workspace
        The workspace whose erasure job the certificate covers.
    content : CertificateContent
        What the job did (see its docstring); ``ledger`` and ``issued_at`` are replaced.
    now : datetime, optional
        Issue time (default: now, UTC).
    record : bool
        Append the ``erasure.certified`` event.

    Raises
    ------
    InvalidInputError
        Bad content, an index that is not an erasure event of the job, or a failed figure
        (a failed erasure gets no certificate).
    VerificationError
        The ledger's head is not trusted (see ``Ledger.trusted_head``).

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> from datetime import UTC, datetime
    >>> from rowtrail.unlearning._certificate_content import (CertificateContent,
    ...     ErasureCounts, ErasureRequest, MethodRecord, ModelDigests, VerificationFigure)
    >>> from rowtrail.unlearning._commitments import commit_rows
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> done = ws.ledger.append("erasure.completed", {"job": "job-1"})
    >>> t = datetime(2026, 1, 5, tzinfo=UTC)
    >>> content = CertificateContent(
    ...     request=ErasureRequest("job-1", "GDPR Art. 17", t, t,
    ...                            subjects=(ws.pseudonymize("applicant-7"),)),
    ...     row_commitments=tuple(commit_rows(ws, [42], job_id="job-1")),
    ...     counts=ErasureCounts(n_removed_samples=1),
    ...     methods=(MethodRecord("scorecard", "newton-removal", True),),
    ...     figures=(VerificationFigure("gap_closed_pct", 100.4, True, "100 ± 3"),),
    ...     models=(ModelDigests("scorecard", "sha256:" + "a" * 64, "sha256:" + "b" * 64),),
    ...     event_indices=(done,))
    >>> data = issue_certificate(ws, content)
    >>> verify_certificate(data, ws.ledger.verifier.vkey).request.job_id
    'job-1'
    >>> ws.close()
    """
    if not isinstance(content, CertificateContent):
        raise InvalidInputError(f"content of issue_certificate must be a CertificateContent; "
                                f"got {type(content).__name__}")
    if content.failed_figures:
        raise InvalidInputError(
            f"figures of issue_certificate must all pass; got failed {content.failed_figures}. "
            "A failed erasure gets no certificate: fix it (e.g. retrain) and verify again."
        )
    key = _signing_key(ws)
    issued_at = now if now is not None else datetime.now(UTC)
    issued = replace(content, ledger=_ledger_evidence(ws, content), issued_at=issued_at)
    data = sign_statement(statement_of(issued), key)
    if record:
        ws.ledger.append("erasure.certified", {
            "job": content.request.job_id,
            "certificate_digest": sha256_digest(data),
            "event_indices": list(issued.event_indices),
        }, subjects=content.request.subjects)
    return data


# ---------------------------------------------------------------- verifying
def _open_envelope(data: bytes) -> tuple[Any, dict[str, Any]]:
    """Parse the DSSE envelope JSON (not the payload) into a securesystemslib Envelope."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import Error as SSLibError

    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CertificateError(f"the certificate is not a JSON DSSE envelope: {exc}") from exc
    if not isinstance(value, dict) or not {"payload", "payloadType", "signatures"} <= set(value):
        raise CertificateError("the certificate must be a DSSE envelope with payload, "
                               "payloadType and signatures")
    if not isinstance(value["signatures"], list) or not value["signatures"]:
        raise CertificateError("the DSSE envelope carries no signature")
    try:
        envelope = Envelope.from_dict(json.loads(data.decode("utf-8")))
    except (SSLibError, KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise CertificateError(f"the DSSE envelope is malformed: {exc!r}") from exc
    return envelope, value


def _check_signature(envelope: Any, key: CertificateKey) -> None:
    from securesystemslib.exceptions import Error as SSLibError
    from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

    if envelope.payload_type != PAYLOAD_TYPE:
        raise CertificateError(
            f"payloadType of the certificate must be {PAYLOAD_TYPE!r}; got "
            f"{envelope.payload_type!r}"
        )
    public = SSlibKey.from_crypto(Ed25519PublicKey.from_public_bytes(key.public_key))
    try:
        envelope.verify([public], 1)
    except (SSLibError, ValueError) as exc:
        raise CertificateError(
            f"the certificate's signature does not verify with key {key.keyid[:16]}… "
            f"({'signed by another key' if public.keyid not in envelope.signatures else exc})"
        ) from exc


def _statement(payload: bytes) -> dict[str, Any]:
    try:
        statement = decode_canonical_json(payload)
    except CanonicalEncodingError as exc:
        raise CertificateError(f"the certificate's payload is not a canonical JSON Statement: "
                               f"{exc}") from exc
    if not isinstance(statement, dict):
        raise CertificateError("the certificate's payload is not a JSON object")
    if statement.get("_type") != STATEMENT_TYPE:
        raise CertificateError(f"_type of the Statement must be {STATEMENT_TYPE!r}; got "
                               f"{statement.get('_type')!r}")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise CertificateError(f"predicateType must be {PREDICATE_TYPE!r}; got "
                               f"{statement.get('predicateType')!r}")
    if not isinstance(statement.get("subject"), list) or not statement["subject"]:
        raise CertificateError("subject of the Statement must be a non-empty array")
    return statement


def _check_subjects(statement: dict[str, Any], content: CertificateContent) -> None:
    if statement["subject"] != _subjects(content):
        raise CertificateError("subject of the Statement must be the models' digests after "
                               "erasure, as the predicate lists them (or, when no model "
                               "changed, the signed checkpoint)")


def _check_ledger(content: CertificateContent, key: CertificateKey) -> None:
    """Checkpoint signed by ``key``; each event proven in it and of the certificate's job."""
    evidence = content.ledger
    if evidence is None:  # CertificateContent.from_json always sets it
        raise CertificateError("the certificate carries no ledger evidence")
    try:
        origin = parse_checkpoint_body(evidence.checkpoint.partition("\n\n")[0] + "\n").origin
        verifier = NoteVerifier(key.name or origin, key.public_key)
        checkpoint = open_checkpoint(evidence.checkpoint, [verifier], origin=key.name)
    except (VerificationError, InvalidInputError) as exc:
        raise CertificateError(f"the certificate's ledger checkpoint is not signed by the given "
                               f"key: {exc}") from exc
    indices = [event.index for event in evidence.events]
    if indices != list(content.event_indices):
        raise CertificateError(f"the ledger proofs cover entries {indices}, the certificate "
                               f"names {list(content.event_indices)}")
    for event in evidence.events:
        try:
            verify_leaf_inclusion(event.index, checkpoint.size, leaf_hash(event.leaf),
                                  event.path, checkpoint.root)
        except VerificationError as exc:
            raise CertificateError(f"the inclusion proof of ledger entry {event.index} does not "
                                   f"lead to the checkpoint's root: {exc}") from exc
        try:
            decoded = Event.from_leaf(event.leaf)
        except InvalidInputError as exc:
            raise CertificateError(f"ledger entry {event.index} is not an event: {exc}") from exc
        _check_event(event.index, decoded, content.request.job_id, CertificateError)


def read_certificate(data: bytes) -> CertificateContent:
    """Parse a certificate **without verifying it** (to show an unverified one; never trust it).

    Use :func:`verify_certificate` for anything that relies on what it says.
    """
    envelope, _ = _open_envelope(data)
    return CertificateContent.from_json(_statement(envelope.payload)["predicate"])


def verify_certificate(
    data: bytes, vkey: str | bytes | CertificateKey | NoteVerifier | Ed25519PublicKey
) -> CertificateContent:
    """Verify an erasure certificate with nothing but its bytes and a public key.

    Parameters
    ----------
    data : bytes
        The certificate file (a DSSE envelope).
    vkey : str, bytes, CertificateKey, NoteVerifier or Ed25519PublicKey
        The workspace's verifier key: the text of the ``vkey`` file ``rowtrail ledger
        export-trust`` writes, or a PEM Ed25519 public key.

    Returns
    -------
    CertificateContent
        What the certificate states, every part of it checked.

    Raises
    ------
    CertificateError
        For every way it can fail (see the module docstring); never returns on failure.
    """
    if not isinstance(data, bytes):
        raise InvalidInputError(f"data of verify_certificate must be bytes; got "
                                f"{type(data).__name__}")
    key = _as_key(vkey)
    envelope, _ = _open_envelope(data)
    _check_signature(envelope, key)  # before the payload is parsed (DSSE protocol.md)
    statement = _statement(envelope.payload)
    content = CertificateContent.from_json(statement.get("predicate"))
    _check_subjects(statement, content)
    _check_ledger(content, key)
    if content.failed_figures:
        raise CertificateError(f"the certificate reports failed verification figures "
                               f"{content.failed_figures}: the erasure was not verified")
    return content


def envelope_payload(data: bytes) -> bytes:
    """Return the decoded DSSE payload of a certificate file (unverified)."""
    try:
        return base64.b64decode(json.loads(data)["payload"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise CertificateError(f"the certificate is not a DSSE envelope: {exc!r}") from exc
