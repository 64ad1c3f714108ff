from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail import attribution
from rowtrail.cli import app
from rowtrail.errors import InvalidInputError, StateError
from rowtrail.hashing import sha256_digest
from rowtrail.ids import make_row_ids, row_numbers
from rowtrail.ledger import InclusionProof
from rowtrail.lineage import get_source, register_source
from rowtrail.training import fit_logistic

N = 80


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Any, ...]]:
    rng = np.random.default_rng(0)
    ws = rt.init(tmp_path / "ws")
    x = rng.normal(size=(N, 3))
    y = (x @ [1.0, -1.0, 0.5] + 0.3 * rng.normal(size=N) > 0).astype(float)
    raw_ids = [f"person-{i:03d}" for i in range(N)]
    people = register_source(
        ws,
        name="people.csv",
        digest=sha256_digest(x.tobytes()),
        format="csv",
        schema={"a": "float", "b": "float", "c": "float"},
        n_rows=N,
        path="/data/people.csv",
        subject_column="id",
        subject_ids=raw_ids,
    )
    extra = register_source(
        ws,
        name="events.csv",
        digest=sha256_digest(b"events"),
        format="csv",
        schema={"e": "int"},
        n_rows=2 * N,
    )
    # Training sample i is person row (N - 1 - i) (a reversal) plus event rows 2i and 2i+1.
    order = np.arange(N)[::-1]
    own = people.row_ids()[order]
    ev = make_row_ids(extra.index, 2 * N).reshape(N, 2)
    lineage = attribution.RowMapLineage(
        np.arange(0, 3 * N + 1, 3),
        np.column_stack([own, ev]).ravel(),
        ops=[{"name": "reverse", "kind": "sort"}],
        statistics=[{"op": "scaler", "fitted_on": {"people.csv": list(range(N))}}],
    )
    with ws.training_run("toy", params={"l2": 1.0}) as run:
        fit = fit_logistic(x[order], y[order], l2=1.0, run=run, row_ids=own)
    assert fit.ledger_index is not None
    scorer = attribution.ExactInfluenceScorer.from_convex_fit(fit, x[order], y[order])
    att = attribution.Attributor(
        scorer,
        lineage=lineage,
        model="toy",
        record_indices=[fit.ledger_index],
        featurize=lambda rows: [attribution.convex_fit_query(fit, rows)],
    )
    attribution.register_attributor(ws, att)
    yield ws, att, scorer, fit, x, raw_ids, order
    ws.close()


def test_explain_traces_to_the_right_source_rows(setup: tuple[Any, ...]) -> None:
    ws, _att, scorer, fit, x, raw_ids, order = setup
    query = x[:1] * 2.0
    exp = ws.explain(query, top_k=5)
    scores = scorer.scores([attribution.convex_fit_query(fit, query)])[0]
    assert [s.position for s in exp.supporting] == np.argsort(-scores)[:5].tolist()
    for sample in exp.supporting + exp.opposing:
        person_row = int(order[sample.position])
        assert sample.source == "people.csv"
        assert sample.path == "/data/people.csv"
        assert sample.row_number == person_row
        assert sample.rows == {
            "events.csv": [2 * sample.position, 2 * sample.position + 1],
            "people.csv": [person_row],
        }
        assert sample.subject == ws.pseudonymize(raw_ids[person_row])
        assert sample.score == pytest.approx(float(scores[sample.position]), rel=1e-5)
    assert exp.supporting[0].score > 0 > exp.opposing[0].score
    totals = {t.source: t for t in exp.totals}
    assert totals["people.csv"].n_samples == N
    assert totals["events.csv"].n_samples == N
    assert totals["people.csv"].net == pytest.approx(float(scores.sum()), rel=1e-4, abs=1e-6)
    assert exp.ops[0]["name"] == "reverse"
    assert exp.statistics[0]["fitted_on_rows"] == {"people.csv": N}


def test_explain_proves_the_records_relied_on(setup: tuple[Any, ...]) -> None:
    ws, att, _scorer, _fit, x, _raw_ids, _order = setup
    exp = ws.explain(x[3], top_k=4)
    roles = {p["index"]: p["role"] for p in exp.proofs}
    assert roles[att.record_indices[0]] == "record"
    source = get_source(ws, "people.csv")
    assert roles[source.ledger_index] == "source"
    for sample in exp.supporting:
        subject_events = ws.ledger.indices(kind="subject.ingested", subject=sample.subject)
        assert set(subject_events) <= set(roles)
    for proof in exp.proofs:
        InclusionProof.from_json(proof["proof"]).verify()
    assert exp.tree_size == ws.ledger.size
    assert ws.explain(x[3], top_k=4, proofs=False).proofs == []
    head = ws.ledger.checkpoint()
    anchored = ws.explain(x[3], top_k=4)
    assert {p["proof"]["size"] for p in anchored.proofs} == {head.size}
    assert {p["proof"]["root"] for p in anchored.proofs} == {head.root.hex()}


def test_logged_prediction_explains_after_reopening(setup: tuple[Any, ...], tmp_path: Path) -> None:
    ws, att, _scorer, _fit, x, _raw_ids, _order = setup
    attribution.save_attributor(ws, att)
    subject = ws.pseudonymize("applicant-x")
    index = attribution.log_prediction(
        ws, att, x[5], subject=subject, payload={"decision": "declined"}
    )
    before = ws.explain(index, top_k=3)
    ws.close()
    with rt.init(tmp_path / "ws") as again:
        after = again.explain(index, top_k=3)
        assert after.supporting == before.supporting
        assert after.opposing == before.opposing
        assert after.prediction["decision"] == "declined"
        assert index in {p["index"] for p in after.proofs}
        text = after.to_text()
        assert "people.csv" in text
        assert "declined" in text
        json.dumps(after.to_json())


def test_cli_explain_json_and_text(setup: tuple[Any, ...], tmp_path: Path) -> None:
    ws, att, _scorer, _fit, x, _raw_ids, _order = setup
    attribution.save_attributor(ws, att)
    index = attribution.log_prediction(ws, att, x[7])
    ws.close()
    runner = CliRunner()
    result = runner.invoke(
        app, ["explain", str(index), "--workspace", str(tmp_path / "ws"), "--json", "--top-k", "3"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert len(data["supporting"]) == 3
    assert data["supporting"][0]["source"] == "people.csv"
    text = runner.invoke(app, ["explain", str(index), "--workspace", str(tmp_path / "ws")])
    assert text.exit_code == 0
    assert "top supporting training samples" in text.output
    bad = runner.invoke(app, ["explain", "0", "--workspace", str(tmp_path / "ws"), "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error"] == "InvalidInputError"


def test_contribution_summaries_are_logged_per_subject(setup: tuple[Any, ...]) -> None:
    ws, att, _scorer, fit, x, _raw_ids, _order = setup
    vectors = att.query_vectors([attribution.convex_fit_query(fit, x[:10])])
    summary = attribution.summarize_contributions(ws, att, vectors, top_k=5)
    assert summary.n_supports.sum() == 50
    assert summary.n_opposes.sum() == 50
    np.testing.assert_allclose(summary.net, att.index.scores(vectors).sum(0), rtol=1e-4, atol=1e-6)
    subject, agg = max(summary.by_subject.items(), key=lambda kv: kv[1]["n_supports"])
    proven = ws.ledger.proven_entries(kind="attribution.subject_contribution", subject=subject)
    assert len(proven) == 1
    assert proven[0][0].event.payload["n_supports"] == agg["n_supports"]
    assert ws.ledger.entry(summary.ledger_index).event.kind == "attribution.contributions"


def test_bad_explain_inputs(setup: tuple[Any, ...], tmp_path: Path) -> None:
    ws, att, _scorer, _fit, x, _raw_ids, _order = setup
    with pytest.raises(InvalidInputError, match=r"prediction\.made"):
        ws.explain(0)
    with pytest.raises(InvalidInputError, match="top_k of explain"):
        ws.explain(x[0], top_k=0)
    with pytest.raises(InvalidInputError, match="one decision"):
        ws.explain(x[:2])
    with pytest.raises(StateError, match="no attributor 'other'"):
        attribution.load_attributor(ws, "other")
    with pytest.raises(InvalidInputError, match="name of save_attributor"):
        attribution.save_attributor(ws, att, "../escape")
    with rt.init(tmp_path / "empty") as empty, pytest.raises(StateError, match="no attributor"):
        empty.explain(x[0])
    row_ids = row_numbers(att.index.row_ids)
    assert sorted(row_ids.tolist()) == list(range(N))
