"""Issue 9, finding 9: readers fail typed and write nothing; ``workspace=`` may be a path.

- A repeated CSV header name let one column's data silently replace another's in
  ``rt.load_csv`` (the pandas and polars engines rename it instead): now every reader raises
  :class:`InvalidInputError` naming the repeated column, before registering anything.
- ``rt.pandas`` / ``rt.polars`` readers let the engine's own errors (missing file, parser
  error, unknown option) escape untyped: now an :class:`InvalidInputError` chained to it.
- ``rt.track(X, source=..., workspace="path")`` raised ``AttributeError``: a path now opens the
  existing workspace there (never creating one), and anything else is a typed error.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail._workspace import Workspace
from rowtrail.errors import InvalidInputError, RowtrailError, WorkspaceNotFoundError
from rowtrail.lineage import list_sources

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return rt.init(tmp_path / "ws")


def _unchanged(ws: Workspace, call: Callable[[], Any]) -> pytest.ExceptionInfo[InvalidInputError]:
    """Run ``call``, expecting an InvalidInputError and no ledger event or source."""
    size, sources = ws.ledger.size, list_sources(ws)
    with pytest.raises(InvalidInputError) as info:
        call()
    assert ws.ledger.size == size
    assert list_sources(ws) == sources
    return info


READERS: dict[str, Callable[..., Any]] = {
    "load_csv": lambda path, ws, **kw: rt.load_csv(path, workspace=ws, **kw),
    "pandas.read_csv": lambda path, ws, **kw: rt.pandas.read_csv(path, workspace=ws, **kw),
    "polars.read_csv": lambda path, ws, **kw: rt.polars.read_csv(path, workspace=ws, **kw),
    "polars.scan_csv": lambda path, ws, **kw: rt.polars.scan_csv(path, workspace=ws, **kw),
}
ENGINES = {k: v for k, v in READERS.items() if k != "load_csv"}


@pytest.mark.parametrize("reader", list(READERS))
def test_issue9_duplicate_csv_header_is_refused_and_writes_nothing(
    ws: Workspace, tmp_path: Path, reader: str
) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("id,amount,score,amount,score\n1,10,0.5,99,0.7\n2,20,0.6,98,0.8\n")
    info = _unchanged(ws, lambda: READERS[reader](path, ws))
    message = str(info.value)
    assert "['amount', 'score']" in message
    assert "more than once" in message


def test_issue9_duplicate_header_after_whitespace_is_refused_by_load_csv(
    ws: Workspace, tmp_path: Path
) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a, b ,b\n1,2,3\n")
    info = _unchanged(ws, lambda: rt.load_csv(path, workspace=ws))
    assert "['b']" in str(info.value)


@pytest.mark.parametrize("reader", list(READERS))
def test_issue9_unique_header_still_reads(ws: Workspace, tmp_path: Path, reader: str) -> None:
    path = tmp_path / "ok.csv"
    path.write_text("id,amount\n1,10\n2,20\n")
    result = READERS[reader](path, ws)
    if reader == "polars.scan_csv":
        result = result.collect()
    assert len(result) == 2
    assert [s.name for s in list_sources(ws)] == ["ok.csv"]


def test_issue9_pandas_header_row_option_is_checked(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("title line,,\nx,y,x\n1,2,3\n")
    info = _unchanged(ws, lambda: rt.pandas.read_csv(path, workspace=ws, header=1))
    assert "['x']" in str(info.value)
    frame = rt.pandas.read_csv(path, workspace=ws, header=None)  # no header: nothing repeated
    assert frame.shape == (3, 3)


def _engine_call(reader: str, case: str, tmp_path: Path, ws: Workspace) -> Callable[[], Any]:
    good = tmp_path / "ok.csv"
    good.write_text("id,amount\n1,10\n2,20\n")
    bad = tmp_path / "bad.csv"
    bad.write_text('id,amount\n1,10\n2,"20\n')
    calls: dict[str, Callable[[], Any]] = {
        "missing file": lambda: ENGINES[reader](tmp_path / "missing.csv", ws),
        "unknown option": lambda: ENGINES[reader](good, ws, no_such_option=1),
        "bad file": lambda: ENGINES[reader](bad, ws),
    }
    return calls[case]


@pytest.mark.parametrize("reader", list(ENGINES))
@pytest.mark.parametrize(
    ("case", "cause"),
    [("missing file", OSError), ("unknown option", TypeError), ("bad file", Exception)],
)
def test_issue9_reader_engine_errors_are_typed_and_write_nothing(
    ws: Workspace, tmp_path: Path, reader: str, case: str, cause: type[Exception]
) -> None:
    call = _engine_call(reader, case, tmp_path, ws)
    if case == "bad file" and reader == "polars.scan_csv":
        # A lazy scan reads the rows only when collected: the engine's error surfaces at
        # collect(), in the user's query, and still before the source is registered.
        lazy = call()
        size = ws.ledger.size
        with pytest.raises(InvalidInputError) as raised:
            lazy.collect()
        assert isinstance(raised.value.__cause__, pl.exceptions.PolarsError)
        assert ws.ledger.size == size
        assert list_sources(ws) == []
        return
    info = _unchanged(ws, call)
    assert isinstance(info.value.__cause__, cause)
    assert isinstance(info.value, RowtrailError)


@pytest.mark.parametrize("reader", ["pandas", "polars"])
def test_issue9_parquet_reader_errors_are_typed(ws: Workspace, tmp_path: Path, reader: str) -> None:
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("id,amount\n1,10\n")
    module = rt.pandas if reader == "pandas" else rt.polars
    info = _unchanged(ws, lambda: module.read_parquet(not_parquet, workspace=ws))
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("kind", [str, Path])
def test_issue9_track_workspace_given_as_path_opens_it(
    ws: Workspace, kind: Callable[[Any], Any]
) -> None:
    X = rt.track(np.ones((3, 2)), source="ones", workspace=kind(str(ws.path)))  # noqa: N806
    assert rt.lineage(X[1:]).sources() == {"ones": [1, 2]}
    assert [s.name for s in list_sources(ws)] == ["ones"]


def test_issue9_track_workspace_path_without_workspace_is_typed_and_creates_nothing(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(WorkspaceNotFoundError, match=r"rowtrail\.init"):
        rt.track(np.ones((3, 2)), source="ones", workspace=str(missing))
    assert not missing.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WorkspaceNotFoundError):
        rt.track(np.ones(2), source="s", workspace=empty)
    assert list(empty.iterdir()) == []


@pytest.mark.parametrize("value", [3, 1.5, b"/tmp", object(), ["ws"]])
def test_issue9_track_workspace_that_is_not_a_workspace_is_typed(value: object) -> None:
    with pytest.raises(InvalidInputError, match="workspace must be a Workspace"):
        rt.track(np.ones((3, 2)), source="ones", workspace=value)
