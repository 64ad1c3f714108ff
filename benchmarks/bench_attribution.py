"""Attribution benchmark: quality (LDS) per method with its cost, query latency, decision trace.

Usage::

    nice -n 10 python benchmarks/bench_attribution.py --size small   # ~1-2 minutes
    nice -n 10 python benchmarks/bench_attribution.py --size large   # full protocol

Figures (each measured in this run, side by side with its baseline):

* LDS (Park et al. 2023, Def. 2.3) against models retrained on random 50% subsets, per method,
  with the seconds each method took to score all test points and, as the baseline, the seconds
  the retraining ground truth took:
  - Adult, L2 logistic regression: exact influence (leverage-corrected and classic), TRAK on
    the model's own gradients, gradient similarity (goal: exact influence >= 0.93);
  - Adult, MLP (1 hidden layer): TRAK over models trained on random 50% subsets (weighted
    kernel), TracInCP over checkpoints, gradient similarity (goal: TRAK >= 0.80).
* top-20 query latency over a memory-mapped index of 10^5 and 10^6 samples, one query and
  batched by 64, against brute force (full scores + sort) on the same data
  (goals <= 5 ms and <= 50 ms per single query).
* single-model LDS (``benchmarks/_single_model_lds.py``): the Adult MLP (30 epochs, and a
  3-epoch run whose counterfactuals are additive), an MLP on the credit application table and
  a small CNN with BatchNorm on MNIST-5k; the ground truth is the recorded
  run retrained with its seed and batch order minus a random 1% (large: and 5%) of the rows
  (large: 100 draws each); TRAK over an ensemble, TracInCP over the run's checkpoints, gradient
  similarity and TRAK on the run itself scored on it side by side with the metagradient
  (``MetagradientScorer`` of the run recorded with ``replayable=True``), next to the classic
  (fresh-seed, 50% subsets) LDS of the same scores, with bootstrap CIs and IQRs over test
  points, the additivity of the counterfactual (the ceiling of any linear attribution) and the
  machine load. Exits 1 if the retrained run is not bit-identical to the recorded one.
* the full decision trace of a declined credit application across the 3 credit tables at
  ~180k rows: top-20 supporting and opposing samples traced to table rows and subjects, with
  and without the ledger proofs of the records relied on (goals <= 1 ms and <= 5 ms).

Torch and BLAS run on one thread (``torch.set_num_threads(1)``, ``OPENBLAS_NUM_THREADS=1``) to be
fair to other work on the machine.
The script checks its own results (top-k equals brute force, proofs verify) and exits non-zero
otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# One BLAS thread: fair to the other work on a shared 2-core VM, and steadier timings (a
# multi-threaded OpenBLAS gemv spin-waits for a busy core and takes 10-50x longer).
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # must precede the NumPy import below


import numpy as np  # noqa: E402

from rowtrail import attribution  # noqa: E402
from rowtrail.datasets._adult import load_adult  # noqa: E402

PROTOCOL = {
    "small": {
        "lr_train": 4000,
        "lr_subsets": 30,
        "mlp_train": 1500,
        "mlp_subsets": 24,
        "trak_models": 10,
        "n_test": 60,
        "proj_dim": 128,
        "applicants": 20_000,
        "single": {
            "adult": (1500, 12),
            "credit": (1500, 12),
            "mnist": (500, 6, 2),
            "draws": 6,
            "fractions": (0.01,),
            "trak_models": 2,
            "proj_dim": 128,
            "classic_subsets": 6,
            "additivity_pairs": 1,
        },
    },
    "large": {
        "lr_train": 24000,
        "lr_subsets": 200,
        "mlp_train": 3000,
        "mlp_subsets": 200,
        "trak_models": 50,
        "n_test": 200,
        "proj_dim": 256,
        "applicants": 20_000,
        "single": {
            "adult": (3000, 100),
            "credit": (3000, 100),
            "mnist": (2000, 100, 3),
            "draws": 100,
            "fractions": (0.01, 0.05),
            "trak_models": 50,
            "proj_dim": 256,
            "classic_subsets": 100,
            "additivity_pairs": 5,
        },
    },
}
# Ground truth is cached per run (so its cost is measured) and shared by every method; main()
# points this at a fresh temporary directory.
CACHE = Path(tempfile.gettempdir()) / "rowtrail-bench-attribution"


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


class Clock:
    """Wall and CPU time of repeated calls.

    On a shared VM the CPU time is the steadier figure: it leaves out the time this process
    waited for a core (the work here is single-threaded apart from BLAS).
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __call__(self, fn: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        self.cpu.append(time.process_time() - cpu)
        self.wall.append(time.perf_counter() - wall)
        return out

    def ms(self) -> tuple[float, float]:
        return 1e3 * statistics.median(self.wall), 1e3 * statistics.median(self.cpu)


# ----------------------------------------------------------------------------- logistic
def bench_logistic(cfg: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    data = load_adult()
    rng = np.random.default_rng(seed)
    order = rng.permutation(data.y.size)
    tr, te = order[: cfg["lr_train"]], order[-cfg["n_test"] :]
    x = np.c_[data.X, np.ones(data.y.size)]
    y = data.y.astype(np.float64)
    l2 = 1.0
    retrainer, fit_s = timed(lambda: attribution.LinearRetrainer(x[tr], y[tr], x[te], l2=l2))
    train = attribution.linear_model_features(x[tr], y[tr], retrainer.coef_)
    query = attribution.linear_query_features(x[te], retrainer.coef_)
    methods = {
        "exact influence (leverage)": lambda: attribution.ExactInfluenceScorer(l2=l2),
        "influence function (classic)": lambda: attribution.ExactInfluenceScorer(
            l2=l2, leverage=False
        ),
        "TRAK on model gradients": lambda: attribution.TRAKScorer(ridge=0.01),
        "gradient similarity": attribution.GradientSimilarityScorer,
    }
    cache = CACHE / f"adult-lr-{cfg['lr_train']}-{cfg['n_test']}-{seed}.npz"
    gt = attribution.datamodel_ground_truth(
        retrainer, len(tr), n_subsets=cfg["lr_subsets"], seed=seed, cache=cache
    )
    rows = []
    for name, make in methods.items():
        scores, cost = timed(lambda make=make: make().fit([train]).scores([query]))
        res = attribution.evaluate_lds(
            scores, retrainer, n_subsets=cfg["lr_subsets"], seed=seed, cache=cache
        )
        rows.append(
            {
                "data": "Adult LR",
                "method": name,
                "lds": res.lds,
                "score_s": cost,
                "retrain_s": gt[3],
                "n_train": len(tr),
                "n_subsets": res.n_subsets,
                "one_fit_s": fit_s,
            }
        )
    return rows


# ----------------------------------------------------------------------------- MLP
class MLPBench:
    """One-hidden-layer MLP on Adult; models trained on subsets; margin-gradient features."""

    def __init__(self, cfg: dict[str, Any], seed: int) -> None:
        import torch

        self.torch = torch
        torch.set_num_threads(1)
        data = load_adult()
        rng = np.random.default_rng(seed + 1)
        order = rng.permutation(data.y.size)
        tr, te = order[: cfg["mlp_train"]], order[-cfg["n_test"] :]
        self.x = torch.tensor(data.X[tr], dtype=torch.float32)
        self.y = torch.tensor(data.y[tr], dtype=torch.float32)
        self.xt = torch.tensor(data.X[te], dtype=torch.float32)
        self.cfg = cfg
        self.epochs, self.lr, self.wd = 30, 3e-3, 1e-3
        reference, _ = self.train(np.ones(len(tr), dtype=bool), seed=10_000)
        with torch.no_grad():
            self.test_sign = torch.sign(reference(self.xt).squeeze(1)).numpy()

    def make(self, seed: int) -> Any:
        torch = self.torch
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Linear(self.x.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 1)
        )

    def train(
        self, mask: np.ndarray, *, seed: int, checkpoints: int = 0
    ) -> tuple[Any, list[tuple[dict[str, Any], float]]]:
        torch = self.torch
        model = self.make(seed)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.wd)
        idx = torch.tensor(np.flatnonzero(mask))
        gen = torch.Generator().manual_seed(seed)
        saved = []
        for epoch in range(self.epochs):
            perm = idx[torch.randperm(idx.numel(), generator=gen)]
            for start in range(0, perm.numel(), 64):
                b = perm[start : start + 64]
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(self.x[b]).squeeze(1), self.y[b]
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
            if checkpoints and (epoch + 1) % (self.epochs // checkpoints) == 0:
                saved.append(({k: v.clone() for k, v in model.state_dict().items()}, self.lr))
        return model, saved

    def margins(self, mask: np.ndarray, j: int) -> np.ndarray:
        model, _ = self.train(mask, seed=j)
        with self.torch.no_grad():
            return self.test_sign * model(self.xt).squeeze(1).numpy()

    def features(
        self, model: Any, x: Any, sign: np.ndarray, proj_seed: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Projected output-margin gradients and p(correct) for rows ``x``."""
        torch = self.torch
        from torch.func import functional_call, grad, vmap

        from rowtrail.training import RademacherProjector

        params = {k: v.detach() for k, v in model.named_parameters()}

        def out(p: dict[str, Any], row: Any) -> Any:
            return functional_call(model, p, (row.unsqueeze(0),)).squeeze()

        g = vmap(grad(out), in_dims=(None, 0))(params, x)
        flat = torch.cat([g[k].reshape(x.shape[0], -1) for k in params], dim=1)
        s = torch.tensor(sign, dtype=torch.float32)
        proj = RademacherProjector(self.cfg["proj_dim"], seed=proj_seed).project(flat * s[:, None])
        with torch.no_grad():
            z = model(x).squeeze(1)
        return proj.numpy(), torch.sigmoid(s * z).numpy()

    def run(self, seed: int) -> list[dict[str, Any]]:
        n = self.x.shape[0]
        train_sign = 2 * self.y.numpy() - 1
        final: tuple[list[Any], list[Any]] = ([], [])
        middle: tuple[list[Any], list[Any]] = ([], [])

        def trak_features() -> None:
            for m in range(self.cfg["trak_models"]):
                mask = np.random.default_rng([seed, 7, m]).random(n) < 0.5
                model, states = self.train(mask, seed=50_000 + m, checkpoints=2)
                for (state, _), (train_list, query_list) in zip(
                    states, (middle, final), strict=True
                ):
                    model.load_state_dict(state)
                    f, p = self.features(model, self.x, train_sign, proj_seed=m)
                    q, _ = self.features(model, self.xt, self.test_sign, proj_seed=m)
                    train_list.append(
                        attribution.GradientFeatures(f.astype(np.float16), p_correct=p)
                    )
                    query_list.append(attribution.GradientFeatures(q.astype(np.float16)))

        _, feat_s = timed(trak_features)
        cache = CACHE / f"adult-mlp-{n}-{self.cfg['n_test']}-{seed}.npz"
        gt = attribution.datamodel_ground_truth(
            lambda mask, c=[0]: (c.__setitem__(0, c[0] + 1), self.margins(mask, 90_000 + c[0]))[1],
            n,
            n_subsets=self.cfg["mlp_subsets"],
            seed=seed,
            cache=cache,
        )
        rows = []
        m_models = self.cfg["trak_models"]
        grid = [
            (0.03, True, False),
            (0.1, True, False),
            (0.3, True, False),
            (0.1, False, False),
            (0.1, True, True),
            (0.3, True, True),
        ]
        for ridge, weighted, both in grid:
            train_f = final[0] + middle[0] if both else final[0]
            query_f = final[1] + middle[1] if both else final[1]
            scores, cost = timed(
                lambda r=ridge, w=weighted, a=train_f, b=query_f: (
                    attribution.TRAKScorer(ridge=r, weighted=w).fit(a).scores(b)
                )
            )
            label = (
                f"TRAK x{m_models} models{' x2 checkpoints' if both else ''} ridge={ridge}"
                f"{'' if weighted else ' unweighted'}"
            )
            rows.append(
                {
                    "data": "Adult MLP",
                    "method": label,
                    "lds": self.lds(scores, gt),
                    "score_s": cost + feat_s * (1.0 if both else 0.5),
                    "retrain_s": gt[3],
                    "n_train": n,
                    "n_subsets": self.cfg["mlp_subsets"],
                }
            )
        full, ckpts = self.train(np.ones(n, dtype=bool), seed=10_000, checkpoints=5)
        tr_feats, q_feats = [], []
        for state, lr in ckpts:
            full.load_state_dict(state)
            f, p = self.features(full, self.x, train_sign, proj_seed=99)
            q, _ = self.features(full, self.xt, self.test_sign, proj_seed=99)
            tr_feats.append(attribution.GradientFeatures(f, p_correct=p, lr=lr))
            q_feats.append(attribution.GradientFeatures(q))
        for name, scorer, tf, qf in (
            ("TracInCP (5 checkpoints)", attribution.TracInScorer(), tr_feats, q_feats),
            (
                "gradient similarity",
                attribution.GradientSimilarityScorer(),
                tr_feats[-1:],
                q_feats[-1:],
            ),
            (
                "TRAK x1 (final model)",
                attribution.TRAKScorer(ridge=0.01),
                tr_feats[-1:],
                q_feats[-1:],
            ),
        ):
            scores, cost = timed(lambda s=scorer, a=tf, b=qf: s.fit(a).scores(b))
            rows.append(
                {
                    "data": "Adult MLP",
                    "method": name,
                    "lds": self.lds(scores, gt),
                    "score_s": cost,
                    "retrain_s": gt[3],
                    "n_train": n,
                    "n_subsets": self.cfg["mlp_subsets"],
                }
            )
        return rows

    @staticmethod
    def lds(scores: np.ndarray, gt: Any) -> float:
        masks, outputs = gt[0], gt[1]
        from rowtrail.attribution._lds import _pearson_rows, _ranks

        predicted = scores.astype(np.float64) @ masks.T.astype(np.float64)
        return float(np.nanmean(_pearson_rows(_ranks(predicted), _ranks(outputs.T))))


# ----------------------------------------------------------------------------- single-model LDS
def bench_single(cfg: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Single-model and classic LDS per scorer on the three tasks (see _single_model_lds)."""
    sys.path.insert(0, str(Path(__file__).parent))
    import _single_model_lds as single

    c = cfg["single"]
    tasks = [
        single.adult_task(*c["adult"], seed),
        single.adult_task(*c["adult"], seed, epochs=3),
        single.credit_task(*c["credit"], seed),
        single.mnist_task(c["mnist"][0], c["mnist"][1], seed, epochs=c["mnist"][2]),
    ]
    import rowtrail as rt

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        ws = rt.init(Path(tmp) / "ws")
        for task in tasks:
            out.append(_single_task(single, task, c, seed, ws))
        ws.close()
    return out


def _single_task(single: Any, task: Any, c: dict[str, Any], seed: int, ws: Any) -> dict[str, Any]:
    """One task of the single-model section, LDS objects flattened for JSON."""
    load = os.getloadavg()[0]
    result: dict[str, Any] = single.evaluate(task, c, seed, workspace=ws)
    result["load_1min"] = (load, os.getloadavg()[0])
    for row in result["rows"]:
        for key, value in list(row.items()):
            if isinstance(value, single.LDS):
                row[key] = {"mean": value.mean, "ci95": value.ci, "iqr": value.iqr}
    return result


def check_single(results: list[dict[str, Any]]) -> list[str]:
    """Failures of the exactness checks (the benchmark exits 1 on any)."""
    failures = []
    for r in results:
        checks = r["checks"]
        for key in ("replay_bit_identical", "counterfactual_repeatable", "counterfactual_moves",
                    "replayable_run_equals_loop"):
            if not checks.get(key, True):
                failures.append(f"{r['data']}: {key} is false")
        if checks.get("supplied_equals_retraining_max_abs", 0.0) != 0.0:
            failures.append(f"{r['data']}: the supplied counterfactual differs from retraining")
    return failures


def report_single(results: list[dict[str, Any]]) -> str:
    def cell(v: dict[str, Any] | None) -> str:
        if v is None:
            return "-"
        return (f"{v['mean']:.3f} [{v['ci95'][0]:.2f}, {v['ci95'][1]:.2f}] "
                f"(IQR {v['iqr'][0]:.2f}..{v['iqr'][1]:.2f})")

    lines = [
        "Single-model LDS (this run minus 1% / 5% of its rows, same seed and batch order, by "
        "weighted replay) and classic LDS (fresh seeds, 50% subsets) of the same scores; mean "
        "[95% bootstrap CI] (IQR) over test points; scoring time for all test points, with the "
        "features of every checkpoint/model it needs:",
        "",
        "| data | method | single 1% | single 5% | classic | scoring s (÷ one training) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r["rows"]:
            lines.append(
                f"| {r['data']} | {row['method']} | {cell(row.get('single_0.01'))} | "
                f"{cell(row.get('single_0.05'))} | {cell(row['classic'])} | "
                f"{row['score_s']:.2f} ({row['score_s'] / r['train_s']:.1f}x) |"
            )
    lines += [
        "",
        "| data | n train / test | one training s | counterfactuals (draws, s) | "
        "classic retrains (n, s) | additivity r | load 1-min |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        gt = ", ".join(f"{k}: {v:.1f}" for k, v in r["ground_truth_s"].items())
        lines.append(
            f"| {r['data']} | {r['n_train']} / {r['n_test']} | {r['train_s']:.2f} | "
            f"{r['draws']} per fraction ({gt}) | {r['classic_subsets']}, {r['classic_s']:.1f} | "
            f"{r['additivity_r']:.3f} | {r['load_1min'][0]:.1f} -> {r['load_1min'][1]:.1f} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- latency
def _latency_at(n: int, dim: int, rng: np.random.Generator, tmp: Path) -> dict[str, Any]:
    matrix = rng.normal(size=(n, dim)).astype(np.float32)
    attribution.save_feature_matrix(tmp / str(n), matrix, np.arange(n, dtype=np.int64))
    mm, row_ids, _ = attribution.load_feature_matrix(tmp / str(n))
    index = attribution.ScoreIndex(mm, row_ids)
    queries = rng.normal(size=(64, dim)).astype(np.float32)
    index.top_k(queries[:1], 20)  # warm the page cache
    single, totals, brute, batched = Clock(), Clock(), Clock(), Clock()
    for j in range(100):
        single(lambda j=j: index.top_k(queries[j % 64 : j % 64 + 1], 20, totals=False))
    for j in range(20):
        totals(lambda j=j: index.top_k(queries[j : j + 1], 20))
    for j in range(5):
        brute(lambda j=j: np.argsort(-(matrix @ queries[j]))[:20])
    batch = batched(lambda: index.top_k(queries, 20, totals=False))
    want, _ = attribution.brute_force_top_k(queries @ matrix.T, 20)
    if not np.array_equal(batch.indices, want):
        raise SystemExit("top-k over the memmap differs from brute force")
    return {
        "n": n,
        "dim": dim,
        "single_ms": single.ms(),
        "single_with_totals_ms": totals.ms(),
        "batched64_ms_per_query": tuple(v / 64 for v in batched.ms()),
        "brute_force_ms": brute.ms(),
    }


def bench_latency(seed: int, dim: int = 32) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        return [_latency_at(n, dim, rng, Path(tmp)) for n in (100_000, 1_000_000)]


# ----------------------------------------------------------------------------- trace
def bench_trace(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    import rowtrail as rt
    from rowtrail.cli._demo_attribution import build_credit_example

    with tempfile.TemporaryDirectory() as tmp:
        ws = rt.init(Path(tmp) / "ws")
        example, build_s = timed(
            lambda: build_credit_example(ws, Path(tmp), n_applicants=cfg["applicants"], seed=seed)
        )
        att = example.attributor
        n_rows = sum(s.n_rows for s in example.sources.values())
        ws.ledger.checkpoint()  # proofs are anchored in the latest signed checkpoint
        p = example.fit.predict_proba(example.X_test)
        declined = np.argsort(-p)[:30]
        vectors = att.query_vectors(
            [attribution.convex_fit_query(example.fit, example.X_test[declined])]
        )
        for v in vectors[:3]:  # warm caches (source lookups, page cache)
            att.explain_vector(ws, v, top_k=20)
        trace_only, no_proofs, cold, warm = Clock(), Clock(), Clock(), Clock()
        n_proofs = []
        for v in vectors:

            def trace(v: np.ndarray = v) -> None:
                top = att.index.top_k(v[None, :], 20)
                att.trace(ws, top.indices[0], top.scores[0])

            trace_only(trace)
            no_proofs(lambda v=v: att.explain_vector(ws, v, top_k=20, proofs=False))
            att._proof_cache.clear()
            exp = cold(lambda v=v: att.explain_vector(ws, v, top_k=20, proofs=True))
            warm(lambda v=v: att.explain_vector(ws, v, top_k=20))
            n_proofs.append(len(exp.proofs))
            if len(exp.supporting[0].rows) < 2:
                raise SystemExit("trace did not reach the child tables")
        ws.close()
    return {
        "rows_3_tables": n_rows,
        "train_samples": att.index.n_samples,
        "build_s": build_s,
        "trace_top20_ms": trace_only.ms(),
        "explain_no_proofs_ms": no_proofs.ms(),
        "explain_with_proofs_ms": cold.ms(),
        "explain_with_cached_proofs_ms": warm.ms(),
        "proofs_per_explanation": statistics.median(n_proofs),
    }


# ----------------------------------------------------------------------------- report
def report(results: dict[str, Any]) -> str:
    lines = [
        "| data | method | LDS | scoring s | ground-truth retrain s | n train | subsets |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["lds"]:
        lines.append(
            f"| {r['data']} | {r['method']} | {r['lds']:.3f} | {r['score_s']:.2f} | "
            f"{r['retrain_s']:.1f} | {r['n_train']} | {r['n_subsets']} |"
        )

    def pair(v: Any) -> str:
        return f"{v[0]:.1f} / {v[1]:.1f}"

    lines += [
        "",
        "Query latency, wall / CPU ms, medians (CPU time leaves out waiting for a core):",
        "",
        "| samples | dim | top-20, one query | + source totals | batched 64, per query | "
        "brute force (full sort) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results["latency"]:
        lines.append(
            f"| {r['n']:,} | {r['dim']} | {pair(r['single_ms'])} | "
            f"{pair(r['single_with_totals_ms'])} | {pair(r['batched64_ms_per_query'])} | "
            f"{pair(r['brute_force_ms'])} |"
        )
    t = results["trace"]
    lines += [
        "",
        f"Decision trace over the 3 credit tables, {t['rows_3_tables']:,} rows "
        f"({t['train_samples']:,} training samples), wall / CPU ms: top-20 + trace to table "
        f"rows and subjects {pair(t['trace_top20_ms'])}; full explain (20 supporting + 20 "
        f"opposing, per-table totals) {pair(t['explain_no_proofs_ms'])} without proofs, "
        f"{pair(t['explain_with_proofs_ms'])} with {t['proofs_per_explanation']:.0f} verified "
        f"inclusion proofs, {pair(t['explain_with_cached_proofs_ms'])} when those "
        "checkpoint-anchored proofs were verified before.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=("small", "large"), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only", choices=("lr", "mlp", "single", "replay", "latency", "trace"), default=None
    )
    parser.add_argument("--append-readme", action="store_true")
    args = parser.parse_args()
    cfg = PROTOCOL[args.size]
    global CACHE
    CACHE = Path(tempfile.mkdtemp(prefix="rowtrail-bench-attribution-"))
    results: dict[str, Any] = {"lds": [], "single": [], "latency": [], "trace": None}
    started = time.perf_counter()
    if args.only in (None, "lr"):
        results["lds"] += bench_logistic(cfg, args.seed)
    if args.only in (None, "mlp"):
        results["lds"] += MLPBench(cfg, args.seed).run(args.seed)
    if args.only in (None, "single"):
        results["single"] = bench_single(cfg, args.seed)
    if args.only in (None, "replay"):
        # Replay's cost: metagradient for 64 predictions ÷ one training run; unlearning by
        # replay ÷ full retraining (checks bit-identity itself; see _replay_cost.py).
        from _replay_cost import run_replay_cost_section

        results["replay_cost"] = run_replay_cost_section(args.size)
    if args.only in (None, "latency"):
        results["latency"] = bench_latency(args.seed)
    if args.only in (None, "trace"):
        results["trace"] = bench_trace(cfg, args.seed)
    results["seconds"] = time.perf_counter() - started
    print(json.dumps(results, indent=1, default=float))
    failures = check_single(results["single"])
    if results["single"]:
        print(report_single(results["single"]))
    for line in results.get("replay_cost", []):
        print(line)
    if results["trace"] and results["latency"]:
        text = report(results)
        print(text)
        if args.append_readme:
            stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
            header = (
                f"\n## Attribution\n\n`nice -n 10 python benchmarks/bench_attribution.py "
                f"--size {args.size}` — 2-core shared VM, {stamp}, "
                f"{results['seconds']:.0f} s in all.\n\n"
            )
            readme = Path(__file__).with_name("README.md")
            with readme.open("a", encoding="utf-8") as handle:
                handle.write(header + text + "\n")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
