"""Contribution summaries per training sample and per data subject (FG-Trac style).

Over a batch of predictions, count for every training sample how many predictions it is among
the top-``k`` supporters or opposers of, and sum its score over all of them (its net effect).
Subjects inherit the counts of the samples built from their rows. Summaries are logged as
ledger events: one ``attribution.contributions`` event whose blob holds the per-sample arrays,
and one ``attribution.subject_contribution`` event per involved subject, tagged with its
pseudonym so that ``ws.ledger.proven_entries(subject=...)`` answers "what effect did my data
have" with proofs.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.attribution._attributor import Attributor
from rowtrail.attribution._checks import is_count
from rowtrail.attribution._types import AttributionWorkspace
from rowtrail.errors import InvalidInputError

__all__ = ["ContributionSummary", "summarize_contributions"]


@dataclass(frozen=True, eq=False)
class ContributionSummary:
    """Per-sample and per-subject contribution counts over ``n_predictions`` predictions.

    Attributes
    ----------
    n_supports, n_opposes : arrays of int64, shape (n,)
        Predictions for which the sample is among the top-``k`` supporters / opposers.
    net : array of float64, shape (n,)
        Sum of the sample's scores over all predictions.
    by_subject : dict
        ``{pseudonym: {"n_supports", "n_opposes", "net", "n_samples"}}`` for subjects of the
        samples with a non-zero count.
    ledger_index : int or None
        Index of the ``attribution.contributions`` event when logged.
    """

    n_predictions: int
    top_k: int
    n_supports: NDArray[np.int64]
    n_opposes: NDArray[np.int64]
    net: NDArray[np.float64]
    by_subject: dict[str, dict[str, float]] = field(default_factory=dict)
    ledger_index: int | None = None

    def to_json(self, *, max_samples: int = 20) -> dict[str, Any]:
        """Return the headline figures and the most supportive samples as JSON-ready data."""
        order = np.argsort(-(self.n_supports - self.n_opposes), kind="stable")[:max_samples]
        return {
            "n_predictions": self.n_predictions,
            "top_k": self.top_k,
            "samples": [
                {
                    "position": int(i),
                    "n_supports": int(self.n_supports[i]),
                    "n_opposes": int(self.n_opposes[i]),
                    "net": float(self.net[i]),
                }
                for i in order
            ],
            "n_subjects": len(self.by_subject),
            "ledger_index": self.ledger_index,
        }


def _count(
    attributor: Attributor, vectors: NDArray[np.float32], top_k: int, batch: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    n = attributor.index.n_samples
    k = min(top_k, n)
    supports = np.zeros(n, np.int64)
    opposes = np.zeros(n, np.int64)
    net = np.zeros(n)
    batch = max(1, min(batch, (1 << 24) // n))  # keep the (batch, n) score block near 64 MB
    for start in range(0, vectors.shape[0], batch):
        scores = attributor.index.scores(vectors[start : start + batch])
        net += scores.sum(axis=0, dtype=np.float64)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        low = np.argpartition(scores, k - 1, axis=1)[:, :k]
        supports += np.bincount(top.ravel(), minlength=n)
        opposes += np.bincount(low.ravel(), minlength=n)
    return supports, opposes, net


def _by_subject(
    ws: AttributionWorkspace,
    attributor: Attributor,
    involved: NDArray[np.int64],
    supports: NDArray[np.int64],
    opposes: NDArray[np.int64],
    net: NDArray[np.float64],
) -> dict[str, dict[str, float]]:
    ids = {int(p): attributor.lineage.row_ids(int(p)) for p in involved}
    flat = sorted({int(r) for rows in ids.values() for r in rows.tolist()})
    subjects: dict[int, str] = ws.lineage_store.subjects_of_rows(flat) if flat else {}
    out: dict[str, dict[str, float]] = {}
    for p, rows in ids.items():
        for subject in sorted({subjects[r] for r in rows.tolist() if r in subjects}):
            agg = out.setdefault(
                subject, {"n_supports": 0, "n_opposes": 0, "net": 0.0, "n_samples": 0}
            )
            agg["n_supports"] += int(supports[p])
            agg["n_opposes"] += int(opposes[p])
            agg["net"] += float(net[p])
            agg["n_samples"] += 1
    return out


def _log(ws: AttributionWorkspace, attributor: Attributor, summary: ContributionSummary) -> int:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        n_supports=summary.n_supports,
        n_opposes=summary.n_opposes,
        net=summary.net,
        row_ids=attributor.index.row_ids,
    )
    blob = ws.ledger.put_blob(buffer.getvalue())
    index: int = ws.ledger.append(
        "attribution.contributions",
        {
            "method": attributor.method,
            "model": attributor.model,
            "n_predictions": summary.n_predictions,
            "top_k": summary.top_k,
            "n_samples": int(summary.net.size),
            "n_subjects": len(summary.by_subject),
            "arrays_blob": blob,
        },
        blobs=[blob],
    )
    with ws.ledger.batch(max_events=2000) as batch:
        for subject, agg in sorted(summary.by_subject.items()):
            batch.append(
                "attribution.subject_contribution",
                {
                    "summary_index": index,
                    "n_supports": int(agg["n_supports"]),
                    "n_opposes": int(agg["n_opposes"]),
                    "net": round(float(agg["net"]), 9),
                    "n_samples": int(agg["n_samples"]),
                },
                subjects=[subject],
            )
    return index


def summarize_contributions(
    ws: AttributionWorkspace,
    attributor: Attributor,
    queries: ArrayLike,
    *,
    top_k: int = 20,
    log: bool = True,
    batch: int = 64,
) -> ContributionSummary:
    """Count, per training sample and subject, the predictions it supports or opposes.

    Parameters
    ----------
    ws : Workspace
        Where subjects are looked up and events logged.
    attributor : Attributor
        Holds the score index and the sample lineage.
    queries : array of shape (m, d)
        Index-side query vectors (``attributor.query_vectors(features)``) of the predictions.
    top_k : int, default 20
        A sample "supports" a prediction when it is among its ``top_k`` highest scores.
    log : bool, default True
        Append the summary events to the ledger.
    batch : int, default 64
        Queries scored together (one pass over the index per batch).
    """
    vectors = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if vectors.ndim != 2 or vectors.shape[1] != attributor.index.dim or vectors.shape[0] == 0:
        raise InvalidInputError(
            f"queries of summarize_contributions must have shape (m, {attributor.index.dim}); "
            f"got {np.shape(queries)!r}. Use attributor.query_vectors(features)."
        )
    if not (is_count(top_k, 1) and is_count(batch, 1)):
        raise InvalidInputError(
            f"top_k and batch of summarize_contributions must be ints > 0; got {top_k!r}, "
            f"{batch!r}."
        )
    supports, opposes, net = _count(attributor, vectors, top_k, batch)
    involved = np.flatnonzero((supports > 0) | (opposes > 0)).astype(np.int64)
    summary = ContributionSummary(
        vectors.shape[0],
        top_k,
        supports,
        opposes,
        net,
        _by_subject(ws, attributor, involved, supports, opposes, net),
    )
    if not log:
        return summary
    return ContributionSummary(
        summary.n_predictions,
        top_k,
        supports,
        opposes,
        net,
        summary.by_subject,
        _log(ws, attributor, summary),
    )
