"""Builders shared by the ledger integration tests: a small, varied, checkpointed workspace."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import rowtrail as rt
from _rawdb import copy_workspace as _copy_workspace
from _rawdb import raw_connection
from rowtrail import Workspace
from rowtrail.ledger import TrustStore

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Clock:
    """Injected clock: 1 ms per call from T0, so runs are reproducible."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return T0 + timedelta(milliseconds=self.calls)


def build_workspace(path: Path, n: int = 40) -> Workspace:
    """A workspace with ``n`` events of three kinds, subjects, blobs and two checkpoints."""
    ws = rt.init(path, now=Clock())
    alice, bob = ws.pseudonymize("alice"), ws.pseudonymize("bob")
    ids_blob = ws.ledger.put_blob(b"\x01\x02" * 100)
    ws.ledger.append("rows.ingested", {"source": "credit.csv", "n_rows": n}, subjects=[alice, bob])
    with ws.ledger.batch(max_events=7) as batch:
        for i in range(1, n // 2):
            if i % 5 == 0:
                batch.append("train.batch", {"step": i, "loss": 1 / i}, blobs=[ids_blob])
            else:
                batch.append("train.batch", {"step": i, "loss": 1 / i})
    ws.ledger.checkpoint()
    with ws.ledger.batch(max_events=5) as batch:
        for i in range(n // 2, n):
            subjects = [alice] if i % 3 == 0 else []
            batch.append("model.predicted", {"request": i, "score": i / n}, subjects=subjects)
    ws.ledger.checkpoint()
    return ws


@contextmanager
def raw_db(path: Path) -> Iterator[Any]:
    """A second, independent connection to a workspace database (the tamperer's)."""
    with raw_connection(path) as conn:
        yield conn


def copy_workspace(source: Workspace, target: Path) -> Path:
    """Copy a workspace directory and its database (SQLite file or PostgreSQL schema)."""
    return _copy_workspace(source, target)


def save_trust(ws: Workspace, target: Path) -> Path:
    """Copy the workspace's trust state (kept outside it, per user) to ``target``.

    Module-scoped fixtures build workspaces under one test's state directory; tests that
    open copies later restore it into their own with :func:`restore_trust`.
    """
    shutil.copytree(ws.trust.directory(ws.origin), target)
    return target


def restore_trust(saved: Path) -> None:
    """Make ``saved`` (from :func:`save_trust`) the current user's trust state for its log."""
    origin = (saved / "origin").read_text().strip()
    target = TrustStore().directory(origin)
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(saved, target)
