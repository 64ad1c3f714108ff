"""The registry's entities in the OpenLineage and PROV exports, read from proven events.

``registry.dataset`` (dataset versions: source versions and lineage digest), ``registry.run``
(runs), ``registry.model`` (model versions: artifact digest, bound to their run) and
``registry.deployment`` (deployments) — the payloads :class:`rowtrail.registry.Registry`
writes — and ``registry.prediction_batch`` (predictions served by a deployment, as the
serving logger writes them: parallel lists ``ids``, ``times``, ``outputs``,
``input_digests``, ``subjects``). Nothing is read from the registry's cache tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rowtrail.hashing import canonical_json_text

__all__ = ["REGISTRY_KINDS", "add_registry_prov", "registry_events"]

#: Registry event kinds the exports read.
REGISTRY_KINDS = (
    "registry.dataset",
    "registry.run",
    "registry.model",
    "registry.deployment",
    "registry.approval",
    "registry.attestation",
    "registry.alias",
    "registry.prediction_batch",
)
_GOVERNANCE = (
    ("registry.approval", "Approval", ("version", "stage")),
    ("registry.attestation", "Attestation", ("version", "kind", "passed", "report_digest")),
    ("registry.alias", "AliasChange", ("alias", "version", "previous", "via")),
)


def _datasets(evidence: Any) -> dict[tuple[str, int], Any]:
    return {(str(r.payload["name"]), int(r.payload["version"])): r
            for r in evidence.of("registry.dataset") if "version" in r.payload}


def _models_by_run(evidence: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for record in evidence.of("registry.model"):
        run_id = record.payload.get("run_id")
        if isinstance(run_id, str):
            found.setdefault(run_id, []).append(record)
    return found


def _run_sources(run: Any, datasets: Mapping[tuple[str, int], Any]) -> list[Mapping[str, Any]]:
    """Return the source versions of a run's dataset versions, each once."""
    sources: dict[tuple[Any, Any], Mapping[str, Any]] = {}
    for used in run.payload.get("datasets", []):
        dataset = datasets.get((str(used.get("name")), int(used.get("version", 0))))
        for source in [] if dataset is None else dataset.payload.get("sources", []):
            sources.setdefault((source.get("source_index"), source.get("digest")), source)
    return list(sources.values())


def registry_events(builder: Any) -> list[tuple[int, Any]]:
    """Return ``(ledger index, RunEvent)``: one COMPLETE event per registry run.

    Inputs are the source versions of its dataset versions; outputs the model versions
    registered from it (dataset version = artifact digest).
    """
    evidence = builder.evidence
    datasets = _datasets(evidence)
    models = _models_by_run(evidence)
    found = []
    for run in evidence.of("registry.run"):
        name = str(run.payload.get("name"))
        outputs = [
            builder.output(f"model/{m.payload['name']}", m.payload.get("artifact_digest"))
            for m in models.get(str(run.payload.get("run_id")), [])
        ]
        found.append((run.index, builder.event(
            "COMPLETE", run, job=f"registry/{name}", job_type="REGISTRY_RUN",
            run_key=("registry-run", str(run.payload.get("run_id", run.index))),
            inputs=[builder.source_input(s) for s in _run_sources(run, datasets)],
            outputs=outputs,
        )))
    return found


def add_registry_prov(graph: Any) -> None:
    """Add dataset versions, runs, model versions and deployments to a PROV graph."""
    evidence = graph.evidence
    local = graph.local
    for record in evidence.of("registry.dataset"):
        p = record.payload
        entity = graph.entity(graph.rt[local("dataset", p.get("name"), f"v{p.get('version')}")],
                              record, "DatasetVersion", name=p.get("name"),
                              version=p.get("version"), lineageDigest=p.get("lineage_digest"),
                              lineageStatus=p.get("lineage_status"))
        for source in p.get("sources", []):
            graph.doc.wasDerivedFrom(entity, graph.source_ref(source, record))
    for record in evidence.of("registry.run"):
        _add_run(graph, record)
    for record in evidence.of("registry.model"):
        _add_model(graph, record)
    for kind, name, fields in _GOVERNANCE:
        for record in evidence.of(kind):
            _add_governance(graph, record, name, fields)
    for record in evidence.of("registry.deployment"):
        p = record.payload
        activity = graph.rt[local("deployment", p.get("deployment_id"))]
        graph.doc.activity(activity, record.entry.event.time, None, graph.attrs(
            record, "Deployment", environment=p.get("environment"),
            configDigest=p.get("config_digest"), alias=p.get("alias")))
        graph.doc.wasAssociatedWith(activity, graph.agent(record))
        model = graph.rt[local("model-version", p.get("model"), f"v{p.get('version')}")]
        if str(model) in graph.entities:
            graph.doc.used(activity, model)
    for record in evidence.of("registry.prediction_batch"):
        _add_predictions(graph, record)


def _add_governance(graph: Any, record: Any, name: str, fields: tuple[str, ...]) -> None:
    """Add an approval, attestation or alias move: an activity on a model version by an actor.

    Free-text comments are not exported. An alias move is informed by the approvals and
    attestations its policy gate relied on.
    """
    p = record.payload
    camel = {f: "".join(w.capitalize() if i else w for i, w in enumerate(f.split("_")))
             for f in fields}
    camel.update({"kind": "attestationKind"} if "kind" in camel else {})
    activity = graph.rt[graph.local(name.lower(), record.index)]
    graph.doc.activity(activity, None, record.entry.event.time, graph.attrs(
        record, name, model=p.get("model"), **{camel[f]: p.get(f) for f in fields}))
    graph.doc.wasAssociatedWith(activity, graph.agent(record))
    model = graph.rt[graph.local("model-version", p.get("model"), f"v{p.get('version')}")]
    if str(model) in graph.entities:
        graph.doc.used(activity, model)
    for field_name, kind in (("approvals", "approval"), ("attestations", "attestation")):
        for index in p.get(field_name) or []:
            graph.doc.wasInformedBy(activity, graph.rt[graph.local(kind, index)])


def _add_predictions(graph: Any, record: Any) -> None:
    """Add each prediction of a served batch, generated by its deployment."""
    p = record.payload
    ids = p.get("ids")
    if not isinstance(ids, list):
        return
    deployment = graph.rt[graph.local("deployment", p.get("deployment"))]
    columns = {name: p.get(name) if isinstance(p.get(name), list) else [None] * len(ids)
               for name in ("times", "outputs", "input_digests", "subjects")}
    for position, prediction_id in enumerate(ids):
        subject = columns["subjects"][position]
        if graph.subject is not None and subject != graph.subject:
            continue
        output = columns["outputs"][position]
        entity = graph.entity(
            graph.rt[graph.local("prediction", prediction_id)], record, "Prediction",
            predictionId=prediction_id, madeAt=columns["times"][position],
            output=None if output is None else canonical_json_text(output),
            inputDigest=columns["input_digests"][position], subject=subject,
            deployment=p.get("deployment"))
        graph.doc.wasGeneratedBy(entity, deployment)


def _add_run(graph: Any, record: Any) -> None:
    p = record.payload
    code = p.get("code") if isinstance(p.get("code"), Mapping) else {}
    origin = p.get("origin") if isinstance(p.get("origin"), Mapping) else {}
    activity = graph.rt[graph.local("run", p.get("run_id"))]
    graph.doc.activity(activity, None, record.entry.event.time, graph.attrs(
        record, "RegistryRun", name=p.get("name"), run=p.get("run_id"),
        gitCommit=code.get("git_commit"), codeDirty=code.get("dirty"),
        trainingRun=p.get("training_run"), modelDigest=p.get("model_digest"),
        # An imported run: what the other system recorded (its claims, kept as such).
        originSystem=origin.get("system"), originRunId=origin.get("mlflow_run_id"),
        originStartTime=origin.get("start_time"), originEndTime=origin.get("end_time"),
        originUser=origin.get("mlflow_user")))
    graph.doc.wasAssociatedWith(activity, graph.agent(record))
    for used in p.get("datasets", []):
        dataset = graph.rt[graph.local("dataset", used.get("name"), f"v{used.get('version')}")]
        if str(dataset) in graph.entities:
            graph.doc.used(activity, dataset)
    training = p.get("training_run")
    if isinstance(training, str):
        graph.doc.wasInformedBy(activity, graph.rt[graph.local("training", training)])


def _add_model(graph: Any, record: Any) -> None:
    p = record.payload
    entity = graph.entity(
        graph.rt[graph.local("model-version", p.get("name"), f"v{p.get('version')}")], record,
        "ModelVersion", name=p.get("name"), version=p.get("version"),
        artifactDigest=p.get("artifact_digest"), flavor=p.get("flavor"),
        binding=p.get("binding"))
    run_id = p.get("run_id")
    if isinstance(run_id, str):
        graph.doc.wasGeneratedBy(entity, graph.rt[graph.local("run", run_id)])
    weights = p.get("weights_digest")
    if isinstance(weights, str) and str(graph.rt[graph.local("model", weights)]) in graph.entities:
        graph.doc.wasDerivedFrom(entity, graph.rt[graph.local("model", weights)])
