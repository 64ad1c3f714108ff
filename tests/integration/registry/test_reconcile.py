"""Issue 13: ``reconcile`` re-hashes every blob against its digest; mismatches are events.

A clean workspace reconciles with a ``registry.reconciled`` summary event; an altered or a
missing blob raises :class:`FileIntegrityError` after recording one
``registry.reconcile_failed`` event per mismatch; a blob expired by retention is accounted
for, not a mismatch.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.errors import FileIntegrityError
from rowtrail.registry import (
    PREDICTION_BATCH_KIND,
    PredictionLogger,
    apply_retention,
    find_prediction,
    set_retention_policy,
)
from rowtrail.registry._reconcile import (
    RECONCILE_FAILED_KIND,
    RECONCILED_KIND,
    reconcile,
)

from ._serving_fixtures import Keep, deployment_of, opened_fixture  # noqa: F401 (the fixture)


def _workspace(tmp_path: Path, opened: Keep) -> tuple[rt.Workspace, list[str]]:
    ws = opened(rt.init(tmp_path / "ws"))
    blobs = [ws.ledger.put_blob(bytes([n]) * (1000 * (n + 1))) for n in range(3)]
    ws.ledger.append("model.saved", {"name": "m"}, blobs=blobs)
    return ws, blobs


def test_clean_workspace_reconciles_and_records_a_summary(tmp_path: Path, opened: Keep) -> None:
    ws, _blobs = _workspace(tmp_path, opened)
    seen: list[int] = []
    report = reconcile(ws, progress=seen.append)
    assert report.ok
    assert report.n_files == 3
    assert report.n_bytes == 6000 == sum(seen)
    assert report.n_named == 3
    assert report.mb_per_s > 0
    (summary,) = ws.ledger.entries_of_kind(RECONCILED_KIND)
    assert summary.event.payload["n_mismatches"] == 0
    assert summary.event.payload["n_bytes"] == 6000
    ws.verify()


def test_altered_and_missing_blobs_are_errors_and_events(tmp_path: Path, opened: Keep) -> None:
    ws, blobs = _workspace(tmp_path, opened)
    altered = ws.blobs.path_of(blobs[0])
    altered.chmod(0o600)
    altered.write_bytes(b"\x07" * 1000)
    ws.blobs.path_of(blobs[2]).unlink()
    with pytest.raises(FileIntegrityError, match="2 blob"):
        reconcile(ws)
    failed = ws.ledger.entries_of_kind(RECONCILE_FAILED_KIND)
    assert sorted((e.event.payload["blob"], e.event.payload["problem"]) for e in failed) == sorted(
        [(blobs[0], "altered"), (blobs[2], "missing")]
    )
    (summary,) = ws.ledger.entries_of_kind(RECONCILED_KIND)
    assert summary.event.payload["n_mismatches"] == 2
    report = reconcile(ws, check=False, record=False)
    assert not report.ok
    assert len(report.mismatches) == 2
    assert len(ws.ledger.entries_of_kind(RECONCILE_FAILED_KIND)) == 2  # record=False wrote none


def test_blobs_accounted_for_by_retention_are_not_mismatches(tmp_path: Path, opened: Keep) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    moments = [start]
    ws = opened(rt.init(tmp_path / "ws", now=lambda: moments[-1]))
    with PredictionLogger(ws, deployment_of(ws)) as logger:
        logged = logger.log(np.array([1.0, 2.0]), 1)
    set_retention_policy(ws, {PREDICTION_BATCH_KIND: 183})
    moments.append(start + timedelta(days=200))
    assert apply_retention(ws).n_deleted == 1
    assert not ws.blobs.has(find_prediction(ws, logged).blob)
    report = reconcile(ws)
    assert report.ok
    assert report.mismatches == []
    ws.verify()


def test_cli_reconcile_reports_mb_per_s_and_exits_1_on_a_mismatch(
    tmp_path: Path, opened: Keep
) -> None:
    ws, blobs = _workspace(tmp_path, opened)
    runner = CliRunner()
    done = runner.invoke(app, ["reconcile", "--workspace", str(ws.path), "--json"])
    assert done.exit_code == 0, done.output
    report = json.loads(done.output)
    assert report["ok"] is True
    assert report["n_bytes"] == 6000
    assert report["mb_per_s"] > 0
    ws.blobs.path_of(blobs[1]).unlink()
    size = ws.ledger.size
    done = runner.invoke(app, ["reconcile", "--workspace", str(ws.path), "--no-record"])
    assert done.exit_code == 1
    assert "missing" in done.output
    assert ws.ledger.size == size  # --no-record opens read-only and writes nothing
