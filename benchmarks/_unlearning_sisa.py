"""Sharded (SISA) unlearning of an MLP on Adult: exact shard retraining vs full retraining.

Measured side by side in one run, over repeats (median and IQR):

- seconds to unlearn one subject by retraining only the affected shard of a K-shard model,
  against (a) retraining the unsharded model from scratch without the subject (the baseline the
  issue names) and (b) retraining all K shards;
- test accuracy of the K-shard model (mean of shard probabilities) against the unsharded model
  trained on the same data: SISA costs accuracy, each shard sees only 1/K of the data;
- exactness: the shard-retrained model's digest (all weights) against an independent
  from-scratch K-shard training on the retained data (bit-identical, or the script fails).

Every training, sharded or not, goes through ``train_sharded`` (the unsharded model is K = 1),
so all arms pay the same recorded-run overhead. Adult rows are registered as one source with
each row its own subject (``adult-<line>``), so the forget set is one subject's row.

Usage::

    python benchmarks/_unlearning_sisa.py --size small   # < 60 s
    python benchmarks/_unlearning_sisa.py --size large

``benchmarks/bench_unlearning.py`` calls :func:`run_sisa_section`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # must precede the NumPy import below

import numpy as np  # noqa: E402

from rowtrail.ids import ROW_BITS  # noqa: E402

ROW_MASK = (1 << ROW_BITS) - 1

SIZES: dict[str, dict[str, int]] = {
    "small": {"n_train": 12000, "n_test": 6000, "shards": 5, "epochs": 6, "hidden": 64,
              "batch": 128, "repeats": 4},
    "large": {"n_train": 24000, "n_test": 8000, "shards": 8, "epochs": 10, "hidden": 128,
              "batch": 128, "repeats": 7},
}


def _median_iqr(values: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = np.percentile(np.asarray(values, dtype=np.float64), [25, 50, 75])
    return float(q2), float(q1), float(q3)


def _fmt(values: list[float], unit: str = "s") -> str:
    mid, lo, hi = _median_iqr(values)
    return f"{mid:.3f} {unit} (IQR {lo:.3f}-{hi:.3f})"


class _Setup:
    """Adult rows registered in a fresh workspace; the MLP and its training loop."""

    def __init__(self, cfg: dict[str, int], directory: Path) -> None:
        import torch

        import rowtrail as rt
        from rowtrail.datasets import load_adult
        from rowtrail.hashing import file_digest
        from rowtrail.lineage import register_source

        self.torch, self.cfg = torch, cfg
        torch.set_num_threads(1)
        data = load_adult()
        self.ws = rt.init(directory / "ws")
        info = register_source(
            self.ws, name="adult.data", digest=file_digest(data.path), format="csv",
            schema={name: "float" for name in data.feature_names}, n_rows=int(data.y.size),
            path=str(data.path), subject_column="person",
            subject_ids=[f"adult-{int(r)}" for r in data.row_numbers],
        )
        self.row_numbers = data.row_numbers
        order = np.random.default_rng(0).permutation(data.y.size)
        train, test = order[: cfg["n_train"]], order[-cfg["n_test"]:]
        self.row_ids = info.row_ids()[train]
        self.x = torch.tensor(data.X[train], dtype=torch.float32)
        self.y = torch.tensor(data.y[train], dtype=torch.float32)
        self.xt = torch.tensor(data.X[test], dtype=torch.float32)
        self.yt = data.y[test]
        self.dataset = torch.utils.data.TensorDataset(self.x, self.y)
        self.compute = 0.0  # seconds spent inside the training loops (no run records)

    def make_model(self) -> Any:
        nn = self.torch.nn
        return nn.Sequential(nn.Linear(self.x.shape[1], self.cfg["hidden"]), nn.ReLU(),
                             nn.Linear(self.cfg["hidden"], 1))

    def train_shard(self, model: Any, loader: Any, run: Any) -> None:
        torch = self.torch
        started = time.perf_counter()
        opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
        for _ in range(self.cfg["epochs"]):
            for x, y in run.track(loader):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(x).squeeze(1), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
        self.compute += time.perf_counter() - started

    def train(self, name: str, n_shards: int, seed: int, keep: Any = None) -> Any:
        from rowtrail.unlearning._sisa import train_sharded

        dataset, ids = self.dataset, self.row_ids
        if keep is not None:
            dataset = self.torch.utils.data.Subset(self.dataset, keep.tolist())
            ids = self.row_ids[keep]
        return train_sharded(self.ws, name, make_model=self.make_model,
                             train_shard=self.train_shard, dataset=dataset, row_ids=ids,
                             n_shards=n_shards, seed=seed, batch_size=self.cfg["batch"])

    def accuracy(self, model: Any) -> float:
        return float(((model.predict_proba(self.xt) >= 0.5) == self.yt).mean())


def bench_sisa(size: str) -> dict[str, Any]:
    """Run the SISA comparison at ``size`` and return its raw figures (raises if not exact)."""
    from rowtrail.lineage import rows_of_subject

    cfg = SIZES[size]
    out: dict[str, Any] = {"cfg": cfg, "acc_sharded": [], "acc_unsharded": [], "exact": [],
                           "load": [os.getloadavg()[0]]}
    for arm in ("shard", "unsharded", "all_shards"):
        out[arm], out[f"{arm}_loop"] = [], []
    with tempfile.TemporaryDirectory() as tmp:
        setup = _Setup(cfg, Path(tmp))
        rng = np.random.default_rng(1)
        for repeat in range(cfg["repeats"]):
            sharded = setup.train(f"sisa-{repeat}", cfg["shards"], seed=repeat)
            whole = setup.train(f"whole-{repeat}", 1, seed=repeat)
            out["acc_sharded"].append(setup.accuracy(sharded))
            out["acc_unsharded"].append(setup.accuracy(whole))
            target = int(rng.integers(cfg["n_train"]))
            line = int(setup.row_numbers[int(setup.row_ids[target]) & ROW_MASK])
            forget = rows_of_subject(setup.ws, f"adult-{line}")
            # Side by side, in alternating order across repeats (machine load drifts).
            arms = [("shard", sharded, "unlearn"), ("unsharded", whole, "unlearn"),
                    ("all_shards", sharded, "full_retrain")]
            results = {}
            for label, model, method in arms if repeat % 2 == 0 else arms[::-1]:
                started, compute = time.perf_counter(), setup.compute
                results[label] = getattr(model, method)(forget)
                out[label].append(time.perf_counter() - started)
                out[f"{label}_loop"].append(setup.compute - compute)
                out["load"].append(os.getloadavg()[0])
            done = results["shard"]
            if len(done.affected_shards) != 1 or done.exact is not True:
                raise SystemExit(f"one subject should touch one shard: {done.affected_shards}")
            if repeat == 0:  # independent from-scratch training on the retained data
                keep = np.flatnonzero(~np.isin(setup.row_ids, forget))
                scratch = setup.train(f"scratch-{repeat}", cfg["shards"], seed=repeat, keep=keep)
                out["exact"].append(scratch.digest == done.model.digest
                                    and results["all_shards"].model.digest == done.model.digest)
        setup.ws.verify()
        setup.ws.close()
    if not all(out["exact"]):
        raise SystemExit("shard retraining is not bit-identical to retraining from scratch")
    return out


def run_sisa_section(size: str) -> list[str]:
    """Run :func:`bench_sisa` and return its figures as printable lines."""
    started = time.perf_counter()
    r = bench_sisa(size)
    cfg = r["cfg"]
    acc_s, acc_u = r["acc_sharded"], r["acc_unsharded"]

    def arm(label: str, key: str) -> list[str]:
        total, loop = r[key], r[f"{key}_loop"]
        lines = [f"  {label}: {_fmt(total)} end to end, {_fmt(loop)} in the training loop"]
        if key != "shard":
            faster = [t / s for t, s in zip(total, r["shard"], strict=True)]
            faster_loop = [t / s for t, s in zip(loop, r["shard_loop"], strict=True)]
            lines.append(f"    -> shard retraining is {_fmt(faster, 'x')} faster end to end, "
                         f"{_fmt(faster_loop, 'x')} in the training loop")
        return lines

    return [
        f"MLP on Adult (1x{cfg['hidden']}, {cfg['epochs']} epochs, n_train={cfg['n_train']}, "
        f"n_test={cfg['n_test']}), K={cfg['shards']} shards by subject, "
        f"{cfg['repeats']} repeats, forget set = one subject (one row); torch threads = 1",
        *arm("unlearn: retrain the affected shard (exact)", "shard"),
        *arm("baseline: retrain the unsharded model (exact)", "unsharded"),
        *arm(f"retrain all {cfg['shards']} shards (exact)", "all_shards"),
        "  (end to end includes each recorded run's fixed cost: ledger events, environment "
        "lock, signed checkpoint)",
        f"  test accuracy: sharded {_fmt(acc_s, '')} vs unsharded {_fmt(acc_u, '')} "
        f"(difference of medians {statistics.median(acc_s) - statistics.median(acc_u):+.4f})",
        f"  exact: shard-retrained digest == from-scratch on retained data == all-shard "
        f"retrain: {all(r['exact'])}",
        f"  load average (1 min) during the run: min {min(r['load']):.2f}, "
        f"max {max(r['load']):.2f}; section took {time.perf_counter() - started:.1f} s",
    ]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: print the section at ``--size``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args(argv)
    for line in run_sisa_section(args.size):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
