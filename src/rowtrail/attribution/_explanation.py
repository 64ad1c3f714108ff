"""What ``explain`` returns: attributed samples traced to source rows, totals, proofs.

Owns the result types (:class:`AttributedSample`, :class:`SourceTotal`, :class:`Explanation`)
and their renderings (JSON, text), plus the :class:`SampleLineage` role (what ``explain`` needs
from lineage: the source row ids of training sample ``i``, the ops and fitted statistics of the
training matrix) with :class:`RowMapLineage`, a CSR implementation that is also the saved form.
Any ``rt.lineage(training_matrix)`` view satisfies :class:`SampleLineage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray

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
    """Summed attribution of one source table or file.

    Over *all* training samples that drew at least one row from the source: ``support`` (sum
    of their positive scores), ``oppose`` (sum of negative scores), ``net``; ``n_samples``
    such samples. A sample built from several tables counts for each of them.
    """

    source: str
    path: str | None
    digest: str | None
    n_samples: int
    support: float
    oppose: float

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
        }


@dataclass(frozen=True)
class Explanation:
    """Why a model made a decision: supporting and opposing training samples and their sources.

    Attributes
    ----------
    method, model, checkpoints : what scored it
    prediction : dict
        What is known of the decision (ledger index, predicted probability, decision, ...).
    supporting, opposing : list of AttributedSample
        Top samples by score, strongest first (positive supports the prediction).
    totals : list of SourceTotal
        Source-stratified attribution over all training samples.
    top_tables : dict
        Per source table, among the samples listed: ``support``, ``oppose`` and ``n_rows``
        (a sample counts for every table it drew rows from).
    ops, statistics : list of dict
        The processing steps of the training matrix and the fitted statistics involved.
    proofs : list of dict
        ``{"index", "role", "proof"}`` for each ledger record relied on (the model's records,
        the prediction, the sources' registrations, the subjects' records), each verified.
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

    def to_json(self) -> dict[str, Any]:
        """Return the whole explanation as JSON-ready data."""
        return {
            "method": self.method,
            "model": self.model,
            "checkpoints": list(self.checkpoints),
            "prediction": dict(self.prediction),
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

    def to_text(self, *, max_rows: int = 10) -> str:
        """Return a readable multi-line report."""
        lines = [
            f"explanation by {self.method} of model {self.model or '?'}"
            f" (checkpoints: {', '.join(self.checkpoints) or '-'})"
        ]
        if self.prediction:
            lines.append(
                "prediction: " + ", ".join(f"{k}={v}" for k, v in sorted(self.prediction.items()))
            )
        for title, samples in (("supporting", self.supporting), ("opposing", self.opposing)):
            lines.append(f"top {title} training samples:")
            for s in samples[:max_rows]:
                extra = "; ".join(f"{t}:{len(r)} rows" for t, r in s.rows.items() if t != s.source)
                lines.append(
                    f"  #{s.rank:<3} score {s.score:+.4g}  {s.source}[{s.row_number}]"
                    f"  subject {(s.subject or '-')[:15]}" + (f"  + {extra}" if extra else "")
                )
        lines.append("totals per source (all training samples):")
        for t in self.totals:
            lines.append(
                f"  {t.source:<24} n={t.n_samples:<8} support {t.support:+.4g}  "
                f"oppose {t.oppose:+.4g}  net {t.net:+.4g}"
            )
        if self.top_tables:
            lines.append("tables behind the listed samples:")
            for name, agg in self.top_tables.items():
                lines.append(
                    f"  {name:<24} rows {int(agg['n_rows']):<6} support "
                    f"{agg['support']:+.4g}  oppose {agg['oppose']:+.4g}"
                )
        if self.ops:
            lines.append("ops: " + " -> ".join(str(op.get("name")) for op in self.ops))
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
