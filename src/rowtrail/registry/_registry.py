"""The registry: datasets, runs, model versions and deployments as ledger events.

:class:`Registry` (``ws.registry``) writes one ``registry.*`` event per change and answers
every question from proven events (:class:`~rowtrail.registry._state.ProvenEvents`); its cache
tables (:mod:`rowtrail.store.registry_tables`) serve SQL users and are checked by
``Workspace.verify``. Approvals, attestations, aliases, policy, roles and overrides live in
:class:`~rowtrail.registry._governance.Governance`, which this class extends.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rowtrail.errors import InvalidInputError
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.ledger import LedgerEntry
from rowtrail.registry import _build
from rowtrail.registry._artifacts import deserialize_artifact, serialize_artifact
from rowtrail.registry._governance import Governance, check_name
from rowtrail.registry._hardware import hardware_info
from rowtrail.registry._inputs import artifact_binding, check_json, resolve_sources, source_entry
from rowtrail.registry._provenance import (
    dataset_findings,
    input_findings,
    split_findings,
    training_findings,
)
from rowtrail.registry._records import DatasetVersion, Deployment, ModelVersion, RunRecord

__all__ = ["Registry"]


class Registry(Governance):
    """The registry audit trail of a workspace (``ws.registry``).

    Parameters
    ----------
    workspace : Workspace
        An open workspace.
    actor : str, optional
        Who acts through this handle; defaults to the workspace's actor (``rt.open(...,
        actor=...)`` or ``$ROWTRAIL_ACTOR``), never the operating-system user.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp(), actor="alice")
    >>> X = rt.track(np.zeros((4, 2)), source="applicants", workspace=ws)
    >>> dv = ws.registry.register_dataset("credit", sources=X)
    >>> run = ws.registry.log_run("scorecard", params={"C": 1.0}, datasets=[dv])
    >>> mv = ws.registry.register_model("scorecard", b"weights", run=run)
    >>> dep = ws.registry.deploy("scorecard", 1, environment="prod-eu")
    >>> found = ws.registry.deployment(dep.deployment_id)
    >>> found.model_version.run.datasets[0].name, found.model_version.load()
    ('credit', b'weights')
    """

    # ------------------------------------------------------------ datasets
    def register_dataset(self, name: str, sources: object) -> DatasetVersion:
        """Register a version of dataset ``name`` (idempotent for identical content).

        Parameters
        ----------
        name : str
            Dataset name.
        sources : traced array/frame, or sequence of source names / ``(name, version)``
            Traced data (anything ``rt.lineage`` accepts): its sources and the digest of its
            lineage DAG are recorded (``lineage_status="recorded"``). Source names only:
            those source versions, with ``lineage_status="unknown"``.

        Returns
        -------
        DatasetVersion
            The new version, or the latest one when its content is identical.
        """
        self._check_writable()
        check_name(name, "name", "Registry.register_dataset")
        infos, digest = resolve_sources(self.ws, sources)
        listed = [source_entry(info) for info in infos]
        status = "unknown" if digest is None else "recorded"
        for existing in reversed(self.datasets(name)):
            if [dict(s) for s in existing.sources] == listed and existing.lineage_digest == digest:
                return existing
        payload = {"name": name, "sources": listed, "lineage_digest": digest,
                   "lineage_status": status}
        index = self._append_versioned("registry.dataset", "registry_datasets", "name", payload,
                                       self._versions("registry.dataset", name))
        return self._dataset_at(index)

    def _failed_sources(self) -> set[int]:
        return {
            int(e.event.payload.get("source_index", -1))
            for e in self._events.entries("rows.validation_failed")
        }

    def _dataset_at(self, index: int) -> DatasetVersion:
        entry = next(e for e in self._events.entries("registry.dataset") if e.index == index)
        return _build.dataset_version(entry, self._failed_sources())

    def datasets(self, name: str | None = None) -> list[DatasetVersion]:
        """Return every dataset version (of ``name``), in the order registered."""
        failed = self._failed_sources()
        entries = self._events.entries("registry.dataset")
        found = [_build.dataset_version(e, failed) for e in entries]
        return [d for d in found if name is None or d.name == name]

    def dataset(self, name: str, version: int | None = None) -> DatasetVersion:
        """Return version ``version`` (default: the latest) of dataset ``name``."""
        found = self.datasets(name)
        if version is not None:
            found = [d for d in found if d.version == version]
        if not found:
            known = sorted({d.name for d in self.datasets()})
            raise InvalidInputError(
                f"name of Registry.dataset: no dataset {name!r} version {version!r} is "
                f"registered; known datasets: {known}"
            )
        return found[-1]

    # ------------------------------------------------------------ runs
    def log_run(
        self,
        name: str,
        *,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, Any] | None = None,
        datasets: Sequence[DatasetVersion] = (),
        training_run: object = None,
        code: Mapping[str, Any] | None = None,
        environment: Mapping[str, Any] | None = None,
        hardware: Mapping[str, Any] | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Record a run: parameters, metrics, datasets, code, environment and hardware.

        Parameters
        ----------
        name : str
            Run (experiment) name.
        params, metrics : mapping, optional
            JSON-ready values.
        datasets : sequence of DatasetVersion
            The dataset versions the run used.
        training_run : str or TrainingRun, optional
            The rowtrail training run (or its id) that trained the model: its seal's code,
            environment and weights digest are recorded, and its data is gated.
        code : mapping, optional
            ``{"git_commit", "dirty"}`` when the code is not the current directory's git
            checkout (e.g. imported runs); default: read with git (``None`` when unknown).
        environment, hardware : mapping, optional
            What the run ran on, when it ran elsewhere (an imported run: give what the other
            system recorded, or ``{}`` for unknown); default: this process's environment
            (or the training run's sealed one) and this machine's hardware.
        origin : mapping, optional
            Where an imported run comes from (``{"system": "mlflow", "run_id": ...}``).

        Raises
        ------
        PolicyRefusedError
            An input's provenance fails a check the policy requires and no override covers it
            (the refusal is a ``registry.refusal`` event).
        """
        self._check_writable()
        check_name(name, "name", "Registry.log_run")
        params = check_json(params, "params", "Registry.log_run")
        metrics = check_json(metrics, "metrics", "Registry.log_run")
        for value, what in ((environment, "environment"), (hardware, "hardware"),
                            (origin, "origin")):
            check_json(value, what, "Registry.log_run")
        used = self._check_datasets(datasets)
        run_id_in = getattr(training_run, "run_id", training_run)
        seal = self._seal_of(run_id_in) if run_id_in is not None else None
        findings = [f for d in used for f in dataset_findings(self.ws.ledger, d)]
        findings += input_findings(f"run:{name}", len(used), run_id_in)
        if run_id_in is not None:
            findings += training_findings(self.ws.ledger, str(run_id_in), seal,
                                          self._failed_sources())
        overrides = self._gate_provenance("log_run", f"run:{name}", findings, scopes=())
        payload = self._run_payload(name, params, metrics, used, run_id_in, seal, code)
        if environment is not None:
            payload["environment"] = dict(environment)
        if hardware is not None:
            payload["hardware"] = dict(hardware)
        payload["origin"] = None if origin is None else dict(origin)
        payload["overrides"] = overrides
        index = self._append("registry.run", payload)
        return self._run_from(self._entry("registry.run", index))

    def gate_training(self, run_id: str, split: Mapping[str, Any]) -> None:
        """Refuse a training split whose inputs fail the policy's provenance checks.

        Called by a training run (``ws.training_run``) before it records each split: under a
        policy requiring known lineage, valid schemas or verified records, a split without
        row ids, of rows no registration records, or of a source with schema violations is
        refused (a ``registry.refusal`` event) unless an override of ``training:RUN_ID``
        (``reg.override("training:" + run_id, ...)``, before the run) waives it.

        Raises
        ------
        PolicyRefusedError
            The split's inputs fail a required check and no override covers it.
        """
        target = f"training:{run_id}"
        findings = split_findings(target, split, self._failed_sources())
        if findings:
            self._gate_provenance("training", target, findings, scopes=())

    def _check_datasets(self, datasets: object) -> list[DatasetVersion]:
        if not isinstance(datasets, (list, tuple)) or not all(
            isinstance(d, DatasetVersion) for d in datasets
        ):
            raise InvalidInputError(
                "datasets of Registry.log_run must be a list of DatasetVersion (from "
                f"register_dataset); got {datasets!r}"
            )
        # Re-read each from its proven event: a caller's object is not evidence.
        return [self.dataset(d.name, d.version) for d in datasets]

    def _seal_of(self, run_id: object) -> LedgerEntry | None:
        if not isinstance(run_id, str):
            raise InvalidInputError(
                "training_run of Registry.log_run must be a TrainingRun or its run id (str); "
                f"got {type(run_id).__name__}"
            )
        started = [e for e in self.ws.ledger.entries_of_kind("training.started")
                   if e.event.payload.get("run") == run_id]
        if not started:
            raise InvalidInputError(
                f"training_run of Registry.log_run: no training run {run_id!r} is recorded"
            )
        self.ws.ledger.proven([started[-1].index])
        seals = [e for e in self._events.entries("training.completed")
                 if e.event.payload.get("run") == run_id]
        return seals[-1] if seals else None

    def _run_payload(
        self,
        name: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
        used: list[DatasetVersion],
        run_id: object,
        seal: LedgerEntry | None,
        code: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        from rowtrail.training._env import code_info, environment_info

        sealed = {} if seal is None else seal.event.payload
        if code is not None:
            code_section = {"git_commit": code.get("git_commit"), "dirty": code.get("dirty")}
        else:
            code_section = dict(sealed.get("code") or code_info())
        model = sealed.get("model") or {}
        return {
            "run_id": f"run-{uuid.uuid4().hex[:16]}",
            "name": name,
            "params": params,
            "metrics": metrics,
            "datasets": [{"name": d.name, "version": d.version, "index": d.index} for d in used],
            "training_run": None if run_id is None else str(run_id),
            "training_seal": None if seal is None else seal.index,
            "model_digest": model.get("digest"),
            "code": code_section,
            "environment": dict(sealed.get("environment") or environment_info()),
            "hardware": hardware_info(),
        }

    def _run_from(self, entry: LedgerEntry) -> RunRecord:
        p = entry.event.payload
        datasets = tuple(self.dataset(str(d["name"]), int(d["version"])) for d in p["datasets"])
        return RunRecord(
            run_id=str(p["run_id"]), name=str(p["name"]), params=p["params"],
            metrics=p["metrics"], datasets=datasets, training_run=p.get("training_run"),
            training_seal=p.get("training_seal"), model_digest=p.get("model_digest"),
            code=p.get("code") or {}, environment=p.get("environment") or {},
            hardware=p.get("hardware") or {}, overrides=tuple(p.get("overrides") or ()),
            origin=p.get("origin"),
            index=entry.index, actor=entry.event.actor, created_at=entry.event.time,
        )

    def runs(self, name: str | None = None) -> list[RunRecord]:
        """Return every registered run (named ``name``), in the order logged."""
        found = [self._run_from(e) for e in self._events.entries("registry.run")]
        return [r for r in found if name is None or r.name == name]

    def run(self, run_id: str) -> RunRecord:
        """Return the run ``run_id``."""
        for entry in self._events.entries("registry.run"):
            if entry.event.payload.get("run_id") == run_id:
                return self._run_from(entry)
        raise InvalidInputError(f"run_id of Registry.run: no run {run_id!r} is registered")

    # ------------------------------------------------------------ models
    def register_model(
        self,
        name: str,
        model: object,
        *,
        run: RunRecord | None = None,
        flavor: str | None = None,
    ) -> ModelVersion:
        """Register a new version of model ``name``: its artifact as a content-addressed blob.

        Parameters
        ----------
        name : str
            Model name.
        model : estimator, torch module or state dict, bytes, or path
            The artifact; serialized as ``flavor`` (guessed when omitted).
        run : RunRecord, optional
            The run that produced it. When that run wraps a training run whose seal names a
            weights/fit digest, the artifact must hash to it (bound).
        flavor : {"sklearn", "torch", "bytes"}, optional
            How to serialize ``model``; guessed from its type when omitted.

        Raises
        ------
        InvalidInputError
            Bad input, or an artifact that is not the model its training run sealed.
        PolicyRefusedError
            The run's inputs fail the policy's provenance checks (refusal logged).
        """
        self._check_writable()
        check_name(name, "name", "Registry.register_model")
        if run is not None and not isinstance(run, RunRecord):
            raise InvalidInputError(
                f"run of Registry.register_model must be a RunRecord; got {type(run).__name__}"
            )
        data, chosen = serialize_artifact(model, flavor)
        digest = sha256_digest(data)
        proven_run = None if run is None else self.run(run.run_id)
        weights = None if proven_run is None else proven_run.model_digest
        binding = None
        if weights is not None:
            binding = artifact_binding(model, chosen, digest, weights)
            if binding is None:
                trained_by = None if proven_run is None else proven_run.training_run
                raise InvalidInputError(
                    f"model of Registry.register_model hashes to {digest}, but training run "
                    f"{trained_by!r} sealed {weights}: it is not the model that run "
                    "trained. Register the sealed model. Nothing was written."
                )
        overrides: list[int] = []
        if proven_run is not None:
            overrides = self._gate_provenance(
                "register_model", f"model:{name}", self._run_findings(proven_run),
                scopes=(proven_run.key,))
        self.ws.ledger.put_blob(data)
        payload = {"name": name, "artifact_digest": digest, "flavor": chosen, "size": len(data),
                   "run_id": None if proven_run is None else proven_run.run_id,
                   "run_index": None if proven_run is None else proven_run.index,
                   "weights_digest": weights, "binding": binding, "overrides": overrides}
        index = self._append_versioned("registry.model", "registry_models", "name", payload,
                                       self._versions("registry.model", name),
                                       blobs=[digest])
        return self._model_from(self._entry("registry.model", index))

    def _run_findings(self, run: RunRecord) -> list[Any]:
        findings = [f for d in run.datasets for f in dataset_findings(self.ws.ledger, d)]
        findings += input_findings(run.key, len(run.datasets), run.training_run)
        if run.training_run is not None:
            seal = None
            if run.training_seal is not None:
                seal = self._entry("training.completed", run.training_seal)
            findings += training_findings(self.ws.ledger, run.training_run, seal,
                                          self._failed_sources())
        return findings

    def _model_from(self, entry: LedgerEntry) -> ModelVersion:
        p = entry.event.payload
        run_id = p.get("run_id")
        return ModelVersion(
            name=str(p["name"]), version=int(p["version"]),
            artifact_digest=str(p["artifact_digest"]), flavor=str(p["flavor"]),
            size=int(p["size"]), run=None if run_id is None else self.run(str(run_id)),
            weights_digest=p.get("weights_digest"), binding=p.get("binding"),
            overrides=tuple(p.get("overrides") or ()),
            index=entry.index, actor=entry.event.actor, created_at=entry.event.time,
            _registry=self,
        )

    def model_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Return every registered model version (of ``name``), in the order registered."""
        entries = [e for e in self._events.entries("registry.model")
                   if name is None or e.event.payload.get("name") == name]
        return [self._model_from(e) for e in entries]

    def model_version(self, name: str, version: int | str | None = None) -> ModelVersion:
        """Return a model version by number, by alias (its current target) or the latest."""
        if isinstance(version, str):
            change = self.current_alias(name, version)
            if change is None or change.version is None:
                raise InvalidInputError(
                    f"version of Registry.model_version: alias {version!r} of model {name!r} "
                    "is not set"
                )
            version = change.version
        for entry in reversed(self._events.entries("registry.model")):
            p = entry.event.payload
            if p.get("name") == name and (version is None or p.get("version") == version):
                return self._model_from(entry)
        known = sorted({m.name for m in self.model_versions()})
        raise InvalidInputError(
            f"name of Registry.model_version: no model {name!r} version {version!r} is "
            f"registered; known models: {known}"
        )

    def load_model(self, name: str, version: int | str | None = None) -> Any:
        """Load a model version's artifact after re-hashing it against its proven event.

        Raises
        ------
        VerificationError
            The artifact's bytes no longer hash to the digest the event names.
        """
        found = self.model_version(name, version)
        data = self.ws.ledger.blobs.get(found.artifact_digest)  # re-hashed on read
        return deserialize_artifact(data, found.flavor)

    # ------------------------------------------------------------ deployments
    def deploy(
        self,
        name: str,
        version: int | str,
        *,
        environment: str,
        config: Mapping[str, Any] | None = None,
    ) -> Deployment:
        """Record a deployment of a model version (or of an alias's current version).

        Parameters
        ----------
        name : str
            Model name.
        version : int or str
            A version number, or an alias/stage (resolved now and recorded with it).
        environment : str
            Where it is deployed (``"prod-eu"``).
        config : mapping, optional
            JSON-ready serving configuration; its canonical digest is recorded with it.
        """
        self._check_writable()
        check_name(name, "name", "Registry.deploy")
        check_name(environment, "environment", "Registry.deploy")
        if type(version) is not int and not isinstance(version, str):
            raise InvalidInputError(
                f"version of Registry.deploy must be a version number or an alias; got "
                f"{version!r}"
            )
        settings = check_json(config, "config", "Registry.deploy")
        found = self.model_version(name, version)
        payload = {
            "deployment_id": f"dep-{uuid.uuid4().hex[:16]}",
            "model": name,
            "version": found.version,
            "model_index": found.index,
            "alias": version if isinstance(version, str) else None,
            "environment": environment,
            "config": settings,
            "config_digest": sha256_digest(canonical_json(settings)),
        }
        index = self._append("registry.deployment", payload)
        return self._deployment_from(self._entry("registry.deployment", index))

    def _deployment_from(self, entry: LedgerEntry) -> Deployment:
        p = entry.event.payload
        return Deployment(
            deployment_id=str(p["deployment_id"]),
            model_version=self.model_version(str(p["model"]), int(p["version"])),
            alias=p.get("alias"), environment=str(p["environment"]), config=p["config"],
            config_digest=str(p["config_digest"]), index=entry.index, actor=entry.event.actor,
            created_at=entry.event.time,
        )

    def deployment(self, deployment_id: str) -> Deployment:
        """Return the deployment ``deployment_id`` (model version, run, data, code behind it)."""
        for entry in self._events.entries("registry.deployment"):
            if entry.event.payload.get("deployment_id") == deployment_id:
                return self._deployment_from(entry)
        raise InvalidInputError(
            f"deployment_id of Registry.deployment: no deployment {deployment_id!r} is recorded"
        )

    def deployments(self, name: str | None = None) -> list[Deployment]:
        """Return every deployment (of model ``name``), in the order recorded."""
        entries = [e for e in self._events.entries("registry.deployment")
                   if name is None or e.event.payload.get("model") == name]
        return [self._deployment_from(e) for e in entries]

    def deployment_at(self, environment: str, when: datetime | str) -> Deployment | None:
        """Return what was deployed to ``environment`` at ``when`` (``None``: nothing yet).

        The last deployment to it recorded at or before ``when`` (event times, in ledger
        order), replayed from proven events.
        """
        moment = _build.parse_when(when, "Registry.deployment_at")
        found = None
        for entry in self._events.entries("registry.deployment"):
            payload = entry.event.payload
            if payload.get("environment") == environment and entry.event.time <= moment:
                found = entry
        return None if found is None else self._deployment_from(found)

    # ------------------------------------------------------------ serving
    def prediction_logger(self, deployment: Deployment | str, **options: Any) -> Any:
        """Return a :class:`~rowtrail.registry.PredictionLogger` for ``deployment``.

        ``options`` are the logger's (``model=``, ``batch_size=``, ``flush_interval=``,
        ``fsync=``, ``method=``); use it as a context manager so its last batch is flushed.
        """
        from rowtrail.registry._prediction_logger import PredictionLogger

        return PredictionLogger(self.ws, deployment, **options)

    def prediction(self, prediction_id: str) -> Any:
        """Return the logged :class:`~rowtrail.registry.PredictionRecord` ``prediction_id``."""
        from rowtrail.registry._predictions import find_prediction

        return find_prediction(self.ws, prediction_id)

    def reproduce(self, prediction_id: str, **tolerance: float) -> Any:
        """Walk a prediction back to its commit and re-score it (see :func:`reproduce`).

        ``tolerance`` is ``rtol=`` / ``atol=``; returns a
        :class:`~rowtrail.registry.ReproduceResult`.
        """
        from rowtrail.registry._reproduce import reproduce

        return reproduce(self.ws, prediction_id, **tolerance)

    # ------------------------------------------------------------ plumbing
    def _versions(self, kind: str, name: str) -> list[int]:
        return [int(e.event.payload["version"]) for e in self._events.entries(kind)
                if e.event.payload["name"] == name]

