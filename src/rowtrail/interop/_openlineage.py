"""OpenLineage run events from rowtrail's proven ledger records, and their verification.

Each rowtrail activity becomes an OpenLineage run (`OpenLineage spec 2-0-2
<https://openlineage.io/spec/2-0-2/OpenLineage.json>`_), emitted with the
``openlineage-python`` client through its ``FileTransport`` (one JSON event per line):

- a **training run** (``training.started`` / ``training.completed``): START, then COMPLETE,
  FAIL (with an ``errorMessage`` facet naming the recorded exception class) or ABORT as its
  seal records; a run with no seal has only its START (its end is unknown). Inputs are the
  sources it trained on, the output its model (dataset version = the weights' digest);
- a **pipeline** (``lineage.persisted``): COMPLETE only — the ledger records when its lineage
  was persisted, not when it started. Inputs are its sources, outputs its named outputs
  (dataset version = the lineage DAG digest);
- an **erasure job** (``erasure.requested`` / ``erasure.completed``): START, then COMPLETE
  (FAIL for another recorded status); inputs the models before (version = weights digest),
  outputs the updated models;
- a **registry run** (``registry.run``): COMPLETE, inputs the sources of its dataset versions,
  outputs the model versions registered from it (version = artifact digest).

Datasets live in the namespace ``rowtrail://<origin>``; a source's ``version`` facet is its
content digest (SHA-256 of its bytes), and its ``schema`` facet the recorded column types.
Every event carries the custom run facet ``rowtrail_ledgerProof``: the ledger entry it was
made from (index, exact leaf bytes, leaf hash), its RFC 9162 inclusion proof and the signed
C2SP checkpoint note of that tree, so :func:`verify_openlineage_event` can check the event
with the log's verifier key alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rowtrail._optional import require
from rowtrail.errors import (
    InvalidInputError,
    StateError,
)
from rowtrail.interop._evidence import PRODUCER, Evidence, ProvenRecord, run_uuid
from rowtrail.interop._registry_view import REGISTRY_KINDS, registry_events
from rowtrail.interop._schemas import validate_openlineage_event
from rowtrail.ledger._events import format_time

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = [
    "PROOF_FACET",
    "OpenLineageExport",
    "export_openlineage",
    "openlineage_events",
]

#: Name of rowtrail's custom run facet.
PROOF_FACET = "rowtrail_ledgerProof"
PROOF_SCHEMA_URL = (
    "https://rowtrail.dev/spec/facets/1-0-0/RowtrailLedgerProofRunFacet.json"
    "#/$defs/RowtrailLedgerProofRunFacet"
)
#: Event kinds the OpenLineage export reads.
OPENLINEAGE_KINDS = (
    "source.registered",
    "lineage.persisted",
    "training.started",
    "training.completed",
    "erasure.requested",
    "erasure.model_updated",
    "erasure.completed",
    *REGISTRY_KINDS,
)
_FEATURE = "OpenLineage export"


def _ol() -> Any:
    return require("openlineage.client.event_v2", extra="interop", feature=_FEATURE)


@cache
def _proof_facet_class() -> Any:
    """Return the attrs class of the ``rowtrail_ledgerProof`` run facet (built on first use)."""
    attr = require("attr", extra="interop", feature=_FEATURE)
    base = require("openlineage.client.generated.base", extra="interop", feature=_FEATURE)

    @attr.define(kw_only=True)
    class RowtrailLedgerProofRunFacet(base.RunFacet):  # type: ignore[misc,name-defined]
        origin: str
        ledgerIndex: int  # noqa: N815 (OpenLineage field names are camelCase)
        eventKind: str  # noqa: N815
        leaf: str
        leafHash: str  # noqa: N815
        treeSize: int  # noqa: N815
        rootHash: str  # noqa: N815
        inclusionPath: list[str]  # noqa: N815
        checkpoint: str

        @staticmethod
        def _get_schema() -> str:
            return PROOF_SCHEMA_URL

    return RowtrailLedgerProofRunFacet


@dataclass(frozen=True)
class OpenLineageExport:
    """What :func:`export_openlineage` wrote: the file, its events and the runs they describe."""

    path: Path
    n_events: int
    n_runs: int
    tree_size: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON summary."""
        return {"path": str(self.path), "n_events": self.n_events, "n_runs": self.n_runs,
                "tree_size": self.tree_size}


class _Builder:
    """Turns proven records into OpenLineage client event objects."""

    def __init__(self, evidence: Evidence) -> None:
        self.evidence = evidence
        self.namespace = f"rowtrail://{evidence.origin}"
        self.ol = _ol()
        self.sources: dict[tuple[int, str], Mapping[str, Any]] = {}
        for record in evidence.of("source.registered"):
            payload = record.payload
            self.sources[(int(payload["source_index"]), str(payload["digest"]))] = payload

    # -------------------------------------------------------------- datasets
    def source_input(self, source: Mapping[str, Any]) -> Any:
        """Return the input dataset of a source reference ``{name, digest, source_index}``."""
        registered = self.sources.get((int(source.get("source_index", -1)),
                                       str(source.get("digest"))))
        facets: dict[str, Any] = {
            "version": self._version(str(source["digest"])),
        }
        schema = registered.get("schema") if registered is not None else None
        if isinstance(schema, Mapping) and schema:
            module = self._facet_module("schema_dataset")
            facets["schema"] = module.SchemaDatasetFacet(producer=PRODUCER, fields=[
                module.SchemaDatasetFacetFields(name=str(name), type=str(kind))
                for name, kind in schema.items()
            ])
        return self.ol.InputDataset(self.namespace, f"source/{source['name']}", facets=facets)

    def output(self, name: str, version: str | None) -> Any:
        """Return an output dataset, with a version facet when its digest is known."""
        facets = {} if version is None else {"version": self._version(version)}
        return self.ol.OutputDataset(self.namespace, name, facets=facets)

    def model_input(self, name: str, version: object) -> Any:
        """Return a model as an input dataset, with its weights digest as version if known."""
        facets = {"version": self._version(version)} if isinstance(version, str) else {}
        return self.ol.InputDataset(self.namespace, name, facets=facets)

    def _version(self, digest: str) -> Any:
        return self._facet_module("dataset_version_dataset").DatasetVersionDatasetFacet(
            datasetVersion=digest, producer=PRODUCER
        )

    def _facet_module(self, name: str) -> Any:
        return require(f"openlineage.client.generated.{name}", extra="interop", feature=_FEATURE)

    # -------------------------------------------------------------- events
    def event(
        self,
        state: str,
        record: ProvenRecord,
        *,
        job: str,
        job_type: str,
        run_key: tuple[str, str],
        inputs: Sequence[Any] = (),
        outputs: Sequence[Any] = (),
        error: str | None = None,
    ) -> Any:
        """Return one RunEvent made from ``record``, with its proof facet."""
        run_facets: dict[str, Any] = {
            PROOF_FACET: _proof_facet_class()(
                producer=PRODUCER, **self.evidence.proof_json(record)
            ),
        }
        if error is not None:
            run_facets["errorMessage"] = self._facet_module(
                "error_message_run"
            ).ErrorMessageRunFacet(
                message=error, programmingLanguage="python", producer=PRODUCER
            )
        job_facets = {
            "jobType": self._facet_module("job_type_job").JobTypeJobFacet(
                processingType="BATCH", integration="ROWTRAIL", jobType=job_type,
                producer=PRODUCER,
            )
        }
        return self.ol.RunEvent(
            eventType=getattr(self.ol.RunState, state),
            eventTime=format_time(record.entry.event.time),
            run=self.ol.Run(runId=run_uuid(self.evidence.origin, *run_key), facets=run_facets),
            job=self.ol.Job(namespace=self.namespace, name=job, facets=job_facets),
            inputs=list(inputs),
            outputs=list(outputs),
            producer=PRODUCER,
        )


def run_key(kind: str, payload: Mapping[str, Any], index: int) -> tuple[str, str]:
    """Return the ``(kind, key)`` the OpenLineage run id of a ledger event is derived from."""
    if kind.startswith("training."):
        return "training", str(payload["run"])
    if kind == "registry.run":
        return "registry-run", str(payload.get("run_id", index))
    if kind.startswith("erasure."):
        return "erasure", str(payload["job"])
    return "pipeline", str(index)


def _run_key(record: ProvenRecord) -> tuple[str, str]:
    return run_key(record.entry.event.kind, record.payload, record.index)


def _training_events(builder: _Builder) -> list[tuple[int, Any]]:
    evidence = builder.evidence
    seals = {str(r.payload["run"]): r for r in evidence.of("training.completed")
             if "run" in r.payload}
    found: list[tuple[int, Any]] = []
    for started in evidence.of("training.started"):
        payload = started.payload
        if "run" not in payload or "name" not in payload:
            continue
        job = f"training/{payload['name']}"
        found.append((started.index, builder.event(
            "START", started, job=job, job_type="TRAINING", run_key=_run_key(started)
        )))
        seal = seals.get(str(payload["run"]))
        if seal is None:
            continue  # no seal: how the run ended is unknown
        status = str(seal.payload.get("status", "completed"))
        state = status.partition(":")[0]
        model = seal.payload.get("model")
        digest = model.get("digest") if isinstance(model, Mapping) else None
        data = seal.payload.get("data")
        sources = data.get("sources", []) if isinstance(data, Mapping) else []
        found.append((seal.index, builder.event(
            {"completed": "COMPLETE", "aborted": "ABORT"}.get(state, "FAIL"),
            seal, job=job, job_type="TRAINING", run_key=_run_key(seal),
            inputs=[builder.source_input(source) for source in sources],
            outputs=[builder.output(f"model/{payload['name']}",
                                    digest if isinstance(digest, str) else None)],
            error=None if state in ("completed", "aborted") else status,
        )))
    return found


def _pipeline_events(builder: _Builder) -> list[tuple[int, Any]]:
    found = []
    for record in builder.evidence.of("lineage.persisted"):
        payload = record.payload
        name = str(payload.get("name", record.index))
        outputs = [
            builder.output(f"pipeline/{name}/{output['name']}", payload.get("dag_digest"))
            for output in payload.get("outputs", [])
            if isinstance(output, Mapping) and "name" in output
        ]
        found.append((record.index, builder.event(
            "COMPLETE", record, job=f"pipeline/{name}", job_type="PIPELINE",
            run_key=_run_key(record),
            inputs=[builder.source_input(s) for s in payload.get("sources", [])],
            outputs=outputs,
        )))
    return found


def _erasure_events(builder: _Builder) -> list[tuple[int, Any]]:
    evidence = builder.evidence
    names = {str(r.payload.get("run")): str(r.payload.get("name"))
             for r in evidence.of("training.started")}
    updates: dict[str, list[ProvenRecord]] = {}
    for record in evidence.of("erasure.model_updated"):
        updates.setdefault(str(record.payload.get("job")), []).append(record)
    done = {str(r.payload.get("job")): r for r in evidence.of("erasure.completed")}
    found: list[tuple[int, Any]] = []
    for requested in evidence.of("erasure.requested"):
        job = str(requested.payload.get("job"))
        found.append((requested.index, builder.event(
            "START", requested, job="erasure", job_type="ERASURE", run_key=("erasure", job))))
        completed = done.get(job)
        if completed is None:
            continue  # not completed: how it ended is unknown
        changed = [(names.get(str(u.payload.get("run")), str(u.payload.get("run"))), u.payload)
                   for u in updates.get(job, [])]
        status = str(completed.payload.get("status"))
        found.append((completed.index, builder.event(
            "COMPLETE" if status == "completed" else "FAIL", completed, job="erasure",
            job_type="ERASURE", run_key=("erasure", job),
            inputs=[builder.model_input(f"model/{name}", p.get("model_digest_before"))
                    for name, p in changed],
            outputs=[builder.output(f"model/{name}", p.get("model_digest_after"))
                     for name, p in changed],
            error=None if status == "completed" else status,
        )))
    return found


def build_events(evidence: Evidence) -> list[Any]:
    """Return the OpenLineage client RunEvents of ``evidence``, in ledger order."""
    builder = _Builder(evidence)
    found = (_training_events(builder) + _pipeline_events(builder) + _erasure_events(builder)
             + registry_events(builder))
    return [event for _, event in sorted(found, key=lambda item: item[0])]


def _to_json(event: Any) -> dict[str, Any]:
    serde = require("openlineage.client.serde", extra="interop", feature=_FEATURE)
    value: dict[str, Any] = json.loads(serde.Serde.to_json(event))
    return value


def openlineage_events(ws: Workspace) -> list[dict[str, Any]]:
    """Return the OpenLineage RunEvents of a workspace as JSON objects, each validated.

    Built only from proven ledger records (:mod:`rowtrail.interop._evidence`); reads only.

    Raises
    ------
    StateError
        The ledger holds no signed checkpoint yet.
    VerificationError
        A record's proof fails; nothing is returned.
    """
    from rowtrail.interop._evidence import collect_evidence

    events = [_to_json(e) for e in build_events(collect_evidence(ws, OPENLINEAGE_KINDS))]
    for event in events:
        validate_openlineage_event(event)
    return events


def export_openlineage(ws: Workspace, path: str | os.PathLike[str]) -> OpenLineageExport:
    """Emit the workspace's OpenLineage run events to ``path`` with the client's FileTransport.

    The file gets one JSON event per line (the transport's append mode), START before
    COMPLETE; every line written is read back and validated against the vendored OpenLineage
    schemas (:func:`validate_openlineage_event`). Reads the workspace only.

    Parameters
    ----------
    ws : Workspace
        An open workspace (read-only is enough).
    path : str or path
        The file to write; it must not exist yet (an export is never mixed into another).

    Returns
    -------
    OpenLineageExport

    Raises
    ------
    InvalidInputError
        ``path`` exists or its directory does not (nothing is written), or an event the
        client wrote does not validate (the file is removed).
    StateError
        ``OPENLINEAGE_DISABLED`` is set (the client would drop every event), or the client's
        own configuration filtered some events out (the file is removed).
    VerificationError
        A record's proof fails; nothing is written.

    Examples
    --------
    >>> import tempfile, os, rowtrail as rt
    >>> from rowtrail.interop import export_openlineage
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> with ws.training_run("demo") as run:
    ...     pass
    >>> out = export_openlineage(ws, os.path.join(tempfile.mkdtemp(), "ol.jsonl"))
    >>> out.n_events, out.n_runs
    (2, 1)
    """
    target = Path(path)
    if target.exists() or not target.parent.is_dir():
        raise InvalidInputError(
            f"path of export_openlineage must be a new file in an existing directory; got "
            f"{str(target)!r}. Choose another path. Nothing was written."
        )
    from rowtrail.interop._evidence import collect_evidence

    evidence = collect_evidence(ws, OPENLINEAGE_KINDS)
    events = build_events(evidence)
    client_module = require("openlineage.client", extra="interop", feature=_FEATURE)
    file_module = require("openlineage.client.transport.file", extra="interop", feature=_FEATURE)
    transport = file_module.FileTransport(
        file_module.FileConfig(log_file_path=str(target), append=True)
    )
    client = client_module.OpenLineageClient(transport=transport, config={})
    if client.transport is not transport:
        raise StateError(
            "the OpenLineage client is disabled (OPENLINEAGE_DISABLED is set), so it would drop "
            "every event; unset it to export. Nothing was written."
        )
    for event in events:
        client.emit(event)
    written = [json.loads(line) for line in target.read_text("utf-8").splitlines() if line]
    try:
        if len(written) != len(events):
            raise StateError(
                f"the OpenLineage client wrote {len(written)} of {len(events)} events: its "
                "configuration (openlineage.yml, OPENLINEAGE__* variables) filters events. "
                "Remove the filter to export. Nothing was kept."
            )
        for event in written:
            validate_openlineage_event(event)
    except (InvalidInputError, StateError):
        target.unlink()  # an invalid or partial export is not left behind
        raise
    runs = {event["run"]["runId"] for event in written}
    return OpenLineageExport(target, len(written), len(runs), evidence.head.size)
