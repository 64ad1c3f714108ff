"""Issue 9, finding 1: ``rowtrail demo`` never deletes or overwrites what it did not create.

Before the fix, ``rowtrail demo --workspace W`` (or ``rowtrail demo`` with
``$ROWTRAIL_WORKSPACE`` set) removed an existing workspace to start its own. Now it writes
only into a new or empty directory or over an earlier demo's directory, which it recognizes by
its marker file ``.rowtrail-demo`` listing every file it wrote, with digests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.cli._demo_guard import MARKER

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files by SHA-256 of their bytes, directories as such."""
    out = {}
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        out[name] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A user's workspace with events and a checkpoint (not made by the demo)."""
    path = tmp_path / "precious"
    with rt.init(path) as ws:
        for step in range(5):
            ws.ledger.append("training.batch", {"step": step})
        ws.ledger.checkpoint()
    return path


@pytest.fixture(scope="module")
def previous_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], str]:
    """A finished demo run into an empty directory: its path, snapshot and JSON output."""
    root = tmp_path_factory.mktemp("demo")
    path = root / "ws"
    path.mkdir(mode=0o700)  # an empty (private) directory is accepted
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROWTRAIL_STATE_DIR", str(root / "state"))
        patch.delenv("ROWTRAIL_WORKSPACE", raising=False)
        code, out = invoke("demo", "--workspace", str(path), "--json")
    assert code == 0, out
    return path, snapshot(path), out


def copy_of(previous: tuple[Path, dict[str, str], str], target: Path) -> Path:
    return Path(shutil.copytree(previous[0], target))


def test_issue9_demo_refuses_existing_workspace_and_leaves_it_byte_identical(
    workspace: Path,
) -> None:
    before = snapshot(workspace)
    code, out = invoke("demo", "--workspace", str(workspace), "--json")
    assert code == 1, out
    message = json.loads(out)["message"]
    assert "is a rowtrail workspace the demo did not create" in message
    assert "--workspace <new-directory>" in message
    assert snapshot(workspace) == before
    with rt.open(workspace, read_only=True) as ws:
        assert ws.ledger.size == 5
        ws.verify()


def test_issue9_demo_refuses_existing_workspace_from_env_and_leaves_it_byte_identical(
    workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROWTRAIL_WORKSPACE", str(workspace))
    monkeypatch.chdir(tmp_path)
    before = snapshot(workspace)
    code, out = invoke("demo", "--json")
    assert code == 1, out
    message = json.loads(out)["message"]
    assert "$ROWTRAIL_WORKSPACE" in message
    assert "unset ROWTRAIL_WORKSPACE" in message
    assert snapshot(workspace) == before
    assert not (tmp_path / ".rowtrail-demo").exists()


def test_issue9_demo_refuses_non_empty_plain_directory(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    (target / "sub").mkdir(parents=True)
    (target / "notes.txt").write_text("keep me")
    (target / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(target)
    code, out = invoke("demo", "--workspace", str(target), "--json")
    assert code == 1, out
    assert "holds other files" in json.loads(out)["message"]
    assert snapshot(target) == before


def test_issue9_demo_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("not a directory")
    code, out = invoke("demo", "--workspace", str(target), "--json")
    assert code == 1, out
    assert "is a file" in json.loads(out)["message"]
    assert target.read_text() == "not a directory"


def test_issue9_demo_runs_in_an_empty_directory_and_marks_it(
    previous_demo: tuple[Path, dict[str, str], str],
) -> None:
    path, files, out = previous_demo
    assert json.loads(out)["ledger"]["verified"] is True
    marker = json.loads((path / MARKER).read_text())
    assert marker["complete"] is True
    written = {name for name, kind in files.items() if kind != "dir" and name != MARKER}
    assert set(marker["files"]) == written
    assert "rowtrail.db" in written


def test_issue9_demo_rerun_replaces_its_own_previous_demo(
    previous_demo: tuple[Path, dict[str, str], str], tmp_path: Path
) -> None:
    path = copy_of(previous_demo, tmp_path / "again")
    old_origin = rt.open(path, read_only=True)
    old_id = old_origin.origin
    old_origin.close()
    code, out = invoke("demo", "--workspace", str(path), "--json")
    assert code == 0, out
    with rt.open(path, read_only=True) as ws:
        assert ws.origin != old_id  # a fresh workspace, not the old one reused
        ws.verify()
    marker = json.loads((path / MARKER).read_text())
    assert marker["complete"] is True


@pytest.mark.parametrize(
    "change",
    ["extra file", "extra directory", "changed database", "unfinished run", "foreign marker"],
)
def test_issue9_demo_refuses_a_marked_directory_holding_anything_else(
    previous_demo: tuple[Path, dict[str, str], str], tmp_path: Path, change: str
) -> None:
    path = copy_of(previous_demo, tmp_path / "marked")
    if change == "extra file":
        (path / "blobs" / "mine.txt").write_text("added by the user")
    elif change == "extra directory":
        (path / "reports").mkdir()
        (path / "reports" / "q3.csv").write_text("a,b\n")
    elif change == "changed database":
        with sqlite3.connect(path / "rowtrail.db") as conn:
            conn.execute("CREATE TABLE user_notes (note TEXT)")
        conn.close()
    elif change == "unfinished run":
        marker = json.loads((path / MARKER).read_text())
        (path / MARKER).write_text(json.dumps({**marker, "complete": False}))
    else:
        (path / MARKER).write_text('{"kind": "something else"}')
    before = snapshot(path)
    code, out = invoke("demo", "--workspace", str(path), "--json")
    assert code == 1, out
    assert "nothing was changed" in json.loads(out)["message"]
    assert snapshot(path) == before
