"""Issue 13: prediction logging for serving — batched, asynchronous, crash-safe, indexed.

A prediction's id is known when ``log`` returns and the record is durable then (spooled);
batches become ``registry.prediction_batch`` events with the inputs in one blob (a subject's
input sealed under its data key), found again by id through a cache table that is checked
against the proven event and rebuilt by ``verify``. A logger killed with SIGKILL loses nothing
it acknowledged; the next logger replays the spool once.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import rowtrail as rt
from _rawdb import raw_connection
from rowtrail.errors import (
    FileIntegrityError,
    InvalidInputError,
    ShreddedError,
    StateError,
    TableIntegrityError,
    VerificationError,
)
from rowtrail.hashing import sha256_digest
from rowtrail.lineage import register_source
from rowtrail.registry._prediction_logger import PredictionLogger
from rowtrail.registry._predictions import (
    PREDICTION_BATCH_KIND,
    find_prediction,
    load_prediction_input,
    replay_prediction_spool,
)

from ._serving_fixtures import Keep, deployment_of, opened_fixture  # noqa: F401 (the fixture)

CHILD = Path(__file__).with_name("_serving_child.py")


def _wait_for(condition: object, what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_logged_predictions_are_found_by_id_with_inputs_outputs_and_subjects(
    tmp_path: Path, opened: Keep
) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    alice = ws.pseudonymize("alice")
    with PredictionLogger(ws, dep, batch_size=4) as logger:
        ids = [
            logger.log(np.array([i, 2.0 * i]), {"score": i / 4}, subject=alice if i == 2 else None)
            for i in range(10)
        ]
        assert len(set(ids)) == 10
        assert all(pid.startswith(f"pred-{logger.session}-") for pid in ids)
    batches = ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
    assert sum(e.event.payload["n_predictions"] for e in batches) == 10
    record = find_prediction(ws, ids[2])
    assert record.deployment_id == dep
    assert record.output == {"score": 0.5}
    assert record.subject == alice
    assert alice in record.entry.event.subjects
    assert record.input_lineage["status"] == "unknown"
    np.testing.assert_array_equal(load_prediction_input(ws, record), [2.0, 4.0])
    # The raw identifier is nowhere in the ledger; the subject's input is sealed in the blob.
    leaves = b"".join(e.leaf for e in ws.ledger.entries(range(ws.ledger.size)))
    assert b"alice" not in leaves
    assert b"RTENC1" not in ws.ledger.blobs.get(record.blob)  # base64 of the envelope
    np.testing.assert_array_equal(load_prediction_input(ws, find_prediction(ws, ids[9])), [9, 18])
    ws.verify()
    assert len(ws.db.query("SELECT prediction_id FROM registry_predictions")) == 10
    assert ws.ledger.indices(subject=alice) == [record.ledger_index]


def test_background_thread_flushes_without_being_asked(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    logger = PredictionLogger(ws, dep, batch_size=3, flush_interval=0.01)
    ids = [logger.log([float(i)], i) for i in range(7)]
    _wait_for(
        lambda: sum(
            e.event.payload["n_predictions"]
            for e in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
        )
        == 7,
        "the background flush",
    )
    assert find_prediction(ws, ids[6]).output == 6
    logger.close()
    assert not list((Path(ws.path) / "spool" / "predictions").iterdir())
    with pytest.raises(StateError, match="closed"):
        logger.log([1.0], 1)


def test_bad_input_raises_and_writes_nothing(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    with PredictionLogger(ws, dep) as logger:
        size = ws.ledger.size
        with pytest.raises(InvalidInputError, match=r"subject of PredictionLogger\.log"):
            logger.log([1.0], 1, subject="alice")
        with pytest.raises(InvalidInputError, match=r"input_row of PredictionLogger\.log"):
            logger.log(["a", "b"], 1)
        with pytest.raises(InvalidInputError, match=r"output of PredictionLogger\.log"):
            logger.log([1.0], float("nan"))
        with pytest.raises(InvalidInputError, match=r"output of PredictionLogger\.log"):
            logger.log([1.0], object())
        assert logger.flush() == 0
    assert ws.ledger.size == size
    with pytest.raises(InvalidInputError, match="batch_size of PredictionLogger"):
        PredictionLogger(ws, dep, batch_size=0)
    with pytest.raises(InvalidInputError, match="deployment of PredictionLogger"):
        PredictionLogger(ws, "")
    with pytest.raises(InvalidInputError, match="no deployment 'dep-unknown'"):
        PredictionLogger(ws, "dep-unknown")
    with pytest.raises(InvalidInputError, match="must look like"):
        find_prediction(ws, "42")
    with pytest.raises(InvalidInputError, match=r"no registry\.prediction_batch event"):
        find_prediction(ws, "pred-0123456789abcdef-1")


def test_unflushed_prediction_is_reported_as_spooled_not_unknown(
    tmp_path: Path, opened: Keep
) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    logger = PredictionLogger(ws, dep, batch_size=1000, flush_interval=3600)
    pid = logger.log([1.0], 1)
    with pytest.raises(StateError, match="spooled but not yet in the ledger"):
        find_prediction(ws, pid)
    logger.flush()
    assert find_prediction(ws, pid).output == 1
    logger.close()


def test_cache_row_deleted_or_edited_never_changes_the_answer(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    with PredictionLogger(ws, dep) as logger:
        ids = [logger.log([float(i)], i) for i in range(3)]
    with raw_connection(Path(ws.path)) as conn:
        conn.execute(
            "UPDATE registry_predictions SET position = 0 WHERE prediction_id = ?", (ids[1],)
        )
    with pytest.raises(TableIntegrityError, match="records another prediction"):
        find_prediction(ws, ids[1])
    with pytest.raises(TableIntegrityError, match="registry_predictions"):
        ws.verify()
    with raw_connection(Path(ws.path)) as conn:
        conn.execute("DELETE FROM registry_predictions WHERE prediction_id = ?", (ids[1],))
    with pytest.raises(TableIntegrityError, match="has no row for prediction"):
        find_prediction(ws, ids[1])
    with pytest.raises(TableIntegrityError, match="registry_predictions"):
        ws.verify()


def test_altered_input_blob_is_refused(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    with PredictionLogger(ws, dep) as logger:
        pid = logger.log([1.0, 2.0], 1)
    record = find_prediction(ws, pid)
    path = ws.blobs.path_of(record.blob)
    path.chmod(0o600)
    path.write_bytes(path.read_bytes().replace(b"AAAA", b"AAAB", 1))
    with pytest.raises(VerificationError, match="altered"):
        load_prediction_input(ws, record)


def test_erased_subject_input_is_shredded(tmp_path: Path, opened: Keep) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    register_source(
        ws,
        name="applicants.csv",
        digest=sha256_digest(b"applicants"),
        format="csv",
        schema={"x": "float"},
        n_rows=2,
        subject_column="id",
        subject_ids=["alice", "bob"],
    )
    with PredictionLogger(ws, dep) as logger:
        pid = logger.log([1.0, 2.0], 1, subject=ws.pseudonymize("alice"))
        other = logger.log([3.0, 4.0], 0, subject=ws.pseudonymize("bob"))
    ws.erase(subject="alice", reason="GDPR Art. 17").run()
    with pytest.raises(ShreddedError, match="destroyed"):
        load_prediction_input(ws, find_prediction(ws, pid))
    np.testing.assert_array_equal(load_prediction_input(ws, find_prediction(ws, other)), [3, 4])
    ws.verify()


def test_replay_after_a_crash_between_commit_and_spool_removal_logs_nothing_twice(
    tmp_path: Path, opened: Keep
) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    spool = Path(ws.path) / "spool" / "predictions"
    logger = PredictionLogger(ws, dep, batch_size=1000, flush_interval=3600)
    ids = [logger.log([float(i)], i) for i in range(5)]
    saved = tmp_path / "saved"
    saved.mkdir()
    for path in spool.glob("*.spool"):
        shutil.copy(path, saved / path.name)
    logger.close()
    for path in saved.iterdir():  # as if the process died before removing its segment
        shutil.copy(path, spool / path.name)
    size = ws.ledger.size
    assert replay_prediction_spool(ws) == 0
    assert ws.ledger.size == size
    assert not list(spool.glob("*.spool"))
    assert find_prediction(ws, ids[4]).output == 4
    ws.verify()


def test_sigkill_mid_stream_loses_no_acknowledged_prediction(tmp_path: Path, opened: Keep) -> None:
    ws_path = tmp_path / "ws"
    with rt.init(ws_path) as created:
        deployment_of(created)
    report = tmp_path / "acknowledged.txt"
    for round_ in range(2):
        before = report.read_text().count("\n") if report.exists() else 0
        errors = tmp_path / f"child-{round_}.err"
        with errors.open("wb") as err:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), str(ws_path), str(report)],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
            # Killed after 150 more acknowledged predictions: some flushed, some only spooled.
            _wait_for(
                lambda b=before: report.exists() and report.read_text().count("\n") >= b + 150,
                "the child to log predictions",
            )
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert child.returncode == -signal.SIGKILL, errors.read_text()
    acknowledged = [line for line in report.read_text().splitlines() if line]
    ws = opened(rt.open(ws_path))
    with PredictionLogger(ws, ws.registry.deployments()[0]) as logger:
        assert logger.replayed >= 0
    found = {
        pid
        for e in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
        for pid in e.event.payload["ids"]
    }
    assert set(acknowledged) <= found
    n_logged = sum(
        e.event.payload["n_predictions"] for e in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
    )
    assert n_logged == len(found)  # nothing appended twice
    record = find_prediction(ws, acknowledged[-1])
    n = int(acknowledged[-1].rsplit("-", 1)[1]) - 1
    np.testing.assert_array_equal(load_prediction_input(ws, record), [n, n / 2.0])
    ws.verify()


def test_predictions_only_in_the_spool_of_a_killed_process_are_replayed_once(
    tmp_path: Path, opened: Keep
) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    deployment_of(ws)
    report = tmp_path / "acknowledged.txt"
    child = subprocess.run(
        [sys.executable, str(CHILD), str(ws.path), str(report), "25"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    acknowledged = report.read_text().split()
    assert len(acknowledged) == 25
    assert ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND) == []
    assert replay_prediction_spool(ws) == 25
    assert replay_prediction_spool(ws) == 0
    outputs = [find_prediction(ws, pid).output for pid in acknowledged]
    assert outputs == [float(n) for n in range(25)]
    assert find_prediction(ws, acknowledged[0]).subject == ws.pseudonymize("applicant-7")
    ws.verify()


def test_a_sealed_inputs_key_deleted_without_an_erasure_fails_verification(
    tmp_path: Path, opened: Keep
) -> None:
    ws = opened(rt.init(tmp_path / "ws"))
    dep = deployment_of(ws)
    with PredictionLogger(ws, dep) as logger:
        logger.log([1.0, 2.0], 1, subject=ws.pseudonymize("carol"))
    ws.verify()
    (key_file,) = (Path(ws.path) / "keys" / "subjects").rglob("*.key")
    key_file.unlink()
    with pytest.raises(FileIntegrityError, match="no erasure destroyed it"):
        ws.verify()
