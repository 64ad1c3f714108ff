"""Issue 9: subject rows are checked where answers read them, against proven ledger events.

A source's ``source.registered`` event records how many ``subject.ingested`` events follow it
(in ascending pseudonym order), the ranges of rows without a subject and a digest of all its
(row, subject) pairs. An answer checks the few rows it reads against their proven events, a
row's lack of subject against the blank ranges, a subject's absence from a source against the
two adjacent events, and a whole source's map against the digest; an edit anywhere it reads
is refused, and ``verify`` still rebuilds the whole table.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from _rawdb import raw_connection
from rowtrail.errors import TableIntegrityError
from rowtrail.ids import make_row_ids, row_id, row_numbers
from rowtrail.lineage import get_source, rows_of_subject, subject_rows_digest
from rowtrail.training import fit_logistic, sample_usage

N = 200
BLANK = {5, 6, 7, 120}  # rows with an empty subject cell


def raw(path: Path) -> AbstractContextManager[Any]:
    """The tamperer's connection to the workspace database (SQLite or PostgreSQL)."""
    return raw_connection(path)


def subject_of(i: int) -> str:
    return "" if i in BLANK else f"P{i % 150:04d}"  # rows 150.. share subjects with 0..


def make(path: Path) -> rt.Workspace:
    ws = rt.init(path)
    lines = ["id,x,y"] + [f"{subject_of(i)},{i},{i % 2}" for i in range(N)]
    (path.parent / "people.csv").write_text("\n".join(lines) + "\n")
    (path.parent / "other.csv").write_text(
        "id,z\n" + "".join(f"Q{i:03d},{i}\n" for i in range(20)) + "P0003,99\n"
    )
    rt.load_csv(path.parent / "people.csv", workspace=ws, subject="id")
    rt.load_csv(path.parent / "other.csv", workspace=ws, subject="id")
    people = get_source(ws, "people.csv")
    x = np.arange(N, dtype=float)[:, None] / N
    with ws.training_run("fit") as run:
        fit_logistic(x, np.arange(N) % 2, l2=1.0, run=run, row_ids=people.row_ids())
    return ws


def registered(ws: rt.Workspace, name: str) -> tuple[int, dict[str, object]]:
    index = get_source(ws, name).ledger_index
    assert index is not None
    return index, dict(ws.ledger.entry(index).event.payload)


def test_issue9_registration_records_its_subject_coverage(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    index, payload = registered(ws, "people.csv")
    subjects = sorted({ws.pseudonymize(subject_of(i)) for i in range(N) if i not in BLANK})
    assert payload["subject_events"] == len(subjects) == 149  # P0120 is only on a blank row
    assert payload["rows_without_subject"] == [[5, 8], [120, 121]]
    pairs = [(i, ws.pseudonymize(subject_of(i))) for i in range(N) if i not in BLANK]
    assert payload["subject_rows_digest"] == subject_rows_digest(pairs)
    # The subject events follow the registration, one a pseudonym, in ascending order.
    events = [ws.ledger.entry(index + 1 + k).event for k in range(len(subjects))]
    assert [e.kind for e in events] == ["subject.ingested"] * len(subjects)
    assert [e.subjects[0] for e in events] == subjects
    assert sorted(n for e in events for n in e.payload["row_numbers"]) == sorted(
        set(range(N)) - BLANK
    )


def test_issue9_usage_by_subject_carries_the_proof_of_its_subject_record(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    pseudonym = ws.pseudonymize("P0003")  # rows 3 and 153 of people.csv, row 20 of other.csv
    uses = sample_usage(ws, subject="P0003")
    assert sorted({u.row_id for u in uses}) == [row_id(0, 3), row_id(0, 153)]
    head = ws.ledger.trusted_head()
    for use in uses:
        assert use.subject_proof is not None
        use.subject_proof.verify()
        assert use.subject_proof.root == head.root
        event = ws.ledger.entry(use.subject_proof.index).event
        assert event.kind == "subject.ingested"
        assert event.subjects == (pseudonym,)
        assert use.row_id is not None
        assert row_numbers([use.row_id])[0] in event.payload["row_numbers"]
    expected = [row_id(0, 3), row_id(0, 153), row_id(1, 20)]
    assert rows_of_subject(ws, pseudonym).tolist() == expected


def test_issue9_rows_without_subject_are_checked_against_the_registration(
    tmp_path: Path,
) -> None:
    ws = make(tmp_path / "ws")
    store = ws.lineage_store
    assert store.subjects_of_rows([row_id(0, 5), row_id(0, 8)]) == {
        row_id(0, 8): ws.pseudonymize("P0008")
    }
    # A subject planted on a blank row is backed by no event: refused, few rows or many.
    with raw(tmp_path / "ws") as conn:
        conn.execute(
            "INSERT INTO subject_rows SELECT subject, ?, ledger_index FROM subject_rows "
            "WHERE row_id = ?",
            (row_id(0, 6), row_id(0, 9)),
        )
    with pytest.raises(TableIntegrityError, match="subject_rows"):
        store.subjects_of_rows([row_id(0, 6)])
    with pytest.raises(TableIntegrityError, match="subject_rows"):
        store.subjects_of_rows(make_row_ids(0, N).tolist())
    with pytest.raises(TableIntegrityError):
        ws.verify()


def test_issue9_a_deleted_subject_row_is_never_read_as_no_subject(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    store = ws.lineage_store
    with raw(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM subject_rows WHERE row_id = ?", (row_id(0, 40),))
    with pytest.raises(TableIntegrityError, match="missing"):
        store.subjects_of_rows([row_id(0, 40)])
    with pytest.raises(TableIntegrityError, match="digest"):
        store.subjects_of_rows(make_row_ids(0, N).tolist())  # the whole map: its digest
    # Rows the edit did not touch still answer, and correctly.
    assert store.subjects_of_rows([row_id(0, 41)]) == {row_id(0, 41): ws.pseudonymize("P0041")}


def test_issue9_a_subject_hidden_from_one_source_is_refused(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    pseudonym = ws.pseudonymize("P0003")
    with raw(tmp_path / "ws") as conn:  # hide its row in other.csv, keep people.csv's
        conn.execute(
            "DELETE FROM subject_rows WHERE subject = ? AND row_id = ?", (pseudonym, row_id(1, 20))
        )
    with pytest.raises(TableIntegrityError, match="missing"):
        rows_of_subject(ws, pseudonym)
    with pytest.raises(TableIntegrityError, match="missing"):
        sample_usage(ws, subject="P0003")
    # Another subject's answer reads other rows: unchanged.
    assert rows_of_subject(ws, ws.pseudonymize("P0004")).tolist() == [
        row_id(0, 4),
        row_id(0, 154),
    ]


def test_issue9_a_subject_row_moved_to_another_source_is_refused(tmp_path: Path) -> None:
    ws = make(tmp_path / "ws")
    pseudonym = ws.pseudonymize("Q005")
    with raw(tmp_path / "ws") as conn:
        conn.execute(
            "UPDATE subject_rows SET row_id = ? WHERE subject = ?", (row_id(0, 5), pseudonym)
        )
    with pytest.raises(TableIntegrityError):
        rows_of_subject(ws, pseudonym)
    with pytest.raises(TableIntegrityError):
        ws.lineage_store.subjects_of_rows([row_id(0, 5)])


def test_subjects_given_with_the_rows_answer_like_a_subject_column(tmp_path: Path) -> None:
    """``rt.track(..., subject_ids=...)`` (no column name) records checkable subject rows."""
    ws = rt.init(tmp_path / "ws")
    rt.track(np.zeros((4, 2)), source="t", workspace=ws, subject_ids=["a", "b", "a", "c"])
    store = ws.lineage_store
    assert store.rows_of_subject(ws.pseudonymize("a")) == [row_id(0, 0), row_id(0, 2)]
    assert store.subjects_of_rows([row_id(0, 1)]) == {row_id(0, 1): ws.pseudonymize("b")}
    assert ws.verify().size == ws.ledger.size
    with raw(tmp_path / "ws") as conn:
        conn.execute("DELETE FROM subject_rows WHERE row_id = ?", (row_id(0, 2),))
    with pytest.raises(TableIntegrityError, match="subject_rows"):
        store.rows_of_subject(ws.pseudonymize("a"))
