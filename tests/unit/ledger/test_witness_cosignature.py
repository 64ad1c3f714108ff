"""C2SP tlog-cosignature v1: format, key ids, and every way a cosignature must fail."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.errors import CheckpointError, InvalidInputError, WitnessError
from rowtrail.ledger import (
    Cosignature,
    CosignatureSigner,
    CosignatureVerifier,
    NoteVerifier,
    cosignature_message,
    cosignatures_of,
    format_checkpoint_body,
    open_note,
    parse_cosignature_line,
)

BODY = format_checkpoint_body("example.com/behind-the-sofa", 20852163,
                              base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I="))
# The cosignature line of the spec's example checkpoint (tlog-cosignature.md, "Format").
SPEC_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJ"
    "sX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA=="
)


@pytest.fixture
def signer() -> CosignatureSigner:
    return CosignatureSigner("witness.example.com/w1", Ed25519PrivateKey.generate())


def test_message_is_the_spec_layout() -> None:
    assert cosignature_message(BODY, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    )


def test_spec_example_line_parses() -> None:
    cosig = parse_cosignature_line(SPEC_LINE)
    assert cosig.name == "witness.example.com/w1"
    assert cosig.key_id.hex() == "8d66cf3f"
    assert cosig.timestamp == 1679315147  # the time line of the spec's signed message example
    assert len(cosig.signature) == 64
    assert cosig.line == SPEC_LINE + "\n"


def test_key_id_is_sha256_of_name_newline_0x04_key(signer: CosignatureSigner) -> None:
    public = signer.verifier.public_key
    expected = hashlib.sha256(b"witness.example.com/w1\n\x04" + public).digest()[:4]
    assert signer.verifier.key_id == expected
    assert signer.verifier.vkey.startswith(f"witness.example.com/w1+{expected.hex()}+")
    assert base64.b64decode(signer.verifier.vkey.split("+", 2)[2])[:1] == b"\x04"


def test_round_trip_and_raw_layout(signer: CosignatureSigner) -> None:
    cosig = signer.cosign(BODY, timestamp=1700000000)
    raw = base64.b64decode(cosig.line.split(" ")[-1])
    assert raw[:4] == signer.verifier.key_id
    assert int.from_bytes(raw[4:12], "big") == 1700000000
    assert len(raw) == 76
    again = CosignatureVerifier.from_vkey(signer.verifier.vkey)
    assert again.verify(BODY, parse_cosignature_line(cosig.line)) == cosig
    # the signature is plain Ed25519 over the message
    signer.verifier._key.verify(cosig.signature, cosignature_message(BODY, 1700000000))


def test_other_body_is_refused(signer: CosignatureSigner) -> None:
    cosig = signer.cosign(BODY, timestamp=1700000000)
    other = BODY.replace("20852163", "20852164")
    with pytest.raises(WitnessError, match="does not verify"):
        signer.verifier.verify(other, cosig)


def test_other_timestamp_is_refused(signer: CosignatureSigner) -> None:
    cosig = signer.cosign(BODY, timestamp=1700000000)
    moved = Cosignature(cosig.name, cosig.key_id, cosig.timestamp + 1, cosig.signature)
    with pytest.raises(WitnessError, match="does not verify"):
        signer.verifier.verify(BODY, parse_cosignature_line(moved.line))


def test_other_key_is_refused(signer: CosignatureSigner) -> None:
    cosig = signer.cosign(BODY, timestamp=1700000000)
    impostor = CosignatureSigner(signer.name, Ed25519PrivateKey.generate())
    with pytest.raises(WitnessError, match="not by"):
        impostor.verifier.verify(BODY, cosig)
    # same name and key id but another key: the signature fails
    forged = Cosignature(cosig.name, cosig.key_id, cosig.timestamp,
                         impostor.cosign(BODY, timestamp=1700000000).signature)
    with pytest.raises(WitnessError, match="does not verify"):
        signer.verifier.verify(BODY, forged)


@pytest.mark.parametrize("cut", [1, 8, 64, 75])
def test_truncated_line_is_refused(signer: CosignatureSigner, cut: int) -> None:
    raw = base64.b64decode(signer.cosign(BODY, timestamp=1700000000).line.split(" ")[-1])
    line = f"\u2014 {signer.name} {base64.b64encode(raw[:-cut]).decode()}"
    with pytest.raises(WitnessError, match="truncated"):
        parse_cosignature_line(line)


@pytest.mark.parametrize("line", ["", "- w x", "\u2014 AAAA", "\u2014 w not!base64"])
def test_malformed_lines_are_refused(line: str) -> None:
    with pytest.raises(WitnessError):
        parse_cosignature_line(line)


@pytest.mark.parametrize("timestamp", [0, -1, 1 << 63, 1.5])
def test_timestamp_bounds(signer: CosignatureSigner, timestamp: object) -> None:
    with pytest.raises(InvalidInputError, match="timestamp"):
        signer.cosign(BODY, timestamp=timestamp)  # type: ignore[arg-type]


def test_zero_timestamp_is_refused_when_verifying(signer: CosignatureSigner) -> None:
    cosig = signer.cosign(BODY, timestamp=5)
    zero = Cosignature(cosig.name, cosig.key_id, 0, cosig.signature)
    with pytest.raises(WitnessError, match="timestamp 0"):
        signer.verifier.verify(BODY, zero)


def test_only_checkpoint_bodies_are_cosigned(signer: CosignatureSigner) -> None:
    with pytest.raises(CheckpointError):
        signer.cosign("just some text\n", timestamp=5)


def test_vkey_of_another_type_is_refused(signer: CosignatureSigner) -> None:
    plain = NoteVerifier("example.com/log", signer.verifier.public_key).vkey  # type 0x01
    with pytest.raises(InvalidInputError, match="0x04"):
        CosignatureVerifier.from_vkey(plain)
    name, _key_id, key = signer.verifier.vkey.split("+", 2)
    with pytest.raises(InvalidInputError, match="does not match"):
        CosignatureVerifier.from_vkey(f"{name}+00000000+{key}")
    with pytest.raises(InvalidInputError):
        CosignatureVerifier.from_vkey("no-plus-signs")


def test_cosignature_is_not_a_plain_note_signature(signer: CosignatureSigner) -> None:
    """Domain separation: the same key as a 0x01 note key has another id and never matches."""
    note = BODY + "\n" + signer.cosign(BODY, timestamp=9).line
    plain = NoteVerifier(signer.name, signer.verifier.public_key)
    with pytest.raises(CheckpointError, match="unknown keys"):
        open_note(note, [plain])


def test_cosignatures_of_ignores_unknown_and_refuses_forged(signer: CosignatureSigner) -> None:
    log_line = "\u2014 example.com/behind-the-sofa " + base64.b64encode(b"\x01" * 68).decode()
    other = CosignatureSigner("witness.example/w2", Ed25519PrivateKey.generate())
    good = signer.cosign(BODY, timestamp=10)
    note = BODY + "\n" + log_line + "\n" + good.line + other.cosign(BODY, timestamp=11).line
    assert cosignatures_of(note, [signer.verifier]) == [good]
    assert cosignatures_of(note, []) == []
    forged = other.cosign(BODY.replace("20852163", "1"), timestamp=11)
    with pytest.raises(WitnessError, match="forged"):
        cosignatures_of(BODY + "\n" + good.line + forged.line, [signer.verifier, other.verifier])
    with pytest.raises(WitnessError, match="future"):
        cosignatures_of(note, [signer.verifier], not_after=9)
