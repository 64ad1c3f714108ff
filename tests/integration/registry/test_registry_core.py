"""Registry core: datasets, runs, model versions (artifacts), deployments; caches verified."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import (
    InvalidInputError,
    StateError,
    TableIntegrityError,
    VerificationError,
)
from rowtrail.registry import DatasetVersion, ModelVersion, Registry, RunRecord


def _size(ws: rt.Workspace) -> int:
    return ws.ledger.size


def test_register_dataset_from_traced_data_records_sources_and_lineage(trained: Any) -> None:
    ws = trained.ws
    derived = trained.X[trained.X[:, 0] > -10] * 2.0
    dv = ws.registry.register_dataset("credit", sources=derived)
    assert isinstance(dv, DatasetVersion)
    assert (dv.name, dv.version, dv.lineage_status, dv.schema_status) == (
        "credit", 1, "recorded", "none_recorded"
    )
    assert dv.lineage_digest is not None
    assert dv.lineage_digest.startswith("sha256:")
    [source] = dv.sources
    assert source["name"] == "applicants"
    assert source["version"] == 1
    assert ws.ledger.entry(dv.index).event.kind == "registry.dataset"
    assert dv.actor == "alice"
    # identical content: the same version; other content: the next one
    assert ws.registry.register_dataset("credit", sources=derived) == dv
    other = ws.registry.register_dataset("credit", sources=trained.X)
    assert other.version == 2
    assert other.lineage_digest != dv.lineage_digest
    assert [d.version for d in ws.registry.datasets("credit")] == [1, 2]
    assert ws.registry.dataset("credit").version == 2
    assert ws.registry.dataset("credit", 1) == dv


def test_register_dataset_from_source_names_has_unknown_lineage(trained: Any) -> None:
    reg = trained.ws.registry
    dv = reg.register_dataset("named", sources=["applicants"])
    assert (dv.lineage_status, dv.lineage_digest) == ("unknown", None)
    assert reg.register_dataset("pinned", sources=[("applicants", 1)]).sources == dv.sources


@pytest.mark.parametrize(
    ("name", "sources", "match"),
    [
        ("", ["applicants"], "name of Registry.register_dataset"),
        ("x", [], "at least one source"),
        ("x", ["nope"], "no source 'nope'"),
        ("x", [("applicants", 9)], "no source"),
        ("x", [3.5], "source names or"),
        ("x", object(), "traced data"),
    ],
)
def test_register_dataset_bad_input_writes_nothing(
    trained: Any, name: str, sources: Any, match: str
) -> None:
    ws = trained.ws
    before = _size(ws)
    with pytest.raises(InvalidInputError, match=match):
        ws.registry.register_dataset(name, sources=sources)
    assert _size(ws) == before


def test_log_run_records_params_code_environment_hardware_and_training_seal(
    trained: Any,
) -> None:
    ws = trained.ws
    dv = ws.registry.register_dataset("credit", sources=trained.X)
    run = ws.registry.log_run(
        "scorecard", params={"C": 1.0}, metrics={"auc": 0.91}, datasets=[dv],
        training_run=trained.run_id,
    )
    assert isinstance(run, RunRecord)
    assert run.params == {"C": 1.0}
    assert run.metrics == {"auc": 0.91}
    assert run.datasets == (dv,)
    assert run.training_run == trained.run_id
    seal = ws.ledger.entry(run.training_seal or 0).event
    assert seal.kind == "training.completed"
    assert run.model_digest == seal.payload["model"]["digest"]
    assert set(run.code) >= {"git_commit", "dirty"}
    assert run.environment["packages_digest"].startswith("sha256:")
    assert run.environment["python"]
    assert run.hardware["cpu_count"] >= 1
    assert "memory_bytes" in run.hardware
    assert ws.registry.run(run.run_id) == run
    assert ws.registry.runs("scorecard") == [run]


def test_log_run_takes_code_given_by_an_importer(ws: rt.Workspace) -> None:
    run = ws.registry.log_run("imported", code={"git_commit": "abc123", "dirty": False})
    assert (run.code["git_commit"], run.code["dirty"]) == ("abc123", False)
    assert run.datasets == ()
    assert run.training_run is None
    assert run.model_digest is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"params": {"x": float("nan")}}, "JSON-ready"),
        ({"params": [1]}, "mapping with str keys"),
        ({"metrics": {1: 2}}, "mapping with str keys"),
        ({"datasets": ["credit"]}, "list of DatasetVersion"),
        ({"training_run": "run-missing"}, "no training run"),
        ({"training_run": 5}, "TrainingRun or its run id"),
    ],
)
def test_log_run_bad_input_writes_nothing(
    trained: Any, kwargs: dict[str, Any], match: str
) -> None:
    ws = trained.ws
    before = _size(ws)
    with pytest.raises(InvalidInputError, match=match):
        ws.registry.log_run("scorecard", **kwargs)
    assert _size(ws) == before


def test_register_model_binds_the_sealed_fit_and_load_rehashes(trained: Any) -> None:
    ws = trained.ws
    run = ws.registry.log_run("scorecard", training_run=trained.run_id)
    mv = ws.registry.register_model("scorecard", trained.estimator, run=run)
    assert isinstance(mv, ModelVersion)
    assert (mv.version, mv.flavor, mv.binding, mv.bound) == (1, "sklearn", "parameters", True)
    assert mv.weights_digest == run.model_digest
    assert mv.artifact_digest == rt.hashing.sha256_digest(pickle.dumps(trained.estimator, 5))
    loaded = mv.load()
    X = np.asarray(trained.X)  # noqa: N806
    assert np.array_equal(loaded.predict(X), trained.estimator.predict(X))
    # a model the run did not train is refused, nothing written
    from sklearn.linear_model import LogisticRegression

    other = LogisticRegression(C=0.01).fit(X, trained.y)
    before = _size(ws)
    with pytest.raises(InvalidInputError, match="not the model that run trained"):
        ws.registry.register_model("scorecard", other, run=run)
    assert _size(ws) == before
    # a second version numbers on
    assert ws.registry.register_model("scorecard", b"v2").version == 2
    assert [m.version for m in ws.registry.model_versions("scorecard")] == [1, 2]


def test_register_model_bytes_and_paths(ws: rt.Workspace, tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"weights-from-file")
    from_path = ws.registry.register_model("m", path)
    assert from_path.flavor == "bytes"
    assert from_path.load() == b"weights-from-file"
    assert ws.registry.load_model("m", 1) == b"weights-from-file"
    assert ws.registry.register_model("m", b"raw").load() == b"raw"


@pytest.mark.parametrize(
    ("model", "flavor", "match"),
    [
        (object(), None, "must be a fitted scikit-learn estimator"),
        (b"x", "onnx", "flavor of Registry.register_model"),
        ("/no/such/file", None, "existing file"),
        ({"w": 1}, "bytes", "bytes or a path"),
        ([1, 2], "torch", "torch module or a state dict"),
    ],
)
def test_register_model_bad_input_writes_nothing(
    ws: rt.Workspace, model: Any, flavor: str | None, match: str
) -> None:
    before = _size(ws)
    with pytest.raises(InvalidInputError, match=match):
        ws.registry.register_model("m", model, flavor=flavor)
    assert _size(ws) == before
    assert list(ws.blobs.iter_digests()) == []


def test_artifact_tampering_makes_load_raise(ws: rt.Workspace) -> None:
    mv = ws.registry.register_model("m", b"original weights")
    path = ws.blobs.path_of(mv.artifact_digest)
    path.chmod(0o600)
    path.write_bytes(b"evil weights")
    with pytest.raises(VerificationError, match="altered"):
        mv.load()


def test_deploy_and_look_up_walks_to_run_data_and_code(trained: Any) -> None:
    ws = trained.ws
    reg = ws.registry
    dv = reg.register_dataset("credit", sources=trained.X)
    run = reg.log_run("scorecard", datasets=[dv], training_run=trained.run_id)
    reg.register_model("scorecard", trained.estimator, run=run)
    dep = reg.deploy("scorecard", 1, environment="prod-eu", config={"threshold": 0.5})
    assert dep.deployment_id.startswith("dep-")
    assert dep.config_digest == rt.hashing.sha256_digest(
        rt.hashing.canonical_json({"threshold": 0.5})
    )
    found = reg.deployment(dep.deployment_id)
    assert found == dep
    assert found.model_version.run is not None
    assert found.model_version.run.datasets[0].sources[0]["name"] == "applicants"
    assert found.model_version.run.code == run.code
    assert [d.deployment_id for d in reg.deployments("scorecard")] == [dep.deployment_id]
    assert reg.deployments("other") == []
    with pytest.raises(InvalidInputError, match="no deployment 'dep-nope'"):
        reg.deployment("dep-nope")


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("m", 9), {"environment": "prod"}, "no model 'm' version 9"),
        (("m", 1.5), {"environment": "prod"}, "version number or an alias"),
        (("m", "production"), {"environment": "prod"}, "alias 'production'"),
        (("m", 1), {"environment": ""}, "environment of Registry.deploy"),
        (("m", 1), {"environment": "prod", "config": {"x": b"1"}}, "JSON-ready"),
    ],
)
def test_deploy_bad_input_writes_nothing(
    ws: rt.Workspace, args: tuple[Any, ...], kwargs: dict[str, Any], match: str
) -> None:
    ws.registry.register_model("m", b"w")
    before = _size(ws)
    with pytest.raises(InvalidInputError, match=match):
        ws.registry.deploy(*args, **kwargs)
    assert _size(ws) == before


def _populate(trained: Any) -> Any:
    reg = trained.ws.registry
    dv = reg.register_dataset("credit", sources=trained.X)
    run = reg.log_run("scorecard", datasets=[dv], training_run=trained.run_id)
    reg.register_model("scorecard", trained.estimator, run=run)
    reg.attest("scorecard", 1, kind="tests", passed=True, report={"n": 3})
    reg.grant_role("alice", "approver")
    reg.approve("scorecard", 1, stage="staging")
    reg.promote("scorecard", 1, stage="staging")
    return reg.deploy("scorecard", "staging", environment="prod-eu")


TAMPERS = {
    "delete": "DELETE FROM {table} WHERE ledger_index = (SELECT max(ledger_index) FROM {table})",
    "edit": "UPDATE {table} SET actor = 'mallory'",
}


@pytest.mark.parametrize(
    "table",
    [
        "registry_datasets",
        "registry_runs",
        "registry_models",
        "registry_aliases",
        "registry_deployments",
        "registry_reviews",
        "registry_governance",
    ],
)
@pytest.mark.parametrize("tamper", ["delete", "edit"])
def test_verify_catches_a_tampered_registry_table_and_answers_do_not_change(
    trained: Any, table: str, tamper: str
) -> None:
    ws = trained.ws
    dep = _populate(trained)
    before = ws.registry.deployment(dep.deployment_id)
    history = ws.registry.history("scorecard")
    ws.verify()
    with ws.db.write() as conn:
        conn.execute(TAMPERS[tamper].format(table=table))
    with pytest.raises(TableIntegrityError) as caught:
        ws.verify()
    assert caught.value.table == table
    # a fresh handle answers from the proven events, as before the tampering
    fresh = Registry(ws)
    assert fresh.deployment(dep.deployment_id) == before
    assert fresh.history("scorecard") == history


def test_read_only_handle_answers_and_refuses_writes(trained: Any, tmp_path: Path) -> None:
    dep = _populate(trained)
    path = trained.ws.path
    trained.ws.close()
    with rt.open(path, read_only=True) as ro:
        assert ro.registry.deployment(dep.deployment_id).deployment_id == dep.deployment_id
        with pytest.raises(StateError, match="read-only"):
            ro.registry.register_model("m", b"w")


def test_actor_comes_from_configuration_never_the_os_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "os-user")
    monkeypatch.setenv("ROWTRAIL_ACTOR", "svc-scoring")
    with rt.init(tmp_path / "a") as ws:
        assert ws.registry.register_model("m", b"w").actor == "svc-scoring"
    with rt.open(tmp_path / "a", actor="bob") as ws:
        assert ws.registry.register_model("m", b"w2").actor == "bob"
        assert Registry(ws, actor="carol").register_model("m", b"w3").actor == "carol"
    monkeypatch.delenv("ROWTRAIL_ACTOR")
    with rt.open(tmp_path / "a") as ws:
        assert ws.registry.register_model("m", b"w4").actor == "rowtrail"


def test_register_dataset_takes_a_lineage_view(trained: Any) -> None:
    view = rt.lineage(trained.X[:10])
    dv = trained.ws.registry.register_dataset("view", sources=view)
    assert dv.lineage_status == "recorded"
    assert dv.sources[0]["name"] == "applicants"


def test_imported_run_records_what_the_other_system_recorded(ws: rt.Workspace) -> None:
    run = ws.registry.log_run(
        "imported", code={"git_commit": None, "dirty": None}, environment={},
        hardware={}, origin={"system": "mlflow", "run_id": "abc"},
    )
    assert (run.environment, run.hardware) == ({}, {})
    assert run.origin == {"system": "mlflow", "run_id": "abc"}
    assert run.to_json()["origin"] == {"system": "mlflow", "run_id": "abc"}
    before = _size(ws)
    with pytest.raises(InvalidInputError, match=r"origin of Registry\.log_run"):
        ws.registry.log_run("imported", origin=["mlflow"])  # type: ignore[arg-type]
    assert _size(ws) == before


def test_torch_model_is_bound_to_the_sealed_weights(ws: rt.Workspace) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    with ws.training_run("net", model=model) as run:
        pass
    record = ws.registry.log_run("net", training_run=run)
    mv = ws.registry.register_model("net", model, run=record)
    assert (mv.flavor, mv.binding) == ("torch", "artifact")
    assert mv.artifact_digest == record.model_digest
    state = mv.load()
    assert torch.equal(state["weight"], model.state_dict()["weight"])
    assert ws.registry.register_model("net-state", model.state_dict()).flavor == "torch"
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(InvalidInputError, match="not the model that run trained"):
        ws.registry.register_model("net", model, run=record)


def test_deployment_at_answers_what_ran_in_an_environment(ws: rt.Workspace) -> None:
    reg = ws.registry
    reg.register_model("m", b"v1")
    reg.register_model("m", b"v2")
    first = reg.deploy("m", 1, environment="prod")
    reg.deploy("m", 2, environment="staging")
    second = reg.deploy("m", 2, environment="prod")
    assert reg.deployment_at("prod", first.created_at.replace(year=2000)) is None
    assert reg.deployment_at("prod", first.created_at) == first
    assert reg.deployment_at("prod", second.created_at.isoformat()) == second
    assert reg.deployment_at("nowhere", second.created_at) is None
    with pytest.raises(InvalidInputError, match=r"when of Registry\.deployment_at"):
        reg.deployment_at("prod", "noon")


def _abandoned_run(ws: rt.Workspace) -> None:
    with ws.ledger.transaction():
        ws.registry.log_run("discarded", code={})
        assert [r.name for r in ws.registry.runs()] == ["kept", "discarded"]  # seen inside it
        raise RuntimeError("abandon")


def test_answers_forget_a_write_that_was_rolled_back(ws: rt.Workspace) -> None:
    """A run logged inside a transaction that rolls back is not answered afterwards."""
    reg = ws.registry
    reg.log_run("kept", code={})
    with pytest.raises(RuntimeError, match="abandon"):
        _abandoned_run(ws)
    reg.log_run("later", code={})
    assert [r.name for r in reg.runs()] == ["kept", "later"]
    assert [r.name for r in Registry(ws).runs()] == ["kept", "later"]
