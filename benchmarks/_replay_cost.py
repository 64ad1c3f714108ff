"""Cost of replay-based answers on the Adult MLP: metagradient attribution and exact unlearning.

Measured side by side in one run, over repeats (median and IQR), with the machine load:

- metagradient attribution (``MetagradientScorer``) of 64 predictions, against one training run
  of the same model (the plain PyTorch loop, no rowtrail);
- exact unlearning by replay (``unlearn_by_replay``) of a forget set first used in the last 20%
  of training, against full retraining without it: (a) the replay of all steps with the same
  weights (what retraining with the recorded seed and order is) and (b) the plain loop.
  The replayed model is checked bit-identical to the full replay, or the script fails.

The run trains 4 epochs on 80% of the rows, then one epoch on all of them (new data arriving),
so the other 20% are first used late; checkpoints every 5% of the steps record the optimizer
state replay resumes from.

Usage::

    python benchmarks/_replay_cost.py --size small   # < 2 minutes

``benchmarks/bench_attribution.py`` may call :func:`run_replay_cost_section`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # must precede the NumPy import below

import numpy as np  # noqa: E402

SIZES: dict[str, dict[str, int]] = {
    "small": {"n_train": 2000, "hidden": 32, "batch": 64, "epochs": 5, "repeats": 3,
              "forget": 5, "queries": 64},
    "large": {"n_train": 8000, "hidden": 64, "batch": 128, "epochs": 5, "repeats": 5,
              "forget": 10, "queries": 64},
}


def _fmt(values: list[float], unit: str = "") -> str:
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return f"{q2:.3g}{unit} (IQR {q1:.3g}-{q3:.3g})"


class _Setup:
    def __init__(self, cfg: dict[str, int], directory: Path) -> None:
        import torch

        import rowtrail as rt
        from rowtrail.datasets import load_adult

        self.torch, self.cfg = torch, cfg
        torch.set_num_threads(1)
        data = load_adult()
        order = np.random.default_rng(0).permutation(data.y.size)
        train, test = order[: cfg["n_train"]], order[cfg["n_train"]: cfg["n_train"] + 64]
        self.x = torch.tensor(data.X[train], dtype=torch.float32)
        self.y = torch.tensor(data.y[train], dtype=torch.long)
        self.queries = torch.tensor(data.X[test], dtype=torch.float32)
        self.dataset = torch.utils.data.TensorDataset(self.x, self.y)
        self.early = np.arange(int(0.8 * cfg["n_train"]))  # rows seen from the first epoch
        self.ws = rt.init(directory / "ws")

    def per_sample(self, output: Any, target: Any) -> Any:
        return self.torch.nn.functional.cross_entropy(output, target, reduction="none")

    def make_model(self) -> Any:
        nn = self.torch.nn
        self.torch.manual_seed(0)
        return nn.Sequential(nn.Linear(self.x.shape[1], self.cfg["hidden"]), nn.ReLU(),
                             nn.Linear(self.cfg["hidden"], 2))

    def loaders(self) -> list[Any]:
        data = self.torch.utils.data
        gen = self.torch.Generator().manual_seed(1)
        early = data.DataLoader(self.dataset, batch_size=self.cfg["batch"], generator=gen,
                                sampler=data.SubsetRandomSampler(self.early.tolist(), gen))
        full = data.DataLoader(self.dataset, batch_size=self.cfg["batch"], shuffle=True,
                               generator=gen)
        return [early] * (self.cfg["epochs"] - 1) + [full]

    def train(self, run: Any = None, skip: Any = None) -> tuple[Any, float]:
        """Train (recorded when ``run`` is given); ``skip`` rows are left out of each batch."""
        torch = self.torch
        model = self.make_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        started = time.perf_counter()
        if run is not None:
            run = run(model, optimizer)
        for loader in self.loaders():
            for x, y in (loader if run is None else run.track(loader)):
                loss = self.per_sample(model(x), y).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        if run is not None:
            run.finish()
        return run if run is not None else model, time.perf_counter() - started

    def recorded(self, name: str, every: int) -> Any:
        return lambda model, optimizer: self.ws.training_run(
            name, model=model, optimizer=optimizer, replayable=True, loss_fn=self.per_sample,
            checkpoint_every=every, checkpoint_unit="step")


def _late_forget_set(run: Any, n_forget: int) -> Any:
    """Rows first drawn in the last 20% of the steps (a late-arriving subject's rows)."""
    plan = run.replayer().plan
    first: dict[int, int] = {}
    for batch in plan.batches:
        for p in batch.positions.tolist():
            first.setdefault(p, batch.step)
    late = sorted(p for p, s in first.items() if s >= 0.8 * plan.n_steps)
    chosen = np.random.default_rng(2).choice(late, size=n_forget, replace=False)
    return run.splits[0].row_ids[np.sort(chosen)]


def bench_replay_cost(size: str) -> dict[str, Any]:
    """Measure both ratios at ``size``; return the raw figures (raises if not bit-identical)."""
    from rowtrail.attribution import MetagradientScorer
    from rowtrail.training import unlearn_by_replay

    cfg = SIZES[size]
    out: dict[str, Any] = {"train": [], "meta": [], "unlearn": [], "full_replay": [],
                           "retrain_loop": [], "steps": [], "load": [os.getloadavg()[0]]}
    with tempfile.TemporaryDirectory() as tmp:
        setup = _Setup(cfg, Path(tmp))
        n_steps = sum(len(loader) for loader in setup.loaders())
        every = max(1, n_steps // 20)
        for repeat in range(cfg["repeats"]):
            _, plain = setup.train()
            run, _ = setup.train(setup.recorded(f"replay-cost-{repeat}", every))
            scorer = MetagradientScorer(run)
            started = time.perf_counter()
            scores = scorer.metagradients(setup.queries[: cfg["queries"]])
            out["meta"].append(time.perf_counter() - started)
            out["train"].append(plain)
            if not np.all(np.isfinite(scores)):
                raise SystemExit("metagradient scores are not finite")
            forget = _late_forget_set(run, cfg["forget"])
            unlearned = unlearn_by_replay(run, forget)
            replayer = run.replayer()
            full = replayer.replay(weights=replayer.drop_weights(forget, caller="bench"))
            if full.digest != unlearned.digest:
                raise SystemExit("unlearning by replay is not bit-identical to the full replay")
            _, loop = setup.train()
            out["unlearn"].append(unlearned.seconds)
            out["full_replay"].append(full.seconds)
            out["retrain_loop"].append(loop)
            out["steps"].append((unlearned.steps_replayed, n_steps))
            out["trajectory_error"] = scorer.trajectory_error_
            out["load"].append(os.getloadavg()[0])
    return out


def run_replay_cost_section(size: str) -> list[str]:
    """Run the replay cost comparison and return its report lines."""
    started = time.perf_counter()
    r = bench_replay_cost(size)
    cfg = SIZES[size]
    meta = [m / t for m, t in zip(r["meta"], r["train"], strict=True)]
    vs_replay = [u / f for u, f in zip(r["unlearn"], r["full_replay"], strict=True)]
    vs_loop = [u / f for u, f in zip(r["unlearn"], r["retrain_loop"], strict=True)]
    replayed, total = r["steps"][0]
    return [
        f"Replay cost, Adult MLP ({cfg['n_train']} rows, 1x{cfg['hidden']}, Adam, {total} steps,"
        f" {cfg['repeats']} repeats, CPU 1 thread):",
        f"  metagradient for {cfg['queries']} predictions: {_fmt(r['meta'], ' s')}; one "
        f"training run (plain loop): {_fmt(r['train'], ' s')}; ratio {_fmt(meta, 'x')}",
        f"  (functional trajectory vs recorded weights: max |diff| "
        f"{r['trajectory_error']:.2e})",
        f"  unlearning by replay of {cfg['forget']} rows first used in the last 20% "
        f"({replayed} of {total} steps replayed from a checkpoint): {_fmt(r['unlearn'], ' s')}",
        f"    vs full retraining by replay (all {total} steps, same weights, bit-identical "
        f"result): {_fmt(r['full_replay'], ' s')}; ratio {_fmt(vs_replay, 'x')}",
        f"    vs full retraining with the plain loop: {_fmt(r['retrain_loop'], ' s')}; "
        f"ratio {_fmt(vs_loop, 'x')}",
        f"  load average (1 min) during the run: min {min(r['load']):.2f}, "
        f"max {max(r['load']):.2f}; section took {time.perf_counter() - started:.1f} s",
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args(argv)
    print("\n".join(run_replay_cost_section(args.size)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
