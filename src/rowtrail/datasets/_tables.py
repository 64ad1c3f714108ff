"""In-memory column tables for the synthetic datasets and their deterministic CSV/Parquet writers.

A table is an insertion-ordered ``dict`` of equally long NumPy columns. Three column kinds
exist: ``int64`` (never missing), ``float64`` (missing as NaN) and ``object`` holding ``str``
(missing as ``None``). Both writers turn a missing value into an empty field / a null, so pandas,
polars and pyarrow read the same values back from either format.

The CSV writer uses only the standard library, so the bytes it writes do not depend on which
optional packages are installed: the same table always gives the same file.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require

__all__ = ["Table", "reorder", "write_csv", "write_parquet"]

Table: TypeAlias = dict[str, NDArray[Any]]


def reorder(table: Table, order: NDArray[np.intp]) -> Table:
    """Return ``table`` with every column gathered through the row permutation ``order``."""
    return {name: column[order] for name, column in table.items()}


def _python_values(column: NDArray[Any]) -> list[Any]:
    """Return the column as Python values with ``None`` for every missing value."""
    if column.dtype.kind == "f":
        values = column.astype(object)
        values[np.isnan(column)] = None
        return values.tolist()  # type: ignore[no-any-return]
    return column.tolist()  # type: ignore[no-any-return]


def write_csv(table: Table, path: Path) -> None:
    """Write ``table`` to ``path`` as comma-separated text with a header row.

    Floats are written in Python's shortest round-trip form, missing values as empty fields,
    lines end with a bare line feed, and the file is UTF-8.
    """
    columns = [_python_values(column) for column in table.values()]
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(table.keys())
        writer.writerows(zip(*columns, strict=True))


def write_parquet(table: Table, path: Path, *, feature: str) -> None:
    """Write ``table`` to ``path`` as a Parquet file (snappy), missing values as nulls.

    ``feature`` names the public entry point in the install hint when pyarrow is absent.
    """
    pyarrow = require("pyarrow", extra="pandas", feature=feature)
    parquet = require("pyarrow.parquet", extra="pandas", feature=feature)
    arrays = {}
    for name, column in table.items():
        if column.dtype.kind == "f":
            missing = np.isnan(column)
            arrays[name] = pyarrow.array(column, mask=missing if missing.any() else None)
        elif column.dtype.kind == "O":
            arrays[name] = pyarrow.array(column.tolist(), type=pyarrow.string())
        else:
            arrays[name] = pyarrow.array(column)
    parquet.write_table(pyarrow.table(arrays), str(path), compression="snappy")
