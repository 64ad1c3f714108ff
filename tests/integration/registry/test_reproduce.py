"""Issue 13: ``reproduce`` — prediction -> deployment -> model -> run -> dataset -> commit.

A prediction served through a deployed, recorded scikit-learn fit reproduces (re-scored from
its logged input, every record on the chain proven); a logged output the model does not give
is a mismatch with the diff and the tolerance; an erased subject's input says which erasure
job shredded it; an expired input says when it expired; the CLI prints the same as JSON and
exits 1 unless the prediction is reproduced.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.errors import FileIntegrityError, InvalidInputError
from rowtrail.hashing import sha256_digest
from rowtrail.lineage import register_source
from rowtrail.registry._prediction_logger import PredictionLogger
from rowtrail.registry._predictions import find_prediction
from rowtrail.registry._reproduce import reproduce
from rowtrail.registry._retention import apply_retention, set_retention_policy


def _deploy(trained: Any) -> Any:
    reg = trained.ws.registry
    dataset = reg.register_dataset("credit", sources=trained.X)
    run = reg.log_run(
        "scorecard", params={"C": 1.0}, datasets=[dataset], training_run=trained.run_id
    )
    version = reg.register_model("scorecard", trained.estimator, run=run)
    return reg.deploy("scorecard", version.version, environment="prod-eu")


def test_a_served_prediction_reproduces_with_its_whole_chain_proven(trained: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    rows = np.asarray(trained.X)[:5]
    with PredictionLogger(ws, deployment) as logger:
        outputs = logger.predict(rows)
        ids = logger.last_ids
    assert [find_prediction(ws, pid).output for pid in ids] == outputs.tolist()
    result = reproduce(ws, ids[3])
    assert result.status == "match"
    assert result.ok
    assert result.rescored_output == outputs[3]
    assert result.max_abs_diff == 0.0
    chain = result.chain
    assert chain["deployment"]["deployment_id"] == deployment.deployment_id
    assert chain["model_version"]["artifact_digest"] == deployment.model_version.artifact_digest
    assert chain["run"]["training_run"] == trained.run_id
    assert [d["name"] for d in chain["datasets"]] == ["credit"]
    assert "git_commit" in chain["code"] or "commit" in chain["code"]
    mv = deployment.model_version
    expected = {find_prediction(ws, ids[3]).ledger_index, deployment.index, mv.index}
    assert expected | {mv.run.index} <= set(result.records)
    assert result.head_size == ws.ledger.size
    text = result.to_text()
    assert "MATCH" in text
    assert deployment.deployment_id in text
    assert json.loads(json.dumps(result.to_json()))["status"] == "match"


def test_a_wrong_logged_output_is_a_mismatch_with_the_diff_and_tolerance(trained: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    row = np.asarray(trained.X)[0]
    proba = trained.estimator.predict_proba(row[np.newaxis, :])[0]
    with PredictionLogger(ws, deployment, method="predict_proba") as logger:
        good = logger.log(row, proba)
        bad = logger.log(row, (proba + np.array([0.25, -0.25])).tolist())
    assert reproduce(ws, good).status == "match"
    result = reproduce(ws, bad, rtol=0.0, atol=1e-6)
    assert result.status == "mismatch"
    assert result.max_abs_diff == pytest.approx(0.25)
    assert result.to_json()["tolerance"] == {"rtol": 0.0, "atol": 1e-6}
    assert reproduce(ws, bad, rtol=0.0, atol=0.3).status == "match"
    with pytest.raises(InvalidInputError, match="rtol of reproduce"):
        reproduce(ws, good, rtol=-1.0)


def test_an_erased_subjects_input_says_which_job_shredded_it(trained: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
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
    row = np.asarray(trained.X)[1]
    with PredictionLogger(ws, deployment) as logger:
        pid = logger.log(row, int(trained.estimator.predict(row[np.newaxis, :])[0]),
                         subject=ws.pseudonymize("alice"))
    assert reproduce(ws, pid).ok
    job = ws.erase(subject="alice", reason="GDPR Art. 17").run()
    result = reproduce(ws, pid)
    assert result.status == "shredded"
    assert result.details["erasure_job"] == job.job_id
    assert job.job_id in result.reason
    assert result.rescored_output is None


def test_an_expired_input_says_when_it_expired(trained: Any, clock: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    row = np.asarray(trained.X)[2]
    with PredictionLogger(ws, deployment) as logger:
        pid = logger.log(row, int(trained.estimator.predict(row[np.newaxis, :])[0]))
    set_retention_policy(ws, {"registry.prediction_batch": 183})
    clock.now += timedelta(days=200)
    apply_retention(ws)
    result = reproduce(ws, pid)
    assert result.status == "expired"
    assert "expired on 2026-07" in result.reason
    record = find_prediction(ws, pid)
    assert result.details["expired_at"].startswith("2026-07")
    ws.blobs.put(b"unrelated")  # reproduce reads; it never writes or repairs
    assert not ws.blobs.has(record.blob)


def test_an_input_missing_without_a_record_is_tampering(trained: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    row = np.asarray(trained.X)[2]
    with PredictionLogger(ws, deployment) as logger:
        pid = logger.log(row, 0)
    ws.blobs.path_of(find_prediction(ws, pid).blob).unlink()
    with pytest.raises(FileIntegrityError, match=r"no retention\.expired or erasure event"):
        reproduce(ws, pid)


def test_cli_reproduce_prints_json_and_exits_1_unless_reproduced(trained: Any) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    row = np.asarray(trained.X)[4]
    good_output = int(trained.estimator.predict(row[np.newaxis, :])[0])
    with PredictionLogger(ws, deployment) as logger:
        good = logger.log(row, good_output)
        bad = logger.log(row, 1 - good_output)
    runner = CliRunner()
    done = runner.invoke(app, ["reproduce", good, "--workspace", str(ws.path), "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["status"] == "match"
    done = runner.invoke(app, ["reproduce", bad, "--workspace", str(ws.path)])
    assert done.exit_code == 1
    assert "MISMATCH" in done.output
    done = runner.invoke(app, ["reproduce", "pred-0000000000000000-1", "-w", str(ws.path)])
    assert done.exit_code == 1
    assert "no registry.prediction_batch" in " ".join(done.output.split())


def test_reproduce_reads_a_read_only_workspace(trained: Any, tmp_path: Path) -> None:
    ws = trained.ws
    deployment = _deploy(trained)
    row = np.asarray(trained.X)[0]
    with PredictionLogger(ws, deployment) as logger:
        pid = logger.log(row, int(trained.estimator.predict(row[np.newaxis, :])[0]))
    size = ws.ledger.size
    with rt.open(ws.path, read_only=True) as reader:
        assert reproduce(reader, pid).ok
    assert ws.ledger.size == size
