"""Ledger appends/s on PostgreSQL against raw ``COPY`` of the same rows, on one server in one run.

``measure_pg_appends(url)`` appends ``n`` events to a new PostgreSQL workspace in batches of
``batch`` (``Ledger.append_events``: one transaction each, with the tree nodes, indexes and
signed checkpoint of every batch), then ``COPY``s the very same leaf bytes, in the same batches
and one transaction each, into a plain ``(idx BIGINT PRIMARY KEY, leaf BYTEA)`` table on the
same server: the cost of merely moving the rows into PostgreSQL. It returns both rates and their
ratio, after checking its results: the log verifies (``Workspace.verify``), both hold ``n`` rows,
and the copied bytes equal the ledger's.

Used by ``benchmarks/bench_registry.py``; also runnable on its own::

    python benchmarks/_pg_appends.py            # a throwaway server (scripts/pgserver.py)
    python benchmarks/_pg_appends.py --url postgresql://me@127.0.0.1:5432/bench --n 50000
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import rowtrail as rt

__all__ = ["measure_pg_appends", "pg_server"]

_SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def pg_server(*, durable: bool = True) -> Any:
    """Return a not yet started ``PgServer`` of ``scripts/pgserver.py`` (a context manager)."""
    spec = importlib.util.spec_from_file_location("rowtrail_pgserver", _SCRIPTS / "pgserver.py")
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {_SCRIPTS / 'pgserver.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.PgServer(durable=durable)


def measure_pg_appends(
    url: str, *, n: int = 20_000, batch: int = 1_000, workdir: str | os.PathLike[str] | None = None
) -> dict[str, Any]:
    """Measure ledger appends/s on PostgreSQL ÷ raw ``COPY`` of the same leaf bytes.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/dbname`` of the server to measure on.
    n : int
        Events to append.
    batch : int
        Events per transaction, for both the ledger and ``COPY``.
    workdir : path, optional
        Where to put the workspace directory (keys, blobs); a temporary directory by default.

    Returns
    -------
    dict
        ``n``, ``batch``, ``ledger_s``, ``copy_s``, ``ledger_per_s``, ``copy_per_s``,
        ``ratio`` (ledger ÷ COPY rows per second), ``leaf_bytes`` and ``verified``.

    Raises
    ------
    AssertionError
        A check of the results failed (the log does not verify, row counts or bytes differ).
    """
    import psycopg

    base = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="rt-pgbench-"))
    ws = rt.init(base / f"ws-{uuid.uuid4().hex[:8]}", database=url, actor="bench")
    try:
        events = [
            ws.ledger.make_event("bench.appended", {"i": i, "score": i / n, "model": "m-1"})
            for i in range(n)
        ]
        start = time.perf_counter()
        for first in range(0, n, batch):
            ws.ledger.append_events(events[first : first + batch])
        ledger_s = time.perf_counter() - start

        leaves = [entry.leaf for entry in ws.ledger._store.read_entries(0, n)]
        report = ws.verify()
        assert report.size == n, f"the log holds {report.size} entries, not {n}"

        table = f"rowtrail_copy_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL)")
            try:
                start = time.perf_counter()
                for first in range(0, n, batch):
                    with (
                        conn.transaction(),
                        conn.cursor() as cursor,
                        cursor.copy(f"COPY {table} (idx, leaf) FROM STDIN") as copy,
                    ):
                        for i in range(first, min(first + batch, n)):
                            copy.write_row((i, leaves[i]))
                copy_s = time.perf_counter() - start
                copied = conn.execute(f"SELECT leaf FROM {table} ORDER BY idx").fetchall()
            finally:
                conn.execute(f"DROP TABLE {table}")
        assert len(copied) == n, f"COPY wrote {len(copied)} rows, not {n}"
        assert [bytes(r[0]) for r in copied] == leaves, "the copied leaves differ from the ledger's"
    finally:
        ws.close()
    ledger_per_s, copy_per_s = n / ledger_s, n / copy_s
    return {
        "n": n,
        "batch": batch,
        "ledger_s": ledger_s,
        "copy_s": copy_s,
        "ledger_per_s": ledger_per_s,
        "copy_per_s": copy_per_s,
        "ratio": ledger_per_s / copy_per_s,
        "leaf_bytes": sum(len(leaf) for leaf in leaves),
        "verified": True,
    }


def main() -> None:
    """Print the measurement as JSON (on ``--url``, or a throwaway durable server)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: start a throwaway server)")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args()
    os.environ.setdefault("ROWTRAIL_STATE_DIR", tempfile.mkdtemp(prefix="rt-state-"))
    if args.url:
        result = measure_pg_appends(args.url, n=args.n, batch=args.batch)
    else:
        with pg_server() as server:
            result = measure_pg_appends(server.url, n=args.n, batch=args.batch)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
