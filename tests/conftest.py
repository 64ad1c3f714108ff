"""Suite-wide fixtures: each test gets its own per-user trust state directory.

The root ``conftest.py`` gives the doctests in ``src/rowtrail`` the same fixture and holds the
hook that makes any skip fail the run under ``CI=true`` (it must reach beyond ``tests/``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _trust_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ROWTRAIL_STATE_DIR at a fresh directory, so tests never touch the user's state."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(state))
    return state
