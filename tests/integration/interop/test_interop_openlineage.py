"""OpenLineage run events: emitted by the real client's FileTransport, schema-valid, provable."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from _interop_fixtures import Built

import rowtrail as rt
from rowtrail.errors import (
    CheckpointError,
    InclusionProofError,
    InvalidInputError,
    MissingDependencyError,
    StateError,
    VerificationError,
)

pytest.importorskip("openlineage.client")
pytest.importorskip("jsonschema")

from rowtrail.interop import (
    PROOF_FACET,
    export_openlineage,
    openlineage_events,
    validate_openlineage_event,
    verify_openlineage_event,
)


@pytest.fixture(scope="module")
def exported(built: Built, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    out = tmp_path_factory.mktemp("ol") / "events.jsonl"
    result = export_openlineage(built.ws, out)
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert (result.n_events, result.path) == (len(lines), out)
    return lines


def _by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        found.setdefault(event["job"]["name"], []).append(event)
    return found


def test_every_emitted_line_is_a_valid_run_event_of_the_real_client(
    exported: list[dict[str, Any]],
) -> None:
    for event in exported:
        validate_openlineage_event(event)
        assert event["schemaURL"].startswith("https://openlineage.io/spec/2-0-2/OpenLineage.json")
        assert event["run"]["facets"][PROOF_FACET]["_schemaURL"].startswith(
            "https://rowtrail.dev/spec/facets/1-0-0/RowtrailLedgerProofRunFacet.json"
        )
    # The real client adds its own tags facet: emitted through it, not merely serialized.
    assert all("tags" in event["run"]["facets"] for event in exported)


def test_the_validator_rejects_what_the_schema_forbids(exported: list[dict[str, Any]]) -> None:
    bad_time = copy.deepcopy(exported[0])
    bad_time["eventTime"] = "yesterday"
    with pytest.raises(InvalidInputError, match="eventTime"):
        validate_openlineage_event(bad_time)
    bad_uuid = copy.deepcopy(exported[0])
    bad_uuid["run"]["runId"] = "not-a-uuid"
    with pytest.raises(InvalidInputError, match="runId"):
        validate_openlineage_event(bad_uuid)
    bad_facet = copy.deepcopy(exported[0])
    del bad_facet["run"]["facets"][PROOF_FACET]["leafHash"]
    with pytest.raises(InvalidInputError, match="leafHash"):
        validate_openlineage_event(bad_facet)


def test_runs_have_start_and_their_recorded_end(exported: list[dict[str, Any]]) -> None:
    jobs = _by_job(exported)
    assert [e["eventType"] for e in jobs["training/scorecard"]] == ["START", "COMPLETE"]
    assert [e["eventType"] for e in jobs["training/broken"]] == ["START", "FAIL"]
    fail = jobs["training/broken"][1]
    assert fail["run"]["facets"]["errorMessage"]["message"] == "failed:ArithmeticError"
    assert {e["run"]["runId"] for e in jobs["training/broken"]} != {
        e["run"]["runId"] for e in jobs["training/scorecard"]
    }
    assert len({e["run"]["runId"] for e in jobs["training/scorecard"]}) == 1
    # A pipeline's start is not recorded: only its completion is emitted.
    assert [e["eventType"] for e in jobs["pipeline/prep"]] == ["COMPLETE"]
    times = [e["eventTime"] for e in exported]
    assert times == sorted(times)


def test_inputs_are_sources_by_digest_and_outputs_the_model(
    built: Built, exported: list[dict[str, Any]]
) -> None:
    namespace = f"rowtrail://{built.ws.origin}"
    registered = {e.event.payload["name"]: e.event.payload
                  for e in built.ws.ledger.entries_of_kind("source.registered")}
    complete = _by_job(exported)["training/scorecard"][1]
    inputs = {d["name"]: d for d in complete["inputs"]}
    assert set(inputs) == {"source/applicants.csv", "source/noise"}
    for name, dataset in inputs.items():
        assert dataset["namespace"] == namespace
        payload = registered[name.removeprefix("source/")]
        assert dataset["facets"]["version"]["datasetVersion"] == payload["digest"]
    fields = inputs["source/applicants.csv"]["facets"]["schema"]["fields"]
    assert {f["name"] for f in fields} == set(registered["applicants.csv"]["schema"])
    (output,) = complete["outputs"]
    assert output["name"] == "model/scorecard"
    assert output["facets"]["version"]["datasetVersion"] == built.model_digest
    facet = complete["run"]["facets"][PROOF_FACET]
    sealed = built.ws.ledger.entries_of_kind("training.completed")[0]
    assert facet["ledgerIndex"] == sealed.index
    assert facet["leafHash"] == sealed.leaf_hash.hex()


def test_every_event_verifies_with_the_workspace_or_its_key_alone(
    built: Built, exported: list[dict[str, Any]]
) -> None:
    vkey = built.ws.ledger.verifier.vkey
    for event in exported:
        verify_openlineage_event(built.ws, event)
        verify_openlineage_event(vkey, event)
        verify_openlineage_event(built.ws.ledger.verifier, event)


def test_another_logs_key_does_not_verify(
    exported: list[dict[str, Any]], tmp_path: Path
) -> None:
    with rt.init(tmp_path / "other") as other:
        other.ledger.append("audit.note", {"text": "x"})
        with pytest.raises(CheckpointError):
            verify_openlineage_event(other, exported[0])


@pytest.mark.parametrize(
    ("edit", "error"),
    [
        (lambda f: f.update(leafHash="00" * 32), InclusionProofError),
        (lambda f: f["inclusionPath"].__setitem__(0, "11" * 32), InclusionProofError),
        (lambda f: f.update(ledgerIndex=f["ledgerIndex"] + 1), InclusionProofError),
        (lambda f: f.update(treeSize=f["treeSize"] + 1), CheckpointError),
        (lambda f: f.update(rootHash="22" * 32), CheckpointError),
        (lambda f: f.update(checkpoint=f["checkpoint"].replace("\n", "\n\n", 1)),
         CheckpointError),
        (lambda f: f.update(leaf=f["leaf"][:-8] + "AAAAAAA="), VerificationError),
        (lambda f: f.update(eventKind="training.started"), VerificationError),
    ],
    ids=["leaf-hash", "path", "index", "size", "root", "note", "leaf", "kind"],
)
def test_a_tampered_proof_facet_fails(
    built: Built, exported: list[dict[str, Any]], edit: Any, error: type[Exception]
) -> None:
    event = copy.deepcopy(_by_job(exported)["training/scorecard"][1])
    edit(event["run"]["facets"][PROOF_FACET])
    with pytest.raises(error):
        verify_openlineage_event(built.ws, event)


def test_a_proof_moved_to_another_event_or_time_fails(
    built: Built, exported: list[dict[str, Any]]
) -> None:
    jobs = _by_job(exported)
    moved = copy.deepcopy(jobs["training/broken"][1])
    moved["run"]["facets"][PROOF_FACET] = jobs["training/scorecard"][1]["run"]["facets"][
        PROOF_FACET
    ]
    with pytest.raises(VerificationError, match="runId"):
        verify_openlineage_event(built.ws, moved)
    retimed = copy.deepcopy(jobs["training/scorecard"][1])
    retimed["eventTime"] = "2030-01-01T00:00:00.000000Z"
    with pytest.raises(VerificationError, match="eventTime"):
        verify_openlineage_event(built.ws, retimed)
    stripped = copy.deepcopy(jobs["training/scorecard"][1])
    del stripped["run"]["facets"][PROOF_FACET]
    with pytest.raises(VerificationError, match="no rowtrail_ledgerProof"):
        verify_openlineage_event(built.ws, stripped)
    with pytest.raises(InvalidInputError, match="key of verify_openlineage_event"):
        verify_openlineage_event(42, jobs["training/scorecard"][1])


def test_export_reads_only_and_is_stable(
    built: Built, exported: list[dict[str, Any]], state_of: Path, tmp_path: Path
) -> None:
    with rt.open(built.path, read_only=True) as ws:
        size = ws.ledger.size
        again = openlineage_events(ws)
        assert ws.ledger.size == size
    strip = [(e["run"]["runId"], e["eventType"], e["eventTime"], e["job"]["name"]) for e in again]
    assert strip == [
        (e["run"]["runId"], e["eventType"], e["eventTime"], e["job"]["name"]) for e in exported
    ]


def test_bad_path_or_disabled_client_writes_nothing(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "taken.jsonl"
    existing.write_text("keep\n")
    with pytest.raises(InvalidInputError, match="path of export_openlineage"):
        export_openlineage(built.ws, existing)
    assert existing.read_text() == "keep\n"
    with pytest.raises(InvalidInputError):
        export_openlineage(built.ws, tmp_path / "missing" / "out.jsonl")
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    with pytest.raises(StateError, match="OPENLINEAGE_DISABLED"):
        export_openlineage(built.ws, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_an_empty_log_has_nothing_to_prove(tmp_path: Path) -> None:
    with rt.init(tmp_path / "empty") as ws, pytest.raises(StateError, match="no signed"):
        openlineage_events(ws)


def test_missing_client_names_the_extra(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openlineage.client.event_v2", None)
    with pytest.raises(MissingDependencyError, match=r"rowtrail\[interop\]"):
        export_openlineage(built.ws, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()


def test_registry_runs_are_emitted_with_their_model_versions(
    built: Built, exported: list[dict[str, Any]]
) -> None:
    (event,) = _by_job(exported)["registry/scorecard"]
    (run,) = built.ws.registry.runs()
    (version,) = built.ws.registry.model_versions()
    assert event["eventType"] == "COMPLETE"
    assert event["run"]["facets"][PROOF_FACET]["ledgerIndex"] == run.index
    assert {d["name"] for d in event["inputs"]} == {
        f"source/{s['name']}" for d in run.datasets for s in d.sources
    }
    (output,) = event["outputs"]
    assert output["facets"]["version"]["datasetVersion"] == version.artifact_digest
    verify_openlineage_event(built.ws, event)


def test_erasure_jobs_replace_the_model_version(
    built: Built, exported: list[dict[str, Any]]
) -> None:
    start, complete = _by_job(exported)["erasure"]
    assert (start["eventType"], complete["eventType"]) == ("START", "COMPLETE")
    assert start["run"]["runId"] == complete["run"]["runId"]
    (update,) = built.ws.ledger.entries_of_kind("erasure.model_updated")
    (before,) = complete["inputs"]
    (after,) = complete["outputs"]
    assert before["name"] == after["name"] == "model/scorecard"
    assert before["facets"]["version"]["datasetVersion"] == built.model_digest
    assert after["facets"]["version"]["datasetVersion"] == update.event.payload[
        "model_digest_after"
    ]
    verify_openlineage_event(built.ws, complete)


def test_a_client_configured_to_drop_events_leaves_no_partial_export(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "openlineage.yml"
    config.write_text("filters:\n  - type: exact\n    match: training/broken\n")
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    with pytest.raises(StateError, match="filters events"):
        export_openlineage(built.ws, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists()
