from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset, WeightedRandomSampler  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail.errors import InvalidInputError, StateError  # noqa: E402
from rowtrail.training import (  # noqa: E402
    load_checkpoint,
    model_digest,
    read_batches,
    sample_usage,
)
from rowtrail.training._signals import decode_signal  # noqa: E402

torch.set_num_threads(1)
N = 120


def indexed_dataset(n: int = N, seed: int = 0) -> TensorDataset:
    """Column 0 of every input is the sample's own index, so a batch reveals what was drawn."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(n, 4, generator=gen)
    inputs = torch.cat([torch.arange(n, dtype=torch.float32)[:, None], features], dim=1)
    return TensorDataset(inputs, (features[:, 0] > 0).long())


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def train(ws: rt.Workspace, loader: DataLoader, *, epochs: int = 2, accumulate: int = 1,
          **run_options: object) -> tuple[object, list[np.ndarray]]:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    drawn: list[np.ndarray] = []
    with ws.training_run("trail-test", model=model, optimizer=optimizer, **run_options) as run:
        for _ in range(epochs):
            for i, (inputs, targets) in enumerate(run.track(loader)):
                drawn.append(inputs[:, 0].long().numpy())
                loss = torch.nn.functional.cross_entropy(model(inputs), targets) / accumulate
                loss.backward()
                run.log_loss(loss)
                if (i + 1) % accumulate == 0:
                    optimizer.step()
                    optimizer.zero_grad()
                    scheduler.step()
    return run, drawn


@pytest.mark.parametrize(("workers", "persistent"), [(0, False), (2, False), (2, True)])
def test_trail_matches_the_batches_drawn_with_shuffle(ws: rt.Workspace, workers: int,
                                                      persistent: bool) -> None:
    dataset = indexed_dataset()
    loader = DataLoader(dataset, batch_size=16, shuffle=True, num_workers=workers,
                        persistent_workers=persistent,
                        generator=torch.Generator().manual_seed(7))
    run, drawn = train(ws, loader)
    recorded = read_batches(ws, run.run_id)
    assert [r.positions.tolist() for r in recorded] == [d.tolist() for d in drawn]
    # Re-derived from the sampler seed alone: a fresh loader with the same generator seed.
    fresh = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, num_workers=workers,
                       generator=torch.Generator().manual_seed(7))
    expected = [b[0][:, 0].long().tolist() for _ in range(2) for b in fresh]
    assert [r.positions.tolist() for r in recorded] == expected
    assert [r.epoch for r in recorded] == [0] * 8 + [1] * 8
    # Every sample was used exactly once per epoch, and the row ids are the split's.
    for epoch in (0, 1):
        used = np.concatenate([r.positions for r in recorded if r.epoch == epoch])
        assert np.array_equal(np.sort(used), np.arange(N))


def test_weighted_random_sampler_with_replacement(ws: rt.Workspace) -> None:
    weights = torch.linspace(0.1, 5.0, N)
    sampler = WeightedRandomSampler(weights, num_samples=100, replacement=True,
                                    generator=torch.Generator().manual_seed(3))
    loader = DataLoader(indexed_dataset(), batch_size=10, sampler=sampler, num_workers=2)
    run, drawn = train(ws, loader, epochs=1)
    recorded = read_batches(ws, run.run_id)
    assert [r.positions.tolist() for r in recorded] == [d.tolist() for d in drawn]
    again = list(WeightedRandomSampler(weights, num_samples=100, replacement=True,
                                       generator=torch.Generator().manual_seed(3)))
    assert np.concatenate([r.positions for r in recorded]).tolist() == again


def test_gradient_accumulation_steps_and_learning_rates(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=10, shuffle=True)
    run, _ = train(ws, loader, epochs=1, accumulate=3)
    recorded = read_batches(ws, run.run_id)
    assert [r.step for r in recorded] == [b // 3 for b in range(12)]
    # StepLR halves the rate every 2 optimizer steps: the lr recorded is the one applied.
    assert [r.lr for r in recorded] == [0.1 * 0.5 ** ((b // 3) // 2) for b in range(12)]
    assert all(r.loss is not None and r.loss > 0 for r in recorded)
    assert run.n_steps == 4


def test_usage_of_every_sample_is_reconstructable(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(1))
    run, drawn = train(ws, loader, checkpoint_every=1)
    split_ids = run.splits[0].row_ids
    for position in (0, 57, N - 1):
        uses = sample_usage(ws, row_ids=[int(split_ids[position])], run=run.run_id)
        batches = [u for u in uses if u.kind == "batch"]
        expected = [(b // 8, b) for b, d in enumerate(drawn) if position in d]
        assert [(u.epoch, u.batch) for u in batches] == expected
        assert [u.kind for u in uses if u.kind == "split"] == ["split"]
        for use in uses:
            use.proof.verify()
            assert use.run_id == run.run_id
            if use.kind == "batch":
                assert use.chunk_proof is not None
                use.chunk_proof.verify()
        epoch_zero = next(u for u in batches if u.epoch == 0)
        assert epoch_zero.checkpoint_ids == (f"{run.run_id}:0", f"{run.run_id}:1")


def test_checkpoints_seal_and_load(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=30, shuffle=True)
    run, _ = train(ws, loader, epochs=3, checkpoint_every=2, checkpoint_unit="step")
    assert len(run.checkpoints) == 6  # 12 optimizer steps
    model = mlp()
    load_checkpoint(ws, run.checkpoints[-1]["checkpoint"], model)
    assert model_digest(model) == run.checkpoints[-1]["model_digest"]
    sealed = ws.ledger.proven_entries(kind="training.completed")
    assert len(sealed) == 1
    payload = sealed[0][0].event.payload
    assert payload["model"]["digest"] == run.checkpoints[-1]["model_digest"]
    assert payload["data"]["sources"][0]["name"].startswith("tensors:")
    assert payload["environment"]["packages_digest"].startswith("sha256:")
    assert set(payload["code"]) >= {"git_commit", "dirty"}
    assert payload["totals"]["sample_uses"] == 3 * N
    ws.verify()


def test_validation_curve_policy_checkpoints_where_the_curve_moves(ws: rt.Workspace) -> None:
    model = mlp()
    with ws.training_run("val", model=model, checkpoint_policy="val_curve",
                         val_min_delta=0.1) as run:
        chosen = [run.log_validation(v) for v in (1.0, 0.95, 0.85, 0.84, 0.5, 0.6)]
    assert [c is not None for c in chosen] == [True, False, True, False, True, False]


def test_per_sample_signals_are_aligned_with_ids(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=16, shuffle=True)
    model = mlp()
    with ws.training_run("signals", model=model) as run:
        for inputs, targets in run.track(loader):
            losses = torch.nn.functional.cross_entropy(model(inputs), targets, reduction="none")
            run.log_signal("sample_loss", inputs[:, 0])  # the index itself: checkable
            run.log_signal("batch_mean", losses.mean())
    [(entry, _)] = ws.ledger.proven_entries(kind="training.signals")
    values = decode_signal(ws.ledger.blobs.get(entry.event.blobs[0]))
    positions = np.concatenate([r.positions for r in read_batches(ws, run.run_id)])
    assert np.array_equal(values, positions.astype(np.float32))
    batch = ws.ledger.proven_entries(kind="training.batch")[0][0].event.payload
    assert set(batch["signals"]) == {"sample_loss", "batch_mean"}


def test_misuse_is_reported(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=16, num_workers=2, in_order=False)
    with ws.training_run("misuse", model=mlp()) as run:
        with pytest.raises(StateError, match="outside a batch"):
            run.log_loss(1.0)
        with pytest.raises(InvalidInputError, match="in_order"):
            run.track(loader)
        with pytest.raises(InvalidInputError, match=r"role of TrainingRun\.track"):
            run.track(DataLoader(indexed_dataset()), role="holdout")
    with pytest.raises(StateError, match="sealed"):
        run.checkpoint()


def test_signal_before_a_mid_batch_checkpoint_stays_with_its_batch(ws: rt.Workspace) -> None:
    model = mlp()
    with ws.training_run("mid-batch", model=model) as run:
        for inputs, _ in run.track(DataLoader(indexed_dataset(), batch_size=40)):
            run.log_signal("index", inputs[:, 0])
            run.checkpoint()
            with pytest.raises(InvalidInputError, match="one value per sample"):
                run.log_signal("bad", inputs[:3, 0])
    written = ws.ledger.proven_entries(kind="training.signals")
    values = np.concatenate([decode_signal(ws.ledger.blobs.get(e.event.blobs[0]))
                             for e, _ in written])
    assert np.array_equal(values, np.arange(N, dtype=np.float32))
    assert len(run.checkpoints) == 3


def test_batch_order_set_records_sorted_batches_and_aligned_signals(ws: rt.Workspace) -> None:
    loader = DataLoader(indexed_dataset(), batch_size=16, shuffle=True, num_workers=2,
                        generator=torch.Generator().manual_seed(2))
    drawn = []
    with ws.training_run("sets", model=mlp(), batch_order="set") as run:
        for inputs, _ in run.track(loader):
            drawn.append(inputs[:, 0].long().numpy())
            run.log_signal("index", inputs[:, 0])
    recorded = read_batches(ws, run.run_id)
    assert [r.positions.tolist() for r in recorded] == [sorted(d.tolist()) for d in drawn]
    [(entry, _)] = ws.ledger.proven_entries(kind="training.signals")
    values = decode_signal(ws.ledger.blobs.get(entry.event.blobs[0]))
    assert np.array_equal(values, np.concatenate([r.positions for r in recorded]))
