"""The orchestrator: scorer + score index + lineage + ledger -> :class:`Explanation`.

:class:`Attributor` wires the roles together (TRAK's cut: features come from the training
trail, a :class:`~rowtrail.attribution.Scorer` turns them into a linear train-side matrix,
a :class:`~rowtrail.attribution.ScoreIndex` answers top-k, a
:class:`~rowtrail.attribution.SampleLineage` traces samples to source rows, and the ledger
proves the records relied on). Saved attributors live in ``<workspace>/attribution/<name>/``
so that ``rowtrail explain`` can answer in a new process; predictions logged with
:func:`log_prediction` carry their query vector and their input's lineage as blobs, shown
first in every explanation (:class:`~rowtrail.attribution.DecisionLineage`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.attribution._decision import DecisionLineage
from rowtrail.attribution._explanation import (
    AttributedSample,
    Explanation,
    RowMapLineage,
    SampleLineage,
    SourceTotal,
)
from rowtrail.attribution._features import GradientFeatures
from rowtrail.attribution._scorers import Scorer
from rowtrail.attribution._topk import ScoreIndex, TopK
from rowtrail.attribution._types import AttributionWorkspace
from rowtrail.attribution._units import score_unit as unit_of
from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.ids import ROW_BITS, source_indices
from rowtrail.ledger import InclusionProof
from rowtrail.lineage import SourceInfo, get_source

__all__ = ["Attributor"]

_ROW_MASK = (1 << ROW_BITS) - 1
_PROOF_CACHE = 100_000  # verified proofs kept per attributor (anchored in signed checkpoints)

Featurizer = Callable[[NDArray[Any]], Sequence[GradientFeatures]]


class Attributor:
    """Explain decisions of one model from its stored features.

    Parameters
    ----------
    scorer : Scorer, optional
        A fitted scorer; its train-side matrix becomes the score index. Omit when ``index`` is
        given (a saved attributor).
    index : ScoreIndex, optional
    lineage : SampleLineage, optional
        Source rows of each training sample (default: one row per sample, from the row ids).
    featurize : callable, optional
        ``featurize(x)`` -> query :class:`GradientFeatures` per model/checkpoint for a raw
        input row ``x`` (e.g. ``lambda x: [convex_fit_query(fit, x)]``).
    model : str
        Model name or digest shown in explanations.
    checkpoints : sequence of str
        Checkpoints the features come from (defaults to the scorer's model ids).
    record_indices : sequence of int
        Ledger indices of the records the scores rely on (training fit, features, checkpoints);
        proven in every explanation.
    method : str
        Scorer name (defaults to ``scorer.name``).
    score_unit : str, optional
        What a score measures, in words (defaults to the method's unit, see
        :mod:`rowtrail.attribution._units`); shown with every explanation.

    Examples
    --------
    >>> import numpy as np
    >>> from rowtrail.attribution import ExactInfluenceScorer, GradientFeatures
    >>> f = GradientFeatures(np.eye(3), p_correct=np.full(3, .5), row_ids=np.arange(3))
    >>> att = Attributor(ExactInfluenceScorer(l2=1.0).fit([f]))
    >>> att.top_k([GradientFeatures(np.eye(3)[:1])], k=1).indices.tolist()
    [[0]]
    """

    def __init__(
        self,
        scorer: Scorer | None = None,
        *,
        index: ScoreIndex | None = None,
        lineage: SampleLineage | None = None,
        featurize: Featurizer | None = None,
        model: str = "",
        checkpoints: Sequence[str] = (),
        record_indices: Sequence[int] = (),
        method: str | None = None,
        score_unit: str | None = None,
    ) -> None:
        if (scorer is None) == (index is None):
            raise InvalidInputError(
                "scorer or index of Attributor must be given (exactly one); got "
                f"scorer={scorer!r}, index={index!r}. Pass a fitted scorer."
            )
        if scorer is not None:
            index = ScoreIndex(scorer.train_matrix(), getattr(scorer, "row_ids", None))
            checkpoints = tuple(checkpoints) or tuple(getattr(scorer, "model_ids", ()))
        if index is None:  # pragma: no cover - excluded by the check above
            raise InvalidInputError("index of Attributor is required")
        self.scorer = scorer
        self.index = index
        self.lineage: SampleLineage = lineage or RowMapLineage.one_to_one(index.row_ids)
        if isinstance(self.lineage, RowMapLineage):
            sample = np.repeat(np.arange(self.lineage.n_samples), np.diff(self.lineage.offsets))
            index.set_membership(sample, source_indices(self.lineage.ids))
        self.featurize = featurize
        self.model = model
        self.checkpoints = tuple(str(c) for c in checkpoints)
        self.record_indices = tuple(int(i) for i in record_indices)
        self.method = method or (scorer.name if scorer is not None else "unknown")
        self.score_unit = score_unit or unit_of(self.method)
        self._sources: dict[int, SourceInfo] = {}
        self._proof_cache: dict[tuple[int, bytes], InclusionProof] = {}

    # ------------------------------------------------------------------ queries
    def query_vectors(self, query: Any) -> NDArray[np.float32]:
        """Turn a query (features, or a raw input row with ``featurize``) into index vectors."""
        if isinstance(query, GradientFeatures) or (
            isinstance(query, list | tuple) and query and isinstance(query[0], GradientFeatures)
        ):
            if self.scorer is None:
                raise InvalidInputError(
                    "query of Attributor.explain must be a logged prediction for a saved "
                    "attributor (it has no scorer to transform features); use log_prediction."
                )
            items = [query] if isinstance(query, GradientFeatures) else list(query)
            return self.scorer.query_matrix(items)
        if self.featurize is None:
            raise InvalidInputError(
                f"query of Attributor.explain must be GradientFeatures when no featurize= was "
                f"given; got {type(query).__name__}. Pass featurize=... to the Attributor."
            )
        row = np.atleast_2d(np.asarray(query, dtype=np.float64))
        return self.query_vectors(list(self.featurize(row)))

    def top_k(self, queries: Any, k: int = 20) -> TopK:
        """Batched top-k over the index (see :meth:`ScoreIndex.top_k`)."""
        return self.index.top_k(self.query_vectors(queries), k)

    # ------------------------------------------------------------------ tracing
    def source_info(self, ws: AttributionWorkspace, source_index: int) -> SourceInfo | None:
        """Return the registered source of ``source_index`` (cached), or ``None``."""
        if source_index not in self._sources:
            try:
                self._sources[source_index] = get_source(ws, source_index)
            except UnknownSourceError:
                return None
        return self._sources[source_index]

    def _name(self, ws: AttributionWorkspace, source_index: int) -> str:
        info = self.source_info(ws, source_index)
        return info.name if info is not None else f"source#{source_index}"

    def trace(
        self, ws: AttributionWorkspace, positions: NDArray[np.int64], scores: NDArray[np.float32]
    ) -> list[AttributedSample]:
        """Trace training samples to source rows and subject pseudonyms."""
        return self._trace_groups(ws, [(positions, scores)])[0]

    def _trace_groups(
        self,
        ws: AttributionWorkspace,
        groups: Sequence[tuple[NDArray[np.int64], NDArray[np.float32]]],
    ) -> list[list[AttributedSample]]:
        """Trace several ranked lists with one subject lookup."""
        per_group = [
            [np.asarray(self.lineage.row_ids(int(p)), dtype=np.int64) for p in positions]
            for positions, _ in groups
        ]
        everything = [ids for group in per_group for ids in group]
        wanted = np.unique(np.concatenate([self.index.row_ids[:0], *everything]))
        subjects: dict[int, str] = ws.lineage_store.subjects_of_rows(wanted.tolist())
        names = {int(s): self._name(ws, int(s)) for s in np.unique(source_indices(wanted))}
        return [
            self._samples(ws, positions, scores, group, subjects, names)
            for (positions, scores), group in zip(groups, per_group, strict=True)
        ]

    def _samples(
        self,
        ws: AttributionWorkspace,
        positions: NDArray[np.int64],
        scores: NDArray[np.float32],
        per_sample: list[NDArray[np.int64]],
        subjects: dict[int, str],
        names: dict[int, str],
    ) -> list[AttributedSample]:
        own = self.index.row_ids[positions].tolist()
        out = []
        for rank, (pos, score, rid, ids) in enumerate(
            zip(positions.tolist(), scores.tolist(), own, per_sample, strict=True), start=1
        ):
            rows: dict[str, list[int]] = {}
            for row in ids.tolist():
                rows.setdefault(names[row >> ROW_BITS], []).append(row & _ROW_MASK)
            found = sorted({subjects[i] for i in ids.tolist() if i in subjects})
            info = self.source_info(ws, rid >> ROW_BITS)
            out.append(
                AttributedSample(
                    rank=rank,
                    position=pos,
                    score=score,
                    row_id=rid,
                    source=self._name(ws, rid >> ROW_BITS),
                    path=info.path if info else None,
                    row_number=rid & _ROW_MASK,
                    subject=subjects.get(rid, found[0] if found else None),
                    rows={name: sorted(numbers) for name, numbers in rows.items()},
                    subjects=tuple(found),
                )
            )
        return out

    def _totals(self, ws: AttributionWorkspace, result: TopK) -> list[SourceTotal]:
        counts = self.index.samples_per_source()
        out = []
        for j, src in enumerate(result.source_indices.tolist()):
            info = self.source_info(ws, int(src))
            out.append(
                SourceTotal(
                    self._name(ws, int(src)),
                    info.path if info else None,
                    info.digest if info else None,
                    int(counts[j]),
                    float(result.support[0, j]),
                    float(result.oppose[0, j]),
                )
            )
        return sorted(out, key=lambda t: -abs(t.net))

    @staticmethod
    def _top_tables(samples: Sequence[AttributedSample]) -> dict[str, dict[str, float]]:
        """Per table: samples touching it, their rows from it and the sums of their scores.

        Each sample's whole score is added to every table it drew rows from, so the sums are
        labelled for exactly that (``sum_*_scores``), never as a per-table effect.
        """
        tables: dict[str, dict[str, float]] = {}
        for s in samples:
            for name, rows in s.rows.items():
                agg = tables.setdefault(
                    name,
                    {
                        "n_samples": 0.0,
                        "n_rows": 0.0,
                        "sum_supporting_scores": 0.0,
                        "sum_opposing_scores": 0.0,
                    },
                )
                agg["n_samples"] += 1
                agg["n_rows"] += len(rows)
                agg["sum_supporting_scores" if s.score >= 0 else "sum_opposing_scores"] += s.score
        return tables

    # ------------------------------------------------------------------ proofs
    def _proofs(
        self,
        ws: AttributionWorkspace,
        samples: Sequence[AttributedSample],
        extra: Sequence[int],
        roles: Mapping[int, str],
    ) -> tuple[list[dict[str, Any]], int]:
        kinds: dict[int, str] = {int(i): "record" for i in self.record_indices}
        kinds.update({int(i): "prediction" for i in extra})
        for i, role in roles.items():
            kinds.setdefault(int(i), role)
        for src in {int(source_indices(s.row_id)) for s in samples}:
            info = self.source_info(ws, src)
            if info is not None and info.ledger_index is not None:
                kinds[int(info.ledger_index)] = "source"
        # The records that tie each row to its pseudonym: its subject.ingested events, found
        # through the subject rows (checked against the digest the checkpoint signs).
        subjects = sorted({p for s in samples for p in s.subjects})
        for indices in ws.lineage_store.subject_events(subjects).values():
            for i in indices:
                kinds.setdefault(int(i), "subject")
        ordered = sorted(kinds)
        if not ordered:
            return [], int(ws.ledger.size)
        # Proofs anchor to the signed checkpoint checked against the trust root outside the
        # workspace, never to the database's own current root.
        head = ws.ledger.trusted_head()
        key = head.root
        missing = [i for i in ordered if (i, key) not in self._proof_cache]
        if missing:
            _, fresh = ws.ledger.prove_signed(missing)  # each verified; raises otherwise
            self._proof_cache.update(((p.index, key), p) for p in fresh)
        proofs: dict[int, InclusionProof] = {i: self._proof_cache[(i, key)] for i in ordered}
        if len(self._proof_cache) > _PROOF_CACHE:
            self._proof_cache.clear()
        size_now = head.size
        out = [{"index": i, "role": kinds[i], "proof": proofs[i].to_json()} for i in ordered]
        return out, size_now

    @staticmethod
    def _decision_roles(ws: AttributionWorkspace, decision: DecisionLineage) -> dict[int, str]:
        """Ledger records the decision's lineage relies on: source registrations, subjects."""
        roles = {i: "input-source" for i in decision.source_ledger_indices}
        for indices in ws.lineage_store.subject_events(list(decision.subjects)).values():
            for i in indices:
                roles.setdefault(int(i), "input-subject")
        return roles

    # ------------------------------------------------------------------ explain
    def explain_vector(
        self,
        ws: AttributionWorkspace,
        vector: NDArray[np.float32],
        *,
        top_k: int = 20,
        proofs: bool = True,
        prediction: dict[str, Any] | None = None,
        extra_records: Sequence[int] = (),
        decision: DecisionLineage | None = None,
    ) -> Explanation:
        """Explain one query given as an index-side vector (see :meth:`query_vectors`).

        ``decision`` is the input's recorded lineage (see
        :func:`~rowtrail.attribution._decision.load_decision_lineage`); the registrations of
        its sources and its subjects' records are proven with the rest.
        """
        decision = decision or DecisionLineage.unknown(
            "the input was given directly, not logged: only a logged prediction's input lineage "
            "is evidence (log it with rt.attribution.log_prediction)"
        )
        started = time.perf_counter()
        result = self.index.top_k(np.asarray(vector, dtype=np.float32).reshape(1, -1), top_k)
        scored = time.perf_counter()
        supporting, opposing = self._trace_groups(
            ws,
            [
                (result.indices[0], result.scores[0]),
                (result.bottom_indices[0], result.bottom_scores[0]),
            ],
        )
        totals = self._totals(ws, result)
        traced = time.perf_counter()
        proof_list: list[dict[str, Any]] = []
        tree_size = None
        if proofs:
            # The records relied on: the model's, the prediction's, and those of the sources and
            # subjects of the *supporting* samples (opposing ones are listed, not relied on).
            proof_list, tree_size = self._proofs(
                ws, supporting, extra_records, self._decision_roles(ws, decision)
            )
        done = time.perf_counter()
        return Explanation(
            method=self.method,
            model=self.model,
            checkpoints=self.checkpoints,
            prediction=dict(prediction or {}),
            supporting=supporting,
            opposing=opposing,
            totals=totals,
            top_tables=self._top_tables(supporting + opposing),
            ops=list(self.lineage.ops()),
            statistics=list(self.lineage.statistics()),
            proofs=proof_list,
            tree_size=tree_size,
            decision=decision,
            score_unit=self.score_unit,
            timings_ms={
                "score": 1e3 * (scored - started),
                "trace": 1e3 * (traced - scored),
                "proofs": 1e3 * (done - traced),
            },
        )

    def explain(
        self, ws: AttributionWorkspace, query: Any, *, top_k: int = 20, proofs: bool = True
    ) -> Explanation:
        """Explain one decision: ``query`` is a raw input row or query ``GradientFeatures``."""
        if isinstance(query, GradientFeatures):
            query = [query]
        if not (
            isinstance(query, list | tuple) and query and isinstance(query[0], GradientFeatures)
        ):
            if self.featurize is None:
                raise InvalidInputError(
                    f"query of Attributor.explain must be GradientFeatures when no featurize= "
                    f"was given; got {type(query).__name__}. Pass featurize=... to Attributor."
                )
            query = list(self.featurize(np.atleast_2d(np.asarray(query, dtype=np.float64))))
        vectors = self.query_vectors(query)
        if vectors.shape[0] != 1:
            raise InvalidInputError(
                f"query of Attributor.explain must describe one decision; got {vectors.shape[0]}."
                " Use top_k() for batches."
            )
        prediction: dict[str, Any] = {}
        if query[0].p_correct is not None:
            prediction["p_predicted"] = round(float(query[0].p_correct[0]), 6)
        return self.explain_vector(
            ws, vectors[0], top_k=top_k, proofs=proofs, prediction=prediction
        )
