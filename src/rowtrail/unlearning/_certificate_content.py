"""What an erasure certificate says: typed content and its ``rowtrail.dev/erasure/v1`` JSON form.

The predicate of an erasure certificate (the in-toto Statement's ``predicate``) is one JSON
object with a closed schema (unknown fields are refused, so nothing can ride along unsigned by
meaning)::

    {"request":  {"job_id", "reason", "requested_at", "received_at", "subjects", "sources"},
     "rows":     {"scheme": "rowtrail.dev/row-commitment/v1", "commitments": ["sha256:…"]},
     "counts":   {"n_removed_samples", "n_recomputed_samples", "n_refitted_statistics",
                  "n_shredded_payloads"},
     "methods":  [{"model", "name", "exactness": "exact"|"approximate", "parameters",
                   "residual", "bound"}],
     "verification": {"<name>": {"value", "passed", "criterion"}},
     "models":   [{"name", "before", "after"}],
     "event_indices": [i, …],
     "ledger":   {"checkpoint": "<signed C2SP note>",
                  "events": [{"index", "leaf" (base64), "path": ["<hex>", …]}]},
     "issued_at": "2026-01-31T12:00:00.000000Z"}

Subjects are keyed pseudonyms (``ps:<hex>``), never raw identifiers; rows are salted
commitments (see :mod:`rowtrail.unlearning._commitments`), never row ids. Times are UTC in the
ledger's format.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rowtrail.errors import CertificateError, InvalidInputError
from rowtrail.hashing import canonical_json, check_digest
from rowtrail.ids import check_pseudonym
from rowtrail.ledger._events import format_time, parse_time

__all__ = [
    "COMMITMENT_SCHEME",
    "CertificateContent",
    "ErasureCounts",
    "ErasureRequest",
    "LedgerEvidence",
    "MethodRecord",
    "ModelDigests",
    "ProvenEvent",
    "VerificationFigure",
    "check_job_id",
]

#: How row commitments are computed (see ``_commitments.compute_commitment``).
COMMITMENT_SCHEME = "rowtrail.dev/row-commitment/v1"

_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_EXACTNESS = ("exact", "approximate")


def check_job_id(job_id: object, *, caller: str = "the erasure certificate") -> str:
    """Raise :class:`InvalidInputError` unless ``job_id`` is a safe job name (also a file name)."""
    if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
        raise InvalidInputError(
            f"job_id of {caller} must be 1-128 letters, digits, '_', '.' or '-' starting with a "
            f"letter or digit; got {job_id!r}"
        )
    return job_id


def _check_text(value: object, name: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise InvalidInputError(f"{name} of the erasure certificate must be a non-empty str; "
                                f"got {value!r}")
    return value


def _check_number(value: object, name: str, *, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(
            f"{name} of the erasure certificate must be a finite number; got {value!r}"
        )
    return value


def _check_count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInputError(
            f"{name} of the erasure certificate must be an int >= 0; got {value!r}"
        )
    return value


def _check_time(value: object, name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(
            f"{name} of the erasure certificate must be a timezone-aware datetime; got "
            f"{value!r}. Use datetime.now(UTC)."
        )
    return value


@dataclass(frozen=True, slots=True)
class ErasureRequest:
    """The request a certificate answers.

    Parameters
    ----------
    job_id : str
        The erasure job that handled it (also names its commitment key).
    reason : str
        Why the data was erased (e.g. ``"GDPR Art. 17 request"``).
    requested_at, received_at : datetime
        When the data subject asked, and when the operator received the request (aware).
    subjects : sequence of str
        Keyed pseudonyms (``ps:<hex>``) of the data subjects; never raw identifiers.
    sources : sequence of str
        Source names whose rows were named in the request (for requests by source rows).
    """

    job_id: str
    reason: str
    requested_at: datetime
    received_at: datetime
    subjects: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        _check_text(self.reason, "reason")
        _check_time(self.requested_at, "requested_at")
        _check_time(self.received_at, "received_at")
        subjects = tuple(sorted({check_pseudonym(s, name="subjects")
                                 for s in _strings_any(self.subjects, "subjects")}))
        object.__setattr__(self, "subjects", subjects)
        sources = {_check_text(s, "sources") for s in _strings_any(self.sources, "sources")}
        object.__setattr__(self, "sources", tuple(sorted(sources)))
        if not subjects and not self.sources:
            raise InvalidInputError(
                "subjects and sources of the erasure request are both empty; name the subject "
                "pseudonyms or the sources whose rows were erased"
            )

    def to_json(self) -> dict[str, Any]:
        """Return the ``request`` object of the predicate."""
        return {
            "job_id": self.job_id,
            "reason": self.reason,
            "requested_at": format_time(self.requested_at),
            "received_at": format_time(self.received_at),
            "subjects": list(self.subjects),
            "sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, data: object) -> ErasureRequest:
        """Parse the ``request`` object of a predicate."""
        value = _object(data, "request", {"job_id", "reason", "requested_at", "received_at",
                                          "subjects", "sources"})
        return cls(
            job_id=value["job_id"],
            reason=value["reason"],
            requested_at=parse_time(value["requested_at"]),
            received_at=parse_time(value["received_at"]),
            subjects=tuple(_list(value["subjects"], "request.subjects")),
            sources=tuple(_list(value["sources"], "request.sources")),
        )


def _strings_any(values: object, name: str) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise InvalidInputError(
            f"{name} of the erasure certificate must be a sequence of str; got {values!r}"
        )
    return tuple(values)


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    """What the erasure touched, counted by role (DESIGN §6).

    ``n_removed_samples`` training samples that were the erased rows; ``n_recomputed_samples``
    samples built from them (joins, aggregations) recomputed without them;
    ``n_refitted_statistics`` fitted statistics refitted; ``n_shredded_payloads`` stored
    payloads whose data keys were destroyed.
    """

    n_removed_samples: int = 0
    n_recomputed_samples: int = 0
    n_refitted_statistics: int = 0
    n_shredded_payloads: int = 0

    def __post_init__(self) -> None:
        for name in ErasureCounts.__dataclass_fields__:
            _check_count(getattr(self, name), name)

    def to_json(self) -> dict[str, int]:
        """Return the ``counts`` object of the predicate."""
        return {name: getattr(self, name) for name in ErasureCounts.__dataclass_fields__}

    @classmethod
    def from_json(cls, data: object) -> ErasureCounts:
        """Parse the ``counts`` object of a predicate."""
        return cls(**_object(data, "counts", set(ErasureCounts.__dataclass_fields__)))


@dataclass(frozen=True, slots=True)
class MethodRecord:
    """How one model (or fitted statistic) was changed, and how exactly.

    ``exact`` is ``True`` for methods whose result equals retraining without the erased data
    (shard retraining, full retraining, Newton removal whose residual met its tolerance);
    approximate first-order methods are ``False`` and shown as "approximate" everywhere.
    ``residual`` and ``bound`` are the retained-data gradient residual and the parameter bound
    it implies, for convex removal.
    """

    model: str
    name: str
    exact: bool
    parameters: Mapping[str, Any] = field(default_factory=dict)
    residual: float | None = None
    bound: float | None = None

    def __post_init__(self) -> None:
        _check_text(self.model, "model of a method")
        _check_text(self.name, "name of a method")
        if not isinstance(self.exact, bool):
            raise InvalidInputError(f"exact of a method must be a bool; got {self.exact!r}")
        if not isinstance(self.parameters, Mapping):
            raise InvalidInputError(
                f"parameters of a method must be a mapping; got {self.parameters!r}"
            )
        canonical_json(dict(self.parameters))  # JSON values only (raises otherwise)
        object.__setattr__(self, "parameters", dict(self.parameters))
        _check_number(self.residual, "residual of a method", optional=True)
        _check_number(self.bound, "bound of a method", optional=True)

    @property
    def exactness(self) -> str:
        """``"exact"`` or ``"approximate"``."""
        return _EXACTNESS[0] if self.exact else _EXACTNESS[1]

    def to_json(self) -> dict[str, Any]:
        """Return one element of the predicate's ``methods``."""
        return {
            "model": self.model,
            "name": self.name,
            "exactness": self.exactness,
            "parameters": dict(self.parameters),
            "residual": self.residual,
            "bound": self.bound,
        }

    @classmethod
    def from_json(cls, data: object) -> MethodRecord:
        """Parse one element of the predicate's ``methods``."""
        value = _object(data, "method", {"model", "name", "exactness", "parameters",
                                         "residual", "bound"})
        if value["exactness"] not in _EXACTNESS:
            raise CertificateError(
                f"exactness of a method must be 'exact' or 'approximate'; got "
                f"{value['exactness']!r}"
            )
        return cls(value["model"], value["name"], value["exactness"] == "exact",
                   _object(value["parameters"], "parameters", None), value["residual"],
                   value["bound"])


@dataclass(frozen=True, slots=True)
class VerificationFigure:
    """One figure of the comparison with retraining: its value and whether it passed.

    ``criterion`` says what passing means, e.g. ``"100 ± 3 %"`` or ``"<= 0.02"``.
    """

    name: str
    value: float
    passed: bool
    criterion: str = ""

    def __post_init__(self) -> None:
        _check_text(self.name, "name of a figure")
        _check_number(self.value, f"value of figure {self.name!r}")
        if not isinstance(self.passed, bool):
            raise InvalidInputError(f"passed of figure {self.name!r} must be a bool; "
                                    f"got {self.passed!r}")
        _check_text(self.criterion, f"criterion of figure {self.name!r}", empty=True)

    def to_json(self) -> dict[str, Any]:
        """Return the value of this figure in the predicate's ``verification`` mapping."""
        return {"value": self.value, "passed": self.passed, "criterion": self.criterion}


@dataclass(frozen=True, slots=True)
class ModelDigests:
    """A model's content digest (``sha256:<hex>``) before and after the erasure."""

    name: str
    before_digest: str
    after_digest: str

    def __post_init__(self) -> None:
        _check_text(self.name, "name of a model")
        check_digest(self.before_digest, name=f"before_digest of model {self.name!r}")
        check_digest(self.after_digest, name=f"after_digest of model {self.name!r}")

    def to_json(self) -> dict[str, str]:
        """Return one element of the predicate's ``models``."""
        return {"name": self.name, "before": self.before_digest, "after": self.after_digest}

    @classmethod
    def from_json(cls, data: object) -> ModelDigests:
        """Parse one element of the predicate's ``models``."""
        value = _object(data, "model", {"name", "before", "after"})
        return cls(value["name"], value["before"], value["after"])


@dataclass(frozen=True, slots=True)
class ProvenEvent:
    """One erasure event: its ledger index, exact leaf bytes and RFC 9162 audit path."""

    index: int
    leaf: bytes
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """Return ``{"index", "leaf" (base64), "path" (hex list)}``."""
        return {
            "index": self.index,
            "leaf": base64.b64encode(self.leaf).decode("ascii"),
            "path": [node.hex() for node in self.path],
        }

    @classmethod
    def from_json(cls, data: object) -> ProvenEvent:
        """Parse the form written by :meth:`to_json`."""
        value = _object(data, "ledger event", {"index", "leaf", "path"})
        index = value["index"]
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise CertificateError(f"index of a ledger event must be an int >= 0; got {index!r}")
        try:
            leaf = base64.b64decode(_str(value["leaf"], "leaf"), validate=True)
            path = tuple(bytes.fromhex(_str(node, "path")) for node in _list(value["path"], "path"))
        except (binascii.Error, ValueError) as exc:
            raise CertificateError(f"ledger event {index}: leaf or path is not encoded: {exc}") \
                from exc
        return cls(index, leaf, path)


@dataclass(frozen=True, slots=True)
class LedgerEvidence:
    """The signed checkpoint and the inclusion proofs of every erasure event against it."""

    checkpoint: str
    events: tuple[ProvenEvent, ...]

    def to_json(self) -> dict[str, Any]:
        """Return the predicate's ``ledger`` object."""
        return {"checkpoint": self.checkpoint, "events": [e.to_json() for e in self.events]}

    @classmethod
    def from_json(cls, data: object) -> LedgerEvidence:
        """Parse the predicate's ``ledger`` object."""
        value = _object(data, "ledger", {"checkpoint", "events"})
        return cls(_str(value["checkpoint"], "ledger.checkpoint"),
                   tuple(ProvenEvent.from_json(e) for e in _list(value["events"], "events")))


@dataclass(frozen=True, slots=True)
class CertificateContent:
    """Everything an erasure certificate states (the in-toto predicate, typed).

    The erasure job fills every field but ``ledger`` and ``issued_at``, which
    :func:`~rowtrail.unlearning._certificate.issue_certificate` adds from the workspace's
    ledger (the checkpoint and inclusion proofs of ``event_indices``) and its clock.

    Parameters
    ----------
    request : ErasureRequest
        What was asked, by whom (pseudonyms), when and why.
    row_commitments : sequence of str
        Salted commitments of the resolved source rows (``sha256:<hex>``), from
        :func:`~rowtrail.unlearning._commitments.commit_rows`; stored sorted.
    counts : ErasureCounts
        What was removed, recomputed, refitted and shredded.
    methods : sequence of MethodRecord
        How each model was changed, labelled exact or approximate.
    figures : sequence of VerificationFigure
        The comparison with retraining (names must be unique).
    models : sequence of ModelDigests
        Model digests before and after; the "after" digests are the Statement's subjects.
    event_indices : sequence of int
        Ledger indices of the job's ``erasure.*`` events.
    ledger, issued_at
        Set when the certificate is issued.
    """

    request: ErasureRequest
    row_commitments: tuple[str, ...]
    counts: ErasureCounts
    methods: tuple[MethodRecord, ...]
    figures: tuple[VerificationFigure, ...]
    models: tuple[ModelDigests, ...]
    event_indices: tuple[int, ...]
    ledger: LedgerEvidence | None = None
    issued_at: datetime | None = None

    def __post_init__(self) -> None:
        _typed(self.request, ErasureRequest, "request")
        _typed(self.counts, ErasureCounts, "counts")
        commitments = {check_digest(c, name="row_commitments[]")
                       for c in _strings_any(self.row_commitments, "row_commitments")}
        object.__setattr__(self, "row_commitments", tuple(sorted(commitments)))
        for name, kind in (("methods", MethodRecord), ("figures", VerificationFigure),
                           ("models", ModelDigests)):
            items = tuple(_sequence(getattr(self, name), name))
            for item in items:
                _typed(item, kind, name + "[]")
            object.__setattr__(self, name, items)
        counts = self.counts
        changed = (
            counts.n_removed_samples + counts.n_recomputed_samples + counts.n_refitted_statistics
        )
        for name, values in (("methods", self.methods), ("models", self.models)):
            # Empty only for a job whose rows reached no recorded model.
            if not values and changed:
                raise InvalidInputError(f"{name} of the erasure certificate must not be empty")
        if bool(self.methods) != bool(self.models):
            raise InvalidInputError(
                "methods and models of the erasure certificate must both be given or both be "
                "empty (a job that changed no model)"
            )
        names = [figure.name for figure in self.figures]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"figures of the erasure certificate have repeated names "
                                    f"{sorted(names)}")
        if len({model.name for model in self.models}) != len(self.models):
            raise InvalidInputError("models of the erasure certificate have repeated names")
        indices = [_check_count(i, "event_indices[]") for i in _sequence(self.event_indices,
                                                                          "event_indices")]
        if not indices:
            raise InvalidInputError(
                "event_indices of the erasure certificate must name the job's erasure events"
            )
        object.__setattr__(self, "event_indices", tuple(sorted(set(indices))))
        if self.ledger is not None:
            _typed(self.ledger, LedgerEvidence, "ledger")
        if self.issued_at is not None:
            _check_time(self.issued_at, "issued_at")

    @property
    def failed_figures(self) -> list[str]:
        """Names of the verification figures that did not pass."""
        return [figure.name for figure in self.figures if not figure.passed]

    def to_json(self) -> dict[str, Any]:
        """Return the predicate object (``ledger`` and ``issued_at`` must be set)."""
        if self.ledger is None or self.issued_at is None:
            raise InvalidInputError(
                "ledger and issued_at of the certificate content are not set; "
                "issue_certificate(ws, content) sets them"
            )
        return {
            "request": self.request.to_json(),
            "rows": {"scheme": COMMITMENT_SCHEME, "commitments": list(self.row_commitments)},
            "counts": self.counts.to_json(),
            "methods": [method.to_json() for method in self.methods],
            "verification": {figure.name: figure.to_json() for figure in self.figures},
            "models": [model.to_json() for model in self.models],
            "event_indices": list(self.event_indices),
            "ledger": self.ledger.to_json(),
            "issued_at": format_time(self.issued_at),
        }

    @classmethod
    def from_json(cls, data: object) -> CertificateContent:
        """Parse a predicate, raising :class:`CertificateError` if it is malformed."""
        try:
            return cls._from_json(data)
        except InvalidInputError as exc:
            raise CertificateError(f"the certificate's predicate is malformed: {exc}") from exc

    @classmethod
    def _from_json(cls, data: object) -> CertificateContent:
        value = _object(data, "predicate", {"request", "rows", "counts", "methods",
                                            "verification", "models", "event_indices",
                                            "ledger", "issued_at"})
        rows = _object(value["rows"], "rows", {"scheme", "commitments"})
        if rows["scheme"] != COMMITMENT_SCHEME:
            raise CertificateError(f"rows.scheme must be {COMMITMENT_SCHEME!r}; got "
                                   f"{rows['scheme']!r}")
        figures = tuple(
            VerificationFigure(name, **_object(figure, f"figure {name!r}",
                                               {"value", "passed", "criterion"}))
            for name, figure in _object(value["verification"], "verification", None).items()
        )
        return cls(
            request=ErasureRequest.from_json(value["request"]),
            row_commitments=tuple(_list(rows["commitments"], "rows.commitments")),
            counts=ErasureCounts.from_json(value["counts"]),
            methods=tuple(MethodRecord.from_json(m) for m in _list(value["methods"], "methods")),
            figures=figures,
            models=tuple(ModelDigests.from_json(m) for m in _list(value["models"], "models")),
            event_indices=tuple(_list(value["event_indices"], "event_indices")),
            ledger=LedgerEvidence.from_json(value["ledger"]),
            issued_at=parse_time(value["issued_at"]),
        )


def _typed(value: object, kind: type, name: str) -> None:
    if not isinstance(value, kind):
        raise InvalidInputError(
            f"{name} of the erasure certificate must be a {kind.__name__}; got "
            f"{type(value).__name__}"
        )


def _sequence(values: object, name: str) -> Sequence[Any]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        raise InvalidInputError(f"{name} of the erasure certificate must be a sequence; got "
                                f"{type(values).__name__}")
    return values


def _object(data: object, name: str, fields: set[str] | None) -> dict[str, Any]:
    """Return ``data`` as a dict with exactly ``fields`` (any str keys when ``None``)."""
    if not isinstance(data, dict):
        raise CertificateError(f"{name} must be a JSON object; got {type(data).__name__}")
    if fields is not None and set(data) != fields:
        missing, extra = sorted(fields - set(data)), sorted(set(data) - fields)
        raise CertificateError(f"{name} must have fields {sorted(fields)}; missing {missing}, "
                               f"unknown {extra}")
    return data


def _list(data: object, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise CertificateError(f"{name} must be a JSON array; got {type(data).__name__}")
    return data


def _str(data: object, name: str) -> str:
    if not isinstance(data, str):
        raise CertificateError(f"{name} must be a JSON string; got {type(data).__name__}")
    return data
