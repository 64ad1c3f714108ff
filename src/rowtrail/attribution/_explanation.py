"""What ``explain`` returns: attributed samples traced to source rows, totals, proofs.

Owns the result types (:class:`AttributedSample`, :class:`SourceTotal`, :class:`Explanation`)
and their renderings (JSON, text): the decision's own lineage first (the source rows, steps,
fitted statistics and model it was made on), then the training rows that drove it, with the
scores' unit and sign in words. Also the :class:`SampleLineage` role (what ``explain`` needs
from lineage: the source row ids of training sample ``i``, the ops and fitted statistics of the
training matrix) with :class:`RowMapLineage`, a CSR implementation that is also the saved form.
Any ``rt.lineage(training_matrix)`` view satisfies :class:`SampleLineage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._decision import DecisionLineage
from rowtrail.attribution._units import SIGN_CONVENTION, TABLE_MEASURE
from rowtrail.errors import InvalidInputError

__all__ = [
    "AttributedSample",
    "Explanation",
    "RowMapLineage",
    "SampleLineage",
    "SourceTotal",
]


@runtime_checkable
class SampleLineage(Protocol):
    """The lineage role: source rows of each training sample, ops and fitted statistics."""

    def row_ids(self, i: int) -> NDArray[np.int64]:
        """Return the packed source row ids of training sample ``i``."""
        ...

    def ops(self) -> Sequence[Any]:
        """Return the ops that produced the training matrix (``OpInfo`` or dicts)."""
        ...

    def statistics(self) -> Sequence[Any]:
        """Return the fitted statistics it depends on (``StatisticsDependency`` or dicts)."""
        ...


def _json_of(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    to_json = getattr(item, "to_json", None)
    if to_json is None:
        raise InvalidInputError(
            f"lineage ops/statistics must be OpInfo, StatisticsDependency or dicts; got "
            f"{type(item).__name__}."
        )
    result: dict[str, Any] = to_json()
    return result


def summarize_ops(ops: Sequence[Any]) -> list[dict[str, Any]]:
    """Return ``{"name", "kind", "location", "fallback"}`` of each op, oldest first."""
    out = []
    for op in ops:
        data = _json_of(op)
        out.append({key: data.get(key) for key in ("name", "kind", "location", "fallback")})
    return out


def summarize_statistics(stats: Sequence[Any]) -> list[dict[str, Any]]:
    """Return each fitted statistic with the *number* of rows per source it was fitted on."""
    out = []
    for stat in stats:
        data = _json_of(stat)
        if "fitted_on_rows" in data:  # already summarised (a saved attributor)
            out.append(data)
            continue
        fitted = data.get("fitted_on") or {}
        counts = {
            name: (len(rows) if isinstance(rows, list) else int(rows))
            for name, rows in dict(fitted).items()
        }
        out.append(
            {"op": data.get("op"), "location": data.get("location", ""), "fitted_on_rows": counts}
        )
    return out


class RowMapLineage:
    """Source row ids of every training sample as CSR (offsets + ids), with ops and statistics.

    Parameters
    ----------
    offsets : array of int64, shape (n + 1,)
        Sample ``i`` owns ``ids[offsets[i]:offsets[i+1]]``.
    ids : array of int64
        Packed source row ids.
    ops, statistics : sequences of dicts or ``OpInfo`` / ``StatisticsDependency``

    Examples
    --------
    >>> import numpy as np
    >>> lin = RowMapLineage.one_to_one(np.array([7, 9]))
    >>> lin.row_ids(1).tolist()
    [9]
    """

    def __init__(
        self,
        offsets: ArrayLike,
        ids: ArrayLike,
        *,
        ops: Sequence[Any] = (),
        statistics: Sequence[Any] = (),
    ) -> None:
        off = np.asarray(offsets, dtype=np.int64)
        flat = np.asarray(ids, dtype=np.int64)
        if (
            off.ndim != 1
            or off.size < 1
            or off[0] != 0
            or off[-1] != flat.size
            or np.any(np.diff(off) < 0)
        ):
            raise InvalidInputError(
                "offsets of RowMapLineage must be non-decreasing, start at 0 and end at "
                f"len(ids)={flat.size}; got {off[:3].tolist()!r}... Build them with np.cumsum."
            )
        self.offsets = off
        self.ids = flat
        self._ops = summarize_ops(ops)
        self._statistics = summarize_statistics(statistics)

    @classmethod
    def one_to_one(cls, row_ids: ArrayLike, **kwargs: Any) -> RowMapLineage:
        """One source row per training sample."""
        ids = np.asarray(row_ids, dtype=np.int64)
        return cls(np.arange(ids.size + 1, dtype=np.int64), ids, **kwargs)

    @classmethod
    def from_view(cls, view: SampleLineage, n_samples: int) -> RowMapLineage:
        """Materialise any :class:`SampleLineage` (e.g. ``rt.lineage(X_train)``) as CSR."""
        parts = [np.asarray(view.row_ids(i), dtype=np.int64) for i in range(n_samples)]
        offsets = np.concatenate(([0], np.cumsum([p.size for p in parts]))).astype(np.int64)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return cls(offsets, ids, ops=view.ops(), statistics=view.statistics())

    def take(self, positions: ArrayLike) -> RowMapLineage:
        """Return the lineage of the samples at ``positions`` (e.g. the training split)."""
        pos = np.asarray(positions, dtype=np.int64)
        if pos.size and (pos.min() < 0 or pos.max() >= self.n_samples):
            raise InvalidInputError(
                f"positions of RowMapLineage.take must be in [0, {self.n_samples}); got "
                f"min {pos.min()} and max {pos.max()}."
            )
        counts = np.diff(self.offsets)[pos]
        offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        starts = np.repeat(self.offsets[:-1][pos] - offsets[:-1], counts)
        ids = self.ids[starts + np.arange(int(offsets[-1]))]
        return RowMapLineage(offsets, ids, ops=self._ops, statistics=self._statistics)

    @property
    def n_samples(self) -> int:
        """Number of training samples."""
        return int(self.offsets.size - 1)

    def row_ids(self, i: int) -> NDArray[np.int64]:
        """Return the packed source row ids of sample ``i``."""
        if not 0 <= i < self.n_samples:
            raise InvalidInputError(
                f"i of RowMapLineage.row_ids must be in [0, {self.n_samples}); got {i!r}."
            )
        return self.ids[self.offsets[i] : self.offsets[i + 1]]

    def ops(self) -> list[dict[str, Any]]:
        """Return the op summaries, oldest first."""
        return list(self._ops)

    def statistics(self) -> list[dict[str, Any]]:
        """Return the fitted-statistics summaries."""
        return list(self._statistics)


@dataclass(frozen=True)
class AttributedSample:
    """One training sample in an explanation, traced to its source rows.

    ``source``/``path``/``row_number`` describe the sample's own row (its row id in the feature
    store); ``rows`` lists every source row it was built from, per source (joins, aggregates).
    """

    rank: int
    position: int
    score: float
    row_id: int
    source: str
    path: str | None
    row_number: int
    subject: str | None
    rows: dict[str, list[int]]
    subjects: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "rank": self.rank,
            "position": self.position,
            "score": self.score,
            "row_id": self.row_id,
            "source": self.source,
            "path": self.path,
            "row_number": self.row_number,
            "subject": self.subject,
            "rows": {k: list(v) for k, v in self.rows.items()},
            "subjects": list(self.subjects),
        }


@dataclass(frozen=True)
class SourceTotal:
    """Sums of the scores of the training samples that touch one source table or file.

    Over *all* training samples that drew at least one row from the source: ``support`` (sum
    of their positive scores), ``oppose`` (sum of their negative scores), ``net``;
    ``n_samples`` such samples. This is **not** a per-table effect: a sample built from several
    tables counts in full for each of them, so totals overlap and do not add up across tables
    (``measure`` says so in words, in the JSON too).
    """

    source: str
    path: str | None
    digest: str | None
    n_samples: int
    support: float
    oppose: float

    measure: ClassVar[str] = TABLE_MEASURE

    @property
    def net(self) -> float:
        """``support + oppose``."""
        return self.support + self.oppose

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "source": self.source,
            "path": self.path,
            "digest": self.digest,
            "n_samples": self.n_samples,
            "support": self.support,
            "oppose": self.oppose,
            "net": self.net,
            "measure": self.measure,
        }


@dataclass(frozen=True)
class Explanation:
    """Why a model made a decision: what it was made on, then the training rows that drove it.

    Attributes
    ----------
    method, model, checkpoints : what scored it
    prediction : dict
        What is known of the decision (ledger index, predicted probability, decision, ...).
    supporting, opposing : list of AttributedSample
        Top samples by score, strongest first (positive supports the prediction).
    totals : list of SourceTotal
        Per source table, sums of the scores of all training samples that touch it
        (overlapping; see :attr:`table_measure`).
    top_tables : dict
        Per source table, among the samples listed: ``n_samples`` touching it, their ``n_rows``
        from it, and ``sum_supporting_scores`` / ``sum_opposing_scores`` (each sample's whole
        score, counted for every table it drew rows from; see :attr:`table_measure`).
    ops, statistics : list of dict
        The processing steps of the training matrix and the fitted statistics involved.
    proofs : list of dict
        ``{"index", "role", "proof"}`` for each ledger record relied on (the model's records,
        the prediction, the registrations of the input's and the samples' sources, the
        subjects' records), each verified.
    decision : DecisionLineage
        The decision's own lineage, read from the ``prediction.made`` event and the blobs it
        names: the input's source rows per table, the steps that built it and the fitted
        statistics applied to it, or ``status="unknown"`` with the reason.
    score_unit : str
        What a score measures, in words (e.g. the change in the log-odds of the explained
        class when the training row is removed).
    sign_convention : str
        What a positive and a negative score mean, in words.
    table_measure : str
        What the per-table figures (``totals``, ``top_tables``) sum, in words.
    timings_ms : dict
    """

    method: str
    model: str
    checkpoints: tuple[str, ...]
    prediction: dict[str, Any]
    supporting: list[AttributedSample]
    opposing: list[AttributedSample]
    totals: list[SourceTotal]
    top_tables: dict[str, dict[str, float]]
    ops: list[dict[str, Any]]
    statistics: list[dict[str, Any]]
    proofs: list[dict[str, Any]] = field(default_factory=list)
    tree_size: int | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    decision: DecisionLineage = field(
        default_factory=lambda: DecisionLineage.unknown("the input was not a logged prediction")
    )
    score_unit: str = ""
    sign_convention: str = SIGN_CONVENTION
    table_measure: str = TABLE_MEASURE

    def to_json(self) -> dict[str, Any]:
        """Return the whole explanation as JSON-ready data (the decision's lineage first)."""
        return {
            "decision": self.decision.to_json(),
            "method": self.method,
            "model": self.model,
            "checkpoints": list(self.checkpoints),
            "prediction": dict(self.prediction),
            "score_unit": self.score_unit,
            "sign_convention": self.sign_convention,
            "table_measure": self.table_measure,
            "supporting": [s.to_json() for s in self.supporting],
            "opposing": [s.to_json() for s in self.opposing],
            "totals": [t.to_json() for t in self.totals],
            "top_tables": {k: dict(v) for k, v in self.top_tables.items()},
            "ops": list(self.ops),
            "statistics": list(self.statistics),
            "proofs": list(self.proofs),
            "tree_size": self.tree_size,
            "timings_ms": dict(self.timings_ms),
        }

    def _decision_lines(self, max_rows: int) -> list[str]:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(self.prediction.items()))
        lines = [f"decision: {shown or '(input given directly, not logged)'}"]
        lines += self.decision.text_lines(max_rows=max_rows)
        lines.append(
            f"  by model {self.model or '?'} (checkpoints: {', '.join(self.checkpoints) or '-'})"
        )
        return lines

    def _sample_lines(self, max_rows: int) -> list[str]:
        target = self.prediction.get("explained_class")
        lines = [
            f"training rows that drove it, by {self.method}"
            + (f" (explained class: {target})" if target is not None else ""),
            f"  score unit: {self.score_unit or 'not documented'}",
            f"  sign: {self.sign_convention}",
        ]
        for title, samples in (("supporting", self.supporting), ("opposing", self.opposing)):
            lines.append(f"top {title} training samples:")
            for s in samples[:max_rows]:
                extra = "; ".join(f"{t}:{len(r)} rows" for t, r in s.rows.items() if t != s.source)
                lines.append(
                    f"  #{s.rank:<3} score {s.score:+.4g}  {s.source}[{s.row_number}]"
                    f"  subject {(s.subject or '-')[:15]}" + (f"  + {extra}" if extra else "")
                )
        return lines

    def _table_lines(self) -> list[str]:
        lines = [
            "per table, sums of the scores of the training samples that touch it "
            "(overlapping, not additive, not the effect of removing the table):"
        ]
        for t in self.totals:
            lines.append(
                f"  {t.source:<24} samples {t.n_samples:<8} sum+ {t.support:+.4g}  "
                f"sum- {t.oppose:+.4g}  net {t.net:+.4g}"
            )
        if self.top_tables:
            lines.append("tables behind the listed samples (same overlapping sums):")
            for name, agg in self.top_tables.items():
                lines.append(
                    f"  {name:<24} samples {int(agg['n_samples']):<4} rows "
                    f"{int(agg['n_rows']):<6} sum+ {agg['sum_supporting_scores']:+.4g}  "
                    f"sum- {agg['sum_opposing_scores']:+.4g}"
                )
        return lines

    def to_text(self, *, max_rows: int = 10) -> str:
        """Return a readable report: the decision's own lineage first, then the training rows."""
        lines = self._decision_lines(max_rows)
        lines += self._sample_lines(max_rows)
        lines += self._table_lines()
        if self.ops:
            lines.append(
                "training matrix ops: " + " -> ".join(str(op.get("name")) for op in self.ops)
            )
        for stat in self.statistics:
            lines.append(f"fitted statistic {stat.get('op')} on {stat.get('fitted_on_rows')}")
        if self.proofs:
            lines.append(
                f"ledger proofs: {len(self.proofs)} records verified against tree size "
                f"{self.tree_size}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()
