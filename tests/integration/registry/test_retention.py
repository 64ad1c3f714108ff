"""Issue 13: retention per event kind — payloads expire, leaf hashes and proofs stay.

A policy shorter than the legal minimum (six months for AI Act logs) is refused; nothing is
deleted before its time; expired payload blobs are named by a ``retention.expired`` event
written before they are deleted, after which ``ws.verify()`` still passes, while a payload
deleted without such an event still fails verification.
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
from rowtrail.errors import BlobNotFoundError, InvalidInputError, LogIntegrityError
from rowtrail.registry._prediction_logger import PredictionLogger
from rowtrail.registry._predictions import find_prediction
from rowtrail.registry._retention import (
    LEGAL_MINIMUM_DAYS,
    RETENTION_EXPIRED_KIND,
    apply_retention,
    expiry_of,
    retention_policy,
    set_retention_policy,
)

from ._serving_fixtures import Keep, deployment_of, opened_fixture  # noqa: F401 (the fixture)

KIND = "registry.prediction_batch"
START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """The ledger's injected clock, moved by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def _logged(tmp_path: Path, opened: Keep) -> tuple[rt.Workspace, Clock, list[str]]:
    clock = Clock()
    ws = opened(rt.init(tmp_path / "ws", now=clock))
    dep = deployment_of(ws)
    ids = []
    for day in (0, 30):  # two batches a month apart
        clock.now = START + timedelta(days=day)
        with PredictionLogger(ws, dep) as logger:
            ids.append(logger.log(np.array([day, 1.0]), day))
    return ws, clock, ids


def test_policies_shorter_than_the_legal_minimum_are_refused(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    assert LEGAL_MINIMUM_DAYS[KIND] == 183
    assert retention_policy(ws) is None
    for bad in ({KIND: 182}, {KIND: 1.5}, {KIND: True}, {"ledger.anything": 400}, {}):
        with pytest.raises(InvalidInputError, match="set_retention_policy"):
            set_retention_policy(ws, bad)  # type: ignore[arg-type]
    assert ws.ledger.size == 0
    policy = set_retention_policy(ws, {KIND: 183})
    assert retention_policy(ws) == policy
    assert policy.days == {KIND: 183}


def test_nothing_expires_without_a_policy_or_before_its_time(tmp_path: Path, opened: Keep) -> None:
    ws, clock, _ids = _logged(tmp_path, opened)
    clock.now = START + timedelta(days=1000)
    assert apply_retention(ws).expired == []  # no policy: retention unknown, nothing deleted
    set_retention_policy(ws, {KIND: 365})
    clock.now = START + timedelta(days=364)
    size = ws.ledger.size
    report = apply_retention(ws)
    assert report.expired == []
    assert report.event_index is None
    assert ws.ledger.size == size
    with pytest.raises(InvalidInputError, match="no later than the ledger's clock"):
        apply_retention(ws, now=START + timedelta(days=800))  # never judged in the future
    with pytest.raises(InvalidInputError, match="aware datetime"):
        apply_retention(ws, now=datetime(2026, 1, 1))


def test_expired_payloads_are_deleted_recorded_and_verify_still_passes(
    tmp_path: Path, opened: Keep
) -> None:
    ws, clock, ids = _logged(tmp_path, opened)
    set_retention_policy(ws, {KIND: 183})
    clock.now = START + timedelta(days=200)  # first batch expired (day 183), second not (213)
    dry = apply_retention(ws, dry_run=True)
    assert [item.ledger_index for item in dry.expired] == [find_prediction(ws, ids[0]).ledger_index]
    first, second = find_prediction(ws, ids[0]), find_prediction(ws, ids[1])
    assert ws.blobs.has(first.blob)  # a dry run deletes nothing
    root = ws.ledger.root()
    report = apply_retention(ws)
    assert report.n_deleted == 1
    assert report.event_index is not None
    assert not ws.blobs.has(first.blob)
    assert ws.blobs.has(second.blob)
    event = ws.ledger.entry(report.event_index).event
    assert event.kind == RETENTION_EXPIRED_KIND
    assert event.payload["blobs"] == [first.blob]
    assert event.payload["expires_at"] == ["2026-07-03T00:00:00.000000Z"]
    assert expiry_of(ws, first.blob) == (report.event_index, clock.now)
    # The batch event, its leaf and its proof stay; the log only grew.
    assert ws.ledger.consistency(ws.ledger.size - 1).old_size == ws.ledger.size - 1
    assert ws.ledger.root(ws.ledger.size - 1) == root
    assert find_prediction(ws, ids[0]).output == 0
    ws.verify()
    assert apply_retention(ws).expired == []  # idempotent


def test_a_payload_deleted_without_a_retention_event_fails_verification(
    tmp_path: Path, opened: Keep
) -> None:
    ws, _, ids = _logged(tmp_path, opened)
    record = find_prediction(ws, ids[1])
    ws.blobs.path_of(record.blob).unlink()
    with pytest.raises(LogIntegrityError, match="is missing"):
        ws.verify()


def test_a_crash_after_the_event_deletes_the_named_blobs_on_the_next_run(
    tmp_path: Path, opened: Keep
) -> None:
    ws, clock, ids = _logged(tmp_path, opened)
    set_retention_policy(ws, {KIND: 183})
    clock.now = START + timedelta(days=300)
    record = find_prediction(ws, ids[0])
    data = ws.blobs.get(record.blob)
    apply_retention(ws)
    ws.blobs.put(data)  # as if the process died after the event, before the deletion
    assert ws.blobs.has(record.blob)
    size = ws.ledger.size
    report = apply_retention(ws)
    assert report.expired == []
    assert report.n_deleted == 1
    assert ws.ledger.size == size
    with pytest.raises(BlobNotFoundError):
        ws.blobs.get(record.blob)
    ws.verify()


def test_cli_retention_is_a_dry_run_unless_asked(tmp_path: Path, opened: Keep) -> None:
    ws, _clock, ids = _logged(tmp_path, opened)
    runner = CliRunner()
    path = str(ws.path)
    done = runner.invoke(app, ["retention", "set", f"{KIND}=30", "-w", path])
    assert done.exit_code == 1
    assert "183" in done.output
    done = runner.invoke(app, ["retention", "set", f"{KIND}=183", "-w", path, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["days"] == {KIND: 183}
    # The CLI's clock is the real one (years after START): the first batch is long expired.
    blob = find_prediction(ws, ids[0]).blob
    done = runner.invoke(app, ["retention", "apply", "-w", path, "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["dry_run"] is True
    assert blob in [item["blob"] for item in json.loads(done.output)["expired"]]
    assert ws.blobs.has(blob)
    done = runner.invoke(app, ["retention", "apply", "--apply", "-w", path])
    assert done.exit_code == 0, done.output
    assert "expired: entry" in done.output
    assert not ws.blobs.has(blob)
    ws.verify()


def test_only_a_list_of_digests_in_a_retention_event_excuses_a_missing_blob(
    tmp_path: Path, opened: Keep
) -> None:
    ws, _, ids = _logged(tmp_path, opened)
    blob = find_prediction(ws, ids[0]).blob
    ws.ledger.append(RETENTION_EXPIRED_KIND, {"blobs": blob})  # not a list: names nothing
    ws.ledger.append(RETENTION_EXPIRED_KIND, {"blobs": [1, None]})  # no digest in it
    ws.blobs.path_of(blob).unlink()
    with pytest.raises(LogIntegrityError, match="is missing"):
        ws.verify()
    ws.ledger.append(RETENTION_EXPIRED_KIND, {"blobs": [blob]})
    # Listed now, but by events that follow no retention policy: still not accepted.
    with pytest.raises(LogIntegrityError, match="names no earlier retention policy"):
        ws.verify()


def test_an_expiry_before_the_retention_ran_out_fails_verification(
    tmp_path: Path, opened: Keep
) -> None:
    """A ``retention.expired`` event written early (not by apply_retention) is caught."""
    ws, clock, ids = _logged(tmp_path, opened)
    policy = set_retention_policy(ws, {KIND: 183})
    record = find_prediction(ws, ids[0])
    clock.now = START + timedelta(days=100)  # 83 days too early
    ws.ledger.append(RETENTION_EXPIRED_KIND, {
        "policy": policy.ledger_index, "events": [record.ledger_index], "kinds": [KIND],
        "blobs": [record.blob], "expires_at": ["2026-04-11T00:00:00.000000Z"],
    })
    ws.blobs.path_of(record.blob).unlink()
    with pytest.raises(LogIntegrityError, match="before its 183 days had run out"):
        ws.verify()


def test_an_expiry_naming_another_events_blob_fails_verification(
    tmp_path: Path, opened: Keep
) -> None:
    ws, clock, ids = _logged(tmp_path, opened)
    policy = set_retention_policy(ws, {KIND: 183})
    first, second = find_prediction(ws, ids[0]), find_prediction(ws, ids[1])
    clock.now = START + timedelta(days=200)  # the first batch's retention ran out
    ws.ledger.append(RETENTION_EXPIRED_KIND, {
        "policy": policy.ledger_index, "events": [first.ledger_index], "kinds": [KIND],
        "blobs": [second.blob], "expires_at": ["2026-07-03T00:00:00.000000Z"],
    })
    ws.blobs.path_of(second.blob).unlink()
    with pytest.raises(LogIntegrityError, match="which did not write it"):
        ws.verify()
