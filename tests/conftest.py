"""Suite-wide fixtures: each test gets its own per-user trust state directory.

The root ``conftest.py`` gives the doctests in ``src/rowtrail`` the same fixture and holds the
hook that makes any skip fail the run under ``CI=true`` (it must reach beyond ``tests/``).

PostgreSQL: ``scripts/test.sh`` starts a throwaway server and exports its URL as
``ROWTRAIL_PG_URL`` (and, for the PostgreSQL pass, as ``ROWTRAIL_DATABASE``, so every workspace
the tests create lives there). The session fixture :func:`pg_url` returns that URL, or, when
none is exported, starts a server of its own for the session with ``scripts/pgserver.py``.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

_SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(autouse=True)
def _trust_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ROWTRAIL_STATE_DIR at a fresh directory, so tests never touch the user's state."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(state))
    return state


def load_pgserver() -> ModuleType:
    """Import ``scripts/pgserver.py`` (not a package) by its path."""
    spec = importlib.util.spec_from_file_location("rowtrail_pgserver", _SCRIPTS / "pgserver.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The URL of a PostgreSQL database for the session's tests.

    ``$ROWTRAIL_PG_URL`` (or ``$ROWTRAIL_DATABASE``) when exported; otherwise a throwaway
    server started here and stopped at the end of the session. Without server binaries the
    tests that need one fail under ``CI=true`` (CI installs them) and are skipped elsewhere.
    """
    url = os.environ.get("ROWTRAIL_PG_URL") or os.environ.get("ROWTRAIL_DATABASE")
    if url:
        yield url
        return
    pgserver = load_pgserver()
    try:
        server = pgserver.PgServer().start()
    except RuntimeError as exc:
        if os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"no PostgreSQL server for the tests: {exc}")
        pytest.skip(f"no PostgreSQL server binaries here: {exc}")
    try:
        yield server.url
    finally:
        server.stop()
