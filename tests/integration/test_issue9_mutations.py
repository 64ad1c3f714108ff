"""Issue 9, done-when: every mutation of a demo workspace is detected by ``verify``.

The demo workspace holds every kind of record rowtrail answers from (sources with subjects,
pandas lineage, training runs, a saved attributor, predictions, blobs, checkpoints). Each
mutation below is applied to a fresh copy: an edited cell or a deleted row in every table,
a flipped byte, a truncation or a deletion of every file, and the whole directory rolled back
with and without the trust state kept outside it. ``verify`` must raise for every one of them
(100% detection), and the answer paths (``explain``, ``sample_usage``) must refuse or give
exactly the pristine answer, never a different one.

A byte flip inside the SQLite file can land in unused space of a page, which changes no
record at all; such a flip is accepted only when a logical dump of every table is unchanged.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.errors import RowtrailError
from rowtrail.ledger import TrustStore
from rowtrail.training import sample_usage

# Not evidence: the demo's own marker saying it may replace this directory on a re-run.
NOT_EVIDENCE = {".rowtrail-demo"}


class Demo:
    """A pristine demo workspace, its trust state and the answers it gives."""

    def __init__(self, root: Path) -> None:
        self.path = root / "ws"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("ROWTRAIL_STATE_DIR", str(root / "state"))
            result = CliRunner().invoke(app, ["demo", "--workspace", str(self.path), "--json"])
            assert result.exit_code == 0, result.output
            ws = rt.open(self.path, read_only=True)
            self.origin = ws.origin
            self.trust = root / "trust"
            shutil.copytree(TrustStore().directory(self.origin), self.trust)
            self.prediction = ws.ledger.indices(kind="prediction.made")[-1]
            # A subject whose row trained the model and supports the explained decision.
            top = ws.explain(self.prediction, top_k=10).to_json()["supporting"][0]
            self.subject = top["subject"]
            self.answers = answers(ws, self.prediction, self.subject)
            assert self.answers[1], "the demo subject must have recorded uses"
            ws.close()
        self.tables = table_rows(self.path)
        self.files = sorted(
            str(p.relative_to(self.path))
            for p in self.path.rglob("*")
            if p.is_file() and p.name not in NOT_EVIDENCE
        )
        self.dump = dump(self.path)

    def copy(self, target: Path) -> Path:
        """Copy the workspace to ``target`` and make its trust state the current user's."""
        directory = TrustStore().directory(self.origin)
        if directory.exists():
            shutil.rmtree(directory)
        shutil.copytree(self.trust, directory)
        return Path(shutil.copytree(self.path, target))


def answers(ws: rt.Workspace, prediction: int, subject: str) -> tuple[Any, Any]:
    explanation = ws.explain(prediction, top_k=10).to_json()
    explanation.pop("timings_ms", None)  # measured, not recorded
    usage = [(u.row_id, u.run_id, u.kind, u.role, u.ledger_index)
             for u in sample_usage(ws, subject=subject)]
    return explanation, usage


def table_rows(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(str(path / "rowtrail.db"))
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: conn.execute(f"SELECT count(*) FROM {n}").fetchone()[0] for n in names}
    finally:
        conn.close()


def dump(path: Path) -> list[str] | None:
    try:
        conn = sqlite3.connect(f"file:{path / 'rowtrail.db'}?immutable=1", uri=True)
        try:
            return list(conn.iterdump())
        finally:
            conn.close()
    except sqlite3.Error:
        return None


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Demo:
    return Demo(tmp_path_factory.mktemp("demo"))


def verify_detects(path: Path) -> bool:
    try:
        with rt.open(path, read_only=True) as ws:
            ws.verify()
    except RowtrailError:
        return True
    return False


def answers_refused_or_unchanged(demo: Demo, path: Path) -> None:
    try:
        with rt.open(path, read_only=True) as ws:
            got = answers(ws, demo.prediction, demo.subject)
    except RowtrailError:
        return
    assert got == demo.answers, "an answer path answered differently from tampered data"


def check(demo: Demo, path: Path, what: str) -> None:
    detected = verify_detects(path)
    if not detected and what.startswith("file rowtrail.db"):
        # A flip in unused page space changes no record: only then may verify pass.
        assert dump(path) == demo.dump, f"undetected mutation: {what}"
    else:
        assert detected, f"undetected mutation: {what}"
    answers_refused_or_unchanged(demo, path)


# ---------------------------------------------------------------- table mutations

def _row(conn: sqlite3.Connection, table: str, offset: int) -> tuple[list[str], tuple[Any, ...]]:
    cursor = conn.execute(f"SELECT * FROM {table} LIMIT 1 OFFSET {offset}")
    return [d[0] for d in cursor.description], cursor.fetchone()


def _where(columns: list[str], row: tuple[Any, ...]) -> tuple[str, list[Any]]:
    return " AND ".join(f"{c} IS ?" for c in columns), list(row)


def _changed(value: Any, bit: int) -> Any:
    if value is None:
        return 0
    if isinstance(value, int):
        return value + 1 + bit % 3
    if isinstance(value, float):
        return value + 1.0
    if isinstance(value, bytes):
        data = bytearray(value or b"\x00")
        position = bit % (8 * len(data))
        data[position // 8] ^= 1 << (position % 8)
        return bytes(data)
    text = str(value)
    if not text:
        return "x"
    position = bit % len(text)
    return text[:position] + chr(ord(text[position]) ^ 1) + text[position + 1 :]


def edit_cell(path: Path, table: str, offset: int, column: int, bit: int) -> bool:
    """Change one cell; return False when the table's constraints refuse the new value."""
    conn = sqlite3.connect(str(path / "rowtrail.db"), isolation_level=None)
    try:
        columns, row = _row(conn, table, offset)
        name = columns[column % len(columns)]
        where, args = _where(columns, row)
        new = _changed(row[column % len(columns)], bit)
        try:
            conn.execute(f"UPDATE {table} SET {name} = ? WHERE {where}", [new, *args])
        except sqlite3.IntegrityError:
            return False
        return True
    finally:
        conn.close()


def delete_row(path: Path, table: str, offset: int) -> None:
    conn = sqlite3.connect(str(path / "rowtrail.db"), isolation_level=None)
    try:
        columns, row = _row(conn, table, offset)
        where, args = _where(columns, row)
        conn.execute(f"DELETE FROM {table} WHERE {where}", args)
    finally:
        conn.close()


def test_every_table_every_column_edit_and_row_delete(demo: Demo, tmp_path: Path) -> None:
    """Deterministic sweep: first, middle and last row of every table; every column."""
    n = 0
    for table, count in demo.tables.items():
        assert count > 0, f"the demo workspace leaves table {table} empty"
        for offset in sorted({0, count // 2, count - 1}):
            columns, _ = _row(sqlite3.connect(str(demo.path / "rowtrail.db")), table, offset)
            for column in range(len(columns)):
                target = demo.copy(tmp_path / f"e{n}")
                n += 1
                if edit_cell(target, table, offset, column, bit=n):
                    check(demo, target, f"table {table} row {offset} column {columns[column]}")
            target = demo.copy(tmp_path / f"d{n}")
            n += 1
            delete_row(target, table, offset)
            check(demo, target, f"table {table} row {offset} deleted")


# ---------------------------------------------------------------- file mutations

def flip(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    if data:
        data[position % len(data)] ^= 1 << (position % 8)
    else:
        data = bytearray(b"\x00")
    path.write_bytes(bytes(data))


def truncate(path: Path, position: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: position % max(len(data), 1)])


MUTATORS: dict[str, Callable[[Path, int], None]] = {
    "flip": flip,
    "truncate": truncate,
    "delete": lambda path, _: path.unlink(),
}


def test_every_file_flipped_truncated_and_deleted(demo: Demo, tmp_path: Path) -> None:
    n = 0
    for name in demo.files:
        size = (demo.path / name).stat().st_size
        for how, mutate in MUTATORS.items():
            for position in sorted({0, size // 2, max(size - 1, 0)}) if how != "delete" else [0]:
                target = demo.copy(tmp_path / f"f{n}")
                n += 1
                mutate(target / name, position)
                check(demo, target, f"file {name} {how} at {position}")


# ---------------------------------------------------------------- random mutations

@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.data())
def test_random_mutations_are_all_detected(
    demo: Demo, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    target = demo.copy(tmp_path_factory.mktemp("m") / "ws")
    kind = data.draw(st.sampled_from(["cell", "row", "flip", "truncate", "delete"]))
    if kind in {"cell", "row"}:
        table = data.draw(st.sampled_from(sorted(demo.tables)))
        offset = data.draw(st.integers(0, demo.tables[table] - 1))
        if kind == "row":
            delete_row(target, table, offset)
            what = f"table {table} row {offset} deleted"
        else:
            column, bit = data.draw(st.integers(0, 15)), data.draw(st.integers(0, 1 << 16))
            if not edit_cell(target, table, offset, column, bit):
                return  # refused by the table's own constraints: nothing changed
            what = f"table {table} row {offset} column {column} edited"
    else:
        name = data.draw(st.sampled_from(demo.files))
        position = data.draw(st.integers(0, 1 << 24))
        MUTATORS[kind](target / name, position)
        what = f"file {name} {kind} at {position}"
    check(demo, target, what)


# ---------------------------------------------------------------- rollback of the directory

@pytest.fixture
def grown(demo: Demo, tmp_path: Path) -> tuple[Path, Path]:
    """A copy that grew by one event after ``old`` was saved: the rollback's two states."""
    live = demo.copy(tmp_path / "live")
    old = Path(shutil.copytree(live, tmp_path / "old"))
    with rt.open(live) as ws:
        ws.ledger.append("note.added", {"n": 1})
    return live, old


def test_rolled_back_directory_with_trust_state_is_detected(
    grown: tuple[Path, Path], demo: Demo
) -> None:
    live, old = grown
    shutil.rmtree(live)
    shutil.copytree(old, live)
    assert verify_detects(live)
    answers_refused_or_unchanged(demo, live)
    with rt.open(live) as ws, pytest.raises(RowtrailError):
        ws.ledger.append("note.forked", {"n": 2})


def test_rolled_back_directory_without_trust_state_is_detected(
    grown: tuple[Path, Path], demo: Demo
) -> None:
    """Deleting the trust state too leaves no trust root: an error, never a silent pass."""
    live, old = grown
    shutil.rmtree(live)
    shutil.copytree(old, live)
    shutil.rmtree(TrustStore().directory(demo.origin))
    assert verify_detects(live)
    with pytest.raises(RowtrailError, match="no trust root"), rt.open(live) as ws:
        ws.verify()


def test_issue9_demo_workspace_is_private(demo: Demo) -> None:
    """Database, keys, blobs and bound files: no one but the owner can read them."""
    import stat

    for path in [demo.path, *demo.path.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, (path, oct(mode))
