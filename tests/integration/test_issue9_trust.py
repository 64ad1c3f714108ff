"""Issue 9 regressions: tables, checkpoints, proofs, trust roots, keys and atomic writes.

Each test is named after the finding it covers; the attacker edits the workspace directly
in its database and on the file system, as someone holding the directory could.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

import rowtrail as rt
from _rawdb import RAW_ERRORS, copy_directory, is_postgres, raw_connection, restore_database
from rowtrail.cli import app
from rowtrail.errors import (
    CheckpointError,
    InvalidInputError,
    MissingKeyError,
    SecurityWarning,
    TableIntegrityError,
    TrustRootError,
    VerificationError,
    WorkspaceNotFoundError,
)
from rowtrail.ledger import NoteSigner, TrustRoot, TrustStore, leaf_hash
from rowtrail.ledger._merkle import extend_tree
from rowtrail.lineage import get_source, list_sources, rows_of_subject
from rowtrail.training import sample_usage

SUBJECTS = [f"A{i:03d}" for i in range(12)]


def raw(path: Path) -> AbstractContextManager[Any]:
    """The tamperer's connection to the workspace database (SQLite or PostgreSQL)."""
    return raw_connection(path)


def make(path: Path) -> rt.Workspace:
    """A workspace with a source of 12 subjects, a second source and a logistic fit."""
    from rowtrail.training import fit_logistic

    ws = rt.init(path)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 3))
    y = (x[:, 0] > 0).astype(float)
    rt.track(x, source="scores", workspace=ws)
    csv = path.parent / "people.csv"
    csv.write_text("id,a,b\n" + "".join(f"{s},{i},{i * 2}\n" for i, s in enumerate(SUBJECTS)))
    rt.load_csv(csv, workspace=ws, subject="id")
    people = get_source(ws, "people.csv")
    with ws.training_run("fit", params={"l2": 1.0}) as run:
        fit_logistic(x, y, l2=1.0, run=run, row_ids=people.row_ids())
    return ws


def files_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------- 2. tables outside verification


def _table_answers(ws: rt.Workspace) -> dict[str, object]:
    """Every answer read from the sources and subject-rows tables, by name; errors as such."""
    from rowtrail.ids import make_row_ids

    calls: dict[str, object] = {
        "list_sources": lambda: [
            (
                s.index,
                s.name,
                s.version,
                s.digest,
                s.n_rows,
                s.path,
                s.subject_column,
                s.ledger_index,
            )
            for s in list_sources(ws)
        ],
    }
    for subject in [ws.pseudonymize(s) for s in SUBJECTS] + ["ps:00", "ps:" + "00" * 16]:
        calls[f"rows_of_subject {subject}"] = lambda s=subject: rows_of_subject(ws, s).tolist()
        calls[f"sample_usage {subject}"] = lambda s=subject: sorted(
            (u.kind, u.row_id) for u in sample_usage(ws, subject=s)
        )
    for source, n in ((0, 12), (1, 12)):
        for row in make_row_ids(source, n).tolist():
            calls[f"subject of row {row}"] = lambda r=row: ws.lineage_store.subjects_of_rows([r])
    out: dict[str, object] = {}
    for name, call in calls.items():
        try:
            out[name] = call()  # type: ignore[operator]
        except TableIntegrityError as exc:
            out[name] = exc
    return out


def _tables_dump(conn: Any) -> list[tuple[object, ...]]:
    return [
        *conn.execute("SELECT * FROM sources ORDER BY source_index").fetchall(),
        *conn.execute("SELECT * FROM subject_rows ORDER BY subject, row_id").fetchall(),
    ]


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE sources SET name = 'other' WHERE source_index = 1",
        "UPDATE sources SET n_rows = 11 WHERE source_index = 1",
        "UPDATE sources SET digest = 'sha256:" + "0" * 64 + "' WHERE source_index = 1",
        "UPDATE sources SET path = '/elsewhere.csv' WHERE source_index = 1",
        "UPDATE sources SET subject_column = NULL WHERE source_index = 1",
        "UPDATE sources SET ledger_index = 0 WHERE source_index = 1",
        "UPDATE sources SET created_at = '2020-01-01' WHERE source_index = 1",
        "DELETE FROM sources WHERE source_index = 0",
        "DELETE FROM subject_rows WHERE subject = (SELECT min(subject) FROM subject_rows)",
        "DELETE FROM subject_rows WHERE subject = (SELECT max(subject) FROM subject_rows)",
        "DELETE FROM subject_rows WHERE row_id = (SELECT min(row_id) FROM subject_rows)",
        "UPDATE subject_rows SET row_id = row_id + 1 WHERE row_id = "
        "(SELECT min(row_id) FROM subject_rows)",
        "UPDATE subject_rows SET subject = 'ps:00000000000000000000000000000000' WHERE row_id = "
        "(SELECT min(row_id) FROM subject_rows)",
        "INSERT INTO subject_rows VALUES ('ps:00', 5, 3)",
        "UPDATE subject_rows SET ledger_index = ledger_index + 1 WHERE row_id = "
        "(SELECT min(row_id) FROM subject_rows)",
        "UPDATE subject_rows SET subject = (SELECT max(subject) FROM subject_rows) WHERE "
        "row_id = (SELECT min(row_id) FROM subject_rows WHERE subject <> "
        "(SELECT max(subject) FROM subject_rows))",
    ],
)
def test_issue9_cache_table_edits_are_detected_and_refused(tmp_path: Path, sql: str) -> None:
    ws = make(tmp_path / "ws")
    before = _table_answers(ws)
    assert not any(isinstance(v, Exception) for v in before.values())
    with raw(tmp_path / "ws") as conn:
        untouched = _tables_dump(conn)
        conn.execute(sql)
        # Pseudonyms are keyed per workspace, so an edit written against them must still
        # change the tables whatever the key; a no-op edit would test nothing.
        assert _tables_dump(conn) != untouched, f"the edit changed nothing: {sql}"
    with pytest.raises(TableIntegrityError) as info:
        ws.verify()
    assert info.value.table in {"sources", "subject_rows"}
    # Every answer that reads an edited row refuses; the others are unchanged (an answer
    # is checked against the proven events of the rows it uses, not the whole table).
    after = _table_answers(ws)
    refused = [name for name, value in after.items() if isinstance(value, TableIntegrityError)]
    changed = [name for name in before if name not in refused and after[name] != before[name]]
    assert refused, "no answer refused the edited table"
    assert changed == [], f"answers changed without refusal: {changed}"


def test_issue9_deleted_subject_row_never_answers_not_used(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[3])
    assert [u.kind for u in sample_usage(ws, subject=subject)].count("fit") == 1
    with raw(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM subject_rows WHERE subject = ?", (subject,))
    with pytest.raises(TableIntegrityError, match="subject_rows"):
        sample_usage(ws, subject=subject)
    with pytest.raises(TableIntegrityError):
        rt.open(tmp_path / "ws", read_only=True).verify()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM checkpoints WHERE size = (SELECT min(size) FROM checkpoints)",
        "DELETE FROM checkpoints WHERE size = (SELECT size FROM checkpoints ORDER BY size "
        "LIMIT 1 OFFSET 2)",
        "DELETE FROM checkpoints WHERE size = (SELECT max(size) FROM checkpoints)",
        "UPDATE checkpoints SET created_at = '2020-01-01T00:00:00.000000Z' WHERE size = "
        "(SELECT size FROM checkpoints ORDER BY size LIMIT 1 OFFSET 1)",
        "UPDATE checkpoints SET record = '' WHERE size = (SELECT min(size) FROM checkpoints)",
        "UPDATE checkpoints SET record = (SELECT record FROM checkpoints ORDER BY size LIMIT 1) "
        "WHERE size = (SELECT max(size) FROM checkpoints)",
    ],
    ids=["delete-first", "delete-middle", "delete-last", "redate", "drop-record", "old-record"],
)
def test_issue9_checkpoint_history_edits_are_detected(tmp_path: Path, sql: str) -> None:
    ws = make(tmp_path / "ws")
    assert len(ws.ledger.checkpoints()) >= 4
    with raw(tmp_path / "ws") as conn:
        conn.execute(sql)
    with pytest.raises(CheckpointError):
        ws.verify()


def test_issue9_every_write_leaves_the_log_signed(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    for _ in range(3):
        ws.ledger.append("note.added", {"n": 1})
        latest = ws.ledger.latest_checkpoint()
        assert latest is not None
        assert latest.size == ws.ledger.size
    trusted = ws.trust_root().checkpoint
    assert trusted is not None
    assert trusted.size == ws.ledger.size


# ---------------------------------------------------------------- 4. proofs anchor to signed heads


def _rebuild_tree(conn: Any) -> None:
    """Recompute every stored hash from the leaves: a consistent tree, no key needed."""
    leaves = [bytes(r[0]) for r in conn.execute("SELECT leaf FROM events ORDER BY idx")]
    hashes = [leaf_hash(leaf) for leaf in leaves]
    packed = list(hashes)
    for level, index, value in extend_tree(0, hashes, lambda *_: b""):
        if level:
            packed[((index + 1) << level) - 1] += value
    conn.executemany(
        "UPDATE events SET hashes = ? WHERE idx = ?", [(h, i) for i, h in enumerate(packed)]
    )


def _edit_subject_event(conn: Any) -> None:
    """Move one subject's recorded row to another row, in the event itself."""
    (idx, leaf), *_ = [
        (idx, leaf)
        for idx, leaf in conn.execute(
            "SELECT e.idx, e.leaf FROM events e JOIN event_kinds k ON e.idx >= k.start AND "
            "e.idx < k.stop WHERE k.kind = 'subject.ingested' ORDER BY e.idx"
        )
        if b'"row_numbers":[0]' in bytes(leaf)
    ]
    text = bytes(leaf).decode()
    conn.execute(
        "UPDATE events SET leaf = ? WHERE idx = ?",
        (text.replace('"row_numbers":[0]', '"row_numbers":[9]').encode(), idx),
    )
    conn.execute(
        "UPDATE subject_rows SET row_id = row_id + 9 WHERE row_id = "
        "(SELECT min(row_id) FROM subject_rows WHERE row_id >= 1099511627776)"
    )


def test_issue9_consistently_rebuilt_tree_is_refused(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[0])
    with raw(tmp_path / "ws") as conn:
        _edit_subject_event(conn)
        _rebuild_tree(conn)
    reopened = rt.open(tmp_path / "ws")
    with pytest.raises(VerificationError):
        sample_usage(reopened, subject=subject)
    with pytest.raises(VerificationError):
        reopened.ledger.proven_entries(subject=subject)
    with pytest.raises(VerificationError):
        reopened.verify()


def test_issue9_rebuilt_and_resigned_log_is_refused_by_the_trust_root(tmp_path: Path) -> None:
    """Whoever holds keys/ledger.pem can re-sign a rewritten log; the trust root says no."""
    ws = make(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[0])
    size, origin = ws.ledger.size, ws.origin
    signer: NoteSigner = ws.ledger._signer
    ws.close()
    with raw(tmp_path / "ws") as conn:
        _edit_subject_event(conn)
        _rebuild_tree(conn)
        conn.execute("DELETE FROM checkpoints")
    forger = rt.open(tmp_path / "ws")
    root = forger.ledger.root(size)
    from rowtrail.ledger import (
        BUCKET_BITS,
        bucket_hash,
        digest_of,
        format_checkpoint_body,
        format_record_body,
    )
    from rowtrail.store.sqlite_lineage import _TABLE_COLUMNS, _row_text

    note = signer.sign(format_checkpoint_body(origin, size, root))
    with raw(tmp_path / "ws") as conn:  # a careful forger signs the indexes' digests too
        refs_buckets: dict[int, list[str]] = {}
        for subject, idx in conn.execute("SELECT subject, idx FROM event_subjects"):
            refs_buckets.setdefault(idx >> BUCKET_BITS, []).append(f"{subject}\x00{idx}")
        refs = digest_of(bucket_hash(f"subjects:{b}", t) for b, t in refs_buckets.items())
        cache: dict[tuple[str, int], list[str]] = {}
        for table, columns in [("sources", _TABLE_COLUMNS["sources"])]:  # signed cache
            position = columns.split(", ").index("ledger_index")
            for row in conn.execute(f"SELECT {columns} FROM {table}"):
                key = (table, row[position] >> BUCKET_BITS)
                cache.setdefault(key, []).append(_row_text(table, tuple(row)))
        rows = digest_of(bucket_hash(f"{t}:{b}", x) for (t, b), x in cache.items())
    record = signer.sign(
        format_record_body(origin, size, root, "2026-01-01T00:00:00Z", "none", refs, rows)
    )
    with raw(tmp_path / "ws") as conn:
        conn.execute(
            "INSERT INTO checkpoints (size, root, note, record, created_at) VALUES (?,?,?,?,?)",
            (size, root, note, record, "2026-01-01T00:00:00Z"),
        )
    reopened = rt.open(tmp_path / "ws")
    with pytest.raises(TrustRootError):
        sample_usage(reopened, subject=subject)
    with pytest.raises(TrustRootError):
        reopened.verify()
    with pytest.raises(TrustRootError):
        reopened.ledger.append("a.b", {"x": 1})  # and nothing is signed over the fork


# ---------------------------------------------------------------- 5. trust outside the directory


def test_issue9_rolled_back_directory_fails_verify_and_refuses_to_sign(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.close()
    copy_directory(tmp_path / "ws", tmp_path / "old")
    ws = rt.open(tmp_path / "ws")
    ws.ledger.append("note.added", {"n": 1})
    ws.close()
    shutil.rmtree(tmp_path / "ws")
    shutil.copytree(tmp_path / "old", tmp_path / "ws")  # the whole directory rolled back
    restore_database(tmp_path / "old", tmp_path / "ws")  # and its database, where it lives
    rolled = rt.open(tmp_path / "ws")
    with pytest.raises(TrustRootError, match="truncated"):
        rolled.verify()
    with pytest.raises(TrustRootError):
        rolled.ledger.checkpoint()
    with pytest.raises(TrustRootError):
        rolled.ledger.append("note.forked", {"n": 2})
    with pytest.raises(TrustRootError):
        sample_usage(rolled, subject=rolled.pseudonymize(SUBJECTS[0]))


def test_issue9_third_party_trust_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make(tmp_path / "ws")
    runner = CliRunner()
    result = runner.invoke(
        app, ["ledger", "export-trust", str(tmp_path / "kept"), "--workspace", str(tmp_path / "ws")]
    )
    assert result.exit_code == 0, result.output
    ws.ledger.append("note.added", {"n": 1})
    ws.close()
    # Another user: no trust state of their own, only what they kept.
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(tmp_path / "auditor-state"))
    args = [
        "verify",
        "--workspace",
        str(tmp_path / "ws"),
        "--vkey",
        str(tmp_path / "kept" / "vkey"),
        "--checkpoint",
        str(tmp_path / "kept" / "checkpoint"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["verify", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "no trust root" in result.output
    # A different key (a forger's) is refused.
    other = NoteSigner("x.example/log", Ed25519PrivateKey.generate())
    (tmp_path / "forged").write_text(other.verifier.vkey + "\n")
    result = runner.invoke(
        app, ["verify", "--workspace", str(tmp_path / "ws"), "--vkey", str(tmp_path / "forged")]
    )
    assert result.exit_code == 1
    root = TrustRoot.from_files(tmp_path / "kept" / "vkey", tmp_path / "kept" / "checkpoint")
    assert root.checkpoint is not None
    assert rt.open(tmp_path / "ws", read_only=True).verify(trust_root=root).size > 0


def test_issue9_replaced_signing_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    make(tmp_path / "ws").close()
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ws" / "keys" / "ledger.pem").write_bytes(pem)
    ws = rt.open(tmp_path / "ws")
    with pytest.raises(TrustRootError, match="replaced"):
        ws.verify()
    with pytest.raises(TrustRootError, match="replaced"):
        ws.ledger.append("a.b", {"x": 1})


def test_issue9_replaced_subject_key_is_refused(tmp_path: Path) -> None:
    make(tmp_path / "ws").close()
    (tmp_path / "ws" / "keys" / "subject.key").write_bytes(os.urandom(32))
    with pytest.raises(TrustRootError, match=r"subject\.key"):
        rt.open(tmp_path / "ws").verify()


# ---------------------------------------------------------------- 6. reads never write


@pytest.mark.parametrize("name", ["subject.key", "ledger.pem"])
def test_issue9_missing_key_is_an_error_and_never_regenerated(tmp_path: Path, name: str) -> None:
    make(tmp_path / "ws").close()
    (tmp_path / "ws" / "keys" / name).unlink()
    before = files_digest(tmp_path / "ws")
    with pytest.raises(MissingKeyError, match="backup"):
        rt.open(tmp_path / "ws")
    result = CliRunner().invoke(app, ["verify", "--workspace", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "backup" in result.output
    assert files_digest(tmp_path / "ws") == before
    assert not (tmp_path / "ws" / "keys" / name).exists()


def test_issue9_open_never_creates_a_workspace(tmp_path: Path) -> None:
    for location in [tmp_path / "typo", f"sqlite:///{tmp_path / 'typo2'}"]:
        with pytest.raises(WorkspaceNotFoundError, match=r"rowtrail\.init"):
            rt.open(location)
    (tmp_path / "plain").mkdir()
    with pytest.raises(WorkspaceNotFoundError):
        rt.open(tmp_path / "plain")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain"]
    assert list((tmp_path / "plain").iterdir()) == []
    (tmp_path / "plain" / "x.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="other files"):
        rt.init(tmp_path / "plain")


def test_issue9_cli_reads_change_nothing(tmp_path: Path) -> None:
    make(tmp_path / "ws").close()
    before = files_digest(tmp_path / "ws")
    runner = CliRunner()
    for args in (
        ["verify"],
        ["verify", "--json"],
        ["ledger", "head"],
        ["ledger", "entry", "1"],
        ["ledger", "prove", "1"],
        ["ledger", "consistency", "1", "3"],
    ):
        result = runner.invoke(app, [*args, "--workspace", str(tmp_path / "ws")])
        assert result.exit_code == 0, (args, result.output)
        assert files_digest(tmp_path / "ws") == before, args
    ws = rt.open(tmp_path / "ws", read_only=True)
    ws.verify()
    sample_usage(ws, subject=ws.pseudonymize(SUBJECTS[1]))
    ws.close()
    assert files_digest(tmp_path / "ws") == before


def test_issue9_read_only_handle_refuses_writes(tmp_path: Path) -> None:
    make(tmp_path / "ws").close()
    ws = rt.open(tmp_path / "ws", read_only=True)
    with pytest.raises(rt.errors.StateError, match="read-only"):
        ws.ledger.append("a.b", {"x": 1})


# ---------------------------------------------------------------- 7. atomic registration

CHILD = textwrap.dedent(
    """
    import sys
    import rowtrail as rt
    ws = rt.open(sys.argv[1])
    csv = sys.argv[2]
    rt.load_csv(csv, workspace=ws, subject="id")
    print("done")
    """
)
POINTS = [
    "register_source.after_source_event",
    "register_source.after_subject_events",
    "register_source.before_commit",
    "ledger.append.before_commit",
    "ledger.append.after_commit",
    "register_source.after_commit",
]


@pytest.mark.parametrize("point", POINTS)
def test_issue9_register_source_killed_at_every_step(tmp_path: Path, point: str) -> None:
    rt.init(tmp_path / "ws").close()
    csv = tmp_path / "people.csv"
    csv.write_text("id,a\n" + "".join(f"P{i},{i}\n" for i in range(2500)))
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "ROWTRAIL_TEST_CRASH_AT": point}
    run = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ws"), str(csv)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 137, run.stderr
    ws = rt.open(tmp_path / "ws")
    sources = list_sources(ws)
    n_subject_events = len(ws.ledger.indices(kind="subject.ingested"))
    # All or nothing: a source is never registered without all of its subjects.
    assert (len(sources), n_subject_events) in {(0, 0), (1, 2500)}
    ws.verify()
    ws.close()
    again = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "ws"), str(csv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    ws = rt.open(tmp_path / "ws")
    assert len(list_sources(ws)) == 1
    assert len(ws.ledger.indices(kind="subject.ingested")) == 2500
    assert len(ws.ledger.indices(kind="source.registered")) == 1
    assert rows_of_subject(ws, "P7").tolist() == [get_source(ws, "people.csv").row_id(7)]
    ws.verify()


# ---------------------------------------------------------------- 9. smaller findings


def test_issue9_prove_rejects_bool(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    with pytest.raises(InvalidInputError):
        ws.ledger.prove(True)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        ws.ledger.prove(0, size=True)  # type: ignore[arg-type]


def test_issue9_proven_entries_with_an_append_in_between(tmp_path: Path) -> None:
    """Another writer commits between the head read and the index read: no bad-input error."""
    ws = make(tmp_path / "ws")
    other = rt.open(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[2])
    original = ws.ledger.indices

    def racing(**kwargs: str) -> list[int]:
        other.ledger.append("note.added", {"n": 1}, subjects=[subject])
        return original(**kwargs)

    ws.ledger.indices = racing  # type: ignore[method-assign]
    released = ws.ledger.proven_entries(subject=subject)
    assert released
    assert all(proof.root == released[0][1].root for _, proof in released)


def test_issue9_workspace_files_are_private(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    ws.ledger.put_blob(b"x")
    ws.close()
    for path in [tmp_path / "ws", *(tmp_path / "ws").rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))


def test_issue9_readable_keys_warn(tmp_path: Path) -> None:
    make(tmp_path / "ws").close()
    (tmp_path / "ws" / "keys" / "subject.key").chmod(0o644)
    with pytest.warns(SecurityWarning, match="re-identifies"):
        rt.open(tmp_path / "ws").close()


def test_issue9_trust_state_is_outside_the_workspace(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    directory = TrustStore().directory(ws.origin)
    assert not directory.is_relative_to(tmp_path / "ws")
    assert {p.name for p in directory.iterdir()} >= {"vkey", "checkpoint", "origin"}
    assert not (tmp_path / "ws" / "witness").exists()


@pytest.mark.parametrize("how", ["delete", "merge", "relabel"])
def test_issue9_kind_index_edits_never_hide_a_use(tmp_path: Path, how: str) -> None:
    """The fit that used a subject's row cannot be hidden by editing the unsigned kind index."""
    ws = make(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[4])
    assert "fit" in [u.kind for u in sample_usage(ws, subject=subject)]
    fit = ws.ledger.indices(kind="training.fit")[-1]
    with raw(tmp_path / "ws") as conn:
        if how == "delete":
            conn.execute("DELETE FROM event_kinds WHERE start = ?", (fit,))
        elif how == "merge":  # fold the fit into the run before it
            conn.execute("DELETE FROM event_kinds WHERE start = ?", (fit,))
            conn.execute("UPDATE event_kinds SET stop = ? WHERE stop = ?", (fit + 1, fit))
        else:
            conn.execute("UPDATE event_kinds SET kind = 'note.other' WHERE start = ?", (fit,))
    reopened = rt.open(tmp_path / "ws")
    with pytest.raises(VerificationError):
        sample_usage(reopened, subject=subject)
    with pytest.raises(VerificationError):
        reopened.verify()


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM event_subjects WHERE idx = (SELECT max(idx) FROM event_subjects)",
        "UPDATE event_subjects SET subject = 'ps:00' WHERE idx = (SELECT max(idx) FROM "
        "event_subjects)",
        "INSERT INTO event_subjects VALUES ('ps:00', 0)",
    ],
    ids=["delete", "rename", "insert"],
)
def test_issue9_subject_index_edits_are_refused(tmp_path: Path, sql: str) -> None:
    """The unsigned subject index is checked against the hash the checkpoint signed."""
    ws = make(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[-1])
    assert ws.ledger.proven_entries(subject=subject)
    with raw(tmp_path / "ws") as conn:
        conn.execute(sql)
    reopened = rt.open(tmp_path / "ws")
    with pytest.raises(VerificationError, match="subject index"):
        reopened.ledger.proven_entries(subject=subject)
    with pytest.raises(VerificationError):
        reopened.verify()


def test_issue9_rolled_back_write_leaves_no_cached_entries(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    ws.ledger.append("a.b", {"n": 0})

    def write_read_and_fail() -> None:
        with ws.ledger.transaction():
            ws.ledger.append("a.b", {"n": 1})
            assert ws.ledger.entry(1).event.payload == {"n": 1}  # read inside, rolled back
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        write_read_and_fail()
    ws.ledger.append("a.c", {"n": 2})
    assert ws.ledger.entry(1).event.kind == "a.c"
    ws.verify()


def test_issue9_subject_index_rows_cannot_be_merged_through_a_separator(tmp_path: Path) -> None:
    """Two index rows folded into one whose text splits back into both: still refused."""
    make(tmp_path / "ws").close()
    with raw(tmp_path / "ws") as conn:
        (s1, i1), (s2, i2) = conn.execute(
            "SELECT subject, idx FROM event_subjects ORDER BY idx LIMIT 2"
        ).fetchall()
        conn.execute("DELETE FROM event_subjects WHERE subject = ? AND idx = ?", (s2, i2))
        merge = "UPDATE event_subjects SET subject = ?, idx = ? WHERE subject = ? AND idx = ?"
        merged = (f"{s1}\x00{i1}\x1e{s2}", i2, s1, i1)
        if is_postgres(tmp_path / "ws"):  # its text cannot hold NUL: the row cannot be written
            with pytest.raises(RAW_ERRORS):
                conn.execute(merge, merged)
        else:
            conn.execute(merge, merged)
    reopened = rt.open(tmp_path / "ws")
    with pytest.raises(VerificationError):
        reopened.ledger.proven_entries(subject=s2)
    with pytest.raises(VerificationError):
        reopened.verify()


def test_issue9_reader_overtaken_by_a_writer_is_not_a_rollback(tmp_path: Path) -> None:
    """A writer advances the trust root after it commits; a reader whose snapshot began
    before that commit sees the trust root ahead of its checkpoints. That is a stale view,
    not a rollback: the log as committed now extends both, so the reader answers."""
    ws = make(tmp_path / "ws")
    writer = rt.open(tmp_path / "ws")
    subject = ws.pseudonymize(SUBJECTS[2])
    with ws.ledger.snapshot():
        before = ws.ledger.trusted_head()
        ws.ledger._trusted_cache = None  # force the check again inside the old snapshot
        writer.ledger.append("app.note", {"n": 1}, subjects=[subject])
        assert writer.trust_root().checkpoint.size > before.size
        assert ws.ledger.trusted_head() == before  # the snapshot's own, still trusted
        assert [u.kind for u in sample_usage(ws, subject=subject)].count("fit") == 1
    assert ws.ledger.trusted_head().size == before.size + 1
    writer.close()


def test_issue9_rolled_back_log_is_refused_even_with_a_stale_reader(tmp_path: Path) -> None:
    """The second-connection check sees what every connection sees: a log really rolled
    back (an older copy of the database put back) is still refused."""
    ws = make(tmp_path / "ws")
    ws.close()
    copy_directory(tmp_path / "ws", tmp_path / "old")
    ws = rt.open(tmp_path / "ws")
    ws.ledger.append("app.note", {"n": 1})
    ws.close()
    restore_database(tmp_path / "old", tmp_path / "ws")
    with pytest.raises(TrustRootError, match="rolled back"):
        rt.open(tmp_path / "ws", read_only=True).ledger.trusted_head()
