"""The synthetic Home-Credit-shaped credit dataset: three linked tables written to disk.

``application`` has one row per applicant (key ``SK_ID_CURR``, raw subject identifier
``applicant_id``, label ``TARGET``); ``bureau`` (key ``SK_ID_BUREAU``) and
``previous_application`` (key ``SK_ID_PREV``) have zero or more rows per applicant and refer to
it through ``SK_ID_CURR``. The column generators live in ``_credit_tables``.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.datasets._credit_tables import (
    draw_counts,
    make_application,
    make_bureau,
    make_previous_application,
)
from rowtrail.datasets._tables import Table, reorder, write_csv, write_parquet
from rowtrail.errors import InvalidInputError

__all__ = ["CreditDataset", "credit"]

_CALLER = "rt.datasets.credit()"
_MAX_APPLICANTS = 10_000_000
_FORMATS = ("csv", "parquet")
_TARGET_RATE = 0.0807  # share of defaults in Home Credit's application_train
# Child rows per applicant, in the 5.3 : 3.7 proportion of the seed data, scaled so that 20,000
# applicants give about 180,000 rows over the three tables.
_BUREAU_PER_APPLICANT = 4.71
_PREVIOUS_PER_APPLICANT = 3.29

TABLES = ("application", "bureau", "previous_application")


@dataclass(frozen=True)
class CreditDataset:
    """Where :func:`credit` wrote the three tables, and how they are keyed.

    Attributes
    ----------
    application_path, bureau_path, previous_application_path : pathlib.Path
        The written files.
    n_applicants, n_bureau, n_previous_application : int
        Row counts of the three tables.
    seed : int
        The seed the data was generated from.
    format : {"csv", "parquet"}
        The file format.
    subject_column : str
        The column of ``application`` holding the raw subject identifier.
    target_column : str
        The column of ``application`` holding the 0/1 default label.
    foreign_key : str
        The column of ``bureau`` and ``previous_application`` naming their applicant.
    """

    application_path: Path
    bureau_path: Path
    previous_application_path: Path
    n_applicants: int
    n_bureau: int
    n_previous_application: int
    seed: int
    format: Literal["csv", "parquet"]
    subject_column: str = "applicant_id"
    target_column: str = "TARGET"
    foreign_key: str = "SK_ID_CURR"

    @property
    def key_columns(self) -> dict[str, str]:
        """Primary key column of each table, by table name."""
        return {
            "application": "SK_ID_CURR",
            "bureau": "SK_ID_BUREAU",
            "previous_application": "SK_ID_PREV",
        }

    @property
    def paths(self) -> dict[str, Path]:
        """File of each table, by table name."""
        return dict(
            zip(
                TABLES,
                (self.application_path, self.bureau_path, self.previous_application_path),
                strict=True,
            )
        )

    @property
    def n_rows(self) -> dict[str, int]:
        """Row count of each table, by table name."""
        counts = (self.n_applicants, self.n_bureau, self.n_previous_application)
        return dict(zip(TABLES, counts, strict=True))

    @property
    def n_total_rows(self) -> int:
        """Rows over all three tables."""
        return self.n_applicants + self.n_bureau + self.n_previous_application


def _check_args(n_applicants: object, seed: object, out_dir: object, format: object) -> Path:
    """Validate the arguments of :func:`credit`; return ``out_dir`` as a path."""
    if (
        isinstance(n_applicants, bool)
        or not isinstance(n_applicants, numbers.Integral)
        or not 1 <= int(n_applicants) <= _MAX_APPLICANTS
    ):
        raise InvalidInputError(
            f"n_applicants of {_CALLER} must be an integer in [1, {_MAX_APPLICANTS}]; "
            f"got {n_applicants!r}. Pass how many applicants to generate, e.g. 20000."
        )
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or int(seed) < 0:
        raise InvalidInputError(
            f"seed of {_CALLER} must be a non-negative integer; got {seed!r}. "
            "Pass a fixed seed such as 0 to get reproducible files."
        )
    if format not in _FORMATS:
        raise InvalidInputError(
            f"format of {_CALLER} must be one of {', '.join(map(repr, _FORMATS))}; "
            f"got {format!r}. Choose 'csv' or 'parquet'."
        )
    if not isinstance(out_dir, str | os.PathLike):
        raise InvalidInputError(
            f"out_dir of {_CALLER} must be a path (str or os.PathLike); got {out_dir!r}. "
            "Pass the directory to write the three tables into."
        )
    path = Path(out_dir)
    if path.exists() and not path.is_dir():
        raise InvalidInputError(
            f"out_dir of {_CALLER} must be a directory or a path that does not exist yet; "
            f"got {str(path)!r}, which is a file. Pass a directory path instead."
        )
    return path


def _calibrated_target(rng: np.random.Generator, logit: NDArray[np.float64]) -> NDArray[np.int64]:
    """Draw 0/1 labels whose expected default rate is :data:`_TARGET_RATE`.

    The intercept is found by bisection on the realised logits, so the rate holds at every size.
    """
    low, high = -20.0, 20.0
    for _ in range(60):
        middle = (low + high) / 2
        rate = float(np.mean(1.0 / (1.0 + np.exp(-(logit + middle)))))
        low, high = (middle, high) if rate < _TARGET_RATE else (low, middle)
    probability = 1.0 / (1.0 + np.exp(-(logit + (low + high) / 2)))
    return (rng.random(logit.size) < probability).astype(np.int64)


def generate_credit_tables(n_applicants: int, seed: int) -> dict[str, Table]:
    """Generate the three tables in memory, keyed by table name (see :func:`credit`)."""
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)]
    ids_rng, app_rng, bureau_rng, prev_rng = streams
    curr_ids = 100_001 + np.cumsum(1 + ids_rng.poisson(0.4, n_applicants)).astype(np.int64)
    applicants = make_application(app_rng, curr_ids)
    n_bureau = draw_counts(bureau_rng, n_applicants, mean=_BUREAU_PER_APPLICANT, p_zero=0.14)
    n_prev = draw_counts(prev_rng, n_applicants, mean=_PREVIOUS_PER_APPLICANT, p_zero=0.05)
    owner_b = np.repeat(np.arange(n_applicants), n_bureau)
    owner_p = np.repeat(np.arange(n_applicants), n_prev)
    bureau, bureau_signal = make_bureau(bureau_rng, owner_b, curr_ids, applicants.risk)
    previous, prev_signal = make_previous_application(prev_rng, owner_p, curr_ids, applicants.risk)
    logit = applicants.base_logit + bureau_signal.logit + prev_signal.logit
    application = dict(applicants.table)
    target = _calibrated_target(ids_rng, logit)
    application = {"SK_ID_CURR": application.pop("SK_ID_CURR"), "TARGET": target, **application}
    return {
        "application": application,
        # Child tables arrive grouped by applicant; real extracts are not, so shuffle them.
        "bureau": reorder(bureau, bureau_rng.permutation(owner_b.size)),
        "previous_application": reorder(previous, prev_rng.permutation(owner_p.size)),
    }


def credit(
    *,
    n_applicants: int = 20_000,
    seed: int = 0,
    out_dir: str | os.PathLike[str],
    format: Literal["csv", "parquet"] = "csv",
) -> CreditDataset:
    """Write a synthetic, Home-Credit-shaped three-table credit dataset and describe it.

    The tables are ``application`` (one row per applicant, with the raw subject identifier
    ``applicant_id`` and the default label ``TARGET``, about 8% positive), ``bureau`` (about 4.7
    rows per applicant, 14% of applicants have none) and ``previous_application`` (about 3.3
    rows per applicant, 5% have none). Missing values, the ``DAYS_EMPLOYED == 365243``
    placeholder for pensioners, shuffled child rows and category spellings follow the public Home
    Credit data. The label depends on a hidden risk that the external scores, bureau arrears and
    previous refusals reveal in part, so it can be learned from the columns. Files are named
    ``<table>.csv`` or ``<table>.parquet`` and are overwritten if present.

    Parameters
    ----------
    n_applicants : int, default 20000
        Rows of ``application``, between 1 and 10,000,000. 20,000 give about 180,000 rows.
    seed : int, default 0
        Non-negative seed. The same seed and size give byte-identical files (for Parquet, with
        the same pyarrow version); different seeds give different data.
    out_dir : str or os.PathLike
        Directory to write into; created (with parents) if missing.
    format : {"csv", "parquet"}, default "csv"
        ``"parquet"`` needs pyarrow (``pip install 'rowtrail[pandas]'``).

    Returns
    -------
    CreditDataset
        Paths, row counts, key and subject columns, and the seed.

    Raises
    ------
    InvalidInputError
        If ``n_applicants`` or ``seed`` is out of range, ``format`` is unknown, or ``out_dir``
        is an existing file.
    MissingDependencyError
        If ``format="parquet"`` and pyarrow is not installed.

    Examples
    --------
    >>> import tempfile
    >>> import rowtrail.datasets
    >>> data = rowtrail.datasets.credit(n_applicants=50, seed=0, out_dir=tempfile.mkdtemp())
    >>> data.n_applicants, data.subject_column, data.key_columns["bureau"]
    (50, 'applicant_id', 'SK_ID_BUREAU')
    """
    path = _check_args(n_applicants, seed, out_dir, format)
    feature = f"{_CALLER[:-1]}format='parquet')"
    if format == "parquet":
        require("pyarrow", extra="pandas", feature=feature)
    tables = generate_credit_tables(int(n_applicants), int(seed))
    path.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, table in tables.items():
        files[name] = path / f"{name}.{format}"
        if format == "csv":
            write_csv(table, files[name])
        else:
            write_parquet(table, files[name], feature=feature)
    return CreditDataset(
        application_path=files["application"],
        bureau_path=files["bureau"],
        previous_application_path=files["previous_application"],
        n_applicants=int(n_applicants),
        n_bureau=len(tables["bureau"]["SK_ID_BUREAU"]),
        n_previous_application=len(tables["previous_application"]["SK_ID_PREV"]),
        seed=int(seed),
        format=format,
    )
