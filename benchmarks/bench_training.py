"""Training trail and gradient features: overhead and storage, as ratios measured in one run.

Figures (baseline in brackets):
- epoch time with the trail / without it (the same untraced loop; goal <= 1.02x);
- featurization of one checkpoint (all training samples, k=4096, SRHT) / one training epoch;
- bytes per sample in the feature store at k=4096 (goal <= 8.2 KB);
- bytes per sample-use in the ledger: SQLite growth and positions blobs (goal <= 4 B).

Usage: python benchmarks/bench_training.py --size small|large
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import rowtrail as rt
from rowtrail.training import encode_batch_sets, featurize, read_batches

SIZES = {
    # n samples, features, hidden, batch size, timed epochs per arm
    "small": (20_000, 32, 128, 128, 7),
    "large": (100_000, 32, 256, 256, 5),
}


def make_data(n: int, d: int, seed: int = 0) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, d, generator=gen)
    weights = torch.randn(d, generator=gen)
    targets = (inputs @ weights + 0.5 * torch.randn(n, generator=gen) > 0).long()
    return TensorDataset(inputs, targets)


def make_model(d: int, hidden: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
        torch.nn.ReLU(), torch.nn.Linear(hidden, 2),
    )


def plain_epoch(model, optimizer, loader) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    for inputs, targets in loader:
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return time.perf_counter() - wall, time.process_time() - cpu


def traced_epoch(run, model, optimizer, loader) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    wall, cpu = time.perf_counter(), time.process_time()
    for inputs, targets in run.track(loader):
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        run.log_loss(loss)
    elapsed = time.perf_counter() - wall
    run.flush(wait=True)  # the writer thread's CPU work is charged to this epoch
    return elapsed, time.process_time() - cpu


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    args = parser.parse_args()
    n, d, hidden, batch_size, epochs = SIZES[args.size]
    torch.set_num_threads(1)
    dataset = make_data(n, d)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    model = make_model(d, hidden)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"size={args.size}: n={n}, params={n_params}, batch={batch_size}, torch threads=1")

    with tempfile.TemporaryDirectory() as tmp:
        ws = rt.init(Path(tmp) / "ws")
        plain_epoch(model, optimizer, loader)  # warm-up (allocator, kernels)
        ws.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db_before = os.path.getsize(ws.path / "rowtrail.db")
        blobs_before = dir_bytes(ws.path / "blobs")
        plain, traced = [], []
        with ws.training_run("bench", model=model, optimizer=optimizer) as run:
            for i in range(epochs):  # ABBA order, so drift and warm caches hit both arms
                if i % 2 == 0:
                    plain.append(plain_epoch(model, optimizer, loader))
                    traced.append(traced_epoch(run, model, optimizer, loader))
                else:
                    traced.append(traced_epoch(run, model, optimizer, loader))
                    plain.append(plain_epoch(model, optimizer, loader))
            run_id = run.run_id
        uses = epochs * n
        recorded = read_batches(ws, run_id)
        assert sum(r.positions.size for r in recorded) == uses, "trail lost sample-uses"
        ws.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db_growth = os.path.getsize(ws.path / "rowtrail.db") - db_before
        blob_growth = dir_bytes(ws.path / "blobs") - blobs_before
        [(sealed, _)] = ws.ledger.proven_entries(kind="training.completed")
        model_blob = sealed.event.payload["model"]["digest"]
        weights_bytes = ws.blobs.path_of(model_blob).stat().st_size  # per run, not per use
        batch_blob_bytes = blob_growth - weights_bytes
        for label, arm in (("wall", 0), ("cpu", 1)):
            p_times, t_times = [x[arm] for x in plain], [x[arm] for x in traced]
            ratio = statistics.median(t_times) / statistics.median(p_times)
            best = min(t_times) / min(p_times)
            print(f"epoch {label} time: plain {statistics.median(p_times):.3f} s, traced "
                  f"{statistics.median(t_times):.3f} s -> median ratio {ratio:.3f}x, "
                  f"best-of ratio {best:.3f}x (goal <= 1.02x)")
        print(f"ledger per sample-use: SQLite {db_growth / uses:.2f} B + positions blobs "
              f"{batch_blob_bytes / uses:.2f} B = {(db_growth + batch_blob_bytes) / uses:.2f} B "
              f"({uses} uses, {len(recorded)} batch events; goal <= 4 B)")
        # The same chunks written with batch_order="set" (each batch a sorted set, Elias-Fano).
        chunks: dict[int, list[np.ndarray]] = {}
        for record, entry in zip(recorded, ws.ledger.entries([r.ledger_index for r in recorded]),
                                 strict=True):
            chunks.setdefault(entry.event.payload["chunk"], []).append(record.positions)
        set_bytes = sum(
            len(encode_batch_sets(np.concatenate(batches), [b.size for b in batches])[0])
            for batches in chunks.values()
        )
        print(f"  with batch_order='set': SQLite {db_growth / uses:.2f} B + batch sets "
              f"{set_bytes / uses:.2f} B = {(db_growth + set_bytes) / uses:.2f} B")

        n_feat = min(n, 20_000)
        subset = TensorDataset(*(t[:n_feat] for t in dataset.tensors))
        # warm-up: the first torch.func / autograd-hook call pays one-off import and setup costs
        featurize(ws, model, TensorDataset(*(t[:8] for t in dataset.tensors)), proj_dim=4096)
        epoch_wall = statistics.median(x[0] for x in plain) * n_feat / n
        epoch_cpu = statistics.median(x[1] for x in plain) * n_feat / n
        for label, options in (("all layers", {}), ("last layer only", {"last_layer": True})):
            wall, cpu = time.perf_counter(), time.process_time()
            features = featurize(ws, model, subset, proj_dim=4096, seed=0, batch_size=256,
                                 **options)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert features.complete, "featurization did not finish"
            assert features.features.shape == (n_feat, 4096)
            print(f"featurization, {label} (k=4096, SRHT, {n_feat} samples, "
                  f"p={features.meta['param_dim']}): wall {wall:.2f} s = "
                  f"{wall / epoch_wall:.1f}x, cpu {cpu:.2f} s = {cpu / epoch_cpu:.1f}x "
                  f"one training epoch over the same samples")
            if not options:
                per_sample = features.nbytes_on_disk() / n_feat
                print(f"feature store: {per_sample:,.0f} B per sample at k=4096 "
                      f"(goal <= 8,200 B)")
        ws.close()


if __name__ == "__main__":
    main()
