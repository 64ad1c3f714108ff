"""W3C PROV-JSON export: round-trips through the real ``prov`` package, names ledger digests."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from _interop_fixtures import Built

import rowtrail as rt
from rowtrail.errors import InvalidInputError, MissingDependencyError
from rowtrail.interop import export_prov, prov_document

prov_model = pytest.importorskip("prov.model")


@pytest.fixture(scope="module")
def exported(built: Built, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    path = tmp_path_factory.mktemp("prov") / "prov.json"
    result = export_prov(built.ws, path)
    return result, json.loads(path.read_text("utf-8"))


def _attr(document: dict[str, Any], section: str, name: str, key: str) -> Any:
    value = document[section][name][key]
    return value["$"] if isinstance(value, dict) else value


def test_round_trip_through_prov_gives_the_same_document(
    built: Built, exported: tuple[Any, Any]
) -> None:
    result, _ = exported
    text = result.path.read_text("utf-8")
    parsed = prov_model.ProvDocument.deserialize(content=text, format="json")
    assert parsed == prov_document(built.ws)
    kinds: dict[str, int] = {}
    for record in parsed.get_records():
        kinds[record.get_type().localpart] = kinds.get(record.get_type().localpart, 0) + 1
    assert kinds == result.counts


def test_counts_are_those_of_the_recorded_events(built: Built, exported: tuple[Any, Any]) -> None:
    result, document = exported
    # 3 sources, the pipeline outputs, the model and the erased model's update, the registry's
    # dataset and model version, the prediction, and the signed checkpoint.
    entities = document["entity"]
    kinds = sorted(_attr(document, "entity", name, "prov:type") for name in entities)
    assert kinds.count("rtx:Source") == 3
    assert kinds.count("rtx:Model") == 2
    assert kinds.count("rtx:Prediction") == 1
    assert kinds.count("rtx:SignedCheckpoint") == 1
    activities = sorted(_attr(document, "activity", n, "prov:type") for n in document["activity"])
    assert activities.count("rtx:TrainingRun") == 2
    assert activities.count("rtx:Erasure") == 1
    assert activities.count("rtx:RegistryRun") == 1
    assert activities.count("rtx:Deployment") == 1
    assert kinds.count("rtx:DatasetVersion") == 1
    assert kinds.count("rtx:ModelVersion") == 1
    assert activities.count("rtx:Pipeline") == len(
        built.ws.ledger.entries_of_kind("lineage.persisted")
    )
    assert list(document["agent"]) == ["rt:actor/alice"]
    assert result.counts["Agent"] == 1
    assert result.counts["Association"] == len(document["activity"])


def test_document_names_the_ledger_digests(built: Built, exported: tuple[Any, Any]) -> None:
    _, document = exported
    text = json.dumps(document)
    for kind in ("source.registered", "training.completed", "prediction.made",
                 "erasure.requested"):
        for entry in built.ws.ledger.entries_of_kind(kind):
            assert entry.leaf_hash.hex() in text
    checkpoint = document["entity"]["rt:checkpoint"]
    latest = built.ws.ledger.latest_checkpoint()
    assert latest is not None
    assert checkpoint["rtx:note"] == latest.note
    assert checkpoint["rtx:rootHash"] == latest.root.hex()
    model = document["entity"][f"rt:model/{built.model_digest.replace(':', '%3A')}"]
    assert model["rtx:digest"] == built.model_digest


def test_relations_link_prediction_model_sources_and_erasure(
    built: Built, exported: tuple[Any, Any]
) -> None:
    _, document = exported
    model = f"rt:model/{built.model_digest.replace(':', '%3A')}"
    derived = {(r["prov:generatedEntity"], r["prov:usedEntity"])
               for r in document["wasDerivedFrom"].values()}
    assert (f"rt:prediction/{built.prediction}", model) in derived
    assert (model, "rt:source/applicants.csv/v1") in derived
    revisions = [r for r in document["wasDerivedFrom"].values()
                 if r.get("prov:type", {}).get("$") == "prov:Revision"]
    assert len(revisions) == 1
    assert revisions[0]["prov:usedEntity"] == model
    generated = {r["prov:entity"]: r["prov:activity"]
                 for r in document["wasGeneratedBy"].values()}
    assert generated[model].startswith("rt:training/")
    assert generated[revisions[0]["prov:generatedEntity"]].startswith("rt:erasure/")


def test_subjects_only_as_pseudonyms(built: Built, exported: tuple[Any, Any]) -> None:
    _, document = exported
    text = json.dumps(document)
    assert built.subject in text
    assert "app-0" not in text  # no raw identifier of any applicant
    assert str(built.csv.parent) not in text  # nor source paths


def test_subject_filter_keeps_that_subjects_decisions(built: Built, tmp_path: Path) -> None:
    mine = export_prov(built.ws, tmp_path / "mine.json", subject=built.subject_raw)
    same = export_prov(built.ws, tmp_path / "same.json", subject=built.subject)
    assert mine.counts == same.counts
    other = export_prov(built.ws, tmp_path / "other.json", subject="app-999")
    assert mine.counts["Activity"] - other.counts["Activity"] == 1  # the erasure
    assert "app-999" not in (tmp_path / "other.json").read_text()
    document = json.loads((tmp_path / "other.json").read_text())
    assert f"rt:prediction/{built.prediction}" not in document["entity"]


def test_reads_only_and_refuses_an_existing_file(
    built: Built, state_of: Path, tmp_path: Path
) -> None:
    with rt.open(built.path, read_only=True) as ws:
        size = ws.ledger.size
        export_prov(ws, tmp_path / "ro.json")
        assert ws.ledger.size == size
    with pytest.raises(InvalidInputError, match="path of export_prov"):
        export_prov(built.ws, tmp_path / "ro.json")


def test_missing_prov_names_the_extra(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "prov.model", None)
    with pytest.raises(MissingDependencyError, match=r"rowtrail\[interop\]"):
        export_prov(built.ws, tmp_path / "p.json")
    assert not (tmp_path / "p.json").exists()


def test_registry_entities_link_data_run_model_and_deployment(
    built: Built, exported: tuple[Any, Any]
) -> None:
    _, document = exported
    (run,) = built.ws.registry.runs()
    (deployment,) = built.ws.registry.deployments()
    used = {(r["prov:activity"], r["prov:entity"]) for r in document["used"].values()}
    assert (f"rt:run/{run.run_id}", "rt:dataset/credit/v1") in used
    assert (f"rt:deployment/{deployment.deployment_id}", "rt:model-version/scorecard/v1") in used
    generated = {r["prov:entity"]: r["prov:activity"]
                 for r in document["wasGeneratedBy"].values()}
    assert generated["rt:model-version/scorecard/v1"] == f"rt:run/{run.run_id}"
    derived = {(r["prov:generatedEntity"], r["prov:usedEntity"])
               for r in document["wasDerivedFrom"].values()}
    model = f"rt:model/{built.model_digest.replace(':', '%3A')}"
    assert ("rt:model-version/scorecard/v1", model) in derived
    assert ("rt:dataset/credit/v1", "rt:source/applicants.csv/v1") in derived
    informed = {(r["prov:informed"], r["prov:informant"])
                for r in document["wasInformedBy"].values()}
    assert (f"rt:run/{run.run_id}", f"rt:training/{run.training_run}") in informed
    version = document["entity"]["rt:model-version/scorecard/v1"]
    assert version["rtx:artifactDigest"] == built.model_digest  # the sealed weights, bound


def test_served_predictions_are_generated_by_their_deployment(tmp_path: Path) -> None:
    # The serving logger's batch event, as its module documents it (parallel lists per
    # prediction); appended here directly, as the logger lives on another branch.
    with rt.init(tmp_path / "ws", actor="svc") as ws:
        ws.registry.register_model("m", b"weights", flavor="bytes")
        deployment = ws.registry.deploy("m", 1, environment="prod")
        mine, other = ws.pseudonymize("a-1"), ws.pseudonymize("a-2")
        ws.ledger.append("registry.prediction_batch", {
            "format": 1, "deployment": deployment.deployment_id, "method": "predict",
            "n_predictions": 2, "ids": ["pred-x-0", "pred-x-1"],
            "times": ["2026-03-01T00:00:00.000000Z", "2026-03-01T00:00:01.000000Z"],
            "outputs": [[0.2, 0.8], 1], "input_digests": ["sha256:" + "a" * 64, None],
            "input_lineage": [{"status": "unknown", "reason": "test"}] * 2,
            "subjects": [mine, other],
        }, subjects=[mine, other])
        document = json.loads(prov_document(ws).serialize(format="json"))
        only = json.loads(prov_document(ws, subject="a-1").serialize(format="json"))
    prediction = document["entity"]["rt:prediction/pred-x-0"]
    assert prediction["rtx:output"] == "[0.2,0.8]"
    assert prediction["rtx:subject"] == mine
    generated = {r["prov:entity"]: r["prov:activity"]
                 for r in document["wasGeneratedBy"].values()}
    assert generated["rt:prediction/pred-x-1"] == f"rt:deployment/{deployment.deployment_id}"
    used = {(r["prov:activity"], r["prov:entity"]) for r in document["used"].values()}
    assert (f"rt:deployment/{deployment.deployment_id}", "rt:model-version/m/v1") in used
    assert "rt:prediction/pred-x-0" in only["entity"]
    assert "rt:prediction/pred-x-1" not in only["entity"]


def test_approvals_and_promotions_name_their_actors_and_evidence(
    built: Built, exported: tuple[Any, Any]
) -> None:
    _, document = exported
    (change,) = built.ws.registry.history("scorecard")
    # the policy's gate relied on them
    assert change.approvals
    assert change.attestations
    activity = f"rt:aliaschange/{change.index}"
    assert document["activity"][activity]["rtx:alias"] == "production"
    informed = {r["prov:informant"] for r in document["wasInformedBy"].values()
                if r["prov:informed"] == activity}
    assert informed == {f"rt:approval/{i}" for i in change.approvals} | {
        f"rt:attestation/{i}" for i in change.attestations
    }
    used = {(r["prov:activity"], r["prov:entity"]) for r in document["used"].values()}
    for name in informed | {activity}:
        assert (name, "rt:model-version/scorecard/v1") in used
    assert "ok" not in {v for a in document["activity"].values() for v in a.values()
                        if isinstance(v, str)}  # free-text comments are not exported
