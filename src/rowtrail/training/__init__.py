"""Training trail and gradient features (L2): what really happened during training.

- :class:`TrainingRun` (``ws.training_run(name, model=..., optimizer=...)``) wraps an unmodified
  PyTorch loop: ``for x, y in run.track(loader)`` records every batch's sample ids as drawn by
  the loader's sampler, with epoch, optimizer step, learning rate, loss and custom signals;
  checkpoints record weight digests; leaving the context seals the run.
- :func:`fit_logistic`, :func:`fit_ridge`, :func:`record_sklearn_fit`: convex fits recorded
  with the Hessian needed for exact influence and Newton unlearning.
- :func:`featurize`: projected per-sample gradients at a checkpoint in a resumable,
  memory-mapped feature store whose files are bound to a ``features.computed`` event by digest
  and checked on every open (:func:`verify_feature_stores` re-hashes them all).
- :func:`sample_usage`: "when was sample / source row / subject S used?", with proofs: how
  each row reached a sample (own, joined, aggregated, statistic), and "unknown" for runs
  trained without row ids.
- Replay (``replayable=True``): ``run.replay()`` re-executes the recorded loop bit for bit on
  CPU; :class:`Replayer` (``run.replayer()``, :func:`load_replayer` in a new process) replays
  with per-sample data weights, :func:`counterfactual` gives the model this run would have
  produced without given rows, :func:`unlearn_by_replay` unlearns them exactly.
- :func:`run_status`, :func:`list_runs`: completed, failed, aborted (killed), running or
  incomplete, from the run's ledger events.

torch is optional: it is imported only by the functions that need it.
"""

from __future__ import annotations

from rowtrail.training._codec import (
    decode_batch_sets,
    decode_positions,
    encode_batch_sets,
    encode_positions,
)
from rowtrail.training._convex import (
    ConvexFit,
    fit_logistic,
    fit_ridge,
    record_sklearn_fit,
    solve_logistic,
)
from rowtrail.training._features import (
    FeatureSet,
    featurize,
    list_feature_sets,
    open_feature_set,
    verify_feature_stores,
)
from rowtrail.training._grads import PerSampleGradients, default_loss, model_digest
from rowtrail.training._projection import (
    Projector,
    RademacherProjector,
    SRHTProjector,
    make_projector,
)
from rowtrail.training._query import (
    BatchRecord,
    SampleUse,
    load_checkpoint,
    read_batches,
    sample_usage,
)
from rowtrail.training._replay import (
    Replayer,
    ReplayResult,
    ReplayUnlearning,
    counterfactual,
    load_replayer,
    replay_run,
    unlearn_by_replay,
)
from rowtrail.training._replay_plan import ReplayPlan, load_replay_plan
from rowtrail.training._run import TrackedLoader, TrainingRun
from rowtrail.training._status import RunInfo, list_runs, run_status

__all__ = [
    "BatchRecord",
    "ConvexFit",
    "FeatureSet",
    "PerSampleGradients",
    "Projector",
    "RademacherProjector",
    "ReplayPlan",
    "ReplayResult",
    "ReplayUnlearning",
    "Replayer",
    "RunInfo",
    "SRHTProjector",
    "SampleUse",
    "TrackedLoader",
    "TrainingRun",
    "counterfactual",
    "decode_batch_sets",
    "decode_positions",
    "default_loss",
    "encode_batch_sets",
    "encode_positions",
    "featurize",
    "fit_logistic",
    "fit_ridge",
    "list_feature_sets",
    "list_runs",
    "load_checkpoint",
    "load_replay_plan",
    "load_replayer",
    "make_projector",
    "model_digest",
    "open_feature_set",
    "read_batches",
    "record_sklearn_fit",
    "replay_run",
    "run_status",
    "sample_usage",
    "solve_logistic",
    "unlearn_by_replay",
    "verify_feature_stores",
]
