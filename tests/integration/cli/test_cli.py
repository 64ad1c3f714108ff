"""The CLI contract: verify / ledger head / entry / prove / consistency, exit codes, demo."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.ledger import verify_consistency, verify_inclusion

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    with rt.init(path) as ws:
        subject = ws.pseudonymize("applicant-7")
        for i in range(37):
            ws.ledger.append(
                "training.batch", {"step": i}, subjects=[subject] if i % 5 == 0 else []
            )
        ws.ledger.checkpoint()
        ws.ledger.append("prediction.made", {"decision": "declined"})
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def test_verify_ok_json(workspace: Path) -> None:
    code, out = invoke("verify", "--workspace", str(workspace), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ok"] is True
    assert data["size"] == 38
    assert data["checkpoints"] >= 1  # one per write transaction


def test_verify_fails_with_first_bad_index(workspace: Path) -> None:
    with sqlite3.connect(workspace / "rowtrail.db") as conn:
        (leaf,) = conn.execute("SELECT leaf FROM events WHERE idx = 11").fetchone()
        conn.execute("UPDATE events SET leaf = ? WHERE idx = 11", (leaf.replace(b"11", b"12"),))
    code, out = invoke("verify", "--workspace", str(workspace), "--json")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert data["index"] == 11
    assert data["error"] == "LogIntegrityError"


def test_verify_human_output_names_index(workspace: Path) -> None:
    with sqlite3.connect(workspace / "rowtrail.db") as conn:
        conn.execute("DELETE FROM events WHERE idx = 37")
    result = runner.invoke(app, ["verify", "--workspace", str(workspace)])
    assert result.exit_code == 1
    assert "37" in result.stderr


def test_usage_error_exits_2(workspace: Path) -> None:
    code, _ = invoke("verify", "--workspace", str(workspace), "--no-such-flag")
    assert code == 2
    code, _ = invoke("ledger", "prove", "not-a-number", "--workspace", str(workspace))
    assert code == 2


def test_missing_workspace_exits_1(tmp_path: Path) -> None:
    code, out = invoke("verify", "--workspace", str(tmp_path / "nowhere"), "--json")
    assert code == 1
    assert "no workspace at" in json.loads(out)["message"]
    assert json.loads(out)["error"] == "WorkspaceNotFoundError"
    assert not (tmp_path / "nowhere").exists()


def test_issue9_verify_of_a_typo_url_creates_nothing(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = invoke("verify", "--workspace", "sqlite:///typo", "--json")
    assert code == 1
    assert json.loads(out)["error"] == "WorkspaceNotFoundError"
    assert list(tmp_path.iterdir()) == []


def test_ledger_head_json(workspace: Path) -> None:
    code, out = invoke("ledger", "head", "--workspace", str(workspace), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"size", "root", "checkpoint"}
    assert data["size"] == 38
    with rt.init(workspace) as ws:
        checkpoint = ws.ledger.open_checkpoint(data["checkpoint"])
        assert checkpoint.size == 38
        assert checkpoint.root.hex() == data["root"] == ws.ledger.root().hex()


def test_ledger_entry_json(workspace: Path) -> None:
    code, out = invoke("ledger", "entry", "5", "--workspace", str(workspace), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"index", "leaf", "leaf_hash", "event"}
    leaf = base64.b64decode(data["leaf"])
    assert hashlib.sha256(b"\x00" + leaf).hexdigest() == data["leaf_hash"]
    assert data["event"]["kind"] == "training.batch"
    assert data["event"]["payload"] == {"step": 5}
    assert json.loads(leaf) == data["event"]


def test_ledger_prove_json_verifies_independently(workspace: Path) -> None:
    code, out = invoke(
        "ledger", "prove", "5", "--size", "20", "--workspace", str(workspace), "--json"
    )
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"index", "size", "leaf_hash", "path", "root"}
    assert (data["index"], data["size"]) == (5, 20)
    verify_inclusion(
        5,
        20,
        bytes.fromhex(data["leaf_hash"]),
        [bytes.fromhex(h) for h in data["path"]],
        bytes.fromhex(data["root"]),
    )


def test_ledger_consistency_json(workspace: Path) -> None:
    code, out = invoke("ledger", "consistency", "7", "38", "--workspace", str(workspace), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert set(data) == {"old_size", "new_size", "path", "old_root", "new_root"}
    verify_consistency(
        7,
        38,
        bytes.fromhex(data["old_root"]),
        bytes.fromhex(data["new_root"]),
        [bytes.fromhex(h) for h in data["path"]],
    )


def test_prove_out_of_range_is_a_clear_error(workspace: Path) -> None:
    code, out = invoke("ledger", "prove", "99", "--workspace", str(workspace), "--json")
    assert code == 1
    assert "index must be" in json.loads(out)["message"]


def test_demo_json_walks_the_chain(tmp_path: Path) -> None:
    code, out = invoke("demo", "--workspace", str(tmp_path / "demo"), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert data["ledger"]["verified"] is True
    assert data["ledger"]["tampered_error"]
    evidence = data["evidence"]
    assert evidence["subject_uses"] > 0
    assert evidence["auditor_verified_size"] == evidence["trusted_size"]
    assert evidence["edited_cache_refused"].startswith("TableIntegrityError")
    assert evidence["rolled_back_refused"].startswith("TrustRootError")
    # Issue 11: one applicant erased from every model their rows reached, certified.
    erasure = data["erasure"]
    assert erasure["certificate_verified"] is True
    methods = {m["method"] for m in erasure["models"]}
    assert {"retrain", "newton"} <= methods
    assert all(m["exact"] for m in erasure["models"])
    assert all(m["model_digest_before"] != m["model_digest_after"] for m in erasure["models"])
    assert [m["verification"] for m in erasure["models"] if m["method"] == "newton"] == ["passed"]
    assert erasure["usage_erased_by"] == erasure["job"]
    # Issue 12: the MLP's run replayed bit for bit, a decision attributed by metagradient,
    # and the MLP erased by replay.
    replay = data["replay"]
    assert replay["verified"] is True
    assert replay["method"] == "metagradient (exact, this model)"
    assert "replay" in methods
    # Issue 13: registered, attested, one promotion refused (logged, with its reason), a
    # second approval, promoted, deployed; the version is bound to the sealed fit.
    registry = data["registry"]
    assert registry["dataset"]["lineage_status"] == "recorded"
    assert registry["binding"] == "artifact"
    assert registry["refusal"]["reasons"] == [
        "approvals: 1 of 2 required by distinct actors with the 'approver' role"
    ]
    assert registry["promotion_index"] > registry["refusal"]["index"]
    code, out = invoke("registry", "deployments", "--workspace", str(tmp_path / "demo"),
                       "--json")
    assert code == 0
    [deployment] = json.loads(out)
    assert deployment["deployment_id"] == registry["deployment_id"]
    assert deployment["alias"] == "production"
    code, out = invoke("verify", "--workspace", str(tmp_path / "demo"), "--json")
    assert code == 0
    assert json.loads(out)["size"] == data["ledger"]["size"]


def test_demo_refuses_a_directory_with_other_files(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    code, out = invoke("demo", "--workspace", str(tmp_path), "--json")
    assert code == 1
    assert "holds other files" in json.loads(out)["message"]
    assert (tmp_path / "precious.txt").exists()
