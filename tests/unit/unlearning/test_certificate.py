"""Erasure certificates, pure parts: DSSE PAE, key ids, keys, commitments, content, HTML."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey  # type: ignore[attr-defined]

from rowtrail.errors import CertificateError, InvalidInputError
from rowtrail.hashing import canonical_json, decode_canonical_json
from rowtrail.ledger import Event, NoteSigner, format_checkpoint_body
from rowtrail.unlearning._certificate import (
    PAYLOAD_TYPE,
    CertificateKey,
    certificate_keyid,
)
from rowtrail.unlearning._certificate_content import (
    CertificateContent,
    ErasureCounts,
    ErasureRequest,
    LedgerEvidence,
    MethodRecord,
    ModelDigests,
    ProvenEvent,
    VerificationFigure,
)
from rowtrail.unlearning._certificate_html import render_certificate_html
from rowtrail.unlearning._commitments import (
    CommitmentOpening,
    compute_commitment,
    verify_commitment,
)

T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
SUBJECT = "ps:" + "ab" * 32

# DSSE v1.0.2 protocol.md, "Test Vectors" (github.com/secure-systems-lab/dsse, read at commit
# eebf7b59b17a06efd2d8a531fc30d1d193520adb): the PAE of payload "hello world" with payload type
# http://example.com/HelloWorld, and the reference signature over it by the ECDSA P-256 key below
# (deterministic RFC 6979, raw r || s).
DSSE_TYPE = "http://example.com/HelloWorld"
DSSE_PAE = b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
DSSE_X = 46950820868899156662930047687818585632848591499744589407958293238635476079160
DSSE_Y = 5640078356564379163099075877009565129882514886557779369047442380624545832820
DSSE_SIG = (
    "A3JqsQGtVsJ2O2xqrI5IcnXip5GToJ3F+FnZ+O88SjtR6rDAajabZKciJTfUiHqJPcIAriEGAHTVeCUjW2JIZA=="
)


def test_dsse_pae_matches_the_spec_vector() -> None:
    envelope = Envelope(b"hello world", DSSE_TYPE, {})
    assert envelope.pae() == DSSE_PAE


def test_dsse_spec_signature_verifies_over_our_pae() -> None:
    raw = base64.b64decode(DSSE_SIG)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    key = ec.EllipticCurvePublicNumbers(DSSE_X, DSSE_Y, ec.SECP256R1()).public_key()
    key.verify(der, Envelope(b"hello world", DSSE_TYPE, {}).pae(), ec.ECDSA(hashes.SHA256()))


def test_payload_type_is_the_in_toto_media_type() -> None:
    assert PAYLOAD_TYPE == "application/vnd.in-toto+json"


def test_keyid_is_securesystemslib_default_keyid() -> None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes_raw()
    expected = hashlib.sha256(
        b'{"keytype":"ed25519","keyval":{"public":"' + public.hex().encode()
        + b'"},"scheme":"ed25519"}'
    ).hexdigest()
    assert certificate_keyid(public) == expected
    assert SSlibKey.from_crypto(private.public_key()).keyid == expected


def test_key_parses_vkey_and_pem_to_the_same_key() -> None:
    private = Ed25519PrivateKey.generate()
    signer = NoteSigner("rowtrail.local/abc", private)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    from_vkey = CertificateKey.parse(signer.verifier.vkey + "\n")
    from_pem = CertificateKey.parse(pem)
    assert from_vkey.public_key == from_pem.public_key == signer.verifier.public_key
    assert from_vkey.name == "rowtrail.local/abc"
    assert from_pem.name is None
    assert from_vkey.keyid == from_pem.keyid


def test_key_rejects_other_text_and_non_ed25519_pem() -> None:
    with pytest.raises(InvalidInputError, match="vkey of verify_certificate"):
        CertificateKey.parse("not a key")
    rsa_pem = rsa.generate_private_key(65537, 2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidInputError, match="must be an Ed25519 key"):
        CertificateKey.parse(rsa_pem)


def test_commitment_is_sha256_of_salt_and_canonical_row_id() -> None:
    salt = bytes(range(32))
    row = (3 << 40) | 12345
    expected = "sha256:" + hashlib.sha256(salt + str(row).encode()).hexdigest()
    assert compute_commitment(row, salt) == expected
    assert canonical_json(row) == str(row).encode()


def test_verify_commitment_refuses_wrong_row_and_foreign_commitment() -> None:
    salt = hmac.new(b"k" * 32, b"x", hashlib.sha256).digest()
    good = CommitmentOpening(7, salt, compute_commitment(7, salt))
    verify_commitment(good, [good.commitment])
    with pytest.raises(CertificateError, match="not the commitment"):
        verify_commitment(replace(good, row_id=8), [good.commitment])
    with pytest.raises(CertificateError, match="is not among"):
        verify_commitment(good, [compute_commitment(9, salt)])
    assert CommitmentOpening.from_json(good.to_json()) == good


def test_compute_commitment_checks_input() -> None:
    with pytest.raises(InvalidInputError, match="row_id of compute_commitment"):
        compute_commitment(-1, bytes(32))
    with pytest.raises(InvalidInputError, match="salt of compute_commitment"):
        compute_commitment(1, b"short")


def _content(**changes: object) -> CertificateContent:
    base = CertificateContent(
        request=ErasureRequest("job-1", "GDPR Art. 17", T0, T0, subjects=(SUBJECT,)),
        row_commitments=("sha256:" + "1" * 64,),
        counts=ErasureCounts(1, 2, 3, 4),
        methods=(MethodRecord("scorecard", "newton", True, {"tol": 1e-8}, 1e-10, 1e-9),),
        figures=(VerificationFigure("gap_closed_pct", 100.4, True, "100 ± 3"),),
        models=(ModelDigests("scorecard", "sha256:" + "a" * 64, "sha256:" + "b" * 64),),
        event_indices=(4, 2),
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def test_content_normalises_and_validates() -> None:
    content = _content()
    assert content.event_indices == (2, 4)
    assert content.failed_figures == []
    assert _content(figures=(VerificationFigure("auc", 0.5, False),)).failed_figures == ["auc"]
    with pytest.raises(InvalidInputError, match="subjects"):
        ErasureRequest("job-1", "r", T0, T0, subjects=("alice",))
    with pytest.raises(InvalidInputError, match="job_id"):
        ErasureRequest("../etc", "r", T0, T0, subjects=(SUBJECT,))
    with pytest.raises(InvalidInputError, match="both empty"):
        ErasureRequest("job-1", "r", T0, T0)
    with pytest.raises(InvalidInputError, match="finite number"):
        VerificationFigure("x", float("nan"), True)
    with pytest.raises(InvalidInputError, match="repeated names"):
        _content(figures=(VerificationFigure("x", 1, True), VerificationFigure("x", 2, True)))
    with pytest.raises(InvalidInputError, match="event_indices"):
        _content(event_indices=())
    with pytest.raises(InvalidInputError, match="issue_certificate"):
        content.to_json()


def _issued(reason: str = "GDPR Art. 17", model: str = "scorecard") -> CertificateContent:
    signer = NoteSigner("rowtrail.local/unit", Ed25519PrivateKey.generate())
    leaf = Event("erasure.completed", {"job": "job-1"}, time=T0).leaf()
    note = signer.sign(format_checkpoint_body("rowtrail.local/unit", 1, hashlib.sha256(
        b"\x00" + leaf).digest()))
    return replace(
        _content(event_indices=(0,)),
        request=ErasureRequest("job-1", reason, T0, T0, subjects=(SUBJECT,)),
        methods=(MethodRecord(model, "sisa-shards", False, {"shards": [1]}),),
        models=(ModelDigests(model, "sha256:" + "a" * 64, "sha256:" + "b" * 64),),
        ledger=LedgerEvidence(note, (ProvenEvent(0, leaf, ()),)),
        issued_at=T0,
    )


def test_predicate_round_trips_and_refuses_unknown_or_missing_fields() -> None:
    content = _issued()
    predicate = content.to_json()
    assert CertificateContent.from_json(predicate) == content
    with pytest.raises(CertificateError, match="unknown \\['extra'\\]"):
        CertificateContent.from_json({**predicate, "extra": 1})
    without = {k: v for k, v in predicate.items() if k != "counts"}
    with pytest.raises(CertificateError, match="missing \\['counts'\\]"):
        CertificateContent.from_json(without)
    bad = {**predicate, "methods": [{**predicate["methods"][0], "exactness": "roughly"}]}
    with pytest.raises(CertificateError, match="exactness"):
        CertificateContent.from_json(bad)


SAFE_TAGS = {
    "html", "head", "meta", "title", "style", "body", "h1", "h2", "h3", "p", "code", "pre",
    "table", "thead", "tbody", "tr", "th", "td", "details", "summary", "strong", "span", "br",
    "em",
}


def _tags(page: str) -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, [name for name, _ in attrs]))

    Collector().feed(page)
    return found


def test_html_escapes_hostile_text_and_is_self_contained() -> None:
    hostile = "<script>alert('x')</script>&<img src=x onerror=alert(1)>"
    page = render_certificate_html(_issued(reason=hostile, model=hostile), verified=True)
    assert "<script" not in page
    assert "<img" not in page
    assert "&lt;script&gt;" in page
    tags = _tags(page)
    assert {name for name, _ in tags} <= SAFE_TAGS
    assert all(attr in {"lang", "charset", "name", "content", "class"} for _, attrs in tags
               for attr in attrs)  # no src/href/on* anywhere: nothing external, no script
    assert "rowtrail certificate verify certificate.json --vkey vkey" in page
    assert "approximate" in page  # the SISA record above is labelled approximate
    assert "NOT VERIFIED" in render_certificate_html(_issued(), verified=False)


_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40).filter(
    str.strip
)
_FINITE = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    reason=_TEXT,
    model=_TEXT,
    exact=st.booleans(),
    residual=st.none() | _FINITE,
    value=_FINITE,
    counts=st.tuples(*[st.integers(0, 2**53)] * 4),
    indices=st.lists(st.integers(0, 2**40), min_size=1, max_size=5),
)
def test_predicate_round_trip_property(
    reason: str,
    model: str,
    exact: bool,
    residual: float | None,
    value: float,
    counts: tuple[int, int, int, int],
    indices: list[int],
) -> None:
    content = replace(
        _issued(reason=reason, model=model),
        counts=ErasureCounts(*counts),
        methods=(MethodRecord(model, "m", exact, {"k": [value]}, residual, value),),
        figures=(VerificationFigure(reason, value, True, reason),),
        event_indices=tuple(indices),
    )
    predicate = content.to_json()
    assert CertificateContent.from_json(predicate) == content
    assert CertificateContent.from_json(decode_canonical_json(canonical_json(predicate))) == content
