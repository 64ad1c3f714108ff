"""W3C PROV-JSON export of rowtrail's proven ledger records (``prov`` package).

The document (`PROV-DM <https://www.w3.org/TR/prov-dm/>`_, serialized as
`PROV-JSON <https://www.w3.org/submissions/prov-json/>`_) answers "what was this decision, this
model, made from, by whom": entities are sources (by content digest), pipeline outputs, model
weights (by digest), registry dataset and model versions, and predictions (logged ones and
those served by a deployment); activities are pipelines, training runs, registry runs,
deployments, approvals, attestations, alias moves (promotions) and erasures; agents are the
actors recorded on the events. Relations: ``used``, ``wasGeneratedBy``, ``wasDerivedFrom`` (a
model from its sources, a prediction from its model, an erased model's update from the model
before, as a revision), ``wasInformedBy`` (a promotion by the approvals and attestations its
gate relied on; a registry run by its training run), ``wasAssociatedWith`` and
``wasAttributedTo``. Free-text comments are not exported.

Every element names the ledger entry it was built from (``rtx:ledgerIndex``,
``rtx:leafHash``), and the entity ``rt:checkpoint`` the signed checkpoint (tree size, root,
note) every record was proven against. Subjects appear only as keyed pseudonyms
(``ps:<hex>``, as the ledger records them); source paths, parameters and raw identifiers are
not exported.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError
from rowtrail.interop._evidence import Evidence, ProvenRecord, collect_evidence
from rowtrail.interop._registry_view import REGISTRY_KINDS, add_registry_prov

if TYPE_CHECKING:
    from rowtrail._workspace import Workspace

__all__ = ["PROV_KINDS", "ProvExport", "export_prov", "prov_document"]

#: Namespace of rowtrail's PROV attributes and types.
RTX_NAMESPACE = "https://rowtrail.dev/ns/prov#"
#: Event kinds the PROV export reads.
PROV_KINDS = (
    "source.registered",
    "lineage.persisted",
    "training.started",
    "training.completed",
    "prediction.made",
    "erasure.requested",
    "erasure.model_updated",
    "erasure.completed",
    *REGISTRY_KINDS,
)
_FEATURE = "PROV export"


def _mapping(value: object) -> Mapping[str, Any]:
    """Return ``value`` if it is a mapping, else an empty one (a field the event lacks)."""
    return value if isinstance(value, Mapping) else {}


def _local(*parts: object) -> str:
    """Return a PROV local name from parts, each percent-encoded (no ``/`` inside a part)."""
    return "/".join(quote(str(part), safe="") for part in parts)


class _Graph:
    """Builds a ``prov.model.ProvDocument`` from evidence, one element per proven record."""

    local = staticmethod(_local)

    def __init__(self, evidence: Evidence, subject: str | None) -> None:
        model = require("prov.model", extra="interop", feature=_FEATURE)
        self.evidence = evidence
        self.subject = subject
        self.doc = model.ProvDocument()
        self.rt = self.doc.add_namespace("rt", f"rowtrail://{evidence.origin}/")
        self.rtx = self.doc.add_namespace("rtx", RTX_NAMESPACE)
        self.prov_type = model.PROV_TYPE
        self.revision = model.PROV["Revision"]
        self.agents: set[str] = set()
        self.entities: set[str] = set()
        self.sources: dict[tuple[int, str], str] = {}
        self.models: dict[str, list[str]] = {}  # model name -> entity ids of its weights

    # -------------------------------------------------------------- helpers
    def attrs(self, record: ProvenRecord, kind: str, **extra: object) -> list[tuple[Any, Any]]:
        """Return the attributes every element carries, plus ``extra`` (``None`` dropped)."""
        pairs: list[tuple[Any, Any]] = [
            (self.prov_type, self.rtx[kind]),
            (self.rtx["ledgerIndex"], record.index),
            (self.rtx["leafHash"], record.leaf_hash_hex),
            (self.rtx["eventKind"], record.entry.event.kind),
        ]
        for name, value in extra.items():
            if isinstance(value, list | tuple):
                pairs.extend((self.rtx[name], item) for item in value)
            elif value is not None:
                pairs.append((self.rtx[name], value))
        return pairs

    def agent(self, record: ProvenRecord) -> Any:
        actor = record.entry.event.actor
        identifier = self.rt[_local("actor", actor)]
        if actor not in self.agents:
            self.agents.add(actor)
            self.doc.agent(identifier, [(self.rtx["actor"], actor)])
        return identifier

    def entity(self, identifier: Any, record: ProvenRecord, kind: str, **extra: object) -> Any:
        if str(identifier) not in self.entities:
            self.entities.add(str(identifier))
            self.doc.entity(identifier, self.attrs(record, kind, **extra))
            self.doc.wasAttributedTo(identifier, self.agent(record))
        return identifier

    def source_ref(self, source: Mapping[str, Any], record: ProvenRecord) -> Any:
        """Return the entity of a source reference, made from ``record`` if not registered."""
        key = (int(source.get("source_index", -1)), str(source.get("digest")))
        if key in self.sources:
            return self.rt[self.sources[key]]
        local = _local("source-digest", source.get("digest"))
        self.sources[key] = local
        return self.entity(self.rt[local], record, "Source", digest=source.get("digest"),
                           name=source.get("name"))

    def subject_ok(self, record: ProvenRecord) -> bool:
        return self.subject is None or self.subject in record.entry.event.subjects

    # -------------------------------------------------------------- records
    def add_sources(self) -> None:
        for record in self.evidence.of("source.registered"):
            p = record.payload
            local = _local("source", p.get("name"), f"v{p.get('version')}")
            self.sources[(int(p.get("source_index", -1)), str(p.get("digest")))] = local
            self.entity(self.rt[local], record, "Source", digest=p.get("digest"),
                        name=p.get("name"), version=p.get("version"), nRows=p.get("n_rows"),
                        format=p.get("format"))

    def add_pipelines(self) -> None:
        for record in self.evidence.of("lineage.persisted"):
            p = record.payload
            activity = self.rt[_local("pipeline", record.index)]
            self.doc.activity(activity, None, record.entry.event.time,
                              self.attrs(record, "Pipeline", name=p.get("name"),
                                         dagDigest=p.get("dag_digest")))
            self.doc.wasAssociatedWith(activity, self.agent(record))
            used = [self.source_ref(s, record) for s in p.get("sources", [])]
            for source in used:
                self.doc.used(activity, source)
            for output in p.get("outputs", []):
                out = self.entity(self.rt[_local("pipeline", record.index, output["name"])],
                                  record, "PipelineOutput", name=output["name"],
                                  dagDigest=p.get("dag_digest"))
                self.doc.wasGeneratedBy(out, activity)
                for source in used:
                    self.doc.wasDerivedFrom(out, source, activity)

    def add_training(self) -> None:
        seals = {str(r.payload.get("run")): r for r in self.evidence.of("training.completed")}
        for started in self.evidence.of("training.started"):
            p = started.payload
            if "run" not in p or "name" not in p:
                continue
            seal = seals.get(str(p["run"]))
            sp: Mapping[str, Any] = seal.payload if seal is not None else {}
            code = _mapping(sp.get("code"))
            activity = self.rt[_local("training", p["run"])]
            self.doc.activity(
                activity, started.entry.event.time,
                None if seal is None else seal.entry.event.time,
                self.attrs(started, "TrainingRun", name=p["name"], run=p["run"],
                           status="unknown" if seal is None else sp.get("status"),
                           gitCommit=code.get("git_commit"), codeDirty=code.get("dirty"),
                           sealIndex=None if seal is None else seal.index,
                           sealLeafHash=None if seal is None else seal.leaf_hash_hex),
            )
            self.doc.wasAssociatedWith(activity, self.agent(started))
            if seal is None:
                continue
            data = _mapping(sp.get("data"))
            used = [self.source_ref(s, seal) for s in data.get("sources", [])]
            for source in used:
                self.doc.used(activity, source)
            model = sp.get("model")
            if isinstance(model, Mapping) and isinstance(model.get("digest"), str):
                out = self.entity(self.rt[_local("model", model["digest"])], seal, "Model",
                                  digest=model["digest"], name=p["name"],
                                  modelKind=model.get("kind"))
                self.doc.wasGeneratedBy(out, activity, seal.entry.event.time)
                self.models.setdefault(str(p["name"]), []).append(str(out))
                for source in used:
                    self.doc.wasDerivedFrom(out, source, activity)

    def add_predictions(self) -> None:
        for record in self.evidence.of("prediction.made"):
            if not self.subject_ok(record):
                continue
            p = record.payload
            lineage = _mapping(p.get("input_lineage"))
            decision = p.get("decision")
            out = self.entity(self.rt[_local("prediction", record.index)], record, "Prediction",
                              model=p.get("model") if isinstance(p.get("model"), str) else None,
                              decision=decision if isinstance(decision, str) else None,
                              subject=list(record.entry.event.subjects),
                              inputRowsDigest=lineage.get("rows_digest"),
                              inputLineageStatus=lineage.get("status"))
            weights = self.models.get(str(p.get("model")), [])
            # A prediction names its model as free text: it is linked only when exactly one
            # recorded model has that name; otherwise the link is unknown, not guessed.
            if len(weights) == 1:
                self.doc.wasDerivedFrom(out, weights[0])

    def add_erasures(self) -> None:
        updates: dict[str, list[ProvenRecord]] = {}
        for record in self.evidence.of("erasure.model_updated"):
            updates.setdefault(str(record.payload.get("job")), []).append(record)
        completed = {str(r.payload.get("job")): r for r in self.evidence.of("erasure.completed")}
        for requested in self.evidence.of("erasure.requested"):
            job = str(requested.payload.get("job"))
            done = completed.get(job)
            if not self.subject_ok(done or requested):
                continue
            activity = self.rt[_local("erasure", job)]
            self.doc.activity(
                activity, requested.entry.event.time,
                None if done is None else done.entry.event.time,
                self.attrs(requested, "Erasure", job=job,
                           status="unknown" if done is None else done.payload.get("status"),
                           completedIndex=None if done is None else done.index,
                           completedLeafHash=None if done is None else done.leaf_hash_hex,
                           subject=list((done or requested).entry.event.subjects)),
            )
            self.doc.wasAssociatedWith(activity, self.agent(requested))
            for update in updates.get(job, []):
                self.add_update(activity, update)

    def add_update(self, activity: Any, update: ProvenRecord) -> None:
        before, after = (update.payload.get(k) for k in ("model_digest_before",
                                                           "model_digest_after"))
        if not isinstance(after, str):
            return
        out = self.entity(self.rt[_local("model", after)], update, "Model", digest=after,
                          method=update.payload.get("method"))
        self.doc.wasGeneratedBy(out, activity, update.entry.event.time)
        if isinstance(before, str):
            old = self.rt[_local("model", before)]
            if str(old) in self.entities:
                self.doc.used(activity, old)
                self.doc.wasDerivedFrom(out, old, activity, other_attributes={
                    self.prov_type: self.revision})

    def add_checkpoint(self) -> None:
        head = self.evidence.head
        self.doc.entity(self.rt["checkpoint"], [
            (self.prov_type, self.rtx["SignedCheckpoint"]),
            (self.rtx["origin"], self.evidence.origin),
            (self.rtx["treeSize"], head.size),
            (self.rtx["rootHash"], head.root.hex()),
            (self.rtx["note"], self.evidence.checkpoint_note),
        ])


@dataclass(frozen=True)
class ProvExport:
    """What :func:`export_prov` wrote: the file and how many PROV records of each kind."""

    path: Path
    counts: dict[str, int]
    tree_size: int

    def to_json(self) -> dict[str, Any]:
        """Return a JSON summary."""
        return {"path": str(self.path), "counts": dict(self.counts), "tree_size": self.tree_size}


def prov_document(ws: Workspace, *, subject: object = None) -> Any:
    """Return the workspace's provenance as a ``prov.model.ProvDocument``.

    Parameters
    ----------
    ws : Workspace
        An open workspace (read-only is enough).
    subject : str or int, optional
        Keep only the predictions and erasures of this subject (a ``ps:`` pseudonym, or a raw
        identifier, pseudonymized with the workspace key and never written).

    Raises
    ------
    StateError
        The ledger holds no signed checkpoint yet.
    VerificationError
        A record's proof fails; nothing is returned.
    """
    return _build(ws, subject).doc


def _build(ws: Workspace, subject: object) -> _Graph:
    pseudonym = None
    if subject is not None:
        pseudonym = (subject if isinstance(subject, str) and subject.startswith("ps:")
                     else ws.pseudonymize(subject))
    graph = _Graph(collect_evidence(ws, PROV_KINDS), pseudonym)
    graph.add_checkpoint()
    graph.add_sources()
    graph.add_pipelines()
    graph.add_training()
    add_registry_prov(graph)
    graph.add_predictions()
    graph.add_erasures()
    return graph


def _counts(doc: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in doc.get_records():
        name = record.get_type().localpart
        counts[name] = counts.get(name, 0) + 1
    return dict(sorted(counts.items()))


def export_prov(
    ws: Workspace, path: str | os.PathLike[str], *, subject: object = None
) -> ProvExport:
    """Write the workspace's W3C PROV-JSON document to ``path`` (see :func:`prov_document`).

    Returns
    -------
    ProvExport
        The path and the number of PROV records of each kind (``Entity``, ``Activity``,
        ``Agent``, ``Usage``, ``Generation``, ``Derivation``, ``Association``, ``Attribution``).

    Raises
    ------
    InvalidInputError
        ``path`` exists or its directory does not; nothing is written.

    Examples
    --------
    >>> import tempfile, os, rowtrail as rt
    >>> from rowtrail.interop import export_prov
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> with ws.training_run("demo") as run:
    ...     pass
    >>> out = export_prov(ws, os.path.join(tempfile.mkdtemp(), "prov.json"))
    >>> out.counts["Activity"], out.counts["Agent"]
    (1, 1)
    """
    target = Path(path)
    if target.exists() or not target.parent.is_dir():
        raise InvalidInputError(
            f"path of export_prov must be a new file in an existing directory; got "
            f"{str(target)!r}. Choose another path. Nothing was written."
        )
    graph = _build(ws, subject)
    text = graph.doc.serialize(format="json", indent=2)
    with open(target, "x", encoding="utf-8") as handle:
        handle.write(text)
    return ProvExport(target, _counts(graph.doc), graph.evidence.head.size)
