"""Several writer processes on one PostgreSQL workspace; a writer killed mid-transaction; errors.

* 8 processes, each on its own connection, append batches at once: nothing is lost, every
  index is unique, each batch is contiguous, there is one consistent tree and ``verify``
  passes.
* A writer SIGKILLed while its transaction is open (rows written, not committed) leaves the
  log as it was: the server rolls the transaction back and releases the write lock.
* An unreachable server, a wrong URL, a password in the URL, a bare ``postgresql://``
  location and a dropped schema each raise a clear error, and nothing is created.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rowtrail as rt
from _rawdb import raw_connection
from rowtrail.errors import InvalidInputError, StorageError

CHILD = Path(__file__).with_name("_store_child.py")


def _child(*args: str, err: Path) -> subprocess.Popen[bytes]:
    with open(err, "ab") as stderr:
        return subprocess.Popen(
            [sys.executable, str(CHILD), *args], stdout=subprocess.DEVNULL, stderr=stderr
        )


def test_eight_writer_processes(tmp_path: Path, pg_url: str) -> None:
    writers, batches, size = 8, 6, 25
    ws_path, go = tmp_path / "ws", tmp_path / "go"
    rt.init(ws_path, database=pg_url).close()
    children = [
        _child(
            "append", str(ws_path), str(tmp_path / f"r{n}"), f"w{n}", str(batches), str(size),
            str(go), err=tmp_path / "err",
        )
        for n in range(writers)
    ]
    go.touch()
    for child in children:
        assert child.wait(timeout=240) == 0, (tmp_path / "err").read_text()
    seen: dict[int, tuple[str, int, int]] = {}
    for n in range(writers):
        for line in (tmp_path / f"r{n}").read_text().splitlines():
            index, tag, batch, seq = line.split()
            assert int(index) not in seen  # every appended index is unique
            seen[int(index)] = (tag, int(batch), int(seq))
    total = writers * batches * size
    assert sorted(seen) == list(range(total))  # nothing lost, no gap
    with rt.open(ws_path) as ws:
        assert ws.ledger.size == total
        for index, entry in zip(range(total), ws.ledger.entries(list(range(total))), strict=True):
            tag, batch, seq = seen[index]
            assert entry.event.payload == {"tag": tag, "batch": batch, "seq": seq}
            if seq:  # a batch is one transaction: contiguous
                assert seen[index - 1] == (tag, batch, seq - 1)
        report = ws.verify()
        assert report.size == total
        latest = ws.ledger.latest_checkpoint()
        assert latest is not None
        assert latest.size == total
        assert latest.root == ws.ledger.root()
        for index in (0, total // 2, total - 1):
            ws.ledger.prove(index).verify()


def test_writer_killed_mid_transaction(tmp_path: Path, pg_url: str) -> None:
    ws_path, ready = tmp_path / "ws", tmp_path / "ready"
    with rt.init(ws_path, database=pg_url) as ws:
        ws.ledger.append_events([ws.ledger.make_event("test.before", {"i": i}) for i in range(10)])
        head = ws.ledger.head()
    child = _child("hold", str(ws_path), str(ready), "500", err=tmp_path / "err")
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert child.poll() is None, (tmp_path / "err").read_text()
        assert time.monotonic() < deadline, "the writer never reached its transaction"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    with rt.open(ws_path) as ws:
        assert ws.ledger.head() == head  # nothing of the killed transaction is visible
        ws.verify()
        # The lock died with the writer: the next append goes on from the committed state.
        assert ws.ledger.append("test.after", {"i": 0}) == head.size
        assert ws.ledger.indices(kind="test.uncommitted") == []
        assert ws.verify().size == head.size + 1


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_creates_nothing(tmp_path: Path) -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/rowtrail"
    with pytest.raises(StorageError, match=r"could not connect.*Start the server"):
        rt.init(tmp_path / "ws", database=url)
    assert not (tmp_path / "ws").exists()


def test_wrong_urls(tmp_path: Path, pg_url: str) -> None:
    with pytest.raises(InvalidInputError, match="postgresql://user@host:port/dbname"):
        rt.init(tmp_path / "ws", database="mysql://me@localhost/db")
    with pytest.raises(InvalidInputError, match=r"password.*PGPASSWORD") as caught:
        rt.init(tmp_path / "ws", database="postgresql://me:hunter2@127.0.0.1/db")
    assert "hunter2" not in str(caught.value)
    with pytest.raises(InvalidInputError, match="must name a database"):
        rt.init(tmp_path / "ws", database="postgresql://me@127.0.0.1:5432")
    with pytest.raises(InvalidInputError, match=r"workspace directory.*database="):
        rt.open(pg_url)
    missing = pg_url.rsplit("/", 1)[0] + "/no_such_database"
    with pytest.raises(StorageError, match="no_such_database"):
        rt.init(tmp_path / "ws", database=missing)
    assert not (tmp_path / "ws").exists()
    with pytest.raises(InvalidInputError, match="only for creating"):
        rt.open(tmp_path / "ws", database=pg_url)


def test_existing_workspaces_keep_their_database(tmp_path: Path, pg_url: str) -> None:
    rt.init(tmp_path / "lite", database="sqlite").close()
    with pytest.raises(InvalidInputError, match="SQLite workspace already"):
        rt.init(tmp_path / "lite", database=pg_url)
    rt.init(tmp_path / "pg", database=pg_url).close()
    other = pg_url.rsplit("/", 1)[0] + "/other"
    with pytest.raises(InvalidInputError, match="created with"):
        rt.init(tmp_path / "pg", database=other)
    rt.init(tmp_path / "pg", database=pg_url).close()  # the same URL opens it


def test_dropped_schema_and_edited_database_file(tmp_path: Path, pg_url: str) -> None:
    with rt.init(tmp_path / "ws", database=pg_url) as ws:
        schema = ws.db.schema
    with raw_connection(tmp_path / "ws") as raw:
        raw.execute(f'DROP SCHEMA "{schema}" CASCADE')
    with pytest.raises(StorageError, match=f"schema {schema}.*does not exist"):
        rt.open(tmp_path / "ws")
    (tmp_path / "ws" / "database.json").write_text(json.dumps({"url": pg_url}))
    with pytest.raises(StorageError, match=r"database\.json"):
        rt.open(tmp_path / "ws")
