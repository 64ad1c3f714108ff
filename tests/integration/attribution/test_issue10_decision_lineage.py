"""Issue 10: a logged decision records its own lineage, and explanations say what scores mean.

A credit model is trained on the 3-table credit data (application ⨝ agg(bureau) ⨝
agg(previous_application) through traced pandas frames, ``rt.to_numpy``, then standardised
with statistics fitted on the training rows). A prediction logged for a traced held-out row
must record that row's source rows in every table, the op chain and the fitted statistics; the
expected rows come from the plain CSVs through ids carried by hand (``SK_ID_CURR``,
``SK_ID_BUREAU``, ``SK_ID_PREV``), never from rowtrail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from _rawdb import raw_connection
from rowtrail import attribution
from rowtrail.cli import app as cli
from rowtrail.datasets import credit
from rowtrail.errors import BlobNotFoundError, LogIntegrityError, VerificationError
from rowtrail.hashing import canonical_json, decode_canonical_json
from rowtrail.ids import ROW_BITS
from rowtrail.ledger import Event, InclusionProof
from rowtrail.lineage import get_source
from rowtrail.training import fit_logistic

COLUMNS = ["AMT_INCOME_TOTAL", "AMT_CREDIT", "EXT_SOURCE_2", "b_n", "b_debt", "p_n", "p_credit"]
N_APPLICANTS = 300


@dataclass
class Credit:
    ws: Any
    path: Path
    att: attribution.Attributor
    frame: Any  # the traced feature frame (carries SK_ID_CURR by hand)
    X: Any  # traced raw matrix
    Xs: Any  # traced standardised matrix
    train: np.ndarray
    test: np.ndarray
    raw: dict[str, pd.DataFrame]  # the plain CSVs


def _frames(ws: Any, paths: dict[str, Path]) -> Any:
    app = rt.pandas.read_csv(
        paths["application"], source="application", subject="applicant_id", workspace=ws
    )
    bureau = rt.pandas.read_csv(paths["bureau"], source="bureau", workspace=ws)
    prev = rt.pandas.read_csv(
        paths["previous_application"], source="previous_application", workspace=ws
    )
    b = (
        bureau.groupby("SK_ID_CURR")
        .agg(b_n=("SK_ID_BUREAU", "size"), b_debt=("AMT_CREDIT_SUM_DEBT", "sum"))
        .reset_index()
    )
    p = (
        prev.groupby("SK_ID_CURR")
        .agg(p_n=("SK_ID_PREV", "size"), p_credit=("AMT_CREDIT", "mean"))
        .reset_index()
    )
    table = app.merge(b, on="SK_ID_CURR", how="left").merge(p, on="SK_ID_CURR", how="left")
    return table.fillna(
        {"EXT_SOURCE_2": 0.5, "b_n": 0.0, "b_debt": 0.0, "p_n": 0.0, "p_credit": 0.0}
    )


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Credit]:
    ws = rt.init(tmp_path / "ws")
    data = credit(n_applicants=N_APPLICANTS, seed=1, out_dir=tmp_path / "credit")
    raw = {name: pd.read_csv(path) for name, path in data.paths.items()}
    frame = _frames(ws, data.paths)
    x = rt.to_numpy(frame, COLUMNS, dtype=np.float64)
    y = np.asarray(frame["TARGET"], dtype=np.float64)
    order = np.random.default_rng(0).permutation(len(y))
    train, test = np.sort(order[:240]), np.sort(order[240:])
    fitted = x[train]
    xs = (x - fitted.mean(axis=0)) / fitted.std(axis=0)
    view = rt.lineage(xs[train])
    own = np.array([int(view.row_ids(i)[0]) for i in range(len(train))])
    with ws.training_run("scorecard", params={"l2": 1.0}) as run:
        fit = fit_logistic(np.asarray(xs[train]), y[train], l2=1.0, run=run, row_ids=own)
    scorer = attribution.ExactInfluenceScorer.from_convex_fit(fit, np.asarray(xs[train]), y[train])
    att = attribution.Attributor(
        scorer,
        lineage=attribution.RowMapLineage.from_view(view, len(train)),
        model="scorecard",
        featurize=lambda rows: [attribution.convex_fit_query(fit, rows, target=1)],
        record_indices=[fit.ledger_index] if fit.ledger_index is not None else [],
    )
    attribution.save_attributor(ws, att)
    yield Credit(ws, tmp_path / "ws", att, frame, x, xs, train, test, raw)
    ws.close()


def _expected_rows(c: Credit, applicant: int) -> dict[str, list[int]]:
    """Source rows of one applicant, from the plain CSVs through the carried SK_ID_CURR."""
    out = {}
    for name in ("application", "bureau", "previous_application"):
        rows = np.flatnonzero(c.raw[name]["SK_ID_CURR"].to_numpy() == applicant).tolist()
        if rows:
            out[name] = rows
    return out


def _log(c: Credit, position: int, **kwargs: Any) -> int:
    query = kwargs.pop("query", c.Xs[position])
    return attribution.log_prediction(
        c.ws,
        c.att,
        query,
        payload={"decision": "declined", "explained_class": "default"},
        **kwargs,
    )


def _blob_path(ws: Any, digest: str) -> Path:
    hexdigest = digest.split(":", 1)[1]
    return Path(ws.ledger.blobs.root) / hexdigest[:2] / hexdigest[2:]


def test_issue10_prediction_records_its_source_rows_in_every_table(built: Credit) -> None:
    c = built
    keys = c.frame["SK_ID_CURR"].to_numpy()
    seen_empty_or_many = False
    for position in c.test[:8].tolist():
        index = _log(c, position)
        decision = c.ws.explain(index, top_k=3).decision
        expected = _expected_rows(c, int(keys[position]))
        assert decision.is_known
        assert decision.rows == expected
        packed = [
            (get_source(c.ws, name).index << ROW_BITS) | row
            for name, rows in expected.items()
            for row in rows
        ]
        assert decision.row_ids == sorted(packed)
        bureau_ids = c.raw["bureau"]["SK_ID_BUREAU"].to_numpy()[expected.get("bureau", [])]
        own = c.raw["bureau"]["SK_ID_CURR"].to_numpy()[expected.get("bureau", [])]
        assert set(own.tolist()) <= {int(keys[position])}
        assert len(set(bureau_ids)) == len(own)
        seen_empty_or_many |= len(expected.get("bureau", [])) != 1
        by_name = {s["name"]: s for s in decision.sources}
        for name, rows in expected.items():
            info = get_source(c.ws, name)
            assert by_name[name]["n_rows"] == len(rows)
            assert (by_name[name]["digest"], by_name[name]["ledger_index"]) == (
                info.digest,
                info.ledger_index,
            )
        subject = c.ws.pseudonymize(
            c.raw["application"]["applicant_id"][expected["application"][0]]
        )
        assert decision.subjects == (subject,)
    assert seen_empty_or_many  # the check covered aggregates, not only one-to-one joins


def test_issue10_prediction_records_fitted_statistics_and_op_chain(built: Credit) -> None:
    c = built
    index = _log(c, int(c.test[0]))
    entry = c.ws.ledger.entry(index)
    field = entry.event.payload["input_lineage"]
    assert field["status"] == "recorded"
    assert field["document"] in entry.event.blobs
    decision = c.ws.explain(index, top_k=2).decision
    names = [op["name"] for op in decision.ops]
    # Every step from each source file to the model input: the frame steps survive to_numpy.
    assert names.count("source") == names.count("read_csv") == 3
    assert names.count("groupby.agg") == names.count("merge") == 2
    assert names.index("merge") < names.index("frame.to_numpy") < names.index("mean")
    assert names[-1] == "getitem[int]"
    assert {"frame.to_numpy", "getitem[take]", "mean", "std", "subtract", "divide"} <= set(names)
    assert {s["op"] for s in decision.statistics} == {"mean", "std"}
    keys = c.frame["SK_ID_CURR"].to_numpy()[c.train]
    expected: list[int] = []
    for name in ("application", "bureau", "previous_application"):
        index_of = get_source(c.ws, name).index
        rows = np.flatnonzero(np.isin(c.raw[name]["SK_ID_CURR"].to_numpy(), keys))
        expected += ((index_of << ROW_BITS) | rows).tolist()
    for stat in decision.statistics:
        counts = {f["name"]: f["n_rows"] for f in stat["fitted_on"]}
        assert counts["application"] == len(c.train)
        assert stat["rows_blob"] in entry.event.blobs
        stored = np.frombuffer(c.ws.ledger.blobs.get(stat["rows_blob"]), dtype="<i8")
        assert stored.tolist() == sorted(expected)


def test_issue10_explain_shows_the_decision_first_and_proves_it(built: Credit) -> None:
    c = built
    index = _log(c, int(c.test[1]))
    exp = c.ws.explain(index, top_k=3)
    text = exp.to_text()
    assert text.startswith("decision:")
    assert text.index("source rows of the input") < text.index("top supporting training samples")
    assert text.index("by model scorecard") < text.index("top supporting training samples")
    roles = {p["index"]: p["role"] for p in exp.proofs}
    assert roles[index] == "prediction"
    for name in ("bureau", "previous_application"):
        assert roles[get_source(c.ws, name).ledger_index] == "input-source"
    assert get_source(c.ws, "application").ledger_index in roles
    assert "input-subject" in roles.values()
    for proof in exp.proofs:
        InclusionProof.from_json(proof["proof"]).verify()
    data = exp.to_json()
    assert next(iter(data)) == "decision"
    assert data["decision"]["rows"] == exp.decision.rows
    json.dumps(data)
    c.ws.close()
    with rt.open(c.path) as again:  # a new handle reads it back from the ledger only
        assert again.explain(index, top_k=3).decision == exp.decision
    runner = CliRunner()
    out = runner.invoke(cli, ["explain", str(index), "--workspace", str(c.path), "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["decision"]["rows"] == exp.decision.rows
    human = runner.invoke(cli, ["explain", str(index), "--workspace", str(c.path)])
    assert human.exit_code == 0, human.output
    assert human.output.index("source rows of the input") < human.output.index("top supporting")


def test_issue10_untraced_input_says_its_lineage_is_unknown(built: Credit) -> None:
    c = built
    plain = np.asarray(c.Xs[int(c.test[2])])
    index = _log(c, 0, query=plain)
    payload = c.ws.ledger.entry(index).event.payload
    assert payload["input_lineage"]["status"] == "unknown"
    exp = c.ws.explain(index, top_k=2)
    assert not exp.decision.is_known
    assert exp.decision.rows == {}
    assert exp.decision.ops == []
    assert "plain ndarray" in exp.decision.reason
    assert "input lineage unknown" in exp.to_text()
    direct = c.ws.explain(plain, top_k=2)
    assert not direct.decision.is_known
    assert "not logged" in direct.decision.reason


def test_issue10_altered_or_missing_lineage_blobs_are_refused(built: Credit) -> None:
    c = built
    index = _log(c, int(c.test[3]))
    field = c.ws.ledger.entry(index).event.payload["input_lineage"]
    path = _blob_path(c.ws, field["document"])
    original = path.read_bytes()
    doc = decode_canonical_json(original)
    doc["sources"][0]["rows"] = [r + 1 for r in doc["sources"][0]["rows"]]  # another applicant
    path.write_bytes(canonical_json(doc))
    with pytest.raises(VerificationError, match="altered"):
        c.ws.explain(index, top_k=2)
    with pytest.raises(LogIntegrityError, match="altered"):
        c.ws.verify()
    path.write_bytes(original)
    stats = decode_canonical_json(original)["statistics"]
    rows = _blob_path(c.ws, stats[0]["rows_blob"])
    rows.unlink()
    with pytest.raises(BlobNotFoundError):
        c.ws.explain(index, top_k=2)
    with pytest.raises(LogIntegrityError, match="missing"):
        c.ws.verify()


def test_issue10_rewritten_prediction_event_is_refused(built: Credit) -> None:
    c = built
    index = _log(c, int(c.test[4]))
    c.ws.ledger.checkpoint()
    entry = c.ws.ledger.entry(index)
    payload = dict(entry.event.payload)
    payload["input_lineage"] = {"status": "unknown", "reason": "forged"}
    forged = Event(
        entry.event.kind,
        payload,
        time=entry.event.time,
        subjects=entry.event.subjects,
        blobs=entry.event.blobs,
    ).leaf()
    with raw_connection(c.path) as conn:
        (hashes,) = conn.execute("SELECT hashes FROM events WHERE idx = ?", (index,)).fetchone()
        conn.execute(
            "UPDATE events SET leaf = ?, hashes = ? WHERE idx = ?",
            (forged, hashlib.sha256(b"\x00" + forged).digest() + hashes[32:], index),
        )
    with pytest.raises(VerificationError, match="rewritten"):
        c.ws.explain(index, top_k=2)
    with pytest.raises(VerificationError, match="does not match the stored log"):
        c.ws.verify()


def test_issue10_document_disagreeing_with_its_event_is_refused(built: Credit) -> None:
    c = built
    index = _log(c, int(c.test[5]))
    entry = c.ws.ledger.entry(index)
    other = c.ws.ledger.entry(_log(c, int(c.test[6])))
    # A writer that pairs one input's summary with another input's document.
    payload = dict(entry.event.payload)
    payload["input_lineage"] = {
        **payload["input_lineage"],
        "document": other.event.payload["input_lineage"]["document"],
    }
    forged = c.ws.ledger.append(
        "prediction.made", payload, blobs=sorted({*entry.event.blobs, *other.event.blobs})
    )
    with pytest.raises(VerificationError, match="disagrees with the event"):
        c.ws.explain(forged, top_k=2)


def test_issue10_scores_carry_their_unit_and_sign(tmp_path: Path) -> None:
    """The documented unit is what the score is: margin with the row minus margin without it."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 3))
    y = (x @ [1.0, -1.0, 0.5] + rng.normal(size=60) > 0).astype(float)
    theta = attribution.fit_l2_linear(x, y, l2=1.0)
    scorer = attribution.ExactInfluenceScorer(l2=1.0).fit(
        [attribution.linear_model_features(x, y, theta, row_ids=np.arange(60))]
    )
    att = attribution.Attributor(
        scorer, featurize=lambda r: [attribution.linear_query_features(r, theta, target=1)]
    )
    query = rng.normal(size=3)
    with rt.init(tmp_path / "ws") as ws:
        exp = attribution.explain(ws, query, top_k=3, attributor=att)
    assert "log-odds of the explained class" in exp.score_unit
    assert "removed" in exp.score_unit
    assert exp.sign_convention.startswith("positive = the training row supports")
    for sample in exp.supporting + exp.opposing:
        keep = np.ones(60)
        keep[sample.position] = 0.0
        without = attribution.fit_l2_linear(x, y, l2=1.0, sample_weight=keep)
        change = float(query @ theta - query @ without)
        assert sample.score == pytest.approx(change, rel=0.15, abs=2e-3)
    assert "score unit:" in exp.to_text()
    assert "sign: positive" in exp.to_text()


def test_issue10_per_table_figures_are_labelled_sums_of_sample_scores(built: Credit) -> None:
    c = built
    exp = c.ws.explain(_log(c, int(c.test[7])), top_k=4)
    listed = exp.supporting + exp.opposing
    for table, agg in exp.top_tables.items():
        touching = [s for s in listed if table in s.rows]
        assert agg["n_samples"] == len(touching)
        assert agg["n_rows"] == sum(len(s.rows[table]) for s in touching)
        assert agg["sum_supporting_scores"] == pytest.approx(
            sum(s.score for s in touching if s.score >= 0)
        )
        assert agg["sum_opposing_scores"] == pytest.approx(
            sum(s.score for s in touching if s.score < 0)
        )
    for total in exp.totals:
        assert total.to_json()["measure"] == exp.table_measure
    assert "overlap" in exp.table_measure
    assert "not the effect" in exp.table_measure
    assert "overlapping, not additive" in exp.to_text()


def test_issue10_statistics_follow_the_matrix_each_row_came_from(built: Credit) -> None:
    """Rows of differently standardised matrices record their own statistics (no stale reuse)."""
    c = built
    first = c.ws.explain(_log(c, int(c.test[0])), top_k=1).decision
    held_out = c.X[c.test]
    other = (c.X - held_out.mean(axis=0)) / held_out.std(axis=0)
    second = c.ws.explain(_log(c, 0, query=other[int(c.test[0])]), top_k=1).decision
    again = c.ws.explain(_log(c, int(c.test[1])), top_k=1).decision
    count = {f["name"]: f["n_rows"] for f in first.statistics[0]["fitted_on"]}
    count_other = {f["name"]: f["n_rows"] for f in second.statistics[0]["fitted_on"]}
    assert count["application"] == len(c.train)
    assert count_other["application"] == len(c.test)
    assert second.rows == first.rows
    assert again.statistics == first.statistics
    raw = c.ws.explain(_log(c, 0, query=c.X[int(c.test[0])]), top_k=1).decision
    assert raw.statistics == []
    assert raw.rows == first.rows
    # A statistic fitted on a few rows lists them (checked against its digest), not only a count.
    few = c.train[:20]
    shifted = c.X - c.X[few].mean(axis=0)
    small = c.ws.explain(_log(c, 0, query=shifted[int(c.test[0])]), top_k=1).decision
    (stat,) = small.statistics
    listed = {f["name"]: f.get("rows") for f in stat["fitted_on"]}
    keys = c.frame["SK_ID_CURR"].to_numpy()[few]
    app_rows = np.flatnonzero(np.isin(c.raw["application"]["SK_ID_CURR"].to_numpy(), keys))
    assert listed["application"] == app_rows.tolist()


def test_issue10_query_features_take_the_lineage_of_the_row_they_came_from(built: Credit) -> None:
    c = built
    position = int(c.test[2])
    assert c.att.featurize is not None
    features = list(c.att.featurize(np.asarray(c.Xs[position])[None, :]))
    bare = c.ws.explain(attribution.log_prediction(c.ws, c.att, features), top_k=1)
    assert not bare.decision.is_known
    given = attribution.log_prediction(
        c.ws, c.att, features, input_lineage=rt.lineage(c.Xs[position])
    )
    decision = c.ws.explain(given, top_k=1).decision
    keys = c.frame["SK_ID_CURR"].to_numpy()
    assert decision.rows == _expected_rows(c, int(keys[position]))
    assert {s["op"] for s in decision.statistics} == {"mean", "std"}
