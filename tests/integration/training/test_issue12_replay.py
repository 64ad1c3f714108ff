"""Issue 12: replayable runs replay bit for bit; weighted replay; unlearning by replay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset, TensorDataset  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail.errors import InvalidInputError, ReplayMismatchError, StateError  # noqa: E402
from rowtrail.training import (  # noqa: E402
    counterfactual,
    load_replay_plan,
    load_replayer,
    replay_run,
    unlearn_by_replay,
)
from rowtrail.training._replay_record import state_digest  # noqa: E402

torch.set_num_threads(1)
N = 96


def per_sample(output: Any, target: Any) -> Any:
    return torch.nn.functional.cross_entropy(output, target, reduction="none")


class RowDataset(Dataset):  # type: ignore[type-arg]
    """Tensors with explicit row ids (so changed contents keep the recorded ids)."""

    def __init__(self, x: Any, y: Any, row_ids: np.ndarray) -> None:
        self.x, self.y, self.row_ids = x, y, row_ids

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.x[i], self.y[i]


def data(seed: int = 0, n: int = N) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen)
    return x, (x[:, 0] - x[:, 1] > 0).long()


def make_model(seed: int, *, dropout: float = 0.0, batchnorm: bool = False) -> Any:
    torch.manual_seed(seed)
    layers: list[Any] = [torch.nn.Linear(5, 12)]
    if batchnorm:
        layers.append(torch.nn.BatchNorm1d(12))
    layers += [torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(12, 2)]
    return torch.nn.Sequential(*layers)


def train(
    ws: rt.Workspace,
    dataset: Any,
    model: Any,
    optimizer: Any,
    *,
    scheduler: Any = None,
    epochs: int = 3,
    accumulate: int = 1,
    batch_size: int = 16,
    sampler_seed: int | None = None,
    checkpoint_every: int | None = None,
    checkpoint_unit: str = "epoch",
    per_step_schedule: bool = False,
) -> Any:
    gen = None if sampler_seed is None else torch.Generator().manual_seed(sampler_seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=gen)
    with ws.training_run("replay-test", model=model, optimizer=optimizer, replayable=True,
                         loss_fn=per_sample, scheduler=scheduler,
                         checkpoint_every=checkpoint_every,
                         checkpoint_unit=checkpoint_unit) as run:
        for _ in range(epochs):
            for i, (x, y) in enumerate(run.track(loader)):
                loss = per_sample(model(x), y).mean() / accumulate
                loss.backward()
                if (i + 1) % accumulate == 0:
                    optimizer.step()
                    optimizer.zero_grad()
                    if per_step_schedule and scheduler is not None:
                        scheduler.step()
            if scheduler is not None and not per_step_schedule:
                scheduler.step()
    return run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_replay_is_bit_identical_with_shuffle_dropout_adam_and_a_schedule(
    ws: rt.Workspace, seed: int
) -> None:
    dataset = TensorDataset(*data(seed))
    model = make_model(seed, dropout=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02, weight_decay=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    run = train(ws, dataset, model, optimizer, scheduler=scheduler,
                sampler_seed=None if seed == 0 else seed)
    result = run.replay()
    assert result.verified
    assert result.n_steps == run.n_steps == 18
    assert result.digest == state_digest(model)
    for name, tensor in model.state_dict().items():
        assert torch.equal(result.state_dict[name], tensor), name
    # a new process: everything from the ledger, the dataset and the model constructor
    again = replay_run(ws, run.run_id, model=lambda: make_model(99, dropout=0.3),
                       dataset=dataset, loss_fn=per_sample)
    assert again.verified
    assert again.digest == result.digest


def test_replay_is_bit_identical_with_accumulation_and_one_cycle(ws: rt.Workspace) -> None:
    dataset = TensorDataset(*data(3, n=100))  # 7 batches per epoch: accumulation crosses epochs
    model = make_model(3, dropout=0.1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=12)
    run = train(ws, dataset, model, optimizer, scheduler=scheduler, accumulate=2,
                per_step_schedule=True, sampler_seed=5)
    plan = load_replay_plan(ws, run.run_id)
    assert plan.accumulation == 2
    assert plan.n_steps == run.n_steps
    assert any(key == "momentum" for changes in plan.hyper_changes.values()
               for _, key, _ in changes)  # OneCycle cycles momentum as well as lr
    result = run.replay()
    assert result.verified
    assert result.digest == state_digest(model)
    # all-ones weights are the unweighted loop, bit for bit
    assert run.replay(weights=np.ones(100)).digest == result.digest


def test_a_tampered_step_digest_names_the_first_diverged_step(ws: rt.Workspace) -> None:
    dataset = TensorDataset(*data(4))
    model = make_model(4)
    run = train(ws, dataset, model, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2)
    replayer = run.replayer()
    replayer.plan.step_digests[7] = "sha256:" + "0" * 64
    with pytest.raises(ReplayMismatchError, match="step 7") as caught:
        replayer.replay()
    assert caught.value.step == 7
    assert replayer.replay(until=7).verified  # the steps before it still match


def test_changed_data_names_the_first_step_that_used_it(ws: rt.Workspace) -> None:
    x, y = data(5)
    ids = np.arange(N, dtype=np.int64) + (7 << 40)
    model = make_model(5)
    run = train(ws, RowDataset(x, y, ids), model, torch.optim.SGD(model.parameters(), lr=0.1))
    plan = load_replay_plan(ws, run.run_id)
    first = min(b.step for b in plan.batches if 40 in b.positions.tolist())
    changed = x.clone()
    changed[40] += 0.5
    with pytest.raises(ReplayMismatchError) as caught:
        replay_run(ws, run.run_id, model=make_model(0), dataset=RowDataset(changed, y, ids),
                   loss_fn=per_sample)
    assert caught.value.step == first
    with pytest.raises(InvalidInputError, match="row ids differ"):
        load_replayer(ws, run.run_id, model=make_model(0), loss_fn=per_sample,
                      dataset=RowDataset(x, y, ids + 1))


def manual_retrain_without(plan: Any, x: Any, y: Any, dropped: set[int], model: Any,
                           make_optimizer: Callable[[Any], Any]) -> Any:
    """The plain loop over the recorded batches with the dropped samples left out."""
    model.load_state_dict(plan.initial_state)
    optimizer = make_optimizer(model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    by_step: dict[int, list[list[int]]] = {}
    for batch in plan.batches:
        by_step.setdefault(batch.step, []).append(
            [p for p in batch.positions.tolist() if p not in dropped])
    epoch_of_step = {b.step: i for i, b in enumerate(plan.batches)}
    steps_per_epoch = len(plan.batches) // 3
    for step in range(plan.n_steps):
        for positions in by_step[step]:
            if positions:
                per_sample(model(x[positions]), y[positions]).mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        if epoch_of_step[step] % steps_per_epoch == steps_per_epoch - 1:
            scheduler.step()
    return model


def test_weight_zero_replay_equals_retraining_without_the_rows_with_batchnorm(
    ws: rt.Workspace,
) -> None:
    x, y = data(6)
    model = make_model(6, batchnorm=True)

    def make_optimizer(m: Any) -> Any:
        return torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)

    optimizer = make_optimizer(model)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    run = train(ws, TensorDataset(x, y), model, optimizer, scheduler=scheduler, sampler_seed=1)
    dropped = {3, 17, 50, 77}
    row_ids = run.splits[0].row_ids[sorted(dropped)]
    result = counterfactual(run, row_ids)
    retrained = manual_retrain_without(load_replay_plan(ws, run.run_id), x, y, dropped,
                                       make_model(0, batchnorm=True), make_optimizer)
    for name, tensor in retrained.state_dict().items():
        assert torch.equal(result.state_dict[name], tensor), name
    assert result.digest != state_digest(model)
    weights = np.ones(N)
    weights[sorted(dropped)] = 0.0
    assert run.replay(weights=weights).digest == result.digest


def test_unlearning_by_replay_resumes_from_a_checkpoint_and_equals_a_full_replay(
    ws: rt.Workspace,
) -> None:
    dataset = TensorDataset(*data(8))
    model = make_model(8, dropout=0.2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    # one pass over the data: rows drawn in the last 20% of training are first used there
    run = train(ws, dataset, model, optimizer, epochs=1, batch_size=8, checkpoint_every=2,
                checkpoint_unit="step", sampler_seed=2)
    plan = load_replay_plan(ws, run.run_id)
    forget = [int(p) for p in plan.batches[-2].positions[:3]]
    rows = run.splits[0].row_ids[forget]
    result = unlearn_by_replay(run, rows, verify=True)
    first_use = min(b.step for b in plan.batches if set(forget) & set(b.positions.tolist()))
    assert result.verified
    assert result.method == "replay (exact)"
    assert result.checkpoint is not None
    assert result.first_step == first_use == 10
    assert result.first_step + result.steps_replayed == plan.n_steps == 12
    assert result.digest == counterfactual(run, rows).digest
    resumed = run.replay(from_checkpoint=result.checkpoint)  # the unweighted run, from there
    assert resumed.verified
    assert resumed.first_step == 10
    assert resumed.digest == state_digest(model)


def test_a_change_after_the_last_step_is_named_as_such(ws: rt.Workspace) -> None:
    dataset = TensorDataset(*data(10))
    model = make_model(10, batchnorm=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(dataset, batch_size=32)
    with ws.training_run("late", model=model, optimizer=optimizer, replayable=True,
                         loss_fn=per_sample) as run:
        for x, y in run.track(loader):
            per_sample(model(x), y).mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        model(dataset.tensors[0][:8])  # a forward in train mode moves BatchNorm's statistics
    with pytest.raises(ReplayMismatchError, match="after its last optimizer step") as caught:
        run.replay()
    assert caught.value.step is None


def test_the_replay_contract_is_checked_while_training(ws: rt.Workspace) -> None:
    dataset = TensorDataset(*data(9))
    model = make_model(9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(dataset, batch_size=16)
    with pytest.raises(StateError, match="no train batch"), ws.training_run(  # noqa: PT012
        "c1", model=model, optimizer=optimizer, replayable=True, loss_fn=per_sample
    ) as run:
        for x, y in run.track(loader):
            per_sample(model(x), y).mean().backward()
            optimizer.step()
            optimizer.step()
    model = make_model(9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    changed = "changed between optimizer step"
    with pytest.raises(StateError, match=changed), ws.training_run(  # noqa: PT012
        "c2", model=model, optimizer=optimizer, replayable=True, loss_fn=per_sample
    ) as run:
        for x, y in run.track(loader):
            per_sample(model(x), y).mean().backward()
            optimizer.step()
            with torch.no_grad():
                model[0].weight.mul_(0.5)
    run = ws.training_run("c3", model=model, optimizer=torch.optim.SGD(
        model.parameters(), lr=0.1), replayable=True, loss_fn=per_sample)
    with pytest.raises(InvalidInputError, match="num_workers=0"):
        run.track(DataLoader(dataset, batch_size=16, num_workers=1))
    run.finish()
    with pytest.raises(InvalidInputError, match="loss_fn"):
        ws.training_run("c4", model=model, optimizer=optimizer, replayable=True)
    plain = ws.training_run("c5", model=model, optimizer=torch.optim.SGD(
        model.parameters(), lr=0.1))
    plain.finish()
    with pytest.raises(StateError, match="not recorded for replay"):
        plain.replay()
