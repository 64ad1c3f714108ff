"""Fixtures of the interop tests: one small workspace per module, read by every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _interop_fixtures import Built, build


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """A workspace holding sources, pipelines, runs, a prediction and an erasure."""
    root = tmp_path_factory.mktemp("interop")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ROWTRAIL_STATE_DIR", str(root / "state"))
        result = build(root)
    yield result
    result.ws.close()


@pytest.fixture
def state_of(built: Built, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ROWTRAIL_STATE_DIR at the trust state of ``built`` (for handles opened anew)."""
    state = built.path.parent / "state"
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(state))
    return state
