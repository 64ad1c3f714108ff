"""Policy-enforced provenance: unknown lineage, failed schemas, unverifiable records, overrides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import PolicyRefusedError
from rowtrail.registry import Registry

STRICT = {
    "provenance": {
        "lineage": "known",
        "schema": "valid",
        "records": "verified",
        "override_role": "risk-officer",
    }
}


def _strict(ws: rt.Workspace) -> tuple[Registry, Registry]:
    """alice: admin; rita: risk officer. The strict provenance policy is set."""
    reg = ws.registry
    reg.grant_role("rita", "risk-officer")
    reg.set_policy(STRICT)
    return reg, Registry(ws, actor="rita")


def test_unknown_lineage_refuses_a_run_until_an_authorised_override(trained: Any) -> None:
    ws = trained.ws
    reg, rita = _strict(ws)
    named = reg.register_dataset("named", sources=["applicants"])
    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError, match="lineage: dataset:named:1 has unknown") as caught:
        reg.log_run("scorecard", datasets=[named])
    assert caught.value.index == before
    assert ws.ledger.size == before + 1  # only the refusal
    assert reg.runs() == []
    # an override by someone without the override role is refused and logged
    with pytest.raises(PolicyRefusedError, match="'alice' does not hold the 'risk-officer'"):
        reg.override(named, checks=["lineage"], reason="vendor extract")
    assert reg.refusals()[-1].action == "override"
    waiver = rita.override(named, checks=["lineage"], reason="vendor extract, reviewed")
    assert (waiver.target, waiver.checks, waiver.actor) == ("dataset:named:1", ("lineage",), "rita")
    run = reg.log_run("scorecard", datasets=[named])
    assert run.overrides == (waiver.index,)
    assert ws.ledger.entry(run.index).event.payload["overrides"] == [waiver.index]
    # traced data has known lineage: no override needed
    traced = reg.register_dataset("t", sources=trained.X)
    assert reg.log_run("traced", datasets=[traced]).overrides == ()


def test_override_only_waives_the_checks_it_names(trained: Any) -> None:
    reg, rita = _strict(trained.ws)
    named = reg.register_dataset("named", sources=["applicants"])
    rita.override(named, checks=["schema"], reason="wrong check")
    with pytest.raises(PolicyRefusedError, match="lineage"):
        reg.log_run("scorecard", datasets=[named])


def test_policy_any_lets_unknown_lineage_through(trained: Any) -> None:
    reg = trained.ws.registry
    named = reg.register_dataset("named", sources=["applicants"])
    assert reg.log_run("no-policy", datasets=[named]).overrides == ()
    reg.grant_role("alice", "admin")
    reg.set_policy({"provenance": {"lineage": "any", "schema": "valid"}})
    assert reg.log_run("lineage-any", datasets=[named]).overrides == ()


def test_failed_schema_refuses_the_dataset(ws: rt.Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "applicants.csv"
    csv.write_text("id,age,income\na1,30,100\na2,-5,250\na3,41,90\n")
    X = rt.load_csv(  # noqa: N806
        csv, workspace=ws, subject="id", schema={"age": {"dtype": "int", "min": 0}}
    )
    reg, rita = _strict(ws)
    dv = reg.register_dataset("credit", sources=X)
    assert dv.schema_status == "failed"
    with pytest.raises(PolicyRefusedError) as caught:
        reg.log_run("scorecard", datasets=[dv])
    assert caught.value.reasons == (
        "schema: dataset:credit:1: a source recorded schema violations at ingestion",
    )
    rita.override(dv, checks=["schema"], reason="row 2 is excluded downstream")
    assert len(reg.log_run("scorecard", datasets=[dv]).overrides) == 1


def test_training_run_without_row_ids_is_unknown_lineage(ws: rt.Workspace) -> None:
    with ws.training_run("opaque") as run:
        run.log_split("train", np.arange(10, dtype=np.int64), known=False)
    reg, rita = _strict(ws)
    with pytest.raises(PolicyRefusedError, match="trained without row ids") as caught:
        reg.log_run("scorecard", training_run=run)
    assert all(r.startswith("lineage:") for r in caught.value.reasons)
    rita.override(f"training:{run.run_id}", checks=["lineage"], reason="legacy model")
    assert reg.log_run("scorecard", training_run=run).training_run == run.run_id


def test_a_training_run_that_did_not_complete_is_refused(ws: rt.Workspace) -> None:
    def crash() -> str:
        with ws.training_run("crashed") as run:
            run.log_split("train", np.arange(4, dtype=np.int64), known=False)
            raise RuntimeError(run.run_id)

    with pytest.raises(RuntimeError) as crashed:
        crash()
    run_id = str(crashed.value)
    reg, _ = _strict(ws)
    with pytest.raises(PolicyRefusedError, match="ended with status 'failed:RuntimeError'"):
        reg.log_run("scorecard", training_run=run_id)


def test_records_that_do_not_verify_refuse_the_run(trained: Any) -> None:
    ws = trained.ws
    reg, _ = _strict(ws)
    dv = reg.register_dataset("credit", sources=trained.X)
    source_event = dv.sources[0]["ledger_index"]
    leaf = bytes(ws.db.query("SELECT leaf FROM events WHERE idx = ?", (source_event,))[0][0])
    with ws.db.write() as conn:
        conn.execute("UPDATE events SET leaf = ? WHERE idx = ?",
                     (leaf.replace(b"applicants", b"applicantz"), source_event))
    path = ws.path
    ws.close()
    with rt.open(path, actor="alice") as fresh:
        with pytest.raises(PolicyRefusedError, match="records: dataset:credit:1") as caught:
            fresh.registry.log_run("scorecard", datasets=[dv])
        assert "do not verify" in caught.value.reasons[0]
        Registry(fresh, actor="rita").override(dv, checks=["records"], reason="restored")
        assert fresh.registry.log_run("scorecard", datasets=[dv]).overrides


def test_promotion_checks_the_runs_provenance_and_a_model_override(trained: Any) -> None:
    ws = trained.ws
    reg = ws.registry
    named = reg.register_dataset("named", sources=["applicants"])
    run = reg.log_run("scorecard", datasets=[named])  # no policy yet
    reg.register_model("scorecard", b"weights", run=run)
    reg.grant_role("rita", "risk-officer")
    reg.set_policy(STRICT)
    rita = Registry(ws, actor="rita")
    with pytest.raises(PolicyRefusedError, match="lineage: dataset:named:1"):
        reg.register_model("scorecard", b"weights-2", run=run)
    with pytest.raises(PolicyRefusedError, match="lineage: dataset:named:1"):
        reg.promote("scorecard", 1, stage="production")
    waiver = rita.override(reg.model_version("scorecard", 1), checks=["lineage"],
                           reason="approved by the risk committee")
    change = reg.promote("scorecard", 1, stage="production")
    assert change.overrides == (waiver.index,)
    assert [r.action for r in reg.refusals()] == ["register_model", "promote"]


def test_a_run_naming_no_data_has_unknown_lineage(trained: Any) -> None:
    """A run with neither a dataset version nor a training run (e.g. an import) is not clean."""
    ws = trained.ws
    reg, rita = _strict(ws)
    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError, match="names no dataset version and no training run"):
        reg.log_run("imported", params={"C": 1.0})
    assert ws.ledger.size == before + 1  # only the refusal
    assert reg.runs() == []
    waiver = rita.override("run:imported", checks=["lineage"], reason="imported, reviewed")
    run = reg.log_run("imported", params={"C": 1.0})
    assert run.overrides == (waiver.index,)


def test_a_training_run_refuses_data_of_unknown_lineage_until_overridden(ws: rt.Workspace) -> None:
    """Under the policy, ``ws.training_run`` itself refuses a split without row ids (logged)."""
    reg, rita = _strict(ws)
    plain = np.random.default_rng(1).normal(size=(30, 3))  # untraced: no row ids
    labels = (plain[:, 0] > 0).astype(float)
    from rowtrail.training import fit_logistic

    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError, match="no row ids"), \
            ws.training_run("untraced", run_id="run-untraced") as run:
        fit_logistic(plain, labels, l2=1.0, run=run)
    refusal = reg.refusals()[-1]
    assert (refusal.action, refusal.target) == ("training", "training:run-untraced")
    kinds = [ws.ledger.entry(i).event.kind for i in range(before, ws.ledger.size)]
    assert "training.split" not in kinds
    assert "registry.refusal" in kinds
    # traced data passes the same gate; an override of the planned run id admits the other
    traced = rt.track(plain, source="traced", workspace=ws)
    with ws.training_run("traced") as run:
        fit_logistic(traced, labels, l2=1.0, run=run)
    rita.override("training:run-untraced-2", checks=["lineage"], reason="vendor data, reviewed")
    with ws.training_run("untraced", run_id="run-untraced-2") as run:
        fit_logistic(plain, labels, l2=1.0, run=run)
    assert ws.verify().size == ws.ledger.size
