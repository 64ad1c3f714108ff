"""``rowtrail registry history|show|deployments`` and ``rowtrail ledger key``."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import rowtrail as rt
from _rawdb import database_files, dump_tables, raw_connection
from rowtrail.cli import app
from rowtrail.ledger import NoteVerifier
from rowtrail.registry import Registry

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


@pytest.fixture
def workspace(tmp_path: Path, clock: Any) -> tuple[Path, dict[str, Any]]:
    path = tmp_path / "ws"
    with rt.init(path, actor="alice", now=clock) as ws:
        reg = ws.registry
        reg.grant_role("bob", "approver")
        reg.register_model("scorecard", b"v1")
        reg.register_model("scorecard", b"v2")
        first = reg.set_alias("scorecard", "production", 1)
        Registry(ws, actor="bob").approve("scorecard", 2, stage="production")
        reg.attest("scorecard", 2, kind="tests", passed=True)
        second = reg.promote("scorecard", 2, stage="production")
        dep = reg.deploy("scorecard", "production", environment="prod-eu", config={"t": 0.5})
    return path, {"first": first, "second": second, "dep": dep}


def test_history_lists_every_move_as_json(workspace: tuple[Path, dict[str, Any]]) -> None:
    path, _ = workspace
    code, out = invoke("registry", "history", "scorecard", "--workspace", str(path), "--json")
    assert code == 0, out
    data = json.loads(out)
    assert [(c["alias"], c["version"], c["via"]) for c in data] == [
        ("production", 1, "set_alias"), ("production", 2, "promote")
    ]
    assert data[1]["actor"] == "alice"
    code, out = invoke("registry", "history", "scorecard", "--workspace", str(path))
    assert code == 0
    assert "-> version 2" in out


def test_history_alias_at_a_time(workspace: tuple[Path, dict[str, Any]]) -> None:
    path, made = workspace
    between = made["first"].created_at.isoformat()
    code, out = invoke("registry", "history", "scorecard", "--alias", "production", "--at",
                       between, "--workspace", str(path), "--json")
    assert code == 0, out
    assert json.loads(out)["change"]["version"] == 1
    code, out = invoke("registry", "history", "scorecard", "--alias", "production", "--at",
                       "2000-01-01T00:00:00+00:00", "--workspace", str(path))
    assert code == 0
    assert "not set" in out
    code, out = invoke("registry", "history", "scorecard", "--at", between,
                       "--workspace", str(path), "--json")
    assert code == 1
    assert "needs --alias" in json.loads(out)["message"]


def test_show_and_deployments(workspace: tuple[Path, dict[str, Any]]) -> None:
    path, made = workspace
    code, out = invoke("registry", "show", "scorecard", "production", "--workspace", str(path),
                       "--json")
    assert code == 0, out
    data = json.loads(out)
    assert (data["version"], data["aliases"]) == (2, ["production"])
    assert [a["actor"] for a in data["approvals"]] == ["bob"]
    assert data["attestations"][0]["passed"] is True
    code, out = invoke("registry", "show", "scorecard", "1", "--workspace", str(path))
    assert code == 0
    assert "scorecard version 1" in out
    code, out = invoke("registry", "deployments", "--workspace", str(path), "--json")
    assert code == 0
    [dep] = json.loads(out)
    assert (dep["deployment_id"], dep["version"], dep["alias"]) == (
        made["dep"].deployment_id, 2, "production"
    )
    code, out = invoke("registry", "deployments", "--workspace", str(path))
    assert made["dep"].deployment_id in out
    code, out = invoke("registry", "show", "nope", "--workspace", str(path), "--json")
    assert code == 1
    assert "no model 'nope'" in json.loads(out)["message"]


def test_reads_write_nothing(workspace: tuple[Path, dict[str, Any]]) -> None:
    path, _ = workspace
    before = _database_state(path)
    for args in (["registry", "history", "scorecard"], ["registry", "show", "scorecard"],
                 ["registry", "deployments"], ["ledger", "key"]):
        assert invoke(*args, "--workspace", str(path))[0] == 0
    assert _database_state(path) == before
    assert not (path / "rowtrail.db-wal").exists()


def _database_state(path: Path) -> tuple[list[tuple[object, ...]], list[str]]:
    """Every row of the database, and the SHA-256 of its files (none on PostgreSQL)."""
    with raw_connection(path) as conn:
        rows = dump_tables(conn)
    files = [hashlib.sha256((path / name).read_bytes()).hexdigest()
             for name in database_files(path) if (path / name).exists()]
    return rows, files


def test_ledger_key_prints_the_verifier_key(
    workspace: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = workspace
    code, out = invoke("ledger", "key", "--workspace", str(path), "--json")
    assert code == 0, out
    data = json.loads(out)
    with rt.open(path, read_only=True) as ws:
        assert data["vkey"] == ws.ledger.verifier.vkey
        assert data["origin"] == ws.origin
    verifier = NoteVerifier.from_vkey(data["vkey"])
    assert base64.b64decode(data["public_key"]) == verifier.public_key
    assert data["key_id"] == verifier.key_id.hex()
    code, out = invoke("ledger", "key", "--workspace", str(path))
    assert out.strip() == data["vkey"]
    # a third party (no trust state of their own) pins it and verifies the registry with it
    (path.parent / "vkey").write_text(data["vkey"] + "\n")
    (path.parent / "checkpoint").write_text(_latest_note(path))
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(path.parent / "auditor-state"))
    code, out = invoke("verify", "--workspace", str(path), "--vkey", str(path.parent / "vkey"),
                       "--checkpoint", str(path.parent / "checkpoint"), "--json")
    assert code == 0, out
    assert json.loads(out)["registry_decisions"] == 7


def _latest_note(path: Path) -> str:
    with rt.open(path, read_only=True) as ws:
        latest = ws.ledger.latest_checkpoint()
        assert latest is not None
        return latest.note


def test_deployments_in_an_environment_at_a_time(workspace: tuple[Path, dict[str, Any]]) -> None:
    path, made = workspace
    at = made["dep"].created_at.isoformat()
    code, out = invoke("registry", "deployments", "--environment", "prod-eu", "--at", at,
                       "--workspace", str(path), "--json")
    assert code == 0, out
    assert [d["deployment_id"] for d in json.loads(out)] == [made["dep"].deployment_id]
    code, out = invoke("registry", "deployments", "--environment", "prod-eu", "--at",
                       "2000-01-01T00:00:00+00:00", "--workspace", str(path))
    assert (code, "no deployment" in out) == (0, True)
    code, out = invoke("registry", "deployments", "--environment", "prod-us",
                       "--workspace", str(path), "--json")
    assert json.loads(out) == []
    code, out = invoke("registry", "deployments", "--at", at, "--workspace", str(path),
                       "--json")
    assert code == 1
    assert "needs --environment" in json.loads(out)["message"]
