r"""``rt.pandas``: read or track pandas frames whose rows carry hidden source row ids.

Examples
--------
>>> import tempfile, pathlib, rowtrail as rt
>>> ws = rt.init(tempfile.mkdtemp())
>>> path = pathlib.Path(tempfile.mkdtemp()) / "loans.csv"
>>> _ = path.write_text("id,amount\n1,10\n2,20\n3,30\n")
>>> df = rt.pandas.read_csv(path, workspace=ws)
>>> big = df[df.amount > 15].sort_values("amount", ascending=False)
>>> list(big.columns)
['id', 'amount']
>>> dict(rt.lineage(big).rows_of(0))
{'loans.csv': [2]}
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from rowtrail import _context
from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, RowtrailError
from rowtrail.lineage._exclude import keep_mask
from rowtrail.lineage.frames._core import FrameState, RowLineage, record_op
from rowtrail.lineage.frames._query import column_digest, digest_in_background, register_table
from rowtrail.lineage.frames._read_checks import check_unique_header, reader_error

if TYPE_CHECKING:
    import pandas as pd

    from rowtrail.lineage._sources import SourceInfo

__all__ = ["read_csv", "read_parquet", "track"]

_ROW_SKIPPING = ("skiprows", "skipfooter", "chunksize", "iterator", "nrows_to_skip")
# Options that change how the header line is split into names (the header probe keeps them).
_CSV_FORMAT = (
    "sep",
    "delimiter",
    "quotechar",
    "quoting",
    "escapechar",
    "doublequote",
    "comment",
    "encoding",
    "encoding_errors",
    "compression",
    "skipinitialspace",
    "lineterminator",
    "dialect",
    "skip_blank_lines",
    "storage_options",
)


def _pandas(feature: str) -> Any:
    return require("pandas", extra="pandas", feature=feature)


def _wrap(
    frame: pd.DataFrame, info: SourceInfo, workspace: Any, op: str, params: dict[str, Any]
) -> Any:
    from rowtrail.lineage.frames._pandas import TracedDataFrame, attach

    node = record_op(op, "source", [], {"source": info.name, "digest": info.digest, **params})
    state = FrameState(node=node, known={info.index: info}, workspace=workspace)
    traced = frame if isinstance(frame, TracedDataFrame) else TracedDataFrame(frame)
    return attach(traced, RowLineage.from_ids(info.row_ids()), state)


def _csv_header(pandas: Any, path: str | os.PathLike[str], kwargs: dict[str, Any]) -> list[str]:
    """Return the header line of the file as written (pandas renames repeated names)."""
    if "names" in kwargs:  # pandas refuses repeated names= itself
        return []
    header = kwargs.get("header", "infer")
    header = 0 if header == "infer" else header
    if not isinstance(header, int) or isinstance(header, bool):
        return []  # no header row, or a multi-row header
    options = {k: kwargs[k] for k in _CSV_FORMAT if k in kwargs}
    if kwargs.get("engine") == "python":
        options["engine"] = "python"
    head = pandas.read_csv(
        path, header=None, nrows=header + 1, dtype=str, keep_default_na=False, **options
    )
    return [str(v) for v in head.iloc[header].tolist()] if len(head) > header else []


def _schema(frame: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(t) for c, t in frame.dtypes.items()}


def _read(
    kind: str,
    path: str | os.PathLike[str],
    source: str | None,
    subject: str | None,
    workspace: Any,
    kwargs: dict[str, Any],
) -> Any:
    caller = f"rt.pandas.read_{kind}()"
    pandas = _pandas(caller)
    bad = sorted(k for k in kwargs if k in _ROW_SKIPPING)
    if bad:
        raise InvalidInputError(
            f"{bad[0]} of {caller} must not be given; got {kwargs[bad[0]]!r}. Row numbers are "
            "positions in the file: read the whole file, then filter the frame."
        )
    digest = digest_in_background(path)
    try:
        frame = getattr(pandas, f"read_{kind}")(path, **kwargs)
        names = _csv_header(pandas, path, kwargs) if kind == "csv" else []
    except RowtrailError:
        raise
    except (OSError, ValueError, TypeError, pandas.errors.ParserError) as exc:
        raise reader_error(caller, path, exc) from exc
    check_unique_header(caller, path, names)
    ws = _context.resolve_workspace(workspace)
    info = register_table(
        ws,
        caller=caller,
        name=source,
        path=path,
        format=kind,
        schema=_schema(frame),
        n_rows=len(frame),
        digest=digest(),
        subject=subject,
        subject_values=lambda c: frame[c].to_numpy(),
    )
    traced = _wrap(frame, info, ws, f"read_{kind}", {"path": os.fspath(path)})
    keep = keep_mask(info.index, len(frame))
    return traced if keep is None else traced[keep]  # inside excluding_rows(): a filter


def read_csv(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Read a CSV file into a traced ``pandas.DataFrame`` and register it as a source.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; its SHA-256 identifies the source.
    source : str, optional
        Source name (default: the file name).
    subject : str, optional
        Column holding raw subject identifiers; only keyed pseudonyms are stored.
    workspace : Workspace, optional
        Where to register the source (default: ``rt.open()``'s default workspace).
    **kwargs
        Passed to ``pandas.read_csv`` (options that skip rows are refused).

    Returns
    -------
    TracedDataFrame
        An ordinary ``pandas.DataFrame`` (a subclass) whose rows carry hidden source row ids.
    """
    return _read("csv", path, source, subject, workspace, kwargs)


def read_parquet(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Read a Parquet file into a traced ``pandas.DataFrame`` (see :func:`read_csv`)."""
    return _read("parquet", path, source, subject, workspace, kwargs)


def track(
    frame: pd.DataFrame, *, source: str, subject: str | None = None, workspace: Any = None
) -> Any:
    """Register an in-memory ``pandas.DataFrame`` as a source and return it traced.

    The source digest is the SHA-256 of a canonical serialization of the columns (names,
    dtypes, values in row order), so tracking identical data twice gives the same source.
    Row numbers are positions in ``frame``.
    """
    pandas = _pandas("rt.pandas.track()")
    if not isinstance(frame, pandas.DataFrame):
        raise InvalidInputError(
            f"frame of rt.pandas.track must be a pandas.DataFrame; got {type(frame).__name__}. "
            "Use rt.polars.track for polars frames."
        )
    ws = _context.resolve_workspace(workspace)
    digest = column_digest(
        [(str(c), str(frame[c].dtype), frame[c].to_numpy()) for c in frame.columns]
    )
    info = register_table(
        ws,
        caller="rt.pandas.track()",
        name=source,
        path=None,
        format="pandas",
        schema=_schema(frame),
        n_rows=len(frame),
        digest=digest,
        subject=subject,
        subject_values=lambda c: frame[c].to_numpy(),
    )
    return _wrap(frame, info, ws, "track", {})
