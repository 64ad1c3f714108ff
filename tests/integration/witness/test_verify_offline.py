"""The offline verifier: published vectors, real witness cosignatures, a workspace's evidence.

``rowtrail/verify_offline.py`` is an independent implementation (stdlib + cryptography): on
every transparency-dev probe it must accept and refuse exactly what rowtrail's ledger code
does; it must verify real Rekor v2 checkpoints and the real cosignatures of three public
witnesses on one of them; and, copied out alone, it must check a workspace's exported
checkpoint, cosignatures, proof and entry, and refuse each tampered variant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

VECTORS_DIR = Path(__file__).resolve().parents[2] / "vectors"
sys.path.insert(0, str(VECTORS_DIR))
from _ledger_vectors import VECTORS, b64, b64_list, load_cases  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail import verify_offline as vo  # noqa: E402
from rowtrail.cli import app  # noqa: E402
from rowtrail.errors import (  # noqa: E402
    ConsistencyProofError,
    InclusionProofError,
    VerificationError,
)
from rowtrail.ledger import (  # noqa: E402
    NoteVerifier,
    Witness,
    collect_cosignatures,
    verify_consistency,
    verify_inclusion,
)

HERE = Path(__file__).parent
WITNESS_KEYS = json.loads((HERE / "witness-network-keys.json").read_text())
REKOR = VECTORS / "sigstore-python-rekor-v2"


# rowtrail (both implementations) requires 32-byte roots where transparency-dev's Go verifier
# accepts two equal 12-byte "roots" for equal sizes (see tests/vectors).
STRICTER = {"additional/sizes-are-equal-one-and-proof-is-empty.json"}
INCLUSION = load_cases("inclusion")
CONSISTENCY = load_cases("consistency")


def outcome(fn: Any, *args: Any) -> bool:
    try:
        fn(*args)
    except (vo.OfflineVerificationError, InclusionProofError, ConsistencyProofError):
        return False
    return True


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_probes_agree_with_rowtrail(name: str, case: dict[str, Any]) -> None:
    args = (case["leafIdx"], case["treeSize"], b64(case["leafHash"]), b64_list(case["proof"]),
            b64(case["root"]))
    mine = outcome(vo.verify_inclusion_path, *args)
    assert mine == outcome(verify_inclusion, *args)
    assert mine or case["wantErr"] or name in STRICTER


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_probes_agree_with_rowtrail(name: str, case: dict[str, Any]) -> None:
    args = (case["size1"], case["size2"], b64(case["root1"]), b64(case["root2"]),
            b64_list(case["proof"]))
    mine = outcome(vo.verify_consistency_path, *args)
    assert mine == outcome(verify_consistency, *args)
    assert mine or case["wantErr"] or name in STRICTER


def test_argon_ct_log() -> None:
    argon = VECTORS / "golang-mod-sumdb-tlog-argon2020"
    sth = json.loads((argon / "sth.json").read_text())
    proof = json.loads((argon / "proof.json").read_text())
    leaf = b64(json.loads((argon / "entries.json").read_text())["entries"][0]["leaf_input"])
    size, root = int(sth["tree_size"]), b64(sth["sha256_root_hash"])
    vo.verify_inclusion_path(int(proof["leaf_index"]), size, vo.leaf_hash(leaf),
                             b64_list(proof["audit_path"]), root)
    consistency = b64_list(json.loads((argon / "consistency.json").read_text())["consistency"])
    old_root = base64.b64decode("AuIZ5V6sDUj1vn3Y1K85oOaQ7y+FJJKtyRTl1edIKBQ=")
    vo.verify_consistency_path(3654490, size, old_root, root, consistency)
    with pytest.raises(vo.OfflineVerificationError):
        vo.verify_consistency_path(3654490, size, old_root, root, consistency[1:])


def rekor(name: str) -> dict[str, Any]:
    entry = json.loads((REKOR / name).read_text())["verificationMaterial"]["tlogEntries"][0]
    keys = json.loads((VECTORS / "sigstore-staging-log-keys.json").read_text())["tlogs"]
    note = entry["inclusionProof"]["checkpoint"]["envelope"]
    origin = note.split("\n", 1)[0]
    key = next(k for k in keys if k["origin"] == origin)
    vkey = NoteVerifier(origin, b64(key["public_key_der_base64"])[-32:]).vkey
    return {"entry": entry, "note": note, "vkey": vkey}


def test_rekor_checkpoint_with_three_real_witness_cosignatures() -> None:
    data = rekor("a.dsse.staging-rekor-v2.txt.sigstore.json")
    head = vo.verify_checkpoint(data["note"], data["vkey"], witness_vkeys=WITNESS_KEYS["vkeys"])
    assert head.size == 4026479
    assert set(head.cosigners.values()) == {WITNESS_KEYS["timestamp"]}
    assert len(head.cosigners) == 3
    # rowtrail's own cosignature code agrees
    from rowtrail.ledger import CosignatureVerifier, cosignatures_of

    found = cosignatures_of(data["note"],
                            [CosignatureVerifier.from_vkey(v) for v in WITNESS_KEYS["vkeys"]])
    assert len(found) == 3
    with pytest.raises(vo.OfflineVerificationError, match="future"):
        vo.verify_checkpoint(data["note"], data["vkey"], witness_vkeys=WITNESS_KEYS["vkeys"],
                             not_after=WITNESS_KEYS["timestamp"] - 1)


def test_rowtrail_witness_cosigns_a_real_rekor_checkpoint(tmp_path: Path) -> None:
    """Interop: a real C2SP checkpoint (with other witnesses' lines) is accepted and cosigned."""
    data = rekor("a.dsse.staging-rekor-v2.txt.sigstore.json")
    origin = data["note"].split("\n", 1)[0]
    witness = Witness.open("witness.example/interop", {origin: [NoteVerifier.from_vkey(
        data["vkey"])]}, state_dir=tmp_path)
    line = witness.add_checkpoint(0, [], data["note"])
    head = vo.verify_checkpoint(data["note"] + line, data["vkey"],
                                witness_vkeys=[*WITNESS_KEYS["vkeys"], witness.verifier.vkey])
    assert len(head.cosigners) == 4


def _flip_line(note: str, prefix: str, position: int) -> str:
    lines = note.split("\n")
    index = next(i for i, line in enumerate(lines) if line.startswith("\u2014 " + prefix))
    name, _, encoded = lines[index].rpartition(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[position] ^= 1
    lines[index] = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("cosig-signature", "forged"),
        ("cosig-timestamp", "forged"),
        ("cosig-truncated", "truncated"),
        ("log-signature", "log signature"),
        ("root", "log signature"),
        ("quorum", "2 trusted"),
        ("no-log-key", "not signed by the log"),
    ],
)
def test_rekor_tampering(change: str, match: str) -> None:
    data = rekor("a.dsse.staging-rekor-v2.txt.sigstore.json")
    note, vkey, keys = data["note"], data["vkey"], list(WITNESS_KEYS["vkeys"])
    if change == "cosig-signature":
        note = _flip_line(note, "witness.stagemole.eu", -1)
    elif change == "cosig-timestamp":
        note = _flip_line(note, "witness.stagemole.eu", 11)
    elif change == "cosig-truncated":
        line = next(x for x in note.split("\n") if x.startswith("\u2014 witness.stagemole"))
        name, _, encoded = line.rpartition(" ")
        short = base64.b64encode(base64.b64decode(encoded)[:-8]).decode()
        note = note.replace(line, f"{name} {short}")
    elif change == "log-signature":
        note = _flip_line(note, "log2025", -1)
    elif change == "root":
        lines = note.split("\n")
        lines[2] = base64.b64encode(hashlib.sha256(lines[2].encode()).digest()).decode()
        note = "\n".join(lines)
    elif change == "quorum":
        note = "\n".join(x for x in note.split("\n") if "stagemole" not in x)
    else:
        vkey = rekor("staging-rekor-v2.txt.sigstore.json")["vkey"]
    with pytest.raises(vo.OfflineVerificationError, match=match):
        vo.verify_checkpoint(note, vkey, witness_vkeys=keys)


def test_rekor_inclusion_through_files(tmp_path: Path) -> None:
    data = rekor("staging-rekor-v2.txt.sigstore.json")
    proof = data["entry"]["inclusionProof"]
    (tmp_path / "checkpoint").write_text(data["note"])
    (tmp_path / "vkey").write_text(data["vkey"] + "\n")
    (tmp_path / "leaf").write_bytes(b64(data["entry"]["canonicalizedBody"]))
    (tmp_path / "proof.json").write_text(json.dumps({
        "index": int(proof["logIndex"]), "size": int(proof["treeSize"]),
        "path": [h.hex() for h in b64_list(proof["hashes"])],
    }))
    result = vo.verify_files(checkpoint=tmp_path / "checkpoint", vkey=tmp_path / "vkey",
                             proof=tmp_path / "proof.json", leaf=tmp_path / "leaf")
    assert result["inclusion"]["entry_checked"] is True
    (tmp_path / "leaf").write_bytes(b64(data["entry"]["canonicalizedBody"]) + b" ")
    with pytest.raises(vo.OfflineVerificationError, match="inclusion proof"):
        vo.verify_files(checkpoint=tmp_path / "checkpoint", vkey=tmp_path / "vkey",
                        proof=tmp_path / "proof.json", leaf=tmp_path / "leaf")


# ------------------------------------------------------------------ a workspace's evidence


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    """A workspace's cosigned checkpoint, keys, proofs and entry, as a third party gets them."""
    ws = rt.init(tmp_path / "ws")
    for i in range(7):
        ws.ledger.append("note.added", {"i": i})
    old_note = ws.ledger.checkpoint().note
    for i in range(6):
        ws.ledger.append("note.added", {"i": 7 + i})
    witnesses = [Witness.open(f"witness.example/w{i}", {ws.origin: [ws.ledger.verifier]},
                              state_dir=tmp_path / f"w{i}") for i in range(2)]
    witnessed = collect_cosignatures(
        ws.ledger.checkpoint().note, witnesses, log_verifiers=[ws.ledger.verifier],
        prove=lambda a, b: ws.ledger.consistency(a, b).path,
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "checkpoint").write_text(witnessed.note)
    (out / "old-checkpoint").write_text(old_note)
    (out / "vkey").write_text(ws.ledger.verifier.vkey + "\n")
    for i, witness in enumerate(witnesses):
        (out / f"w{i}.vkey").write_text(witness.verifier.vkey + "\n")
    (out / "proof.json").write_text(json.dumps(ws.ledger.prove(4, 13).to_json()))
    (out / "entry.json").write_text(json.dumps(ws.ledger.entry(4).to_json()))
    (out / "leaf").write_bytes(ws.ledger.entry(4).leaf)
    (out / "consistency.json").write_text(json.dumps(ws.ledger.consistency(7, 13).to_json()))
    ws.close()
    shutil.copy(Path(vo.__file__), out / "verify_offline.py")
    return out


def run_alone(out: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """Run the copied module with -I (no rowtrail, no PYTHONPATH, no user site)."""
    result = subprocess.run(
        [sys.executable, "-I", str(out / "verify_offline.py"), *args],
        capture_output=True, text=True, cwd=out, check=False,
    )
    return result.returncode, json.loads(result.stdout)


BASE = ["--checkpoint", "checkpoint", "--vkey", "vkey", "--witness-vkey", "w0.vkey",
        "--witness-vkey", "w1.vkey"]


def test_standalone_copy_verifies_a_workspace(exported: Path) -> None:
    code, result = run_alone(exported, *BASE, "--proof", "proof.json", "--entry", "entry.json")
    assert code == 0, result
    assert result["size"] == 13
    assert len(result["cosigners"]) == 2
    assert result["inclusion"] == {"index": 4, "leaf_hash": result["inclusion"]["leaf_hash"],
                                   "entry_checked": True}
    code, result = run_alone(exported, *BASE, "--proof", "consistency.json",
                             "--old-checkpoint", "old-checkpoint")
    assert code == 0, result
    assert result["consistency"]["old_signed"] is True
    # it really ran without rowtrail: the module imports nothing of it when alone
    probe = subprocess.run(
        [sys.executable, "-I", "-c", "import sys; sys.path.insert(0, '.'); import verify_offline; "
         "print(sorted(m for m in sys.modules if m.startswith(('rowtrail', 'numpy'))))"],
        capture_output=True, text=True, cwd=exported, check=True,
    )
    assert probe.stdout.strip() == "[]"


@pytest.mark.parametrize("change", ["entry", "leaf", "proof", "cosignature", "quorum",
                                    "old-checkpoint", "vkey"])
def test_standalone_copy_refuses_tampering(exported: Path, change: str) -> None:
    args = [*BASE, "--proof", "proof.json", "--entry", "entry.json"]
    if change == "entry":
        entry = json.loads((exported / "entry.json").read_text())
        entry["leaf"] = base64.b64encode(base64.b64decode(entry["leaf"]) + b" ").decode()
        (exported / "entry.json").write_text(json.dumps(entry))
    elif change == "leaf":
        (exported / "leaf").write_bytes((exported / "leaf").read_bytes()[:-1])
        args = [*BASE, "--proof", "proof.json", "--leaf", "leaf"]
    elif change == "proof":
        proof = json.loads((exported / "proof.json").read_text())
        proof["path"][0] = "00" * 32
        (exported / "proof.json").write_text(json.dumps(proof))
    elif change == "cosignature":
        (exported / "checkpoint").write_text(
            _flip_line((exported / "checkpoint").read_text(), "witness.example/w1", -2))
    elif change == "quorum":
        note = (exported / "checkpoint").read_text()
        (exported / "checkpoint").write_text(
            "\n".join(x for x in note.split("\n") if "witness.example/w1" not in x))
    elif change == "old-checkpoint":
        args = [*BASE, "--proof", "consistency.json", "--old-checkpoint", "checkpoint"]
    else:
        (exported / "vkey").write_text((exported / "w0.vkey").read_text())
    code, result = run_alone(exported, *args)
    assert code == 1
    assert result["ok"] is False
    assert result["error"]


def test_rowtrail_verify_offline_command(exported: Path) -> None:
    runner = CliRunner()
    args = ["verify-offline", "--checkpoint", str(exported / "checkpoint"), "--vkey",
            str(exported / "vkey"), "--witness-vkey", str(exported / "w0.vkey"), "--quorum", "1",
            "--proof", str(exported / "proof.json"), "--leaf", str(exported / "leaf")]
    ok = runner.invoke(app, [*args, "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["inclusion"]["entry_checked"] is True
    human = runner.invoke(app, args)
    assert human.exit_code == 0
    assert "OK" in human.output
    (exported / "leaf").write_bytes(b"other")
    bad = runner.invoke(app, [*args, "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error"] == "OfflineVerificationError"
    assert issubclass(vo.OfflineVerificationError, VerificationError)
