"""Issue 11, "certifies": erasure certificates issued from a real workspace and checked with
nothing but the file and the exported verifier key, including every way to tamper with one."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail._workspace import Workspace
from rowtrail.cli import app
from rowtrail.errors import CertificateError, InvalidInputError, MissingKeyError
from rowtrail.hashing import decode_canonical_json, sha256_digest
from rowtrail.ids import row_id
from rowtrail.unlearning._certificate import (
    envelope_payload,
    issue_certificate,
    sign_statement,
    verify_certificate,
)
from rowtrail.unlearning._certificate_content import (
    CertificateContent,
    ErasureCounts,
    ErasureRequest,
    MethodRecord,
    ModelDigests,
    VerificationFigure,
)
from rowtrail.unlearning._commitments import (
    commit_rows,
    destroy_commitment_key,
    open_commitment,
    verify_commitment,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
ROWS = [row_id(3, 123457), row_id(3, 998877), row_id(5, 424242)]  # 13-digit ids
runner = CliRunner()


@dataclass
class Issued:
    ws: Workspace
    content: CertificateContent
    data: bytes
    other_indices: list[int]


def _content(ws: Workspace, job_id: str, indices: list[int]) -> CertificateContent:
    return CertificateContent(
        request=ErasureRequest(job_id, "GDPR Art. 17 request", T0, T0,
                               subjects=(ws.pseudonymize("applicant-7"),)),
        row_commitments=tuple(commit_rows(ws, ROWS, job_id=job_id)),
        counts=ErasureCounts(2, 5, 1, 3),
        methods=(MethodRecord("scorecard", "newton-removal", True, {"tol": 1e-8}, 3e-11, 2e-9),),
        figures=(VerificationFigure("gap_closed_pct", 100.6, True, "100 ± 3"),
                 VerificationFigure("prediction_agreement", 0.9995, True, ">= 0.999")),
        models=(ModelDigests("scorecard", sha256_digest(b"before"), sha256_digest(b"after")),),
        event_indices=tuple(indices),
    )


def _erasure_events(ws: Workspace, job_id: str) -> list[int]:
    subject = ws.pseudonymize("applicant-7")
    return [
        ws.ledger.append("erasure.requested", {"job": job_id}, subjects=[subject]),
        ws.ledger.append("erasure.completed", {"job": job_id, "n_removed": 2}),
    ]


@pytest.fixture
def issued(tmp_path: Path) -> Iterator[Issued]:
    ws = rt.init(tmp_path / "ws")
    for step in range(5):
        ws.ledger.append("training.batch", {"step": step})
    indices = _erasure_events(ws, "job-1")
    other = [ws.ledger.append("prediction.made", {"decision": "declined"})]
    other += _erasure_events(ws, "job-2")
    data = issue_certificate(ws, _content(ws, "job-1", indices), now=T0)
    yield Issued(ws, _content(ws, "job-1", indices), data, other)
    ws.close()


def _vkey(ws: Workspace) -> str:
    return ws.ledger.verifier.vkey


def _resign(issued: Issued, edit: Callable[[dict[str, Any]], None]) -> bytes:
    """Edit the statement and sign it again with the workspace's genuine key."""
    statement = decode_canonical_json(envelope_payload(issued.data))
    edit(statement)
    pem = (issued.ws.path / "keys" / "ledger.pem").read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return sign_statement(statement, key)


def _envelope_edit(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    envelope = json.loads(data)
    edit(envelope)
    return json.dumps(envelope).encode()


# ---------------------------------------------------------------- round trip
def test_round_trip_with_exported_vkey_and_pem(issued: Issued) -> None:
    content = verify_certificate(issued.data, _vkey(issued.ws))
    assert content.request == issued.content.request
    assert content.row_commitments == issued.content.row_commitments
    assert content.methods == issued.content.methods
    assert content.figures == issued.content.figures
    assert content.models == issued.content.models
    assert content.issued_at == T0
    assert content.ledger is not None
    assert [e.index for e in content.ledger.events] == list(issued.content.event_indices)
    assert verify_certificate(issued.data, _public_pem(issued.ws)) == content
    assert verify_certificate(issued.data, serialization.load_pem_public_key(
        _public_pem(issued.ws))) == content


def _public_pem(ws: Workspace) -> bytes:
    key = serialization.load_pem_private_key((ws.path / "keys" / "ledger.pem").read_bytes(), None)
    assert isinstance(key, Ed25519PrivateKey)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_statement_is_in_toto_v1_about_the_erased_model(issued: Issued) -> None:
    envelope = json.loads(issued.data)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert len(envelope["signatures"]) == 1
    statement = decode_canonical_json(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://rowtrail.dev/erasure/v1"
    assert statement["subject"] == [
        {"name": "scorecard", "digest": {"sha256": sha256_digest(b"after").split(":")[1]}}
    ]


def test_signature_checks_by_hand_per_dsse_protocol(issued: Issued) -> None:
    """Interop: a verifier with only an Ed25519 library and the DSSE spec accepts it."""
    envelope = json.loads(issued.data)
    payload = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)
    (signature,) = envelope["signatures"]
    key = Ed25519PublicKey.from_public_bytes(issued.ws.ledger.verifier.public_key)
    key.verify(base64.b64decode(signature["sig"]), pae)
    assert signature["keyid"] == hashlib.sha256(
        b'{"keytype":"ed25519","keyval":{"public":"%b"},"scheme":"ed25519"}'
        % issued.ws.ledger.verifier.public_key.hex().encode()
    ).hexdigest()


def test_certificate_holds_no_raw_ids(issued: Issued) -> None:
    text = envelope_payload(issued.data).decode()
    assert "applicant-7" not in text
    for row in ROWS:
        assert str(row) not in text


def test_issuing_records_the_certificate_digest(issued: Issued) -> None:
    last = issued.ws.ledger.entry(issued.ws.ledger.size - 1).event
    assert last.kind == "erasure.certified"
    assert last.payload["certificate_digest"] == sha256_digest(issued.data)
    assert last.payload["job"] == "job-1"


def test_commitment_opens_for_an_erased_row_only(issued: Issued) -> None:
    content = verify_certificate(issued.data, _vkey(issued.ws))
    opening = open_commitment(issued.ws, ROWS[1], job_id="job-1")
    verify_commitment(opening, content.row_commitments)
    with pytest.raises(CertificateError, match="is not among"):
        verify_commitment(open_commitment(issued.ws, row_id(3, 123458), job_id="job-1"),
                          content.row_commitments)
    assert destroy_commitment_key(issued.ws, "job-1") is True
    with pytest.raises(MissingKeyError, match="cannot be opened"):
        open_commitment(issued.ws, ROWS[1], job_id="job-1")
    issued.ws.verify()  # destroyed by a recorded event: the missing key is accounted for


def test_issue11_commitment_key_file_edits_and_deletions_are_detected(issued: Issued) -> None:
    from rowtrail.errors import FileIntegrityError

    path = issued.ws.path / "keys" / "erasure" / "job-1.key"
    original = path.read_bytes()
    issued.ws.verify()
    for edited in (bytes([original[0] ^ 1]) + original[1:], original[:32], original[:-1]):
        path.write_bytes(edited)
        with pytest.raises(FileIntegrityError, match="commitment key"):
            issued.ws.verify()
    path.unlink()  # deleted without a recorded destruction, after a certificate named the job
    with pytest.raises(FileIntegrityError, match="missing"):
        issued.ws.verify()
    path.write_bytes(original)
    issued.ws.verify()


# ---------------------------------------------------------------- refusals to issue
def test_issue_refuses_failed_figures_and_foreign_events(issued: Issued) -> None:
    ws, size = issued.ws, issued.ws.ledger.size
    failed = replace(issued.content, figures=(VerificationFigure("gap_closed_pct", 140.0, False),))
    with pytest.raises(InvalidInputError, match="must all pass"):
        issue_certificate(ws, failed)
    not_erasure = replace(issued.content, event_indices=(issued.other_indices[0],))
    with pytest.raises(InvalidInputError, match=r"erasure\.\* events of job 'job-1'"):
        issue_certificate(ws, not_erasure)
    other_job = replace(issued.content, event_indices=tuple(issued.other_indices[1:]))
    with pytest.raises(InvalidInputError, match="of job 'job-2'"):
        issue_certificate(ws, other_job)
    assert ws.ledger.size == size  # nothing was recorded


# ---------------------------------------------------------------- tampering
def _flip_payload_byte(envelope: dict[str, Any]) -> None:
    payload = bytearray(base64.b64decode(envelope["payload"]))
    at = payload.index(b"GDPR")
    payload[at] ^= 0x01
    envelope["payload"] = base64.b64encode(bytes(payload)).decode()


def _set_type(envelope: dict[str, Any]) -> None:
    envelope["payloadType"] = "application/json"


def _first_path(statement: dict[str, Any]) -> None:
    path = statement["predicate"]["ledger"]["events"][0]["path"]
    path[0] = ("0" if path[0][0] != "0" else "1") + path[0][1:]


def _fail_figure(statement: dict[str, Any]) -> None:
    statement["predicate"]["verification"]["gap_closed_pct"]["passed"] = False


def _wrong_type(statement: dict[str, Any]) -> None:
    statement["_type"] = "https://in-toto.io/Statement/v0.1"


def _extra_field(statement: dict[str, Any]) -> None:
    statement["predicate"]["note"] = "trust me"


def _other_subject(statement: dict[str, Any]) -> None:
    statement["subject"][0]["digest"]["sha256"] = "0" * 64


def _edit_leaf(statement: dict[str, Any]) -> None:
    event = statement["predicate"]["ledger"]["events"][1]
    leaf = base64.b64decode(event["leaf"]).replace(b'"n_removed":2', b'"n_removed":3')
    event["leaf"] = base64.b64encode(leaf).decode()


def _checkpoint_root(statement: dict[str, Any]) -> None:
    ledger = statement["predicate"]["ledger"]
    origin, size, _root, rest = ledger["checkpoint"].split("\n", 3)
    other = base64.b64encode(bytes(32)).decode()
    ledger["checkpoint"] = "\n".join([origin, size, other, rest])


def _drop_event(statement: dict[str, Any]) -> None:
    del statement["predicate"]["ledger"]["events"][1]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_flip_payload_byte, "signature does not verify"),
        (_set_type, "payloadType of the certificate must be"),
        (lambda e: e["signatures"][0].update(sig=base64.b64encode(bytes(64)).decode()),
         "signature does not verify"),
        (lambda e: e.update(signatures=[]), "carries no signature"),
        (lambda e: e.update(payload="!!!"), "malformed"),
    ],
    ids=["payload-byte-flip", "payload-type", "zero-signature", "no-signature", "bad-base64"],
)
def test_envelope_tampering_is_refused(issued: Issued, edit: Any, message: str) -> None:
    with pytest.raises(CertificateError, match=message):
        verify_certificate(_envelope_edit(issued.data, edit), _vkey(issued.ws))


def test_signature_swapped_from_another_certificate_is_refused(issued: Issued) -> None:
    other = issue_certificate(issued.ws, _content(issued.ws, "job-2", issued.other_indices[1:]))
    verify_certificate(other, _vkey(issued.ws))
    swapped = json.loads(issued.data)
    swapped["signatures"] = json.loads(other)["signatures"]
    with pytest.raises(CertificateError, match="signature does not verify"):
        verify_certificate(json.dumps(swapped).encode(), _vkey(issued.ws))


def test_other_key_is_refused(issued: Issued, tmp_path: Path) -> None:
    with rt.init(tmp_path / "other") as other, pytest.raises(
        CertificateError, match="signed by another key"
    ):
        verify_certificate(issued.data, _vkey(other))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (_first_path, "inclusion proof of ledger entry"),
        (_edit_leaf, "inclusion proof of ledger entry"),
        (_drop_event, "proofs cover entries"),
        (_checkpoint_root, "checkpoint is not signed by the given key"),
        (_fail_figure, "failed verification figures \\['gap_closed_pct'\\]"),
        (_wrong_type, "_type of the Statement"),
        (_extra_field, "unknown \\['note'\\]"),
        (_other_subject, "subject of the Statement"),
    ],
    ids=["proof-path", "leaf", "dropped-event", "checkpoint-root", "figure-failed",
         "statement-type", "predicate-field", "subject"],
)
def test_evidence_tampering_is_refused_even_when_resigned(
    issued: Issued, edit: Any, message: str
) -> None:
    """Signed again with the genuine key, so only the checks past the signature catch it."""
    with pytest.raises(CertificateError, match=message):
        verify_certificate(_resign(issued, edit), _vkey(issued.ws))


def test_checkpoint_from_another_log_is_refused(issued: Issued, tmp_path: Path) -> None:
    with rt.init(tmp_path / "other") as other:
        _erasure_events(other, "job-1")
        note = other.ledger.latest_checkpoint()
        assert note is not None

    def swap(statement: dict[str, Any]) -> None:
        statement["predicate"]["ledger"]["checkpoint"] = note.note

    with pytest.raises(CertificateError, match="checkpoint is not signed by the given key"):
        verify_certificate(_resign(issued, swap), _vkey(issued.ws))
    with pytest.raises(CertificateError, match="checkpoint is not signed by the given key"):
        verify_certificate(_resign(issued, swap), _public_pem(issued.ws))


def test_event_of_another_kind_is_refused_even_with_a_valid_proof(issued: Issued) -> None:
    """A certificate citing a non-erasure entry, with a genuine proof of it, is refused."""
    ws = issued.ws
    index = issued.other_indices[0]
    head, (proof,) = ws.ledger.prove_signed([index])
    latest = ws.ledger.latest_checkpoint()
    assert latest is not None
    assert latest.size == head.size

    def cite(statement: dict[str, Any]) -> None:
        predicate = statement["predicate"]
        predicate["event_indices"] = [index]
        predicate["ledger"] = {"checkpoint": latest.note, "events": [{
            "index": index,
            "leaf": base64.b64encode(ws.ledger.entry(index).leaf).decode(),
            "path": [node.hex() for node in proof.path],
        }]}

    with pytest.raises(CertificateError, match=r"'prediction\.made'"):
        verify_certificate(_resign(issued, cite), _vkey(issued.ws))


def test_not_a_certificate_is_refused(issued: Issued) -> None:
    for data in (b"", b"\xff\xfe", b"[]", b'{"payload": "e30="}'):
        with pytest.raises(CertificateError):
            verify_certificate(data, _vkey(issued.ws))


# ---------------------------------------------------------------- CLI, no workspace
@pytest.fixture
def exported(issued: Issued, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Certificate and exported vkey in a directory holding no workspace, made the cwd."""
    result = runner.invoke(app, ["ledger", "export-trust", str(tmp_path / "trust"),
                                 "--workspace", str(issued.ws.path)])
    assert result.exit_code == 0, result.stdout
    away = tmp_path / "auditor"
    away.mkdir()
    (away / "certificate.json").write_bytes(issued.data)
    (away / "vkey").write_bytes((tmp_path / "trust" / "vkey").read_bytes())
    monkeypatch.chdir(away)
    monkeypatch.delenv("ROWTRAIL_WORKSPACE", raising=False)
    return away


def test_cli_verify_without_a_workspace(exported: Path) -> None:
    result = runner.invoke(app, ["certificate", "verify", "certificate.json", "--vkey", "vkey"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "OK" in result.stdout
    assert "job-1" in result.stdout
    result = runner.invoke(app, ["certificate", "verify", "certificate.json", "--vkey", "vkey",
                                 "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["n_rows"] == len(ROWS)
    assert data["figures"]["gap_closed_pct"]["passed"] is True
    assert not (exported / ".rowtrail").exists()


def test_cli_verify_fails_with_exit_1(exported: Path) -> None:
    data = (exported / "certificate.json").read_bytes()
    (exported / "bad.json").write_bytes(_envelope_edit(data, _flip_payload_byte))
    result = runner.invoke(app, ["certificate", "verify", "bad.json", "--vkey", "vkey"])
    assert result.exit_code == 1
    assert "CertificateError" in result.stderr
    assert "signature does not verify" in result.stderr
    result = runner.invoke(app, ["certificate", "verify", "bad.json", "--vkey", "vkey", "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["ok"] is False
    result = runner.invoke(app, ["certificate", "verify", "missing.json", "--vkey", "vkey"])
    assert result.exit_code == 1
    assert "must be a readable file" in result.stderr


def test_cli_html(exported: Path) -> None:
    result = runner.invoke(app, ["certificate", "html", "certificate.json", "-o", "cert.html",
                                 "--vkey", "vkey"])
    assert result.exit_code == 0, result.stdout + result.stderr
    page = (exported / "cert.html").read_text(encoding="utf-8")
    assert "rowtrail certificate verify certificate.json --vkey vkey" in page
    assert "GDPR Art. 17 request" in page
    assert "verified with the given key" in page
    result = runner.invoke(app, ["certificate", "html", "certificate.json", "-o", "raw.html"])
    assert result.exit_code == 0
    assert "NOT VERIFIED" in (exported / "raw.html").read_text(encoding="utf-8")
