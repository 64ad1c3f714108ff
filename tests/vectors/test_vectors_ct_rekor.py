"""Real transparency logs: Google's Argon 2020 CT log and Sigstore's Rekor v2 staging logs.

* Argon 2020 (golang.org/x/mod sumdb/tlog testdata): the entry at index 10000 is included in the
  signed tree head, and the tree at size 3654490 is consistent with it.
* Rekor v2 (sigstore-python test assets): each entry's leaf hash is
  SHA-256(0x00 || canonicalizedBody), its inclusion proof leads to the checkpoint's root, and the
  C2SP checkpoint carries a valid Ed25519 signature by the log's key from the staging
  trusted_root.json. Tampered checkpoints and proofs must raise typed errors.
* Rekor v1 (same assets): the RFC 6962 inclusion proof of a Trillian-era entry.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest
from _ledger_vectors import VECTORS, b64, b64_list

from rowtrail.errors import CheckpointError, ConsistencyProofError, InclusionProofError
from rowtrail.ledger import (
    NoteVerifier,
    leaf_hash,
    open_checkpoint,
    parse_checkpoint_body,
    verify_consistency,
    verify_inclusion,
)

ARGON = VECTORS / "golang-mod-sumdb-tlog-argon2020"
REKOR = VECTORS / "sigstore-python-rekor-v2"
ARGON_OLD_SIZE = 3654490
ARGON_OLD_ROOT = base64.b64decode("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=")


def load(path: Any) -> Any:
    return json.loads(path.read_text())


# ------------------------------------------------------------------ Argon 2020 CT log


@pytest.fixture(scope="module")
def argon() -> dict[str, Any]:
    sth = load(ARGON / "sth.json")
    return {
        "size": int(sth["tree_size"]),
        "root": b64(sth["sha256_root_hash"]),
        "leaf": b64(load(ARGON / "entries.json")["entries"][0]["leaf_input"]),
        "index": int(load(ARGON / "proof.json")["leaf_index"]),
        "path": b64_list(load(ARGON / "proof.json")["audit_path"]),
        "consistency": b64_list(load(ARGON / "consistency.json")["consistency"]),
    }


def test_argon_entry_is_included(argon: dict[str, Any]) -> None:
    assert argon["index"] == 10000
    verify_inclusion(
        argon["index"], argon["size"], leaf_hash(argon["leaf"]), argon["path"], argon["root"]
    )


def test_argon_consistency_from_old_head(argon: dict[str, Any]) -> None:
    verify_consistency(
        ARGON_OLD_SIZE, argon["size"], ARGON_OLD_ROOT, argon["root"], argon["consistency"]
    )


@pytest.mark.parametrize("position", [0, 5, -1])
def test_argon_tampered_inclusion_is_rejected(argon: dict[str, Any], position: int) -> None:
    path = list(argon["path"])
    path[position] = bytes([path[position][0] ^ 1]) + path[position][1:]
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            argon["index"], argon["size"], leaf_hash(argon["leaf"]), path, argon["root"]
        )


@pytest.mark.parametrize(
    "change",
    ["leaf", "index", "size", "short", "long"],
)
def test_argon_wrong_inputs_are_rejected(argon: dict[str, Any], change: str) -> None:
    index, size, leaf, path = argon["index"], argon["size"], argon["leaf"], list(argon["path"])
    if change == "leaf":
        leaf = leaf + b"\x00"
    elif change == "index":
        index += 1
    elif change == "size":
        size = index + 1  # a different tree shape (a size one larger may share the path's shape)
    elif change == "short":
        path = path[:-1]
    else:
        path = [*path, path[-1]]
    with pytest.raises(InclusionProofError):
        verify_inclusion(index, size, leaf_hash(leaf), path, argon["root"])


@pytest.mark.parametrize("change", ["old_root", "old_size", "drop", "flip"])
def test_argon_tampered_consistency_is_rejected(argon: dict[str, Any], change: str) -> None:
    old_size, old_root, path = ARGON_OLD_SIZE, ARGON_OLD_ROOT, list(argon["consistency"])
    if change == "old_root":
        old_root = hashlib.sha256(old_root).digest()
    elif change == "old_size":
        old_size += 1
    elif change == "drop":
        path = path[1:]
    else:
        path[3] = bytes(32)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(old_size, argon["size"], old_root, argon["root"], path)


# ------------------------------------------------------------------ Rekor v2 (C2SP checkpoints)

REKOR_V2 = ["staging-rekor-v2.txt.sigstore.json", "a.dsse.staging-rekor-v2.txt.sigstore.json"]


def staging_verifiers() -> dict[str, NoteVerifier]:
    """The Ed25519 staging log keys (from sigstore's trusted_root.json), by origin."""
    keys = load(VECTORS / "sigstore-staging-log-keys.json")["tlogs"]
    return {
        key["origin"]: NoteVerifier(key["origin"], b64(key["public_key_der_base64"])[-32:])
        for key in keys
    }


def rekor_entry(name: str) -> dict[str, Any]:
    entry = load(REKOR / name)["verificationMaterial"]["tlogEntries"][0]
    proof = entry["inclusionProof"]
    return {
        "body": b64(entry["canonicalizedBody"]),
        "index": int(proof["logIndex"]),
        "size": int(proof["treeSize"]),
        "root": b64(proof["rootHash"]),
        "path": b64_list(proof["hashes"]),
        "note": proof["checkpoint"]["envelope"],
        "log_id": b64(entry["logId"]["keyId"]),
    }


@pytest.mark.parametrize("name", REKOR_V2)
def test_rekor_v2_inclusion(name: str) -> None:
    entry = rekor_entry(name)
    verify_inclusion(
        entry["index"], entry["size"], leaf_hash(entry["body"]), entry["path"], entry["root"]
    )


@pytest.mark.parametrize("name", REKOR_V2)
def test_rekor_v2_checkpoint_signature(name: str) -> None:
    entry = rekor_entry(name)
    verifiers = staging_verifiers()
    origin = entry["note"].split("\n", 1)[0]
    checkpoint = open_checkpoint(entry["note"], verifiers.values(), origin=origin)
    assert (checkpoint.size, checkpoint.root) == (entry["size"], entry["root"])
    # Rekor v2's log id is the full SHA-256 whose first four bytes are the C2SP key id.
    assert verifiers[origin].key_id == entry["log_id"][:4]
    # The checkpoint and the proof agree, so the entry is proven against a signed head.
    verify_inclusion(
        entry["index"], checkpoint.size, leaf_hash(entry["body"]), entry["path"], checkpoint.root
    )


def test_rekor_v2_witness_cosignatures_are_ignored_not_trusted() -> None:
    note = rekor_entry(REKOR_V2[1])["note"]
    assert note.count("\u2014 ") == 4  # the log and three witnesses
    # Only witness keys known: no signature from a known key, so the note does not open.
    witness_only = NoteVerifier("witness.stagemole.eu", bytes(range(32)))
    with pytest.raises(CheckpointError, match="unknown keys"):
        open_checkpoint(note, [witness_only])


def _edit_body(note: str, line: int, value: str) -> str:
    body, _, signatures = note.partition("\n\n")
    lines = body.split("\n")
    lines[line] = value
    return "\n".join(lines) + "\n\n" + signatures


def _tampered_notes(note: str) -> dict[str, str]:
    origin, size, root = note.split("\n")[:3]
    other_root = base64.b64encode(hashlib.sha256(b64(root)).digest()).decode()
    sig_line = note.split("\n\n", 1)[1].split("\n")[0]
    _name, _, encoded = sig_line.rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[-1] ^= 1
    return {
        "size": _edit_body(note, 1, str(int(size) + 1)),
        "root": _edit_body(note, 2, other_root),
        "origin": _edit_body(note, 0, origin + "x"),
        "signature": note.replace(encoded, base64.b64encode(bytes(raw)).decode()),
        "no-signature": note.split("\n\n", 1)[0] + "\n\n",
        "truncated": note[: len(note) // 2],
        "size-not-decimal": _edit_body(note, 1, "0x" + size),
    }


@pytest.mark.parametrize("name", REKOR_V2)
@pytest.mark.parametrize(
    "change",
    ["size", "root", "origin", "signature", "no-signature", "truncated", "size-not-decimal"],
)
def test_rekor_v2_tampered_checkpoint_is_rejected(name: str, change: str) -> None:
    note = _tampered_notes(rekor_entry(name)["note"])[change]
    with pytest.raises(CheckpointError):
        open_checkpoint(note, staging_verifiers().values())


@pytest.mark.parametrize("name", REKOR_V2)
def test_rekor_v2_wrong_key_is_rejected(name: str) -> None:
    entry = rekor_entry(name)
    origin = entry["note"].split("\n", 1)[0]
    # Right name, wrong key: the key id differs, so the signature is from an unknown key.
    impostor = NoteVerifier(origin, hashlib.sha256(b"impostor").digest())
    with pytest.raises(CheckpointError, match="unknown keys"):
        open_checkpoint(entry["note"], [impostor])
    # Another log's real key (alpha1 vs alpha3) does not open it either.
    others = [v for o, v in staging_verifiers().items() if o != origin]
    with pytest.raises(CheckpointError):
        open_checkpoint(entry["note"], others)


@pytest.mark.parametrize("name", REKOR_V2)
def test_rekor_v2_expected_origin_is_enforced(name: str) -> None:
    entry = rekor_entry(name)
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(entry["note"], staging_verifiers().values(), origin="rekor.example/other")


@pytest.mark.parametrize("name", REKOR_V2)
def test_rekor_v2_tampered_inclusion_is_rejected(name: str) -> None:
    entry = rekor_entry(name)
    body = entry["body"][:-1] + bytes([entry["body"][-1] ^ 1])
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            entry["index"], entry["size"], leaf_hash(body), entry["path"], entry["root"]
        )
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            entry["index"] - 1,
            entry["size"],
            leaf_hash(entry["body"]),
            entry["path"],
            entry["root"],
        )
    with pytest.raises(InclusionProofError):
        verify_inclusion(
            entry["index"],
            entry["size"],
            leaf_hash(entry["body"]),
            entry["path"][:-1],
            entry["root"],
        )


def test_rekor_v2_checkpoint_body_parses_without_signature_check() -> None:
    note = rekor_entry(REKOR_V2[0])["note"]
    head = parse_checkpoint_body(note.split("\n\n", 1)[0] + "\n")
    assert head.origin == "log2025-alpha1.rekor.sigstage.dev"
    assert head.size == 646


# ------------------------------------------------------------------ Rekor v1 (Trillian, RFC 6962)


def test_rekor_v1_inclusion() -> None:
    entry = load(REKOR / "bundle_v3.txt.sigstore")["verificationMaterial"]["tlogEntries"][0]
    proof = entry["inclusionProof"]
    body = b64(entry["canonicalizedBody"])
    args = (
        int(proof["logIndex"]),
        int(proof["treeSize"]),
        leaf_hash(body),
        b64_list(proof["hashes"]),
        b64(proof["rootHash"]),
    )
    verify_inclusion(*args)
    # Its checkpoint is an ECDSA signed note (not Ed25519); its body still names the same head.
    head = parse_checkpoint_body(proof["checkpoint"]["envelope"].split("\n\n", 1)[0] + "\n")
    assert (head.size, head.root) == (args[1], args[4])
    with pytest.raises(InclusionProofError):
        verify_inclusion(args[0], args[1], leaf_hash(body + b" "), args[3], args[4])
