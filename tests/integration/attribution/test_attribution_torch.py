"""TRAK over the training layer's feature store (torch, CPU, toy logistic model)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail import attribution

torch = pytest.importorskip("torch")
from rowtrail.training import featurize  # noqa: E402

L2 = 1.0


def _fit(x: Any, y: Any, mask: np.ndarray) -> Any:
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 1)
    keep = torch.tensor(mask)
    opt = torch.optim.LBFGS(
        model.parameters(),
        lr=1.0,
        max_iter=200,
        tolerance_grad=1e-10,
        tolerance_change=1e-12,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Any:
        opt.zero_grad()
        out = model(x[keep]).squeeze(1)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(out, y[keep], reduction="sum")
        loss = loss + 0.5 * L2 * (model.weight**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


def test_trak_over_training_feature_store_supports_predictions(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 150
    x_np = rng.normal(size=(n, 3))
    y_np = (x_np @ [1.5, -1.0, 0.5] + 0.5 * rng.normal(size=n) > 0).astype(np.float32)
    x = torch.tensor(x_np, dtype=torch.float32)
    y = torch.tensor(y_np)
    xt = torch.tensor(rng.normal(size=(4, 3)), dtype=torch.float32)
    model = _fit(x, y, np.ones(n, dtype=bool))
    with torch.no_grad():
        z = model(x).squeeze(1).numpy()
        zt = model(xt).squeeze(1).numpy()
    predicted = (zt > 0).astype(np.float32)
    ws = rt.init(tmp_path / "ws")
    ids = np.arange(n, dtype=np.int64)
    train_set = featurize(
        ws,
        model,
        torch.utils.data.TensorDataset(x, y),
        proj_dim=4,
        projector="rademacher",
        seed=1,
        row_ids=ids,
    )
    query_set = featurize(
        ws,
        model,
        torch.utils.data.TensorDataset(xt, torch.tensor(predicted)),
        proj_dim=4,
        projector="rademacher",
        seed=1,
        row_ids=np.arange(n, n + 4, dtype=np.int64),
    )
    p = 1 / (1 + np.exp(-(2 * y_np - 1) * z))
    train = attribution.GradientFeatures.from_source(train_set, p_correct=p)
    query = attribution.GradientFeatures.from_source(query_set)
    scorer = attribution.TRAKScorer(ridge=1e-3).fit([train])
    scores = scorer.scores([query])
    assert scores.shape == (4, n)
    again = attribution.TRAKScorer(ridge=1e-3).fit([train]).scores([query])
    np.testing.assert_array_equal(scores, again)
    np.testing.assert_array_equal(scorer.row_ids, ids)
    sign = np.where(zt > 0, 1.0, -1.0)
    for j in range(4):
        without = np.ones(n, dtype=bool)
        without[np.argsort(-scores[j])[:15]] = False
        with torch.no_grad():
            margin = sign[j] * _fit(x, y, without)(xt[j : j + 1]).item()
        assert margin < sign[j] * zt[j]
    ws.close()
