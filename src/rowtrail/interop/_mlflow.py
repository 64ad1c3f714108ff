"""MLflow: import runs and model versions into the registry (attaching: ``_mlflow_attach``).

:func:`import_mlflow` reads an MLflow tracking store (any URI MLflow accepts; a local
``sqlite:///…`` store or a ``file:`` directory must exist — nothing is created) and records:

- each MLflow run as a registry run (:meth:`Registry.log_run`) named after its experiment, with
  its params (as MLflow stores them: strings), latest metrics and the code commit MLflow
  recorded (tag ``mlflow.source.git.commit``; ``None`` when absent — its dirty flag is
  unknown); its environment and hardware are recorded as unknown (``{}``: MLflow records
  neither), and its ``origin`` holds the MLflow facts: ``system="mlflow"``, run and
  experiment ids, run name, status, start and end times, the user MLflow recorded
  (``mlflow_user``; the rowtrail actor stays the configured one), its tags, and its dataset
  inputs with MLflow's own dataset hash kept only as ``mlflow_digest`` (a truncated MD5 that
  rowtrail never relies on) — one ledger event per run;
- each registered model version of an imported run as a registry model version
  (:meth:`Registry.register_model`, flavor ``"bytes"``): the MLflow model directory, read
  from the artifact store, packed as a deterministic tar whose SHA-256 is the artifact digest;
  an ``interop.mlflow_model_version`` event then records the MLflow name, version, source
  URI, status, aliases and the SHA-256 of every file.

Re-importing is idempotent: every fact recorded for an MLflow run is hashed
(``content_digest``, over the canonical JSON of those facts, ``rowtrail.*`` tags excluded, kept
in its ``origin``), and a run whose ``(mlflow_run_id, content_digest)`` a proven registry run
already records is skipped; a model version is skipped when a proven
``interop.mlflow_model_version`` event names its ``(name, version, artifact_digest)``. A run
that changed in MLflow since (more metrics, finished) is imported again as a new registry run.
A model version and its ``interop.*`` event are two appends (the registry's refusal events must
commit even when an import fails, so they are not wrapped in one transaction): should the
process die between them, the next import registers that version again — a duplicate record,
never a missing one.

Attaching rowtrail's evidence to MLflow runs lives in :mod:`rowtrail.interop._mlflow_attach`.
"""

from __future__ import annotations

import io
import math
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from rowtrail._optional import require
from rowtrail.errors import (
    InvalidInputError,
    StorageError,
)
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.interop._evidence import ProvenRecord, collect_evidence
from rowtrail.ledger._events import format_time

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "FEATURE",
    "MLFLOW_KINDS",
    "TAG_PREFIX",
    "MLflowImport",
    "check_tracking_uri",
    "import_mlflow",
    "mlflow_client",
    "mlflow_error",
]

MODEL_KIND = "interop.mlflow_model_version"
#: The ledger event kinds the MLflow import writes (beside the registry's own).
MLFLOW_KINDS = (MODEL_KIND,)
TAG_PREFIX = "rowtrail."
FEATURE = "MLflow interop"
_LOCAL_SCHEMES = ("sqlite", "file", "")
_REMOTE_SCHEMES = ("http", "https", "postgresql", "mysql", "mssql", "databricks")


# ------------------------------------------------------------------ mlflow access
def check_tracking_uri(uri: object, caller: str) -> str:
    """Return ``uri`` if MLflow can read it without creating anything; raise otherwise."""
    if not isinstance(uri, str) or not uri.strip():
        raise InvalidInputError(
            f"tracking_uri of {caller} must be a non-empty MLflow tracking URI such as "
            f"'sqlite:////path/mlflow.db'; got {uri!r}. Nothing was written."
        )
    scheme = urlparse(uri).scheme.split("+", 1)[0]
    if scheme in _REMOTE_SCHEMES:
        return uri
    if scheme not in _LOCAL_SCHEMES:
        raise InvalidInputError(
            f"tracking_uri of {caller} must be sqlite:///, file:, a directory, http(s):// or a "
            f"database URL MLflow supports; got {uri!r}. Nothing was written."
        )
    if scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if path is None or not path.is_file():
            raise InvalidInputError(
                f"tracking_uri of {caller} names no existing MLflow database: {uri!r} (MLflow "
                "would create an empty one). Check the path. Nothing was written."
            )
    else:
        path = Path(urlparse(uri).path if scheme == "file" else uri)
        if not path.is_dir():
            raise InvalidInputError(
                f"tracking_uri of {caller} names no existing MLflow store directory: {uri!r}. "
                "Check the path. Nothing was written."
            )
    return uri


def mlflow_client(uri: str) -> Any:
    tracking = require("mlflow.tracking", extra="mlflow", feature=FEATURE)
    return tracking.MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlflow_error(exc: Exception, what: str, caller: str) -> Exception:
    """Return the rowtrail error for an MLflow exception."""
    code = getattr(exc, "error_code", "")
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        return InvalidInputError(f"{what} of {caller}: {exc}. Nothing was written.")
    return StorageError(f"MLflow failed while {caller} read {what}: {exc}")


def _paged(call: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
    token = None
    while True:
        page = call(*args, page_token=token, **kwargs)
        yield from page
        token = getattr(page, "token", None)
        if not token:
            return


def _utc(ms: object) -> str | None:
    if not isinstance(ms, int):
        return None
    return format_time(datetime.fromtimestamp(ms / 1000, UTC))


def _metric(value: float) -> float | str:
    """Return a metric as JSON: non-finite values as their text (canonical JSON has no NaN)."""
    return value if math.isfinite(value) else str(value)


# ------------------------------------------------------------------ facts
def run_facts(run: Any, experiment: str) -> dict[str, Any]:
    """Return what rowtrail records of an MLflow run (``rowtrail.*`` tags excluded)."""
    info, data = run.info, run.data
    tags = {k: v for k, v in sorted(data.tags.items()) if not k.startswith(TAG_PREFIX)}
    inputs = getattr(run, "inputs", None)
    datasets = []
    for item in (getattr(inputs, "dataset_inputs", None) or []):
        dataset = item.dataset
        datasets.append({
            "name": dataset.name,
            "mlflow_digest": dataset.digest,  # truncated MD5: recorded, never relied on
            "source_type": dataset.source_type,
            "context": next((t.value for t in item.tags if t.key == "mlflow.data.context"),
                            None),
        })
    return {
        "mlflow_run_id": info.run_id,
        "experiment_id": info.experiment_id,
        "experiment": experiment,
        "run_name": info.run_name,
        "status": info.status,
        "start_time": _utc(info.start_time),
        "end_time": _utc(info.end_time),
        "mlflow_user": info.user_id or tags.get("mlflow.user"),
        "params": dict(sorted(data.params.items())),
        "metrics": {k: _metric(float(v)) for k, v in sorted(data.metrics.items())},
        "tags": tags,
        "code": {"git_commit": tags.get("mlflow.source.git.commit"), "dirty": None},
        "datasets": datasets,
    }


def pack_directory(root: Path) -> tuple[bytes, list[dict[str, Any]]]:
    """Return a deterministic tar of ``root`` and the ``{path, sha256, size}`` of every file.

    Names are sorted and relative; times, owners and modes are fixed, so the same files give
    the same bytes (and artifact digest) wherever they are downloaded.
    """
    buffer = io.BytesIO()
    manifest = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            name = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            archive.addfile(info, io.BytesIO(data))
            manifest.append({"path": name, "sha256": sha256_digest(data), "size": len(data)})
    return buffer.getvalue(), manifest


def _artifact(client: Any, uri: str, version: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """Return the bytes of a model version's artifact (a directory packed) and its manifest."""
    artifacts = require("mlflow.artifacts", extra="mlflow", feature=FEATURE)
    # The registry's download URI is the artifact store location itself; a ``models:/`` source
    # would be resolved against MLflow's global tracking URI, not this store.
    location = client.get_model_version_download_uri(version.name, version.version)
    with tempfile.TemporaryDirectory(prefix="rowtrail-mlflow-") as tmp:
        local = Path(artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=uri
        ))
        if local.is_file():
            data = local.read_bytes()
            return data, [{"path": local.name, "sha256": sha256_digest(data), "size": len(data)}]
        return pack_directory(local)


# ------------------------------------------------------------------ import
@dataclass(frozen=True)
class ImportedRun:
    """One MLflow run and the registry run it is recorded as (``new``: recorded now)."""

    mlflow_run_id: str
    run_id: str
    run_index: int
    content_digest: str
    new: bool

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class ImportedModelVersion:
    """One MLflow model version and the registry model version it is recorded as."""

    mlflow_name: str
    mlflow_version: int
    name: str
    version: int
    artifact_digest: str
    model_index: int
    import_index: int
    new: bool

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class MLflowImport:
    """What :func:`import_mlflow` found and recorded."""

    runs: list[ImportedRun] = field(default_factory=list)
    model_versions: list[ImportedModelVersion] = field(default_factory=list)

    @property
    def n_new(self) -> int:
        """How many runs and model versions were recorded by this import."""
        return sum(r.new for r in self.runs) + sum(m.new for m in self.model_versions)

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "runs": [r.to_json() for r in self.runs],
            "model_versions": [m.to_json() for m in self.model_versions],
            "n_new": self.n_new,
        }


def _previous(ws: Workspace) -> tuple[dict[tuple[str, str], Any],
                                      dict[tuple[str, int, str], ProvenRecord]]:
    """Return the proven imports, keyed by what makes an import the same.

    Registry runs by ``(mlflow_run_id, content_digest)`` of their origin; model version events
    by ``(name, version, artifact_digest)``.
    """
    if ws.ledger.latest_checkpoint() is None:
        return {}, {}
    runs = {}
    for run in ws.registry.runs():
        origin = run.origin or {}
        if origin.get("system") == "mlflow":
            runs[(str(origin.get("mlflow_run_id")), str(origin.get("content_digest")))] = run
    evidence = collect_evidence(ws, MLFLOW_KINDS)
    models = {(str(r.payload["mlflow_name"]), int(r.payload["mlflow_version"]),
               str(r.payload["artifact_digest"])): r for r in evidence.of(MODEL_KIND)}
    return runs, models


def _experiments(client: Any, experiment: str | None) -> dict[str, str]:
    found = {e.experiment_id: e.name for e in _paged(client.search_experiments)}
    if experiment is None:
        return found
    chosen = {k: v for k, v in found.items() if v == experiment}
    if not chosen:
        raise InvalidInputError(
            f"experiment of import_mlflow must name an MLflow experiment; got {experiment!r}. "
            f"Known: {sorted(found.values())}. Nothing was written."
        )
    return chosen


def _import_run(ws: Workspace, facts: dict[str, Any],
                previous: Mapping[tuple[str, str], Any]) -> ImportedRun:
    digest = sha256_digest(canonical_json(facts))
    seen = previous.get((facts["mlflow_run_id"], digest))
    if seen is not None:
        return ImportedRun(facts["mlflow_run_id"], seen.run_id, seen.index, digest, new=False)
    own = ("params", "metrics", "code")  # recorded as the run's own fields
    origin = {"system": "mlflow", "content_digest": digest,
              **{k: v for k, v in facts.items() if k not in own}}
    record = ws.registry.log_run(
        facts["experiment"], params=facts["params"], metrics=facts["metrics"],
        code=facts["code"], environment={}, hardware={}, origin=origin,
    )
    return ImportedRun(facts["mlflow_run_id"], record.run_id, record.index, digest, new=True)


def _import_model(ws: Workspace, client: Any, uri: str, version: Any, run: ImportedRun,
                  previous: Mapping[tuple[str, int, str], ProvenRecord]) -> ImportedModelVersion:
    data, manifest = _artifact(client, uri, version)
    digest = sha256_digest(data)
    key = (str(version.name), int(version.version), digest)
    seen = previous.get(key)
    if seen is not None:
        p = seen.payload
        return ImportedModelVersion(key[0], key[1], str(p["name"]), int(p["version"]), digest,
                                    int(p["model_index"]), seen.index, new=False)
    registry = ws.registry
    model = registry.register_model(key[0], data, run=registry.run(run.run_id), flavor="bytes")
    payload = {
        "mlflow_name": key[0], "mlflow_version": key[1], "artifact_digest": digest,
        "source": str(version.source), "mlflow_run_id": run.mlflow_run_id,
        "status": getattr(version, "status", None),
        "created_at": _utc(getattr(version, "creation_timestamp", None)),
        "mlflow_user": getattr(version, "user_id", None),
        "aliases": sorted(getattr(version, "aliases", None) or []),
        "tags": dict(sorted((getattr(version, "tags", None) or {}).items())),
        "files": manifest, "name": model.name, "version": model.version,
        "model_index": model.index, "run_id": run.run_id,
    }
    index = ws.ledger.append(MODEL_KIND, payload, blobs=[digest])
    return ImportedModelVersion(key[0], key[1], model.name, model.version, digest, model.index,
                                index, new=True)


def import_mlflow(
    ws: Workspace, tracking_uri: str, *, experiment: str | None = None
) -> MLflowImport:
    """Import MLflow runs and their registered model versions into the workspace's registry.

    See the module docstring for what is recorded and how re-imports are recognised.

    Parameters
    ----------
    ws : Workspace
        A writable workspace; its actor is recorded on every event.
    tracking_uri : str
        The MLflow tracking store (``sqlite:////abs/path/mlflow.db``, a ``file:`` directory,
        ``http(s)://…``); also used as the model registry URI.
    experiment : str, optional
        Import only this experiment's runs (default: every active experiment).

    Returns
    -------
    MLflowImport
        Every run and model version found, each with ``new`` telling whether it was recorded
        now; ``n_new == 0`` on a re-import of an unchanged store.

    Raises
    ------
    InvalidInputError
        A malformed or missing store, an unknown experiment; nothing is written.
    StorageError
        MLflow failed to read the store.
    MissingDependencyError
        ``mlflow`` is not installed (``pip install 'rowtrail[mlflow]'``).
    """
    uri = check_tracking_uri(tracking_uri, "import_mlflow")
    mlflow_exceptions = require("mlflow.exceptions", extra="mlflow", feature=FEATURE)
    client = mlflow_client(uri)
    try:
        experiments = _experiments(client, experiment)
        runs = list(_paged(client.search_runs, list(experiments))) if experiments else []
        versions = list(_paged(client.search_model_versions, ""))
    except mlflow_exceptions.MlflowException as exc:
        raise mlflow_error(exc, "tracking_uri", "import_mlflow") from exc
    previous_runs, previous_models = _previous(ws)
    result = MLflowImport()
    for run in sorted(runs, key=lambda r: (r.info.start_time or 0, r.info.run_id)):
        facts = run_facts(run, experiments[run.info.experiment_id])
        result.runs.append(_import_run(ws, facts, previous_runs))
    by_run = {imported.mlflow_run_id: imported for imported in result.runs}
    for version in sorted(versions, key=lambda v: (v.name, int(v.version))):
        if str(version.run_id) not in by_run:
            continue  # a version of a run outside this import: its run is not recorded
        try:
            model = _import_model(ws, client, uri, version, by_run[str(version.run_id)],
                                  previous_models)
        except mlflow_exceptions.MlflowException as exc:
            raise mlflow_error(exc, f"model {version.name} version {version.version}",
                                "import_mlflow") from exc
        result.model_versions.append(model)
    return result
