"""Tampering with a stored workspace, directly in its database and files, is detected.

``Workspace.verify()`` must raise a ``VerificationError`` subclass for every edit, deletion,
reorder and truncation of stored events, for edits of the tree nodes, the kind and subject
indexes, blobs and checkpoints, and for a replayed older state; where one entry is to blame the
``LogIntegrityError`` names the first bad index.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _ledger_fixtures import build_workspace, copy_workspace, raw_db, restore_trust, save_trust
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rowtrail as rt
from _rawdb import copy_directory, restore_database
from rowtrail.errors import (
    CheckpointError,
    LogIntegrityError,
    TrustRootError,
    VerificationError,
)
from rowtrail.ledger import TrustStore

N = 40  # entries in the pristine workspace: see build_workspace (checkpoints at 20 and 40)
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = build_workspace(tmp_path_factory.mktemp("pristine") / "ws", n=N)
    target = copy_workspace(ws, tmp_path_factory.mktemp("copy") / "ws")
    save_trust(ws, target.parent / "trust")
    ws.close()
    return target


@pytest.fixture(scope="module")
def scratch(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[rt.Workspace, Any]]:
    """One shared copy for edit-and-restore tests (each test leaves it as it found it)."""
    path = tmp_path_factory.mktemp("scratch") / "ws"
    copy_directory(pristine, path)
    restore_trust(pristine.parent / "trust")
    ws = rt.init(path)
    with raw_db(path) as conn:
        yield ws, conn
    ws.close()


@pytest.fixture
def copy(pristine: Path, tmp_path: Path) -> Path:
    restore_trust(pristine.parent / "trust")
    return Path(copy_directory(pristine, tmp_path / "ws"))


def verify_fails(path_or_ws: Path | rt.Workspace) -> VerificationError:
    ws = rt.open(path_or_ws) if isinstance(path_or_ws, Path) else path_or_ws
    with pytest.raises(VerificationError) as info:
        ws.verify()
    return info.value


def first_bad(path_or_ws: Path | rt.Workspace) -> int | None:
    error = verify_fails(path_or_ws)
    assert isinstance(error, LogIntegrityError), repr(error)
    return error.index


def read(conn: Any, column: str, index: int) -> bytes:
    return bytes(conn.execute(f"SELECT {column} FROM events WHERE idx = ?", (index,)).fetchone()[0])


def write(conn: Any, column: str, index: int, value: bytes) -> None:
    conn.execute(f"UPDATE events SET {column} = ? WHERE idx = ?", (value, index))


def test_pristine_copy_verifies(pristine: Path) -> None:
    restore_trust(pristine.parent / "trust")
    report = rt.open(pristine, read_only=True).verify()
    assert (report.size, report.witnessed_size, report.n_blobs) == (N, N, 1)
    assert report.n_checkpoints == 8  # one per write transaction


# ---------------------------------------------------------------- events


@pytest.mark.slow
def test_every_single_byte_edit_of_a_leaf_is_detected(
    scratch: tuple[rt.Workspace, Any],
) -> None:
    """Exhaustive over two leaves; the property test below covers any byte of any leaf."""
    ws, conn = scratch
    for index, flip in ((0, 0x01), (27, 0x80)):  # with subjects, and a payload-only entry
        leaf = read(conn, "leaf", index)
        for position in range(len(leaf)):
            edited = leaf[:position] + bytes([leaf[position] ^ flip]) + leaf[position + 1 :]
            write(conn, "leaf", index, edited)
            assert first_bad(ws) == index
        write(conn, "leaf", index, leaf)
    ws.verify()


@SETTINGS
@given(st.integers(0, N - 1), st.data())
def test_any_byte_edit_anywhere_names_the_entry(
    scratch: tuple[rt.Workspace, Any], index: int, data: st.DataObject
) -> None:
    ws, conn = scratch
    leaf = read(conn, "leaf", index)
    position = data.draw(st.integers(0, len(leaf) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != leaf[position]))
    write(conn, "leaf", index, leaf[:position] + bytes([value]) + leaf[position + 1 :])
    try:
        assert first_bad(ws) == index
    finally:
        write(conn, "leaf", index, leaf)


@SETTINGS
@given(st.integers(0, N - 1), st.sampled_from(["leaf", "both"]))
def test_an_entry_replaced_by_a_valid_event_is_detected(
    scratch: tuple[rt.Workspace, Any], index: int, what: str
) -> None:
    """A whole, well-formed forged event (leaf hash recomputed too) breaks the tree above it."""
    ws, conn = scratch
    leaf, hashes = read(conn, "leaf", index), read(conn, "hashes", index)
    forged = leaf.replace(b'"v":1', b'"v":1', 1)
    event = ws.ledger.entry(index).event
    forged_event = rt.Event(
        event.kind,
        {**event.payload, "forged": True},
        actor=event.actor,
        time=event.time,
        subjects=event.subjects,
        blobs=event.blobs,
    )
    forged = forged_event.leaf()
    import hashlib

    write(conn, "leaf", index, forged)
    if what == "both":
        write(conn, "hashes", index, hashlib.sha256(b"\x00" + forged).digest() + hashes[32:])
    try:
        bad = first_bad(ws)
        # The leaf itself (stored hash kept) or the lowest tree node above it is reported.
        assert bad is not None
        assert (bad == index or (what == "both" and index & ~1 <= bad <= index))
    finally:
        write(conn, "leaf", index, leaf)
        write(conn, "hashes", index, hashes)


@SETTINGS
@given(st.integers(0, N - 2))
def test_deleting_an_entry_names_it(copy: Path, index: int) -> None:
    fresh = copy.parent / f"del-{index}"
    copy_directory(copy, fresh)
    with raw_db(fresh) as conn:
        conn.execute("DELETE FROM events WHERE idx = ?", (index,))
    assert first_bad(fresh) == index


def test_deleting_the_last_entry_is_detected(copy: Path) -> None:
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM events WHERE idx = ?", (N - 1,))
    error = verify_fails(copy)
    assert isinstance(error, LogIntegrityError | CheckpointError)


@SETTINGS
@given(st.integers(0, N - 1), st.integers(0, N - 1))
def test_swapping_two_entries_is_detected(copy: Path, i: int, j: int) -> None:
    if i == j:
        return
    i, j = min(i, j), max(i, j)
    fresh = copy.parent / f"swap-{i}-{j}"
    if fresh.exists():
        shutil.rmtree(fresh)
    copy_directory(copy, fresh)
    with raw_db(fresh) as conn:
        rows = {k: (read(conn, "leaf", k), read(conn, "hashes", k)) for k in (i, j)}
        for k, other in ((i, j), (j, i)):
            write(conn, "leaf", k, rows[other][0])
            write(conn, "hashes", k, rows[other][1])
    bad = first_bad(fresh)
    assert bad is not None
    assert i & ~1 <= bad <= i


def test_swapping_only_the_leaves_is_detected(copy: Path) -> None:
    with raw_db(copy) as conn:
        a, b = read(conn, "leaf", 24), read(conn, "leaf", 25)
        write(conn, "leaf", 24, b)
        write(conn, "leaf", 25, a)
    assert first_bad(copy) == 24


@pytest.mark.parametrize("keep", [1, 20, 33, 39])
def test_truncation_is_detected(copy: Path, keep: int) -> None:
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM events WHERE idx >= ?", (keep,))
    assert isinstance(verify_fails(copy), LogIntegrityError | CheckpointError)


@pytest.mark.parametrize("keep", [1, 20, 33])
def test_covered_up_truncation_is_caught_by_checkpoints(copy: Path, keep: int) -> None:
    """Events, indexes and tree made consistent at a smaller size: only signatures remain."""
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM events WHERE idx >= ?", (keep,))
        conn.execute("DELETE FROM event_subjects WHERE idx >= ?", (keep,))
        conn.execute("DELETE FROM event_kinds WHERE start >= ?", (keep,))
        conn.execute("UPDATE event_kinds SET stop = ? WHERE stop > ?", (keep, keep))
    error = verify_fails(copy)
    assert isinstance(error, CheckpointError)
    assert "truncated" in str(error)
    # Removing the stored checkpoints too leaves entries no signature covers, and the trust
    # root outside the workspace still holds the checkpoint of size 40.
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM checkpoints")
    error = verify_fails(copy)
    assert isinstance(error, CheckpointError)
    assert "not covered by any signed checkpoint" in str(error)


# ---------------------------------------------------------------- tree nodes and indexes


@SETTINGS
@given(st.integers(0, N - 1), st.data())
def test_any_byte_edit_of_stored_hashes_is_detected(
    scratch: tuple[rt.Workspace, Any], index: int, data: st.DataObject
) -> None:
    ws, conn = scratch
    hashes = read(conn, "hashes", index)
    position = data.draw(st.integers(0, len(hashes) - 1))
    edited = bytearray(hashes)
    edited[position] ^= 1 << data.draw(st.integers(0, 7))
    write(conn, "hashes", index, bytes(edited))
    try:
        level = position // 32
        # A leaf hash names its entry; node (level, j) stored at row (j + 1) * 2**level - 1
        # names the first leaf it covers.
        assert first_bad(ws) == index + 1 - (1 << level)
    finally:
        write(conn, "hashes", index, hashes)


@pytest.mark.parametrize(
    ("extra", "row"), [(b"\x00" * 32, 5), (b"\x01" * 5, 6), (None, 7), (None, 15)]
)
def test_added_or_removed_node_bytes_are_detected(
    copy: Path, extra: bytes | None, row: int
) -> None:
    with raw_db(copy) as conn:
        hashes = read(conn, "hashes", row)
        write(conn, "hashes", row, hashes + extra if extra is not None else hashes[:-32])
    bad = first_bad(copy)
    if extra is None:  # a node removed: the first leaf under the removed node is named
        level = len(hashes) // 32 - 1
        assert bad == row + 1 - (1 << level)
    else:
        assert bad == N


def test_subject_index_tampering(copy: Path) -> None:
    with raw_db(copy) as conn:
        (subject,) = conn.execute("SELECT subject FROM event_subjects WHERE idx = 21").fetchone()
        conn.execute("DELETE FROM event_subjects WHERE idx = 21")
    assert first_bad(copy) == 21
    with raw_db(copy) as conn:
        conn.execute("INSERT INTO event_subjects VALUES (?, 21)", (subject,))
        conn.execute("INSERT INTO event_subjects VALUES (?, 22)", (subject,))
    assert first_bad(copy) == 22
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM event_subjects WHERE idx = 22")
        conn.execute("INSERT INTO event_subjects VALUES (?, ?)", (subject, N + 3))
    assert first_bad(copy) == N + 3
    with raw_db(copy) as conn:
        conn.execute("DELETE FROM event_subjects WHERE idx = ?", (N + 3,))
    rt.init(copy).verify()


@pytest.mark.parametrize(
    ("sql", "bad"),
    [
        ("UPDATE event_kinds SET kind = 'model.trained' WHERE start = 20", 20),
        ("UPDATE event_kinds SET start = 21 WHERE start = 20", 20),
        ("DELETE FROM event_kinds WHERE kind = 'train.batch'", 1),
        # Overlaps that agree with every event are caught by the coverage count (index = size).
        ("UPDATE event_kinds SET stop = 25 WHERE start = 1", N),
        # An inserted run takes over from its start; entries after its stop lose their kind.
        ("INSERT INTO event_kinds VALUES ('train.batch', 5, 9)", 9),
        ("INSERT INTO event_kinds VALUES ('train.batch', 50, 60)", N),
        ("INSERT INTO event_kinds VALUES ('x.y', 60, 50)", N),
    ],
    ids=["relabel", "shift", "delete", "overlap", "duplicate", "beyond", "reversed"],
)
def test_kind_index_tampering(copy: Path, sql: str, bad: int) -> None:
    with raw_db(copy) as conn:
        conn.execute(sql)
    assert first_bad(copy) == bad


# ---------------------------------------------------------------- blobs


def _blob_files(path: Path) -> list[Path]:
    return [p for p in (path / "blobs").rglob("*") if p.is_file() and not p.name.startswith(".")]


def test_edited_blob_is_detected(copy: Path) -> None:
    (blob,) = _blob_files(copy)
    data = bytearray(blob.read_bytes())
    data[10] ^= 1
    blob.write_bytes(bytes(data))
    assert first_bad(copy) == 5  # the first event referencing it


def test_missing_blob_is_detected(copy: Path) -> None:
    (blob,) = _blob_files(copy)
    blob.unlink()
    assert first_bad(copy) == 5


# ---------------------------------------------------------------- checkpoints and replay


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE checkpoints SET size = 19 WHERE size = 20",
        "UPDATE checkpoints SET root = (SELECT root FROM checkpoints WHERE size = 20) "
        "WHERE size = 40",
        "UPDATE checkpoints SET note = "
        "replace(note, char(10) || '40' || char(10), char(10) || '41' || char(10))",
        "UPDATE checkpoints SET note = (SELECT note FROM checkpoints WHERE size = 20) "
        "WHERE size = 40",
        "UPDATE checkpoints SET note = substr(note, 1, length(note) - 10) || 'AAAAAAAA=' "
        "|| char(10) WHERE size = 40",
    ],
    ids=["size-column", "root-column", "note-size", "older-note", "signature"],
)
def test_checkpoint_row_tampering(copy: Path, sql: str) -> None:
    with raw_db(copy) as conn:
        conn.execute(sql)
    assert isinstance(verify_fails(copy), CheckpointError)


def test_witness_file_tampering(copy: Path) -> None:
    """The trust state lives outside the workspace; editing it breaks its signature."""
    origin = rt.open(copy, read_only=True).origin
    witness = TrustStore().directory(origin) / "checkpoint"
    witness.write_text(witness.read_text().replace("\n40\n", "\n41\n"))
    assert isinstance(verify_fails(copy), TrustRootError)


def test_issue9_missing_trust_root_is_an_error_not_a_pass(copy: Path) -> None:
    origin = rt.open(copy, read_only=True).origin
    shutil.rmtree(TrustStore().directory(origin))
    error = verify_fails(copy)
    assert isinstance(error, TrustRootError)
    assert "no trust root" in str(error)


def test_issue9_rolled_back_trust_state_is_an_error(copy: Path, tmp_path: Path) -> None:
    """A trust state older than the log's signed checkpoints is reported, never passed."""
    origin = rt.open(copy, read_only=True).origin
    ws = rt.open(copy)
    old_note = ws.ledger.checkpoints()[0].note
    (TrustStore().directory(origin) / "checkpoint").write_text(old_note)
    error = verify_fails(ws)
    assert isinstance(error, TrustRootError)
    assert "rolled back" in str(error)


def test_replayed_older_state_is_detected(tmp_path: Path) -> None:
    """An older copy of the database put back while the witness keeps the newer checkpoint."""
    ws = build_workspace(tmp_path / "ws", n=20)
    old_state = copy_workspace(ws, tmp_path / "old")
    with ws.ledger.batch() as batch:
        for i in range(15):
            batch.append("model.predicted", {"request": 100 + i})
    ws.ledger.checkpoint()
    ws.verify()
    ws.close()
    restore_database(old_state, tmp_path / "ws")
    replayed = rt.open(tmp_path / "ws")
    assert replayed.ledger.size == 20
    error = verify_fails(replayed)
    assert isinstance(error, TrustRootError)
    assert "replayed" in str(error)
    # The replayed log refuses to sign: the trust root outside the workspace saw 35 entries.
    with pytest.raises(TrustRootError, match="truncated or rolled back"):
        replayed.ledger.checkpoint()
    # A fork: growing the replayed state with other events is refused before anything is
    # written, so no checkpoint of the fork is ever signed.
    fork = [replayed.ledger.make_event("model.predicted", {"request": 900 + i}) for i in range(20)]
    with pytest.raises(TrustRootError, match="truncated or rolled back"):
        replayed.ledger.append_events(fork)
    assert replayed.ledger.size == 20
    trusted = replayed.trust_root().checkpoint
    assert trusted is not None
    assert trusted.size == 35
