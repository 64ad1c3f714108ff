"""Sources of traced arrays: ``rt.track(array, source=...)`` and ``rt.load_csv(path, ...)``.

Both register the source (SHA-256 of its bytes, path, format, schema, row count; subject
column pseudonymized) through :func:`~rowtrail.lineage.register_source` and return a
:class:`~rowtrail.lineage._array.TracedArray` whose rows carry the source's row ids. All
parsing and checking happens before anything is written, so bad input leaves the workspace
unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail import _context
from rowtrail.errors import InvalidInputError, SchemaMismatchError
from rowtrail.hashing import DIGEST_PREFIX
from rowtrail.lineage._array import TracedArray, wrap
from rowtrail.lineage._exclude import keep_mask
from rowtrail.lineage._node import Node
from rowtrail.lineage._rowmap import Mask
from rowtrail.lineage._schema import (
    ValidationReport,
    check_schema,
    record_violations,
    validate_columns,
)
from rowtrail.lineage._sources import SourceInfo, register_source
from rowtrail.lineage.frames._read_checks import check_unique_header

__all__ = ["load_csv", "source_node", "track", "validation_reports"]

_REPORTS: weakref.WeakKeyDictionary[Node, ValidationReport] = weakref.WeakKeyDictionary()
_ON_INVALID = ("record", "drop", "raise")


def source_node(info: SourceInfo, ws: Any) -> Node:
    """Return a DAG node standing for all rows of a registered source."""
    node = Node(
        "source",
        "source",
        (),
        None,
        info.n_rows,
        params={
            "name": info.name,
            "digest": info.digest,
            "format": info.format,
            "path": info.path,
            "version": info.version,
            "source_index": info.index,
        },
    )
    node.source = info
    node.ws = ws
    return node


def validation_reports(nodes: Sequence[Node]) -> list[ValidationReport]:
    """Return the validation reports recorded for these source nodes."""
    return [_REPORTS[n] for n in nodes if n in _REPORTS]


def array_digest(data: NDArray[Any]) -> str:
    """Return the digest of an array's bytes, dtype and shape."""
    hasher = hashlib.sha256(b"rowtrail.array.v1\0")
    hasher.update(f"{data.dtype.str}\0{list(data.shape)}\0".encode())
    hasher.update(np.ascontiguousarray(data).tobytes())
    return DIGEST_PREFIX + hasher.hexdigest()


def track(
    array: ArrayLike,
    *,
    source: str,
    workspace: Any = None,
    subject_ids: Sequence[object] | None = None,
) -> TracedArray:
    """Register ``array`` as a source named ``source`` and return it traced.

    Parameters
    ----------
    array : array_like
        At least one-dimensional; axis 0 is the row axis.
    source : str
        Source name; identical bytes under the same name give the same source.
    workspace : Workspace, optional
        Defaults to the default workspace.
    subject_ids : sequence, optional
        Raw subject identifier of each row; only keyed pseudonyms are stored.

    Examples
    --------
    >>> import tempfile, numpy as np, rowtrail as rt
    >>> X = rt.track(np.ones((3, 2)), source="ones", workspace=rt.init(tempfile.mkdtemp()))
    >>> rt.lineage(X[1:]).sources()
    {'ones': [1, 2]}
    """
    if type(array) is TracedArray:
        raise InvalidInputError(
            "array of track must not be traced already; its lineage is kept by every operation"
        )
    data = np.asarray(array)
    if data.ndim == 0 or data.dtype == object:
        raise InvalidInputError(
            f"array of track must be an array of at least one dimension with a numeric, bool or "
            f"text dtype; got ndim={data.ndim}, dtype={data.dtype}. Convert it with np.asarray."
        )
    ws = _context.resolve_workspace(workspace)
    info = register_source(
        ws,
        name=source,
        digest=array_digest(data),
        format="numpy",
        schema={"dtype": data.dtype.str, "shape": str(list(data.shape))},
        n_rows=len(data),
        subject_ids=subject_ids,
    )
    return wrap(data, source_node(info, ws))


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], bytes]:
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(
            f"path of load_csv must be a readable UTF-8 CSV file; got {str(path)!r}: {exc}"
        ) from exc
    try:
        rows = [r for r in csv.reader(io.StringIO(text)) if r]
    except csv.Error as exc:
        raise SchemaMismatchError(
            f"path of load_csv must be a valid CSV file; {path}: {exc}"
        ) from exc
    if not rows:
        raise SchemaMismatchError(f"path of load_csv must hold a header row; {path} is empty")
    header = [h.strip() for h in rows[0]]
    check_unique_header("load_csv", path, header)
    body = rows[1:]
    for number, row in enumerate(body):
        if len(row) != len(header):
            raise SchemaMismatchError(
                f"rows of load_csv must all have {len(header)} fields like the header; data row "
                f"{number} of {path} has {len(row)}. Fix the file or quote fields holding commas."
            )
    return header, body, raw


def _column_cells(header: list[str], body: list[list[str]]) -> dict[str, NDArray[Any]]:
    table = (
        np.char.strip(np.array(body, dtype=str)) if body else np.empty((0, len(header)), dtype=str)
    )
    return {name: table[:, j] for j, name in enumerate(header)}


def _is_number(text: str) -> bool:
    try:
        float(text or "nan")
    except ValueError:
        return False
    return True


def _as_numbers(name: str, cells: NDArray[Any]) -> NDArray[np.float64] | None:
    filled = np.where(cells == "", "nan", cells)
    try:
        return filled.astype(np.float64)
    except ValueError:
        return None


def _numeric_matrix(
    cells: Mapping[str, NDArray[Any]], wanted: list[str], explicit: bool, n_rows: int
) -> tuple[NDArray[np.float64], list[str]]:
    kept: list[NDArray[np.float64]] = []
    names: list[str] = []
    for name in wanted:
        values = _as_numbers(name, cells[name])
        if values is None:
            if explicit:
                bad = next(i for i, c in enumerate(cells[name]) if not _is_number(str(c)))
                raise SchemaMismatchError(
                    f"columns of load_csv must be numeric; column {name!r} holds "
                    f"{str(cells[name][bad])!r} in data row {bad}. Leave it out of columns= or "
                    "load it as a subject column (subject=)."
                )
            continue
        kept.append(values)
        names.append(name)
    matrix = np.column_stack(kept) if kept else np.empty((n_rows, 0))
    return np.ascontiguousarray(matrix, dtype=np.float64), names


def _choose_columns(
    header: list[str], subject: str | None, columns: Sequence[str] | None
) -> list[str]:
    if subject is not None and subject not in header:
        raise InvalidInputError(
            f"subject of load_csv must be a column of the file {header}; got {subject!r}"
        )
    if columns is None:
        return [h for h in header if h != subject]
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise InvalidInputError(
            f"columns of load_csv must be a list of column names; got {columns!r}"
        )
    unknown = [c for c in columns if c not in header or c == subject]
    if unknown:
        raise InvalidInputError(
            f"columns of load_csv must be numeric columns of the file {header} other than the "
            f"subject column; got {unknown!r}"
        )
    return list(columns)


def load_csv(
    path: str | os.PathLike[str],
    *,
    workspace: Any = None,
    subject: str | None = None,
    columns: Sequence[str] | None = None,
    name: str | None = None,
    schema: Mapping[str, Any] | None = None,
    on_invalid: str = "record",
) -> TracedArray:
    r"""Load the numeric columns of a CSV file as a traced ``float64`` array (like ``np.loadtxt``).

    The first line is the header (not a data row); empty cells become NaN. The file is
    registered as a source (its SHA-256, path, schema, row count) before the array is returned.

    Parameters
    ----------
    path : path-like
        The CSV file (UTF-8, comma-separated, header row).
    workspace : Workspace, optional
        Defaults to the default workspace.
    subject : str, optional
        Column of raw subject identifiers: pseudonymized (keyed HMAC) and left out of the array.
    columns : list of str, optional
        Numeric columns to load, in order; default: every numeric column except ``subject``.
        A requested column that is not numeric raises :class:`SchemaMismatchError`.
    name : str, optional
        Source name; defaults to the file name.
    schema : mapping, optional
        Declared column specs (``"float"``, ``{"dtype": "int", "min": 0}`` or
        :class:`ColumnSpec`) checked per row at ingestion.
    on_invalid : {"record", "drop", "raise"}
        What schema violations do: record ``rows.validation_failed`` events and keep the rows,
        record them and drop the rows (a recorded filter), or raise before writing anything.

    Examples
    --------
    >>> import tempfile, pathlib, rowtrail as rt
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "c.csv").write_text("id,age,income\na1,30,100\na2,45,250\n")
    >>> X = rt.load_csv(d / "c.csv", workspace=rt.init(d / "ws"), subject="id")
    >>> X.shape, rt.lineage(X[X[:, 0] > 40]).sources()
    ((2, 2), {'c.csv': [1]})
    """
    if on_invalid not in _ON_INVALID:
        raise InvalidInputError(
            f"on_invalid of load_csv must be one of {_ON_INVALID}; got {on_invalid!r}"
        )
    file = Path(path)
    header, body, raw = _read_rows(file)
    wanted = _choose_columns(header, subject, columns)
    specs = check_schema(schema, header)
    cells = _column_cells(header, body)
    matrix, names = _numeric_matrix(cells, wanted, columns is not None, len(body))
    violations = validate_columns(specs, cells)
    if violations and on_invalid == "raise":
        report = ValidationReport(file.name if name is None else name, len(body), tuple(violations))
        raise SchemaMismatchError(
            f"rows of load_csv must satisfy the declared schema; {report.invalid_rows().size} rows "
            f"of {file} do not: {[v.to_json() for v in violations][:5]}"
        )
    ws = _context.resolve_workspace(workspace)
    declared = {h: ("float64" if h in names else "str") for h in header}
    info = register_source(
        ws,
        name=file.name if name is None else name,
        digest=DIGEST_PREFIX + hashlib.sha256(raw).hexdigest(),
        format="csv",
        schema=declared,
        n_rows=len(body),
        path=str(file.resolve()),
        subject_column=subject,
        subject_ids=None if subject is None else cells[subject].tolist(),
    )
    node = source_node(info, ws)
    node.params = {**(node.params or {}), "columns": names}
    if specs:
        pseudonyms = _violating_pseudonyms(ws, cells, subject, violations)
        indices = record_violations(ws, info, violations, pseudonyms) if violations else ()
        _REPORTS[node] = ValidationReport(info.name, info.n_rows, tuple(violations), indices)
    if violations and on_invalid == "drop":
        return _drop_invalid(matrix, node, _REPORTS[node])
    keep = keep_mask(info.index, len(matrix))
    if keep is not None:  # inside excluding_rows(): the excluded rows leave as a filter
        return wrap(matrix[keep], Node("exclude_rows", "filter", (node,), (Mask(keep),),
                                       int(keep.sum())))
    return wrap(matrix, node)


def _drop_invalid(matrix: NDArray[np.float64], node: Node, report: ValidationReport) -> TracedArray:
    """Return the rows that passed validation, as a recorded filter of the source."""
    keep = np.ones(len(matrix), dtype=bool)
    keep[report.invalid_rows()] = False
    drop = Node("drop_invalid", "filter", (node,), (Mask(keep),), int(keep.sum()))
    return wrap(matrix[keep], drop)


def _violating_pseudonyms(
    ws: Any, cells: Mapping[str, NDArray[Any]], subject: str | None, violations: Sequence[Any]
) -> list[str | None] | None:
    if subject is None or not violations:
        return None
    column = cells[subject]
    rows = {r for v in violations for r in v.row_numbers}
    return [
        ws.pseudonymize(column[i]) if i in rows and column[i] != "" else None
        for i in range(len(column))
    ]
