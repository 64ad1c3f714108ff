r"""``rt.polars``: read, scan or track polars frames whose rows carry hidden source row ids.

Examples
--------
>>> import tempfile, pathlib, polars as pl, rowtrail as rt
>>> ws = rt.init(tempfile.mkdtemp())
>>> path = pathlib.Path(tempfile.mkdtemp()) / "loans.csv"
>>> _ = path.write_text("id,amount\n1,10\n2,20\n3,30\n")
>>> lf = rt.polars.scan_csv(path, workspace=ws)
>>> big = lf.filter(pl.col("amount") > 15).sort("amount", descending=True).collect()
>>> big.columns
['id', 'amount']
>>> dict(rt.lineage(big).rows_of(0))
{'loans.csv': [2]}
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rowtrail import _context
from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, RowtrailError
from rowtrail.ids import ROW_BITS
from rowtrail.lineage._sources import SourceInfo
from rowtrail.lineage.frames._core import IDS, FrameState, PendingSource, Slot, record_op
from rowtrail.lineage.frames._query import column_digest, digest_in_background, register_table
from rowtrail.lineage.frames._read_checks import check_unique_header, reader_error

if TYPE_CHECKING:
    import polars as pl

__all__ = ["concat", "read_csv", "read_parquet", "scan_csv", "scan_parquet", "track"]

_ROW_SKIPPING = (
    "skip_rows",
    "skip_rows_after_header",
    "skip_lines",
    "row_index_name",
    "row_index_offset",
)
# Options that change how the header line is split into names (the header probe keeps them).
_CSV_FORMAT = ("separator", "quote_char", "comment_prefix", "encoding", "eol_char", "decimal_comma")


def _polars(feature: str) -> Any:
    return require("polars", extra="polars", feature=feature)


def _traced(frame: Any, info: SourceInfo, workspace: Any, op: str, params: dict[str, Any]) -> Any:
    from rowtrail.lineage.frames._core import fresh_name
    from rowtrail.lineage.frames._polars import wrap

    pl = _polars(f"rt.polars.{op}()")
    hidden = fresh_name()
    base = info.index << ROW_BITS
    inner = frame.with_row_index(hidden).with_columns(pl.col(hidden).cast(pl.Int64) + base)
    node = record_op(
        f"polars.{op}", "source", [], {"source": info.name, "digest": info.digest, **params}
    )
    state = FrameState(node=node, known={info.index: info}, workspace=workspace)
    return wrap(inner, ((hidden, IDS),), state)


def _csv_header(pl: Any, path: str | os.PathLike[str], kwargs: dict[str, Any]) -> list[str]:
    """Return the header line of the file as written (polars renames repeated names)."""
    if not kwargs.get("has_header", True) or kwargs.get("new_columns") is not None:
        return []  # no header row, or names given by the caller (polars checks those)
    options = {k: kwargs[k] for k in _CSV_FORMAT if k in kwargs}
    head = pl.read_csv(path, has_header=False, n_rows=1, infer_schema=False, **options)
    return [str(v) for v in head.row(0)] if head.height else []


def _scan(
    pl: Any, kind: str, path: str | os.PathLike[str], caller: str, kwargs: dict[str, Any]
) -> tuple[Any, Any]:
    """Return the file's scan and schema, or raise a typed error before anything is written."""
    try:
        scan = getattr(pl, f"scan_{kind}")(path, **kwargs)
        schema = scan.collect_schema()
        names = _csv_header(pl, path, kwargs) if kind == "csv" else []
    except RowtrailError:
        raise
    except (OSError, ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        raise reader_error(caller, path, exc) from exc
    check_unique_header(caller, path, names)
    return scan, schema


def _open(
    kind: str,
    lazy: bool,
    path: str | os.PathLike[str],
    source: str | None,
    subject: str | None,
    workspace: Any,
    kwargs: dict[str, Any],
) -> Any:
    op = f"{'scan' if lazy else 'read'}_{kind}"
    caller = f"rt.polars.{op}()"
    pl = _polars(caller)
    bad = sorted(k for k in kwargs if k in _ROW_SKIPPING)
    if bad:
        raise InvalidInputError(
            f"{bad[0]} of {caller} must not be given; got {kwargs[bad[0]]!r}. Row numbers are "
            "positions in the file: read the whole file, then filter the frame."
        )
    digest = digest_in_background(path)
    scan, schema = _scan(pl, kind, path, caller, kwargs)
    if subject is not None and subject not in schema:
        raise InvalidInputError(
            f"subject of {caller} must be one of the columns {sorted(schema)}; got {subject!r}. "
            "Pass the column holding the raw subject identifier, or leave it out."
        )
    ws = _context.resolve_workspace(workspace)

    def register() -> SourceInfo:
        return register_table(
            ws,
            caller=caller,
            name=source,
            path=path,
            format=kind,
            schema={k: str(v) for k, v in schema.items()},
            n_rows=lambda: int(scan.select(pl.len()).collect().item()),
            digest=digest(),
            subject=subject,
            subject_values=lambda column: scan.select(column).collect().to_series().to_numpy(),
        )

    from rowtrail.lineage.frames._core import fresh_name
    from rowtrail.lineage.frames._polars import wrap

    # Row numbers now, source index later: the file is hashed while the plan runs, and the
    # source is registered when rows are first produced or queried (see PendingSource).
    pending = PendingSource(register)
    hidden = fresh_name()
    inner = scan.with_row_index(hidden).with_columns(pl.col(hidden).cast(pl.Int64))
    name = source or os.path.basename(os.fspath(path))
    node = record_op(f"polars.{op}", "source", [], {"source": name, "path": os.fspath(path)})
    state = FrameState(node=node, known={}, workspace=ws, pending=(pending,))
    traced = wrap(inner, ((hidden, Slot("ids", pending=pending)),), state)
    traced = _excluding(traced, pending, hidden, pl)
    if lazy:
        return traced
    try:
        return traced.collect()  # the data is read before the source is registered
    except RowtrailError:
        raise
    except (OSError, ValueError, TypeError, pl.exceptions.PolarsError) as exc:
        raise reader_error(caller, path, exc) from exc


def _excluding(traced: Any, pending: PendingSource, hidden: str, pl: Any) -> Any:
    """Inside ``excluding_rows()`` (an erasure's rebuild), drop the excluded rows as a filter.

    The source is registered now (its index says which rows are excluded); every other row
    keeps its row number, so its row id is unchanged.
    """
    from rowtrail.lineage._exclude import excluded_rows, excluding_active

    if not excluding_active():
        return traced
    numbers = excluded_rows(pending.info.index)
    if not numbers.size:
        return traced
    return traced.filter(~pl.col(hidden).is_in(numbers.tolist()))


def read_csv(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Read a CSV file into a traced polars ``DataFrame`` and register it as a source.

    Parameters
    ----------
    path : str or os.PathLike
        The CSV file; its SHA-256 identifies the source.
    source : str, optional
        Source name (default: the file name).
    subject : str, optional
        Column holding raw subject identifiers; only keyed pseudonyms are stored.
    workspace : Workspace, optional
        Where to register the source (default workspace if omitted).
    **kwargs
        Passed to ``polars.scan_csv`` (options that skip rows are refused).

    Returns
    -------
    TracedPolarsFrame
        A proxy that behaves as the ``polars.DataFrame`` of the file; hidden id columns are
        not in ``columns`` / ``schema``.
    """
    return _open("csv", False, path, source, subject, workspace, kwargs)


def read_parquet(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Read a Parquet file into a traced polars ``DataFrame`` (see :func:`read_csv`)."""
    return _open("parquet", False, path, source, subject, workspace, kwargs)


def scan_csv(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Scan a CSV file lazily into a traced ``LazyFrame`` (row index added at the scan)."""
    return _open("csv", True, path, source, subject, workspace, kwargs)


def scan_parquet(
    path: str | os.PathLike[str],
    *,
    source: str | None = None,
    subject: str | None = None,
    workspace: Any = None,
    **kwargs: Any,
) -> Any:
    """Scan a Parquet file lazily into a traced ``LazyFrame`` (see :func:`scan_csv`)."""
    return _open("parquet", True, path, source, subject, workspace, kwargs)


def track(
    frame: pl.DataFrame | pl.LazyFrame,
    *,
    source: str,
    subject: str | None = None,
    workspace: Any = None,
) -> Any:
    """Register an in-memory polars frame as a source and return it traced.

    The digest is the SHA-256 of a canonical serialization of the columns (names, dtypes,
    values in row order); a ``LazyFrame`` is collected once to compute it.
    """
    pl = _polars("rt.polars.track()")
    if not isinstance(frame, pl.DataFrame | pl.LazyFrame):
        raise InvalidInputError(
            f"frame of rt.polars.track must be a polars DataFrame or LazyFrame; got "
            f"{type(frame).__name__}. Use rt.pandas.track for pandas frames."
        )
    eager = frame.collect() if isinstance(frame, pl.LazyFrame) else frame
    digest = column_digest([(c, str(eager[c].dtype), eager[c].to_numpy()) for c in eager.columns])
    ws = _context.resolve_workspace(workspace)
    info = register_table(
        ws,
        caller="rt.polars.track()",
        name=source,
        path=None,
        format="polars",
        schema={c: str(t) for c, t in eager.schema.items()},
        n_rows=eager.height,
        digest=digest,
        subject=subject,
        subject_values=lambda c: eager[c].to_numpy(),
    )
    return _traced(frame, info, ws, "track", {})


def concat(items: Sequence[Any], *, how: str = "vertical", **kwargs: Any) -> Any:
    """``polars.concat`` for traced frames: rows (``vertical``/``diagonal``) or columns.

    Frames concatenated along rows line up their lineage columns by meaning (the same source
    ids, the same group-by); a slot only some frames have is ``-1`` / null in the others.
    """
    from rowtrail.lineage.frames._core import fresh_name
    from rowtrail.lineage.frames._polars import _Proxy, wrap

    pl = _polars("rt.polars.concat()")
    proxies = [i for i in items if isinstance(i, _Proxy)]
    if not proxies:
        return pl.concat(list(items), how=how, **kwargs)
    if len(proxies) != len(items):
        raise InvalidInputError(
            "items of rt.polars.concat must all be traced frames (from rt.polars.*); got "
            f"{[type(i).__name__ for i in items]}. Track plain frames with rt.polars.track."
        )
    if how.startswith("horizontal"):
        inners: list[Any] = []
        slots: list[Any] = []
        for proxy in proxies:
            renames = {h: fresh_name() for h in proxy._hidden}
            inners.append(proxy._inner.rename(renames))
            slots.extend((renames[h], s) for h, s in proxy._slots)
        inner = pl.concat(inners, how=how, **kwargs)
        union = tuple(slots)
    else:
        union, inners = _union_slots(proxies, pl)
        inner = pl.concat(inners, how=how, **kwargs)
    states = [p._state for p in proxies]
    node = record_op("polars.concat", "transformation", [s.node for s in states], {"how": how})
    return wrap(inner, union, states[0].derive(node, *states[1:]))


def _union_slots(proxies: Sequence[Any], pl: Any) -> tuple[Any, list[Any]]:
    """Give every frame the same hidden columns (matched by meaning) for a row concat."""
    from rowtrail.lineage.frames._core import fresh_name

    union: list[tuple[str, Any, Any]] = []  # (name, slot, dtype)
    per_frame: list[dict[str, str]] = []
    for proxy in proxies:
        schema = proxy._inner.collect_schema()
        used: set[int] = set()
        mapping: dict[str, str] = {}
        for hidden, slot in proxy._slots:
            match = next(
                (i for i, (_, s, _) in enumerate(union) if s.same_as(slot) and i not in used), None
            )
            if match is None:
                union.append((fresh_name(), slot, schema[hidden]))
                match = len(union) - 1
            used.add(match)
            mapping[hidden] = union[match][0]
        per_frame.append(mapping)
    inners = []
    for proxy, mapping in zip(proxies, per_frame, strict=True):
        inner = proxy._inner.rename(mapping)
        missing = [(n, s, t) for n, s, t in union if n not in mapping.values()]
        inner = inner.with_columns(
            [pl.lit(-1 if s.kind == "ids" else None, dtype=t).alias(n) for n, s, t in missing]
        )
        inners.append(inner.select(*proxy.columns, *[n for n, _, _ in union]))
    return tuple((n, s) for n, s, _ in union), inners
