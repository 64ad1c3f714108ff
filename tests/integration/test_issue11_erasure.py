"""Issue 11: the erasure job on the 3-table credit pipeline (pandas + scikit-learn, traced).

Every resolution is compared with the truth carried by hand: each applicant's row numbers in
every table as plain pandas reads them from the CSVs (``SK_ID_CURR``). The model update is
checked against a plain scikit-learn fit on data rebuilt without the rows; shredded inputs
must be unreadable while ``ws.verify()`` still passes; bad requests must change no file.
"""

# ruff: noqa: N806 - X, y: scikit-learn's naming

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.attribution import (
    Attributor,
    ExactInfluenceScorer,
    RowMapLineage,
    convex_fit_query,
    log_prediction,
)
from rowtrail.datasets import credit
from rowtrail.errors import (
    FileIntegrityError,
    InvalidInputError,
    ShreddedError,
    StateError,
    UnknownSourceError,
)
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import get_source
from rowtrail.training import sample_usage
from rowtrail.unlearning._methods import ModelInput
from rowtrail.unlearning._resolve import erasure_status

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")

from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

NUMERIC = ["AMT_INCOME_TOTAL", "AMT_CREDIT", "EXT_SOURCE_2", "debt", "n_loans", "n_prev"]
CATEGORICAL = ["CODE_GENDER", "NAME_INCOME_TYPE"]
FEATURES = [*NUMERIC, *CATEGORICAL]
TABLES = ("application", "bureau", "previous_application")
REQUESTED = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def truth(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three CSVs and, per table, each applicant's row numbers as plain pandas reads them."""
    data = credit(n_applicants=240, seed=11, out_dir=tmp_path_factory.mktemp("credit"))
    rows: dict[str, dict[int, list[int]]] = {}
    for name in TABLES:
        keys = pd.read_csv(data.paths[name])["SK_ID_CURR"].to_numpy()
        by_key: dict[int, list[int]] = {}
        for number, key in enumerate(keys.tolist()):
            by_key.setdefault(int(key), []).append(number)
        rows[name] = by_key
    return {"paths": data.paths, "rows": rows}


def frames(ws: Any, paths: dict[str, Path], without: frozenset[int] = frozenset()) -> Any:
    """Read, aggregate and join the tables (leaving out applicants ``without``)."""
    tables = {
        name: rt.pandas.read_csv(paths[name], source=name, workspace=ws, subject="SK_ID_CURR")
        for name in TABLES
    }
    if without:
        tables = {n: t[~t["SK_ID_CURR"].isin(sorted(without))] for n, t in tables.items()}
    return _join(tables)


def _join(tables: dict[str, Any]) -> Any:
    loans = (
        tables["bureau"]
        .groupby("SK_ID_CURR")
        .agg(debt=("AMT_CREDIT_SUM_DEBT", "sum"), n_loans=("SK_ID_BUREAU", "size"))
    )
    previous = (
        tables["previous_application"].groupby("SK_ID_CURR").agg(n_prev=("SK_ID_PREV", "size"))
    )
    table = tables["application"].merge(loans.reset_index(), on="SK_ID_CURR", how="left")
    return table.merge(previous.reset_index(), on="SK_ID_CURR", how="left")


def scorecard() -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=0.2, max_iter=2000))])


@pytest.fixture
def fitted(tmp_path: Path, truth: dict[str, Any]) -> dict[str, Any]:
    ws = rt.init(tmp_path / "ws", now=lambda: REQUESTED + timedelta(days=2))
    table = frames(ws, truth["paths"])
    X_train, X_test, y_train, _y_test = train_test_split(
        table[[*FEATURES, "SK_ID_CURR"]], table["TARGET"], test_size=0.25, random_state=0
    )
    model = rt.sklearn.trace(scorecard())
    with ws.training_run("scorecard"):
        model.fit(X_train[FEATURES], y_train)
    train = np.asarray(X_train["SK_ID_CURR"]).astype(np.int64)
    test = np.asarray(X_test["SK_ID_CURR"]).astype(np.int64)
    return {
        "ws": ws,
        "model": model,
        "X_train": X_train,
        "X_test": X_test,
        "y_train": np.asarray(y_train, dtype=np.float64),
        "train": train.tolist(),
        "test": test.tolist(),
    }


def row_id(ws: Any, table: str, number: int) -> int:
    return (get_source(ws, table).index << ROW_BITS) | number


def ids_of(ws: Any, truth: dict[str, Any], key: int) -> set[int]:
    return {row_id(ws, name, n) for name in TABLES for n in truth["rows"][name].get(key, [])}


def applicant(fitted: dict[str, Any], truth: dict[str, Any], role: str) -> int:
    """An applicant of ``role`` with bureau and previous-application rows."""
    keys = fitted["train" if role == "train" else "test"]
    return next(
        k
        for k in keys
        if k in truth["rows"]["bureau"] and k in truth["rows"]["previous_application"]
    )


def digest_files(path: Path) -> dict[str, str]:
    """Every file of the workspace but SQLite's shared-memory index, by content."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


# ---------------------------------------------------------------------- resolution
def test_issue11_a_subject_resolves_to_exactly_its_rows_sample_and_statistics(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    key = applicant(fitted, truth, "train")
    job = ws.erase(subject=key, reason="GDPR Art. 17", requested_at=REQUESTED)
    plan = job.plan
    assert set(plan.row_ids.tolist()) == ids_of(ws, truth, key)
    assert plan.pseudonym == ws.pseudonymize(key)
    assert plan.request == {"subject": plan.pseudonym}
    (work,) = plan.models
    own = row_id(ws, "application", truth["rows"]["application"][key][0])
    assert work.removed_ids.tolist() == [own]  # the sample that is the applicant: removed
    assert work.recomputed_ids.size == 0  # its own aggregates go with it
    # The imputer's, scaler's and encoder's statistics were fitted on every training row.
    assert set(work.statistic_ids.tolist()) == ids_of(ws, truth, key)
    assert work.fit_indices
    assert work.roles == ("train",)
    assert plan.evidence  # the subject.ingested records, proven


def test_issue11_bureau_rows_aggregated_into_an_application_are_recomputed(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    key = applicant(fitted, truth, "train")
    bureau = truth["rows"]["bureau"][key]
    job = ws.erase(source="bureau", rows=bureau, reason="rectification")
    plan = job.plan
    assert set(plan.row_ids.tolist()) == {row_id(ws, "bureau", n) for n in bureau}
    (work,) = plan.models
    assert work.removed_ids.size == 0
    own = row_id(ws, "application", truth["rows"]["application"][key][0])
    assert work.recomputed_ids.tolist() == [own]
    assert set(work.statistic_ids.tolist()) == set(plan.row_ids.tolist())
    with job.excluding():
        rebuilt = frames(ws, truth["paths"])
    mine = rebuilt[rebuilt["SK_ID_CURR"] == key]
    assert len(rebuilt) == 240  # the applicant stays, its aggregates are recomputed
    assert np.isnan(np.asarray(mine["n_loans"], dtype=np.float64)).all()
    train = rebuilt[rebuilt["SK_ID_CURR"].isin(fitted["train"])]
    result = job.run(
        ModelInput(
            fitted["model"], X_rebuilt=train[FEATURES], y_rebuilt=np.asarray(train["TARGET"])
        )
    )
    reference = scorecard().fit(pd.DataFrame(train[FEATURES]), np.asarray(train["TARGET"]))
    np.testing.assert_allclose(result.updates[0].model[-1].coef_, reference[-1].coef_, rtol=1e-6)


def test_issue11_a_held_out_subject_has_rows_and_no_model_work(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    key = applicant(fitted, truth, "test")
    plan = ws.erase(subject=key, reason="GDPR Art. 17").plan
    assert set(plan.row_ids.tolist()) == ids_of(ws, truth, key)
    assert not plan.has_model_work
    assert plan.models == ()


def test_issue11_bad_requests_raise_and_change_no_file(fitted: dict[str, Any]) -> None:
    ws = fitted["ws"]
    ws.ledger.checkpoint()
    before = digest_files(ws.path)
    with pytest.raises(InvalidInputError, match="no rows of this subject are recorded"):
        ws.erase(subject=999_999_999, reason="GDPR Art. 17")
    with pytest.raises(InvalidInputError, match=r"rows of erase must be row numbers"):
        ws.erase(source="bureau", rows=[10**6], reason="x")
    with pytest.raises(UnknownSourceError, match="burau"):
        ws.erase(source="burau", rows=[1], reason="x")
    with pytest.raises(InvalidInputError, match="exactly one of subject= or source="):
        ws.erase(reason="x")
    with pytest.raises(InvalidInputError, match="reason of erase"):
        ws.erase(subject=fitted["train"][0], reason=" ")
    with pytest.raises(InvalidInputError, match="requested_at of erase"):
        ws.erase(subject=fitted["train"][0], reason="x", requested_at="yesterday")
    job = ws.erase(subject=fitted["train"][0], reason="x")
    with pytest.raises(InvalidInputError, match="missing runs"):
        job.run()  # the model that used the rows was not given
    with pytest.raises(InvalidInputError, match="whose training rowtrail recorded"):
        job.run(ModelInput(LogisticRegression().fit(np.eye(2), [0, 1])))
    z = np.asarray(fitted["model"][:-1].transform(fitted["X_train"][FEATURES]))
    with pytest.raises(InvalidInputError, match="must not be 'newton'"):  # statistics moved
        job.run(ModelInput(fitted["model"], X=z, y=fitted["y_train"]), method="newton")
    assert digest_files(ws.path) == before


# ---------------------------------------------------------------------- the job
def test_issue11_the_job_retrains_exactly_records_events_and_verifies(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws, model = fitted["ws"], fitted["model"]
    key = applicant(fitted, truth, "train")
    job = ws.erase(subject=key, reason="GDPR Art. 17", requested_at=REQUESTED)
    keep = sorted(set(fitted["train"]) - {key})
    with job.excluding():  # the user's own pipeline, re-run: the rows are left out on read
        rebuilt = frames(ws, truth["paths"])
    assert len(rebuilt) == 239
    rebuilt = rebuilt[rebuilt["SK_ID_CURR"].isin(keep)]
    y_rebuilt = np.asarray(rebuilt["TARGET"])
    result = job.run(ModelInput(model, X_rebuilt=rebuilt[FEATURES], y_rebuilt=y_rebuilt))
    (update,) = result.updates
    assert update.method == "retrain"
    assert update.exact
    assert key not in set(np.asarray(rebuilt["SK_ID_CURR"]).tolist())
    reference = scorecard().fit(pd.DataFrame(rebuilt[FEATURES]), y_rebuilt)
    np.testing.assert_allclose(update.model[-1].coef_, reference[-1].coef_, rtol=1e-6)
    assert update.digest_before != update.digest_after
    kinds = [ws.ledger.entry(i).event.kind for v in result.events.values() for i in v]
    assert {
        "erasure.requested",
        "erasure.model_updated",
        "erasure.shredded",
        "erasure.completed",
    } <= set(kinds)
    requested = ws.ledger.entry(result.events["erasure.requested"][0]).event
    assert requested.subjects == (ws.pseudonymize(key),)
    text = repr(requested.payload)
    assert str(key) not in text
    assert requested.payload["requests"][0]["n_rows"] == len(ids_of(ws, truth, key))
    ws.verify()


def test_issue11_sample_usage_answers_erased_with_proof(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    key = applicant(fitted, truth, "test")  # no model work: a plan with rows only
    other = applicant(fitted, truth, "train")
    job = ws.erase(subject=key, reason="GDPR Art. 17")
    result = job.run()
    with pytest.raises(StateError, match="already ran"):
        job.run()
    bureau = truth["rows"]["bureau"][key][0]
    from rowtrail.training._erased import find_erasures

    (erasure,) = find_erasures(ws, [row_id(ws, "bureau", bureau)])
    assert erasure.job_id == job.job_id
    assert erasure.completed_index == result.completed_index
    assert erasure.text() == f"erased on {erasure.erased_on} by job {job.job_id}"
    assert find_erasures(ws, sorted(ids_of(ws, truth, other))) == []
    # A subject no training used: its audit still answers "erased on D by job J".
    assert sample_usage(ws, subject=key) == []
    (status,) = erasure_status(ws, subject=key)
    assert status.job_id == job.job_id
    assert status.row_ids == tuple(sorted(ids_of(ws, truth, key)))
    status.proof.verify()
    # A training applicant's uses carry the erasure once it is done.
    job2 = ws.erase(subject=other, reason="GDPR Art. 17")
    keep = sorted(set(fitted["train"]) - {other})
    rebuilt = frames(ws, truth["paths"], without=frozenset({other}))
    rebuilt = rebuilt[rebuilt["SK_ID_CURR"].isin(keep)]
    job2.run(
        ModelInput(
            fitted["model"], X_rebuilt=rebuilt[FEATURES], y_rebuilt=np.asarray(rebuilt["TARGET"])
        )
    )
    uses = sample_usage(ws, subject=other)
    assert uses
    assert all(u.erased and u.erased_by == job2.job_id for u in uses)
    assert all(u.erasure_proof is not None for u in uses)
    ws.verify()


def test_issue11_rebuilt_data_still_holding_erased_rows_is_refused(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    key = applicant(fitted, truth, "train")
    job = ws.erase(subject=key, reason="GDPR Art. 17")
    table = frames(ws, truth["paths"])  # not rebuilt: still holds the applicant's rows
    size = ws.ledger.size
    # Caught by the sample ids (an erased applicant's own sample) or, failing those, by the
    # rebuilt rows' lineage: either way refused, and nothing written.
    with pytest.raises(
        InvalidInputError, match=r"leave out the erased samples|built without the erased rows"
    ):
        job.run(
            ModelInput(
                fitted["model"], X_rebuilt=table[FEATURES], y_rebuilt=np.asarray(table["TARGET"])
            )
        )
    assert ws.ledger.size == size


# ---------------------------------------------------------------------- shredding
def test_issue11_a_shredded_decision_input_is_unreadable_and_the_log_verifies(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws, model = fitted["ws"], fitted["model"]
    fit = model.training_fit_
    z_train = np.asarray(model[:-1].transform(fitted["X_train"][FEATURES]))
    attributor = Attributor(
        ExactInfluenceScorer.from_convex_fit(fit, z_train, fitted["y_train"]),
        lineage=RowMapLineage.from_view(
            rt.lineage(model[:-1].transform(fitted["X_train"][FEATURES])), len(z_train)
        ),
        model="scorecard",
        featurize=lambda rows: [convex_fit_query(fit, rows, target=1)],
    )
    key = applicant(fitted, truth, "test")
    position = fitted["test"].index(key)
    z_test = model[:-1].transform(fitted["X_test"][FEATURES])
    index = log_prediction(ws, attributor, z_test[position], subject=ws.pseudonymize(key))
    other = log_prediction(
        ws, attributor, z_test[position + 1], subject=ws.pseudonymize(fitted["test"][position + 1])
    )
    assert ws.explain(index, top_k=2).decision.status == "recorded"
    job = ws.erase(subject=key, reason="GDPR Art. 17")
    assert job.plan.predictions == (index,)
    result = job.run()
    assert result.key_ids  # the subject's data key, by id
    shredded = ws.ledger.entry(result.events["erasure.shredded"][0]).event.payload
    assert shredded["predictions"] == [index]
    assert shredded["key_ids"] == result.key_ids
    with pytest.raises(ShreddedError, match=f"shredded by erasure job {job.job_id}"):
        ws.explain(index, top_k=2)
    assert ws.explain(other, top_k=2).decision.status == "recorded"  # others untouched
    names = {p.stem for p in (ws.path / "keys" / "subjects").rglob("*.key")}
    assert names  # the other subject's key stays
    assert not names & set(result.key_ids)  # the erased subject's key files are gone
    report = ws.verify()  # the ciphertext still hashes to its digest; chain and proofs hold
    assert report.size == ws.ledger.size
    assert report.counts["data_keys"] == 1
    for path in (ws.path / "keys" / "subjects").rglob("*.key"):
        path.unlink()  # a live key lost without an erasure record: tampering, caught
    with pytest.raises(FileIntegrityError, match="no erasure destroyed it"):
        ws.verify()


def test_issue11_a_batch_spans_at_most_one_month(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    ws = fitted["ws"]
    a, b = fitted["test"][:2]
    size = ws.ledger.size
    with pytest.raises(InvalidInputError, match="within one month"):
        ws.erase_batch(
            [
                {"subject": a, "reason": "x", "requested_at": REQUESTED},
                {"subject": b, "reason": "x", "requested_at": REQUESTED + timedelta(days=32)},
            ]
        )
    job = ws.erase_batch(
        [
            {"subject": a, "reason": "x", "requested_at": REQUESTED},
            {"subject": b, "reason": "y", "requested_at": REQUESTED + timedelta(days=27)},
        ]
    )
    assert ws.ledger.size == size
    result = job.run()
    payload = ws.ledger.entry(result.events["erasure.requested"][0]).event.payload
    assert [r["reason"] for r in payload["requests"]] == ["x", "y"]
    assert set(job.pseudonyms) == {ws.pseudonymize(a), ws.pseudonymize(b)}
    ws.verify()


# ---------------------------------------------------------------------- the CLI
def test_issue11_cli_erase_dry_run_run_and_bad_requests(
    fitted: dict[str, Any], truth: dict[str, Any]
) -> None:
    from typer.testing import CliRunner

    from rowtrail.cli import app

    ws = fitted["ws"]
    ws.ledger.checkpoint()
    where = ["--workspace", str(ws.path)]
    runner = CliRunner()
    before = digest_files(ws.path)
    bad = runner.invoke(app, ["erase", "--subject", "999999999", "--reason", "x", *where])
    assert bad.exit_code == 1
    assert "no rows of this subject are recorded" in " ".join(bad.output.split())
    bad = runner.invoke(
        app, ["erase", "--source", "bureau", "--rows", "1,x", "--reason", "x", *where]
    )
    assert bad.exit_code == 1
    key = applicant(fitted, truth, "train")
    plan = runner.invoke(
        app, ["erase", "--subject", str(key), "--reason", "x", "--dry-run", "--json", *where]
    )
    assert plan.exit_code == 0, plan.output
    shown = json.loads(plan.stdout)
    assert shown["models"][0]["n_removed"] == 1
    assert str(key) not in plan.stdout  # only the pseudonym
    refused = runner.invoke(app, ["erase", "--subject", str(key), "--reason", "x", *where])
    assert refused.exit_code == 1
    assert "must be updated with their rebuilt training data" in " ".join(refused.output.split())
    assert digest_files(ws.path) == before
    held_out = applicant(fitted, truth, "test")
    done = runner.invoke(
        app,
        [
            "erase",
            "--subject",
            str(held_out),
            "--reason",
            "GDPR Art. 17",
            "--requested-at",
            "2026-05-04T09:00:00+00:00",
            "--certificate",
            str(ws.path.parent / "certificate.json"),
            "--json",
            *where,
        ],
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)["result"]
    entry = ws.ledger.entry(result["completed"])
    assert entry.event.kind == "erasure.completed"
    ws.verify()
    # The certificate the CLI wrote verifies with the workspace's public key alone.
    (ws.path.parent / "vkey").write_text(ws.ledger.verifier.vkey + "\n")
    checked = runner.invoke(
        app,
        ["certificate", "verify", str(ws.path.parent / "certificate.json"), "--vkey",
         str(ws.path.parent / "vkey"), "--json"],
    )
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.stdout)["job_id"] == json.loads(done.stdout)["job"]
    assert json.loads(checked.stdout)["subjects"] == [ws.pseudonymize(held_out)]
