"""Attribution: from a decision to the training samples, source rows and records behind it.

Scorers (one :class:`Scorer` role: :class:`ExactInfluenceScorer`, :class:`TRAKScorer`,
:class:`TracInScorer`, :class:`GradientSimilarityScorer`) turn stored gradient features into
linear scores (positive = supports the prediction); :class:`MetagradientScorer` gives the exact
metagradient of *this* model's decision through its recorded training (MAGIC, replayable runs);
:class:`ScoreIndex` answers batched top-k
queries over a memory-mapped train-side matrix; :class:`Attributor` traces the top samples to
source rows, subjects, ops and ledger proofs (:class:`Explanation`, ``ws.explain``), after
the decision's own lineage (:class:`DecisionLineage`: the source rows, steps and fitted
statistics its input came from, recorded by :func:`log_prediction`);
:func:`save_attributor` binds every saved file to the ledger by digest, checked on every load
(:func:`verify_attribution_files` re-hashes them all);
:func:`summarize_contributions` logs per-subject effects; :func:`evaluate_lds` and
:func:`leave_one_out` measure quality against retrained models.
"""

from __future__ import annotations

from rowtrail.attribution._attributor import Attributor
from rowtrail.attribution._contrib import ContributionSummary, summarize_contributions
from rowtrail.attribution._convex import (
    LinearRetrainer,
    convex_fit_features,
    convex_fit_query,
    fit_l2_linear,
    linear_model_features,
    linear_query_features,
)
from rowtrail.attribution._decision import DecisionLineage
from rowtrail.attribution._explanation import (
    AttributedSample,
    Explanation,
    RowMapLineage,
    SampleLineage,
    SourceTotal,
)
from rowtrail.attribution._features import (
    FeatureSource,
    GradientFeatures,
    load_feature_matrix,
    save_feature_matrix,
)
from rowtrail.attribution._lds import (
    LDSResult,
    LOOResult,
    datamodel_ground_truth,
    evaluate_lds,
    leave_one_out,
)
from rowtrail.attribution._metagradient import (
    METAGRADIENT_METHOD,
    METAGRADIENT_UNIT,
    MetagradientScorer,
)
from rowtrail.attribution._persist import (
    explain,
    load_attributor,
    log_prediction,
    register_attributor,
    save_attributor,
    verify_attribution_files,
)
from rowtrail.attribution._scorers import (
    ExactInfluenceScorer,
    GradientSimilarityScorer,
    Scorer,
    TracInScorer,
    TRAKScorer,
)
from rowtrail.attribution._topk import ScoreIndex, TopK, brute_force_top_k

__all__ = [
    "AttributedSample",
    "Attributor",
    "ContributionSummary",
    "DecisionLineage",
    "ExactInfluenceScorer",
    "Explanation",
    "FeatureSource",
    "GradientFeatures",
    "GradientSimilarityScorer",
    "LDSResult",
    "LOOResult",
    "LinearRetrainer",
    "METAGRADIENT_METHOD",
    "METAGRADIENT_UNIT",
    "MetagradientScorer",
    "RowMapLineage",
    "SampleLineage",
    "ScoreIndex",
    "Scorer",
    "SourceTotal",
    "TRAKScorer",
    "TopK",
    "TracInScorer",
    "brute_force_top_k",
    "convex_fit_features",
    "convex_fit_query",
    "datamodel_ground_truth",
    "evaluate_lds",
    "explain",
    "fit_l2_linear",
    "leave_one_out",
    "linear_model_features",
    "linear_query_features",
    "load_attributor",
    "load_feature_matrix",
    "log_prediction",
    "register_attributor",
    "save_attributor",
    "save_feature_matrix",
    "summarize_contributions",
    "verify_attribution_files",
]
