"""Issue 12: the metagradient scorer against finite differences and exact replays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail.attribution import METAGRADIENT_METHOD, MetagradientScorer  # noqa: E402
from rowtrail.errors import InvalidInputError  # noqa: E402
from rowtrail.training import counterfactual  # noqa: E402

torch.set_num_threads(1)
N = 100


def per_sample(output: Any, target: Any) -> Any:
    return torch.nn.functional.cross_entropy(output, target, reduction="none")


def data(seed: int, n: int = N) -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=gen, dtype=torch.float64)
    noise = 0.5 * torch.randn(n, generator=gen, dtype=torch.float64)
    return x, (x[:, 0] - x[:, 1] + noise > 0).long()


def make_model(*, dropout: float = 0.0, batchnorm: bool = False) -> Any:
    torch.manual_seed(0)
    # no bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify
    layers: list[Any] = [torch.nn.Linear(5, 10, bias=not batchnorm)]
    if batchnorm:
        layers.append(torch.nn.BatchNorm1d(10))
    layers += [torch.nn.Tanh(), torch.nn.Dropout(dropout), torch.nn.Linear(10, 2)]
    return torch.nn.Sequential(*layers).double()


def train(ws: rt.Workspace, model: Any, optimizer: Any, *, seed: int = 0, epochs: int = 3,
          accumulate: int = 1) -> Any:
    dataset = TensorDataset(*data(seed))
    loader = DataLoader(dataset, batch_size=20, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    with ws.training_run("mg", model=model, optimizer=optimizer, replayable=True,
                         loss_fn=per_sample) as run:
        for _ in range(epochs):
            for i, (x, y) in enumerate(run.track(loader)):
                (per_sample(model(x), y).mean() / accumulate).backward()
                if (i + 1) % accumulate == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            scheduler.step()
    return run


def margins(model: Any, queries: Any) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        z = model(queries)
    chosen = torch.nn.functional.one_hot(z.argmax(-1), 2).bool()
    return ((z * chosen).sum(-1) - z.masked_fill(chosen, float("-inf")).logsumexp(-1)).numpy()


@pytest.fixture
def ws(tmp_path: Path) -> rt.Workspace:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


@pytest.mark.parametrize("kind", ["sgd-momentum", "adam-dropout-accumulation", "batchnorm"])
def test_metagradient_equals_finite_differences_of_weighted_replays(
    ws: rt.Workspace, kind: str
) -> None:
    if kind == "sgd-momentum":
        model = make_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                    weight_decay=1e-3)
        run = train(ws, model, optimizer)
    elif kind == "batchnorm":  # running statistics reach the eval-mode output: differentiated
        model = make_model(batchnorm=True)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
        run = train(ws, model, optimizer)
    else:
        model = make_model(dropout=0.2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
        run = train(ws, model, optimizer, accumulate=2)
    queries = data(7, n=3)[0]
    scorer = MetagradientScorer(run)
    scores = scorer.metagradients(queries)
    assert scores.shape == (3, N)
    assert scorer.trajectory_error_ is not None
    assert scorer.trajectory_error_ < 1e-9  # the functional steps retrace the recorded run
    replayer = run.replayer()
    base = margins(replayer.replay(weights=np.ones(N)).model, queries)
    eps = 1e-6
    for i in (0, 41, 99):
        weights = np.ones(N)
        weights[i] = 1.0 - eps
        finite = (base - margins(replayer.replay(weights=weights).model, queries)) / eps
        np.testing.assert_allclose(scores[:, i], finite, rtol=1e-3, atol=1e-7)
    # checkpointed recomputation changes memory, not the answer
    whole = MetagradientScorer(run, segment=scorer.replayer.plan.n_steps).metagradients(queries)
    np.testing.assert_allclose(whole, scores, rtol=1e-10, atol=1e-14)


def test_first_order_prediction_of_dropping_one_percent_matches_the_replay(
    ws: rt.Workspace,
) -> None:
    model = make_model()
    run = train(ws, model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5))
    queries = data(8, n=4)[0]
    scores = MetagradientScorer(run).metagradients(queries)
    replayer = run.replayer()
    base = margins(replayer.replay(weights=np.ones(N)).model, queries)
    rng = np.random.default_rng(0)
    predicted, actual = [], []
    for _ in range(12):
        drop = rng.choice(N, size=1, replace=False)  # 1% of the training rows
        weights = np.ones(N)
        weights[drop] = 0.0
        actual.append(margins(replayer.replay(weights=weights).model, queries) - base)
        predicted.append(-scores[:, drop].sum(axis=1))
    a, p = np.concatenate(actual), np.concatenate(predicted)
    assert np.corrcoef(a, p)[0, 1] > 0.99
    np.testing.assert_allclose(p, a, atol=0.1 * np.abs(a).max())


def test_explain_ranks_rows_by_metagradient_and_removing_supporters_lowers_the_margin(
    ws: rt.Workspace,
) -> None:
    model = make_model()
    run = train(ws, model, torch.optim.Adam(model.parameters(), lr=0.02))
    scorer = MetagradientScorer(run)
    query = data(9, n=1)[0]
    explanation = ws.explain(query.numpy()[0], attributor=scorer.attributor(), top_k=5)
    assert explanation.method == METAGRADIENT_METHOD
    top = [s.row_id for s in explanation.supporting]
    assert all(s.score > 0 for s in explanation.supporting)
    assert explanation.supporting[0].score >= explanation.supporting[-1].score
    before = margins(model, query)[0]
    after = margins(counterfactual(run, top).model, query)[0]
    assert after < before
    bottom = [s.row_id for s in explanation.opposing]
    assert margins(counterfactual(run, bottom).model, query)[0] > before


def test_unsupported_optimizers_are_refused(ws: rt.Workspace) -> None:
    model = make_model()
    run = train(ws, model, torch.optim.RMSprop(model.parameters(), lr=0.01), epochs=1)
    with pytest.raises(InvalidInputError, match="RMSprop"):
        MetagradientScorer(run)
