"""Smaller ledger API paths: JSON forms, progress, empty requests, and the guarded query path."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import MappingProxyType

import pytest
from _ledger_fixtures import build_workspace, raw_db

import rowtrail as rt
from rowtrail.errors import (
    InclusionProofError,
    LogIntegrityError,
    TrustRootError,
    VerificationError,
)
from rowtrail.ledger import Event


def test_json_forms(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=12)
    entry = ws.ledger.entry(3)
    data = entry.to_json()
    assert data["index"] == 3
    assert data["leaf_hash"] == entry.leaf_hash.hex()
    assert data["event"] == entry.event.to_json()
    cons = ws.ledger.consistency(5).to_json()
    assert (cons["old_size"], cons["new_size"], len(cons["path"])) == (
        5,
        12,
        len(ws.ledger.consistency(5).path),
    )
    seen: list[int] = []
    report = ws.verify(progress=seen.append)
    assert sum(seen) == 12
    data = report.to_json()
    assert {k: data[k] for k in ("ok", "size", "root", "nodes", "blobs", "witnessed_size")} == {
        "ok": True,
        "size": 12,
        "root": ws.ledger.root().hex(),
        "nodes": report.n_nodes,
        "blobs": 1,
        "witnessed_size": 12,
    }
    # Every write transaction signs a checkpoint: the append, then batches of 7 and 5.
    assert data["checkpoints"] == len(ws.ledger.checkpoints()) == 4
    assert str(data["trust_root"]).startswith("the trust state in ")
    assert {"cache_rows", "blob_files", "bound_files"} <= data.keys()
    assert ws.ledger.prove_many([]) == []
    assert repr(ws).startswith("Workspace(")


def test_non_utc_times_and_mapping_payloads(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    moment = datetime(2026, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    with ws.ledger.batch() as batch:
        batch.append("a.b", MappingProxyType({"x": 1}))
    index = ws.ledger.append("a.b", {"y": 2}, time=moment)
    event = ws.ledger.entry(index).event
    assert event.time == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert ws.ledger.entry(0).event.payload == {"x": 1}
    ledger = ws.ledger
    ledger._now = lambda: moment  # an injected clock in another zone
    with ledger.batch() as batch:
        batch.append("a.b", {"z": 3})
    assert ledger.entry(2).event.time == event.time
    ws.verify()


def test_proven_entries_refuse_tampered_records(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=30)
    alice = ws.pseudonymize("alice")
    assert [e.index for e, _ in ws.ledger.proven_entries(subject=alice)] == [0, 15, 18, 21, 24, 27]
    with raw_db(tmp_path / "ws") as conn:
        (leaf,) = conn.execute("SELECT leaf FROM events WHERE idx = 21").fetchone()
        conn.execute("UPDATE events SET leaf = ? WHERE idx = 21", (leaf.replace(b"21", b"22"),))
    with pytest.raises(InclusionProofError, match="entry 21"):
        ws.ledger.proven_entries(subject=alice)
    with raw_db(tmp_path / "ws") as conn:
        conn.execute("UPDATE events SET leaf = ? WHERE idx = 21", (leaf,))
        # An index row pointing at an entry that does not name the subject.
        conn.execute("INSERT INTO event_subjects VALUES (?, 22)", (alice,))
    # Caught by the subject index's signed multiset hash before any entry is read.
    with pytest.raises(LogIntegrityError, match="subject index differs"):
        ws.ledger.proven_entries(subject=alice)
    with raw_db(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM event_subjects WHERE idx = 22")
        # A rewrite of a checkpointed entry with its leaf hash recomputed.
        forged = Event(
            "rows.ingested",
            {"source": "forged.csv", "n_rows": 30},
            time=ws.ledger.entry(0).event.time,
            subjects=ws.ledger.entry(0).event.subjects,
        ).leaf()
        (hashes,) = conn.execute("SELECT hashes FROM events WHERE idx = 0").fetchone()
        conn.execute(
            "UPDATE events SET leaf = ?, hashes = ? WHERE idx = 0",
            (forged, hashlib.sha256(b"\x00" + forged).digest() + hashes[32:]),
        )
    # Its proof no longer leads to the (signed) root: nothing is released.
    with pytest.raises(VerificationError):
        ws.ledger.proven_entries(subject=alice)


def test_proven_entries_refuse_a_rewritten_history(tmp_path: Path) -> None:
    """A fully consistent rewrite (events, indexes and tree) still contradicts the checkpoints."""
    ws = build_workspace(tmp_path / "ws", n=30)
    with raw_db(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM events WHERE idx >= 10")
        conn.execute("DELETE FROM event_subjects WHERE idx >= 10")
        conn.execute("DELETE FROM event_kinds WHERE start >= 10")
        conn.execute("UPDATE event_kinds SET stop = 10 WHERE stop > 10")
    # The trust root outside the workspace saw 30 entries: extending the truncated log is
    # refused before anything is written, so the rewrite cannot even be signed.
    events = [ws.ledger.make_event("model.predicted", {"request": 1000 + i}) for i in range(20)]
    with pytest.raises(TrustRootError, match="truncated or rolled back"):
        ws.ledger.append_events(events)
    assert ws.ledger.size == 10
    with pytest.raises(VerificationError):
        ws.ledger.proven_entries(kind="model.predicted")
    with pytest.raises(VerificationError):
        ws.ledger.checkpoint()


def test_sparse_and_dense_reads_agree(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    with ws.ledger.batch(max_events=500) as batch:
        for i in range(2100):
            batch.append("a.even" if i // 7 % 2 == 0 else "a.odd", {"i": i})
    sparse = ws.ledger.entries([2099, 0, 1500])  # far apart: the kind of each is looked up alone
    dense = ws.ledger.entries(list(range(2100)))
    assert [e.event.payload["i"] for e in sparse] == [2099, 0, 1500]
    assert [e.event.kind for e in sparse] == [dense[i].event.kind for i in (2099, 0, 1500)]
    assert ws.ledger.indices(kind="a.odd")[:3] == [7, 8, 9]
    assert len(ws.ledger.indices(kind="a.even")) + len(ws.ledger.indices(kind="a.odd")) == 2100
    assert ws.ledger._store.indices_by_kind("a.odd", start=8, limit=2) == [8, 9]
    ws.verify()


def test_store_rejects_tree_nodes_that_do_not_fit(tmp_path: Path) -> None:
    from rowtrail.errors import StorageError
    from rowtrail.ledger import EntryBatch

    ws = build_workspace(tmp_path / "ws", n=8)
    store, head = ws.ledger._store, ws.ledger.head()
    leaf = Event("a.b", {}, time=datetime(2026, 1, 1, tzinfo=UTC)).leaf()
    digest = hashlib.sha256(b"\x00" + leaf).digest()
    batch = EntryBatch(8, ["a.b"], [leaf], [digest], [()])
    for nodes in ([(1, 9, bytes(32))], [(2, 2, bytes(32))], [(1, 4, b"short")]):
        with pytest.raises(StorageError), store.transaction() as tx:
            tx.write(batch, nodes)
    with pytest.raises(StorageError, match="equal lengths"), store.transaction() as tx:
        tx.write(EntryBatch(8, ["a.b", "a.b"], [leaf], [digest], [()]), [])
    assert ws.ledger.head() == head  # nothing was written
    ws.verify()
