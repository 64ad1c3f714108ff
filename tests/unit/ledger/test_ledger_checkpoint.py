"""C2SP signed-note checkpoints: signing, opening, verifier keys and tampering."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.errors import CheckpointError, InvalidInputError
from rowtrail.ledger import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    format_checkpoint_body,
    open_checkpoint,
    parse_checkpoint_body,
)

ORIGIN = "rowtrail.local/test"
ROOT = hashlib.sha256(b"root").digest()
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SIGNER = NoteSigner(ORIGIN, KEY)


ED25519_ZERO = base64.b64encode(b"\x01" + bytes(32)).decode()
NOT_ED25519 = base64.b64encode(b"\x02" + bytes(32)).decode()


def signed(size: int = 5, root: bytes = ROOT, signer: NoteSigner = SIGNER) -> str:
    return signer.sign(format_checkpoint_body(ORIGIN, size, root))


def test_sign_and_open() -> None:
    note = signed()
    assert note.startswith(f"{ORIGIN}\n5\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} ")
    checkpoint = open_checkpoint(note, [SIGNER.verifier], origin=ORIGIN)
    assert checkpoint == Checkpoint(ORIGIN, 5, ROOT, note)
    assert checkpoint.body == format_checkpoint_body(ORIGIN, 5, ROOT)


def test_key_id_follows_c2sp() -> None:
    public = KEY.public_key().public_bytes_raw()
    expected = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert SIGNER.verifier.key_id == expected
    signature_line = signed().split("\n\n")[1]
    assert base64.b64decode(signature_line.rsplit(" ", 1)[1])[:4] == expected


def test_vkey_with_plus_in_base64() -> None:
    # Regression: from_vkey split on every "+", but base64 key material may contain "+".
    for seed in range(64):
        verifier = NoteSigner(
            ORIGIN, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
        ).verifier
        assert NoteVerifier.from_vkey(verifier.vkey).public_key == verifier.public_key


def test_vkey_round_trip() -> None:
    vkey = SIGNER.verifier.vkey
    name, key_id, encoded = vkey.split("+", 2)
    assert (name, key_id) == (ORIGIN, SIGNER.verifier.key_id.hex())
    assert base64.b64decode(encoded)[0] == 1
    again = NoteVerifier.from_vkey(vkey)
    assert (again.name, again.public_key, again.key_id) == (
        ORIGIN,
        SIGNER.verifier.public_key,
        SIGNER.verifier.key_id,
    )
    open_checkpoint(signed(), [again])


@pytest.mark.parametrize(
    "vkey",
    [
        "only+two",
        f"{ORIGIN}+00000000+{ED25519_ZERO}",  # wrong key id
        f"{ORIGIN}+abcd+{NOT_ED25519}",  # not an Ed25519 note key
        f"{ORIGIN}+abcd+not-base64!",
    ],
)
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(CheckpointError):
        NoteVerifier.from_vkey(vkey)


def test_many_signers_one_known() -> None:
    other = NoteSigner("witness.example", Ed25519PrivateKey.generate())
    note = signed()
    cosigned = note + other.sign(format_checkpoint_body(ORIGIN, 5, ROOT)).split("\n\n")[1]
    assert open_checkpoint(cosigned, [SIGNER.verifier]).size == 5
    assert open_checkpoint(cosigned, [other.verifier]).size == 5
    assert open_checkpoint(cosigned, [SIGNER.verifier, other.verifier]).size == 5


def _edit(note: str, line: int, text: str) -> str:
    lines = note.split("\n")
    lines[line] = text
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("size", "does not verify"),
        ("root", "does not verify"),
        ("origin", "does not verify"),
        ("signature", "does not verify"),
        ("unsigned", "malformed signature line"),
        ("no-blank-line", "blank line"),
        ("garbage-signature", "malformed|base64"),
        ("short-signature", "too short"),
        ("signature-not-base64", "not base64"),
        ("bad-size", "decimal"),
        ("leading-zero", "decimal"),
        ("root-not-base64", "base64"),
        ("root-short", "32 bytes"),
        ("missing-lines", "origin, size and root"),
        ("empty-origin", "origin"),
    ],
)
def test_tampered_notes_raise(change: str, match: str) -> None:
    note = signed()
    sig_line = note.split("\n")[4]
    raw = bytearray(base64.b64decode(sig_line.rsplit(" ", 1)[1]))
    raw[-1] ^= 0x80
    tampered = {
        "size": _edit(note, 1, "6"),
        "root": _edit(note, 2, base64.b64encode(bytes(32)).decode()),
        "origin": _edit(note, 0, "rowtrail.local/other"),
        "signature": note.replace(
            sig_line.rsplit(" ", 1)[1], base64.b64encode(bytes(raw)).decode()
        ),
        "unsigned": note.split("\n\n")[0] + "\n\n",
        "no-blank-line": note.replace("\n\n", "\n"),
        "garbage-signature": note.replace("\u2014 ", "- "),
        "short-signature": note.replace(sig_line.rsplit(" ", 1)[1], "AAAA"),
        "signature-not-base64": note.replace(sig_line.rsplit(" ", 1)[1], "!!!!"),
        "bad-size": _edit(note, 1, "five"),
        "leading-zero": _edit(note, 1, "05"),
        "root-not-base64": _edit(note, 2, "***"),
        "root-short": _edit(note, 2, base64.b64encode(bytes(31)).decode()),
        "missing-lines": "\n".join(note.split("\n")[1:]),
        "empty-origin": _edit(note, 0, ""),
    }[change]
    with pytest.raises(CheckpointError, match=match):
        open_checkpoint(tampered, [SIGNER.verifier])


def test_wrong_key_same_name_is_unknown() -> None:
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError, match="unknown keys"):
        open_checkpoint(signed(signer=impostor), [SIGNER.verifier])


def test_no_verifiers_means_unknown() -> None:
    with pytest.raises(CheckpointError, match="unknown keys"):
        open_checkpoint(signed(), [])


def test_origin_is_enforced() -> None:
    with pytest.raises(CheckpointError, match="expected"):
        open_checkpoint(signed(), [SIGNER.verifier], origin="elsewhere")


def test_body_helpers() -> None:
    body = format_checkpoint_body(ORIGIN, 0, ROOT)
    assert parse_checkpoint_body(body) == Checkpoint(ORIGIN, 0, ROOT)
    # Extension lines after the root are allowed by C2SP and kept out of the tree head.
    assert parse_checkpoint_body(body + "ext\n").size == 0
    for bad in [
        ("", 1, ROOT),
        ("a\nb", 1, ROOT),
        (" a", 1, ROOT),
        (ORIGIN, -1, ROOT),
        (ORIGIN, 1, ROOT[:5]),
    ]:
        with pytest.raises(InvalidInputError):
            format_checkpoint_body(*bad)


@pytest.mark.parametrize("name", ["", "has space", "a+b"])
def test_bad_key_names(name: str) -> None:
    with pytest.raises(InvalidInputError):
        NoteSigner(name, KEY)


def test_public_key_length() -> None:
    with pytest.raises(InvalidInputError, match="32 bytes"):
        NoteVerifier(ORIGIN, bytes(31))
