"""Workspaces on SQLite: create, reopen, keys, schema versions, and the ledger across reopening."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from _ledger_fixtures import Clock, build_workspace, raw_db
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rowtrail as rt
from _rawdb import dump_tables
from rowtrail.errors import (
    CanonicalEncodingError,
    CheckpointError,
    ConsistencyProofError,
    InclusionProofError,
    InvalidInputError,
    SchemaVersionError,
    StateError,
)
from rowtrail.ledger import (
    InclusionProof,
    NoteSigner,
    format_checkpoint_body,
    verify_consistency,
    verify_inclusion,
)
from rowtrail.store import SCHEMA_VERSION


def test_create_and_reopen(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=30)
    origin, head, vkey = ws.origin, ws.ledger.head(), ws.ledger.verifier.vkey
    secret = ws.secret
    ws.close()
    for name in ["keys/ledger.pem", "keys/subject.key"]:
        assert stat.S_IMODE(os.stat(tmp_path / "ws" / name).st_mode) == 0o600
    again = rt.open(f"sqlite:///{tmp_path / 'ws'}")
    assert again.origin == origin  # same log identity after reopening
    assert again.ledger.verifier.vkey == vkey
    assert again.secret == secret
    assert again.ledger.head() == head
    assert again.pseudonymize("alice") == ws.pseudonymize("alice")
    report = again.verify()
    assert (report.size, report.root, report.witnessed_size) == (30, head.root, 30)
    again.close()
    with pytest.raises(StateError, match="closed"):
        again.verify()


def test_open_rejects_bad_locations(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="directory"):
        rt.open(tmp_path / "file")
    with pytest.raises(InvalidInputError):
        rt.open("ftp://example.com/x")


def _dump(path: Path) -> list[tuple[object, ...]]:
    with raw_db(path) as conn:
        return dump_tables(conn)


def test_newer_schema_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=10)
    ws.close()
    with raw_db(tmp_path / "ws") as conn:
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    before = _dump(tmp_path / "ws")
    with pytest.raises(
        SchemaVersionError,
        match=f"schema version {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}.*Upgrade",
    ):
        rt.open(tmp_path / "ws")
    assert _dump(tmp_path / "ws") == before


def test_ledger_survives_reopen_at_every_size(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=37)
    roots = {size: ws.ledger.root(size) for size in range(1, 38)}
    ws.close()
    ws = rt.open(tmp_path / "ws")
    for size in range(1, 38):
        assert ws.ledger.root(size) == roots[size]
        for index in {0, size // 2, size - 1}:
            proof = ws.ledger.prove(index, size)
            verify_inclusion(index, size, proof.leaf_hash, proof.path, roots[size])
        for old in {1, size // 2 or 1, size}:
            cons = ws.ledger.consistency(old, size)
            verify_consistency(old, size, roots[old], roots[size], cons.path)
    # Appending after reopening extends the same tree.
    ws.ledger.append("model.predicted", {"request": 99})
    ws.ledger.consistency(37).verify()
    ws.ledger.checkpoint()
    ws.verify()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=5), st.data())
def test_append_prove_verify_property(
    tmp_path_factory: pytest.TempPathFactory, batches: list[int], data: st.DataObject
) -> None:
    ws = rt.init(tmp_path_factory.mktemp("ws"), now=Clock())
    sizes = []
    for count in batches:
        ws.ledger.append_events([ws.ledger.make_event("a.b", {"i": i}) for i in range(count)])
        sizes.append(ws.ledger.size)
        ws.ledger.checkpoint()
    size = ws.ledger.size
    index = data.draw(st.integers(0, size - 1))
    entry = ws.ledger.entry(index)
    proof = ws.ledger.prove(index)
    proof.verify()
    verify_inclusion(index, size, entry.leaf_hash, proof.path, ws.ledger.root())
    old = data.draw(st.sampled_from(sizes))
    ws.ledger.consistency(old).verify()
    assert [c.size for c in ws.ledger.checkpoints()] == sorted(set(sizes))
    assert ws.verify().size == size
    ws.close()


def test_indexes_by_kind_and_subject(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=40)
    alice = ws.pseudonymize("alice")
    assert ws.ledger.indices(kind="rows.ingested") == [0]
    assert ws.ledger.indices(kind="train.batch") == list(range(1, 20))
    assert ws.ledger.indices(kind="model.predicted") == list(range(20, 40))
    assert ws.ledger.indices(kind="nothing.here") == []
    expected = [0, *[i for i in range(20, 40) if i % 3 == 0]]
    assert ws.ledger.indices(subject=alice) == expected
    assert ws.ledger.indices(subject=alice, kind="model.predicted") == expected[1:]
    proven = ws.ledger.proven_entries(subject=alice)
    assert [e.index for e, _ in proven] == expected
    for entry, proof in proven:
        assert alice in entry.event.subjects
        proof.verify()
    with pytest.raises(InvalidInputError):
        ws.ledger.indices()


def test_checkpoint_refuses_rolled_back_log(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=20)
    latest = ws.ledger.latest_checkpoint()
    assert latest is not None
    assert latest.size == 20
    assert ws.ledger.checkpoint().size == 20  # same head: the same checkpoint, not a new one
    with raw_db(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM events WHERE idx >= 15")
    with pytest.raises(CheckpointError, match="truncated or rolled back"):
        ws.ledger.checkpoint()


def test_witness_never_goes_back(tmp_path: Path) -> None:
    """Checkpoints signed out of order (two processes) leave the witness at the largest."""
    ws = build_workspace(tmp_path / "ws", n=20)
    first = ws.ledger.latest_checkpoint()
    assert first is not None
    ws.ledger.append("a.b", {"x": 1})
    ws.ledger.checkpoint()
    ws.trust.advance(ws.origin, first.note)  # a late writer offering an older checkpoint
    trusted = ws.trust_root().checkpoint
    assert trusted is not None
    assert trusted.size == 21
    assert ws.verify().witnessed_size == 21


def test_checkpoint_of_empty_log_is_refused(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    with pytest.raises(StateError, match="empty"):
        ws.ledger.checkpoint()
    assert ws.verify().size == 0


# ---------------------------------------------------------------- bad input: typed, nothing written


@pytest.mark.parametrize(
    ("kind", "payload", "fields", "error"),
    [
        ("Bad Kind", {}, {}, InvalidInputError),
        ("a.b", [1], {}, InvalidInputError),
        ("a.b", {"x": float("nan")}, {}, CanonicalEncodingError),
        ("a.b", {"x": float("inf")}, {}, CanonicalEncodingError),
        ("a.b", {"x": b"bytes"}, {}, CanonicalEncodingError),
        ("a.b", {1: "int key"}, {}, CanonicalEncodingError),
        ("a.b", {"x": {1, 2}}, {}, CanonicalEncodingError),
        ("a.b", {}, {"subjects": ["alice"]}, InvalidInputError),
        ("a.b", {}, {"blobs": ["sha256:" + "0" * 64]}, InvalidInputError),
        ("a.b", {}, {"actor": ""}, InvalidInputError),
    ],
    ids=[
        "kind",
        "payload-list",
        "nan",
        "inf",
        "bytes",
        "int-key",
        "set",
        "raw-subject",
        "unknown-blob",
        "actor",
    ],
)
def test_bad_events_write_nothing(
    tmp_path: Path, kind: str, payload: object, fields: dict[str, object], error: type[Exception]
) -> None:
    ws = build_workspace(tmp_path / "ws", n=10)
    head = ws.ledger.head()
    with pytest.raises(error):
        ws.ledger.append(kind, payload, **fields)  # type: ignore[arg-type]
    with ws.ledger.batch(max_events=3) as batch:
        batch.append("a.b", {"fine": 1})
        with pytest.raises(error):
            batch.append(kind, payload, **fields)  # type: ignore[arg-type]
        batch.append("a.b", {"fine": 2})  # the bad event was never buffered
    assert ws.ledger.size == head.size + 2
    head = ws.ledger.head()
    with pytest.raises(ZeroDivisionError):
        _append_then_fail(ws)
    good = ws.ledger.make_event("a.b", {"fine": 1})
    with pytest.raises(error):
        ws.ledger.append_events([good, ws.ledger.make_event(kind, payload, **fields)])  # type: ignore[arg-type]
    assert ws.ledger.head() == head
    ws.verify()


def _append_then_fail(ws: rt.Workspace) -> None:
    with ws.ledger.batch(max_events=3) as batch:
        batch.append("a.b", {"discarded": 1})
        raise ZeroDivisionError  # a block that raises discards what it buffered


def test_append_events_rejects_non_events(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    with pytest.raises(InvalidInputError, match=r"events\[0\]"):
        ws.ledger.append_events([{"kind": "a.b"}])  # type: ignore[list-item]
    assert ws.ledger.size == 0
    assert ws.ledger.append_events([]) == range(0, 0)


def test_bad_batch_size(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    with pytest.raises(InvalidInputError, match="max_events"), ws.ledger.batch(max_events=0):
        pass


def test_unknown_checkpoint_keys_are_rejected(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=5)
    stranger = NoteSigner(ws.origin, Ed25519PrivateKey.generate())
    forged = stranger.sign(format_checkpoint_body(ws.origin, 5, ws.ledger.root()))
    with pytest.raises(CheckpointError, match="unknown keys"):
        ws.ledger.open_checkpoint(forged)
    other_origin = NoteSigner("rowtrail.local/other", Ed25519PrivateKey.generate())
    with pytest.raises(CheckpointError):
        ws.ledger.open_checkpoint(
            other_origin.sign(format_checkpoint_body("rowtrail.local/other", 5, ws.ledger.root()))
        )


def test_proofs_of_the_wrong_length_are_rejected(tmp_path: Path) -> None:
    ws = build_workspace(tmp_path / "ws", n=25)
    proof = ws.ledger.prove(7)
    for path in [proof.path[:-1], (*proof.path, proof.path[0]), ()]:
        bad = InclusionProof(proof.index, proof.size, proof.leaf_hash, path, proof.root)
        with pytest.raises(InclusionProofError, match="needs"):
            bad.verify()
    data = proof.to_json()
    assert InclusionProof.from_json(data) == proof
    for broken in [
        data | {"path": "abc"},
        data | {"path": ["zz"]},
        {"index": 1},
        data | {"root": 7},
    ]:
        with pytest.raises(InvalidInputError):
            InclusionProof.from_json(broken)
    cons = ws.ledger.consistency(10)
    with pytest.raises(ConsistencyProofError):
        verify_consistency(10, 25, cons.old_root, cons.new_root, cons.path[1:])
    with pytest.raises(InvalidInputError):
        ws.ledger.prove(25)
    with pytest.raises(InvalidInputError):
        ws.ledger.prove(3, 26)
    with pytest.raises(InvalidInputError):
        ws.ledger.consistency(0)
    with pytest.raises(InvalidInputError):
        ws.ledger.entry(-1)
    assert ws.ledger.size == 25


def _abandoned_append(ws: rt.Workspace) -> None:
    with ws.ledger.transaction():
        ws.ledger.append("rows.ingested", {"n_rows": 99})
        ws.ledger.root(4)  # reads (and would keep) nodes over the uncommitted entry
        raise RuntimeError("abandon")


def test_tree_hashes_read_inside_a_rolled_back_write_are_forgotten(tmp_path: Path) -> None:
    """Roots and proofs after a rollback come from the committed tree, not discarded nodes."""
    with rt.init(tmp_path / "ws") as ws:
        for i in range(3):
            ws.ledger.append("rows.ingested", {"n_rows": i})
        with pytest.raises(RuntimeError, match="abandon"):
            _abandoned_append(ws)
        ws.ledger.append("rows.ingested", {"n_rows": 3})
        with rt.open(tmp_path / "ws", read_only=True) as fresh:
            assert ws.ledger.root(4) == fresh.ledger.root(4)
        ws.ledger.prove_signed([3])
        assert ws.verify().size == 4
