"""load_csv / track on a real workspace: registration, subjects, schema checks, bad input."""

# ruff: noqa: N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import rowtrail as rt
from rowtrail._workspace import Workspace
from rowtrail.errors import InvalidInputError, SchemaMismatchError
from rowtrail.lineage import ColumnSpec, get_source, rows_of_subject

CSV = (
    "applicant_id,age,income,region,score\n"
    "A-1,34,52000,north,0.7\nA-2,51,61000,south,0.2\nA-3,29,,north,0.9\nA-1,45,48000,east,0.4\n"
)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return rt.init(tmp_path / "ws")


@pytest.fixture
def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "credit.csv"
    path.write_text(CSV)
    return path


def _ledger_text(ws: Workspace) -> str:
    return "\n".join(str(ws.ledger.entry(i).event.payload) for i in range(ws.ledger.size))


def test_load_csv_registers_source_and_pseudonymizes_subjects(
    ws: Workspace, csv_file: Path
) -> None:
    X = rt.load_csv(csv_file, workspace=ws, subject="applicant_id")
    assert X.shape == (4, 3)  # age, income, score; region is text and not requested
    assert np.isnan(np.asarray(X)[2, 1])
    info = get_source(ws, "credit.csv")
    assert (info.n_rows, info.format, info.subject_column) == (4, "csv", "applicant_id")
    assert rows_of_subject(ws, "A-1").tolist() == [info.row_id(0), info.row_id(3)]
    assert "A-1" not in _ledger_text(ws)
    assert rt.lineage(X[X[:, 0] > 40]).sources() == {"credit.csv": [1, 3]}
    again = rt.load_csv(csv_file, workspace=ws, subject="applicant_id")
    assert rt.lineage(again).sources() == rt.lineage(X).sources()  # same bytes, same source


def test_changed_bytes_give_a_new_version(ws: Workspace, csv_file: Path) -> None:
    first = rt.load_csv(csv_file, workspace=ws, columns=["age"])
    csv_file.write_text(CSV.replace("34", "35"))
    second = rt.load_csv(csv_file, workspace=ws, columns=["age"])
    both = np.concatenate([first, second])
    assert rt.lineage(both).sources() == {
        "credit.csv@v1": [0, 1, 2, 3],
        "credit.csv@v2": [0, 1, 2, 3],
    }


def test_requested_text_column_is_a_clear_error_and_writes_nothing(
    ws: Workspace, csv_file: Path
) -> None:
    size = ws.ledger.size
    with pytest.raises(SchemaMismatchError, match="column 'region' holds 'north' in data row 0"):
        rt.load_csv(csv_file, workspace=ws, columns=["age", "region"])
    assert ws.ledger.size == size


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        ("a,b\n1,2\n3\n", SchemaMismatchError, "data row 1 .* has 1"),
        ("", SchemaMismatchError, "header row"),
        (b"\xff\xfe\x00bad", InvalidInputError, "readable UTF-8 CSV"),
    ],
    ids=["ragged", "empty", "not-utf8"],
)
def test_bad_files_raise_typed_errors_and_leave_the_ledger_unchanged(
    ws: Workspace, tmp_path: Path, content: str | bytes, error: type[Exception], match: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    size = ws.ledger.size
    with pytest.raises(error, match=match):
        rt.load_csv(path, workspace=ws)
    assert ws.ledger.size == size


def test_missing_file_and_unknown_columns(ws: Workspace, tmp_path: Path, csv_file: Path) -> None:
    with pytest.raises(InvalidInputError, match="path of load_csv"):
        rt.load_csv(tmp_path / "missing.csv", workspace=ws)
    with pytest.raises(InvalidInputError, match="subject of load_csv"):
        rt.load_csv(csv_file, workspace=ws, subject="nope")
    with pytest.raises(InvalidInputError, match=r"got \['nope'\]"):
        rt.load_csv(csv_file, workspace=ws, columns=["nope"])
    assert ws.ledger.size == 0


def test_schema_violations_are_recorded_per_row_and_reported(ws: Workspace, csv_file: Path) -> None:
    schema = {
        "age": ColumnSpec(dtype="int", min=30),
        "income": {"dtype": "float", "nullable": False},
        "region": {"dtype": "str", "choices": ["north", "south"]},
    }
    X = rt.load_csv(csv_file, workspace=ws, subject="applicant_id", schema=schema)
    (report,) = rt.lineage(X).validation()
    assert not report.ok
    assert report.invalid_rows().tolist() == [2, 3]
    found = {(v.column, v.rule): list(v.row_numbers) for v in report.violations}
    assert found == {("age", "min"): [2], ("income", "nullable"): [2], ("region", "choices"): [3]}
    events = [ws.ledger.entry(i).event for i in report.ledger_indices]
    assert {e.kind for e in events} == {"rows.validation_failed"}
    assert sorted(r for e in events for r in e.payload["row_numbers"]) == [2, 2, 3]
    assert all(len(e.subjects) == 1 for e in events)  # the subject's pseudonym, not its id


def test_schema_drop_filters_and_raise_writes_nothing(ws: Workspace, csv_file: Path) -> None:
    kept = rt.load_csv(
        csv_file, workspace=ws, schema={"age": {"dtype": "int", "max": 50}}, on_invalid="drop"
    )
    assert rt.lineage(kept).sources() == {"credit.csv": [0, 2, 3]}
    assert rt.lineage(kept).ops()[-1].name == "drop_invalid"
    size = ws.ledger.size
    with pytest.raises(SchemaMismatchError, match="1 rows"):
        rt.load_csv(
            csv_file, workspace=ws, name="other", schema={"age": {"max": 50}}, on_invalid="raise"
        )
    assert ws.ledger.size == size


def test_track_digests_bytes_dtype_and_shape(ws: Workspace) -> None:
    data = np.arange(12.0).reshape(6, 2)
    X = rt.track(data, source="arr", workspace=ws)
    assert rt.lineage(X[::2]).sources() == {"arr": [0, 2, 4]}
    same = rt.track(data.copy(), source="arr", workspace=ws)
    reshaped = rt.track(data.reshape(3, 4), source="arr", workspace=ws)
    assert get_source(ws, "arr").version == 2
    assert rt.lineage(same).sources() == {"arr": list(range(6))}
    assert rt.lineage(reshaped).sources() == {"arr": [0, 1, 2]}
    with pytest.raises(InvalidInputError, match="already"):
        rt.track(X, source="again", workspace=ws)
    with pytest.raises(InvalidInputError, match="ndim=0"):
        rt.track(np.float64(1.0), source="scalar", workspace=ws)
