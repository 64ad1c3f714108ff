"""``rowtrail export openlineage|prov``: read-only, ``--json``, errors with exit status 1."""

from __future__ import annotations

import json
from pathlib import Path

from _interop_fixtures import Built
from typer.testing import CliRunner

from _rawdb import database_files, dump_tables, raw_connection
from rowtrail.cli import app
from rowtrail.interop import verify_openlineage_event


def _db_state(built: Built) -> tuple[list[tuple[object, ...]], list[tuple[str, int, int]]]:
    """Every row of the workspace's database, and the size and mtime of its files (if any)."""
    with raw_connection(built.path) as conn:
        rows = dump_tables(conn)
    files = [(name, (built.path / name).stat().st_size, (built.path / name).stat().st_mtime_ns)
             for name in database_files(built.path) if (built.path / name).exists()]
    return rows, files


def test_export_openlineage_and_prov_read_only(
    built: Built, state_of: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    before = _db_state(built)
    out = tmp_path / "events.jsonl"
    result = runner.invoke(app, ["export", "openlineage", "--out", str(out), "-w",
                                 str(built.path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    lines = out.read_text("utf-8").splitlines()
    assert summary["n_events"] == len(lines)
    for line in lines:
        verify_openlineage_event(built.ws, json.loads(line))
    prov = tmp_path / "prov.json"
    result = runner.invoke(app, ["export", "prov", "--out", str(prov), "-w", str(built.path),
                                 "--subject", built.subject])
    assert result.exit_code == 0, result.output
    assert "wrote PROV-JSON" in result.output
    assert built.subject in prov.read_text("utf-8")
    assert _db_state(built) == before  # reads never write


def test_export_errors_exit_1_and_write_nothing(
    built: Built, state_of: Path, tmp_path: Path
) -> None:
    runner = CliRunner()
    taken = tmp_path / "taken.json"
    taken.write_text("{}")
    result = runner.invoke(app, ["export", "prov", "--out", str(taken), "-w", str(built.path),
                                 "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["error"] == "InvalidInputError"
    assert taken.read_text() == "{}"
    missing = runner.invoke(app, ["export", "openlineage", "--out", str(tmp_path / "x.jsonl"),
                                  "-w", str(tmp_path / "no-workspace")])
    assert missing.exit_code == 1
    assert not (tmp_path / "x.jsonl").exists()
    assert not (tmp_path / "no-workspace").exists()
