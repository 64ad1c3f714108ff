"""Fixtures of the registry tests: a workspace with traced data and a recorded sklearn fit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt


class Clock:
    """An injected clock that advances one minute per event, from a fixed start."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@dataclass
class Trained:
    ws: rt.Workspace
    X: Any
    y: Any
    estimator: Any
    run_id: str


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ws(tmp_path: Path, clock: Clock) -> Iterator[rt.Workspace]:
    with rt.init(tmp_path / "ws", actor="alice", now=clock) as workspace:
        yield workspace


@pytest.fixture
def trained(ws: rt.Workspace) -> Trained:
    from sklearn.linear_model import LogisticRegression

    from rowtrail.training import record_sklearn_fit

    rng = np.random.default_rng(0)
    X = rt.track(rng.normal(size=(40, 3)), source="applicants", workspace=ws)  # noqa: N806
    y = (np.asarray(X)[:, 0] > 0).astype(int)
    estimator = LogisticRegression(C=1.0).fit(np.asarray(X), y)
    with ws.training_run("fit") as run:
        record_sklearn_fit(estimator, X, y, run=run)
    return Trained(ws, X, y, estimator, run.run_id)


def table_rows(ws: rt.Workspace, table: str) -> list[Any]:
    return list(ws.db.query(f"SELECT * FROM {table}"))
