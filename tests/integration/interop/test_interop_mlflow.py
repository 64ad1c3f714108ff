"""MLflow import and attachment against the real ``mlflow`` library and a local sqlite store."""

# ruff: noqa: N806 - X, y: scikit-learn's naming

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.errors import (
    CheckpointError,
    InclusionProofError,
    InvalidInputError,
    MissingDependencyError,
    StateError,
    VerificationError,
)
from rowtrail.interop import attach_to_mlflow, import_mlflow, verify_mlflow_tags

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("sklearn")

from mlflow import MlflowClient  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

# MLflow's own sqlite store uses SQLAlchemy APIs deprecated in SQLAlchemy 2.1; the warnings are
# MLflow's, raised inside it, not rowtrail's.
pytestmark = pytest.mark.filterwarnings(
    "ignore:The ``noload`` loader strategy is deprecated:DeprecationWarning"
)


@dataclass
class Store:
    """A real MLflow tracking store in a temporary directory, and what was logged to it."""

    uri: str
    root: Path
    lr_run: str
    plain_run: str
    other_run: str

    def client(self) -> Any:
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    # Setting the store up is MLflow's business: its own warnings (type-hint inference when
    # logging a model, SQLAlchemy deprecations) are not under test here.
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        credit = client.create_experiment("credit", artifact_location=str(root / "artifacts"))
        other = client.create_experiment("other", artifact_location=str(root / "artifacts-o"))
        X = np.random.default_rng(0).normal(size=(40, 3))
        y = (X[:, 0] > 0).astype(int)
        with mlflow.start_run(experiment_id=credit, run_name="lr") as run:
            mlflow.log_params({"C": 1.0, "penalty": "l2"})
            mlflow.log_metrics({"auc": 0.81, "loss": 0.3})
            mlflow.set_tag("mlflow.source.git.commit", "0123abcd")
            mlflow.log_input(mlflow.data.from_numpy(X, name="train"), context="training")
            mlflow.sklearn.log_model(
                LogisticRegression().fit(X, y), name="model",
                pip_requirements=["scikit-learn"], registered_model_name="scorecard",
            )
        plain = client.create_run(credit, run_name="plain")
        client.log_param(plain.info.run_id, "depth", 3)
        client.log_metric(plain.info.run_id, "auc", float("nan"))
        (root / "weights.bin").write_bytes(b"plain weights")
        client.log_artifact(plain.info.run_id, str(root / "weights.bin"), "model")
        client.create_model_version(
            "scorecard", f"{plain.info.artifact_uri}/model", run_id=plain.info.run_id
        )
        client.set_terminated(plain.info.run_id)
        third = client.create_run(other, run_name="elsewhere")
        client.log_metric(third.info.run_id, "rmse", 1.5)
        client.set_terminated(third.info.run_id)
        yield Store(uri, root, run.info.run_id, plain.info.run_id, third.info.run_id)


@pytest.fixture(autouse=True)
def _mlflow_env(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test talks to the temporary store only, never ~/mlruns, and offline."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[rt.Workspace]:
    with rt.init(tmp_path / "ws", actor="importer") as workspace:
        yield workspace


def _events(ws: rt.Workspace, kind: str) -> list[dict[str, Any]]:
    return [dict(e.event.payload) for e in ws.ledger.entries_of_kind(kind)]


def _tar_digest(directory: Path) -> str:
    """The digest of the MLflow model directory packed as rowtrail documents it."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            info = tarfile.TarInfo(path.relative_to(directory).as_posix())
            data = path.read_bytes()
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
    return "sha256:" + hashlib.sha256(buffer.getvalue()).hexdigest()


def test_import_records_runs_and_model_versions(
    store: Store, ws: rt.Workspace, tmp_path: Path
) -> None:
    result = import_mlflow(ws, store.uri)
    assert sorted(r.mlflow_run_id for r in result.runs) == sorted(
        [store.lr_run, store.plain_run, store.other_run]
    )
    assert all(r.new for r in result.runs)
    assert len(result.model_versions) == 2
    by_mlflow = {r.mlflow_run_id: ws.registry.run(r.run_id) for r in result.runs}
    lr = by_mlflow[store.lr_run]
    assert (lr.name, dict(lr.params), dict(lr.metrics)) == (
        "credit", {"C": "1.0", "penalty": "l2"}, {"auc": 0.81, "loss": 0.3}
    )
    assert lr.code["git_commit"] == "0123abcd"
    assert lr.code["dirty"] is None
    assert lr.actor == "importer"  # the configured actor, not MLflow's user
    assert by_mlflow[store.plain_run].code["git_commit"] is None  # unknown, not guessed
    assert by_mlflow[store.plain_run].metrics == {"auc": "nan"}
    assert lr.environment == {}  # MLflow records no environment: unknown, not the importer's
    assert lr.hardware == {}
    facts = {r.origin["mlflow_run_id"]: r.origin for r in ws.registry.runs() if r.origin}
    assert facts[store.lr_run]["system"] == "mlflow"
    assert facts[store.lr_run]["mlflow_user"] == store.client().get_run(
        store.lr_run).info.user_id
    (dataset,) = facts[store.lr_run]["datasets"]
    assert dataset["name"] == "train"
    assert len(dataset["mlflow_digest"]) == 8
    assert facts[store.lr_run]["start_time"].endswith("Z")


def test_model_artifacts_are_hashed_with_sha256_and_bound_to_their_run(
    store: Store, ws: rt.Workspace, tmp_path: Path
) -> None:
    result = import_mlflow(ws, store.uri)
    client = store.client()
    for imported in result.model_versions:
        location = client.get_model_version_download_uri(imported.mlflow_name,
                                                          imported.mlflow_version)
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=str(tmp_path / str(imported.mlflow_version))))
        assert imported.artifact_digest == _tar_digest(local)
        version = ws.registry.model_version(imported.name, imported.version)
        assert version.artifact_digest == imported.artifact_digest
        mlflow_run = client.get_model_version(imported.mlflow_name,
                                              str(imported.mlflow_version)).run_id
        assert version.run is not None
        assert version.run.run_id == next(r.run_id for r in result.runs
                                          if r.mlflow_run_id == mlflow_run)
        data = version.load()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == imported.artifact_digest
    files = {e["mlflow_version"]: e["files"] for e in _events(ws, "interop.mlflow_model_version")}
    assert "MLmodel" in {f["path"] for f in files[1]}
    assert {f["path"] for f in files[2]} == {"weights.bin"}
    assert files[2][0]["sha256"] == "sha256:" + hashlib.sha256(b"plain weights").hexdigest()
    ws.verify()


def test_reimport_records_nothing_new_until_mlflow_changes(
    store: Store, ws: rt.Workspace
) -> None:
    first = import_mlflow(ws, store.uri)
    size = ws.ledger.size
    again = import_mlflow(ws, store.uri)
    assert again.n_new == 0
    assert ws.ledger.size == size
    assert [r.run_id for r in again.runs] == [r.run_id for r in first.runs]
    store.client().log_metric(store.other_run, "mae", 0.5)
    changed = import_mlflow(ws, store.uri)
    assert [r.mlflow_run_id for r in changed.runs if r.new] == [store.other_run]
    assert changed.n_new == 1


def test_experiment_filter_and_bad_input_write_nothing(
    store: Store, ws: rt.Workspace, tmp_path: Path
) -> None:
    only = import_mlflow(ws, store.uri, experiment="other")
    assert [r.mlflow_run_id for r in only.runs] == [store.other_run]
    assert only.model_versions == []
    size = ws.ledger.size
    with pytest.raises(InvalidInputError, match=r"Known: .*credit"):
        import_mlflow(ws, store.uri, experiment="nope")
    missing = tmp_path / "none" / "mlflow.db"
    with pytest.raises(InvalidInputError, match="no existing MLflow database"):
        import_mlflow(ws, f"sqlite:///{missing}")
    assert not missing.parent.exists()
    with rt.open(ws.path, read_only=True) as reader, pytest.raises(StateError, match="read-only"):
        import_mlflow(reader, store.uri)
    for bad in ("ftp://host/x", "", 3):
        with pytest.raises(InvalidInputError, match="tracking_uri of import_mlflow"):
            import_mlflow(ws, bad)  # type: ignore[arg-type]
    assert ws.ledger.size == size


def test_attach_tags_the_run_with_verifiable_evidence(
    store: Store, ws: rt.Workspace, tmp_path: Path
) -> None:
    import_mlflow(ws, store.uri)
    size = ws.ledger.size
    tags = attach_to_mlflow(ws, store.lr_run, tracking_uri=store.uri)
    assert ws.ledger.size == size  # the workspace is only read
    stored = store.client().get_run(store.lr_run).data.tags
    assert {k: stored[k] for k in tags} == tags
    record = ws.registry.runs()[0]
    assert int(stored["rowtrail.ledger_index"]) == record.index
    assert stored["rowtrail.lineage_digest"] == "unknown"  # MLflow data has no rowtrail lineage
    verify_mlflow_tags(ws.ledger.verifier.vkey, stored)
    tampered = dict(stored, **{"rowtrail.leaf_hash": "00" * 32})
    with pytest.raises(InclusionProofError):
        verify_mlflow_tags(ws.ledger.verifier, tampered)
    with pytest.raises(VerificationError):
        verify_mlflow_tags(ws.ledger.verifier, {"rowtrail.origin": "x"})
    with rt.init(tmp_path / "other") as other:
        other.ledger.append("audit.note", {"text": "x"})
        with pytest.raises(CheckpointError):
            verify_mlflow_tags(other.ledger.verifier, stored)
    # Attaching does not make the run look changed to the next import.
    assert import_mlflow(ws, store.uri).n_new == 0


def test_attach_native_run_carries_its_lineage_digest(
    store: Store, ws: rt.Workspace
) -> None:
    X = rt.track(np.arange(12.0).reshape(6, 2), source="applicants", workspace=ws)
    dataset = ws.registry.register_dataset("credit", sources=X * 2.0)
    run = ws.registry.log_run("native", params={"C": 1.0}, datasets=[dataset])
    client = store.client()
    mlflow_run = client.create_run(client.get_experiment_by_name("other").experiment_id)
    with pytest.raises(InvalidInputError, match="was not imported"):
        attach_to_mlflow(ws, mlflow_run.info.run_id, tracking_uri=store.uri)
    tags = attach_to_mlflow(ws, mlflow_run.info.run_id, tracking_uri=store.uri,
                            registry_run=run.run_id)
    assert tags["rowtrail.lineage_digest"] == dataset.lineage_digest
    assert json.loads(tags["rowtrail.datasets"])[0]["name"] == "credit"
    verify_mlflow_tags(ws.ledger.verifier, tags)


def test_attach_to_an_unknown_run_writes_nothing(store: Store, ws: rt.Workspace) -> None:
    import_mlflow(ws, store.uri)
    with pytest.raises(InvalidInputError, match="run_id of attach_to_mlflow"):
        attach_to_mlflow(ws, "0" * 32, tracking_uri=store.uri)
    with pytest.raises(InvalidInputError, match="tracking_uri of attach_to_mlflow"):
        attach_to_mlflow(ws, store.lr_run, tracking_uri="sqlite:////no/such.db")


def test_cli_import_attach_and_export(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    location = str(tmp_path / "cli-ws")
    rt.init(location, actor="cli").close()
    monkeypatch.setenv("ROWTRAIL_ACTOR", "importer-bot")
    result = runner.invoke(app, ["import", "mlflow", "--tracking-uri", store.uri,
                                 "--experiment", "credit", "-w", location, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["n_new"] == 4
    with rt.open(location, read_only=True) as reader:
        assert {r.actor for r in reader.registry.runs()} == {"importer-bot"}
    again = runner.invoke(app, ["import", "mlflow", "--tracking-uri", store.uri, "-w", location,
                                "--json"])
    assert again.exit_code == 0, again.output
    new = {r["mlflow_run_id"] for r in json.loads(again.output)["runs"] if r["new"]}
    assert new
    assert new.isdisjoint({store.lr_run, store.plain_run})
    human = runner.invoke(app, ["import", "mlflow", "--tracking-uri", store.uri, "-w", location])
    assert human.exit_code == 0
    assert "0 recorded now" in human.output
    result = runner.invoke(app, ["mlflow", "attach", store.plain_run, "--tracking-uri",
                                 store.uri, "-w", location, "--json"])
    assert result.exit_code == 0, result.output
    assert "rowtrail.checkpoint.note" in json.loads(result.output)
    vkey = tmp_path / "vkey"
    with rt.open(location, read_only=True) as reader:
        vkey.write_text(reader.ledger.verifier.vkey + "\n")
    checked = runner.invoke(app, ["mlflow", "verify", store.plain_run, "--tracking-uri",
                                  store.uri, "--vkey", str(vkey), "--json"])
    assert checked.exit_code == 0, checked.output
    assert json.loads(checked.output)["ok"] is True
    with rt.init(tmp_path / "stranger") as stranger:
        stranger.ledger.append("audit.note", {"text": "x"})
        foreign = stranger.ledger.verifier.vkey
    refused = runner.invoke(app, ["mlflow", "verify", store.plain_run, "--tracking-uri",
                                  store.uri, "--vkey", foreign])
    assert refused.exit_code == 1
    assert "unknown keys" in refused.output, refused.output
    bad = runner.invoke(app, ["mlflow", "attach", "f" * 32, "--tracking-uri", store.uri,
                              "-w", location, "--json"])
    assert bad.exit_code == 1
    assert json.loads(bad.output)["error"] == "InvalidInputError"


def test_missing_mlflow_names_the_extra(
    store: Store, ws: rt.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(MissingDependencyError, match=r"rowtrail\[mlflow\]"):
        import_mlflow(ws, store.uri)
    assert ws.ledger.size == 0


def test_imported_runs_and_versions_appear_in_the_exports(
    store: Store, ws: rt.Workspace, tmp_path: Path
) -> None:
    from rowtrail.interop import export_openlineage, prov_document, verify_openlineage_event

    result = import_mlflow(ws, store.uri, experiment="credit")
    document = json.loads(prov_document(ws).serialize(format="json"))
    lr = next(r for r in result.runs if r.mlflow_run_id == store.lr_run)
    activity = document["activity"][f"rt:run/{lr.run_id}"]
    assert activity["rtx:originSystem"] == "mlflow"
    assert activity["rtx:originRunId"] == store.lr_run
    versions = {e for e in document["entity"] if e.startswith("rt:model-version/scorecard/")}
    assert len(versions) == len(result.model_versions) == 2
    out = export_openlineage(ws, tmp_path / "ol.jsonl")
    events = [json.loads(line) for line in out.path.read_text("utf-8").splitlines()]
    registry = [e for e in events if e["job"]["name"] == "registry/credit"]
    assert len(registry) == len(result.runs)
    for event in registry:
        verify_openlineage_event(ws, event)
