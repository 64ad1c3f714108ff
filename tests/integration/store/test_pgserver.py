"""``scripts/pgserver.py``: the throwaway server the tests and benchmarks start."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import psycopg

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "pgserver.py"


def test_server_starts_serves_and_is_removed() -> None:
    spec = importlib.util.spec_from_file_location("rowtrail_pgserver_test", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    pgserver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pgserver)
    with pgserver.PgServer() as server:
        assert server.url.startswith("postgresql://postgres@127.0.0.1:")
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            assert conn.execute("SELECT current_database()").fetchone() == ("rowtrail",)
        directory = server.directory
        assert (directory / "data" / "PG_VERSION").exists()
    assert not directory.exists()
