"""The synthetic 3-table credit data on disk, a workspace, and the raw-key ground truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rowtrail as rt


@dataclass
class CreditFiles:
    """Where the tables are and, per applicant key, its true rows in each table."""

    data: object
    app_keys: np.ndarray
    bureau_keys: np.ndarray
    prev_keys: np.ndarray

    def truth(self, key: int) -> dict[str, list[int]]:
        out = {"application": np.flatnonzero(self.app_keys == key).tolist()}
        bureau = np.flatnonzero(self.bureau_keys == key).tolist()
        prev = np.flatnonzero(self.prev_keys == key).tolist()
        if bureau:
            out["bureau"] = bureau
        if prev:
            out["previous_application"] = prev
        return out


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[rt.Workspace]:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


def _keys(path: Path) -> np.ndarray:
    import csv

    with open(path, newline="") as handle:
        return np.array([int(r["SK_ID_CURR"]) for r in csv.DictReader(handle)])


@pytest.fixture(scope="module")
def credit_files(tmp_path_factory: pytest.TempPathFactory) -> CreditFiles:
    from rowtrail.datasets import credit

    directory = tmp_path_factory.mktemp("credit")
    csv = credit(n_applicants=200, seed=7, out_dir=directory / "csv")
    credit(n_applicants=200, seed=7, out_dir=directory / "parquet", format="parquet")
    return CreditFiles(
        csv,
        _keys(csv.application_path),
        _keys(csv.bureau_path),
        _keys(csv.previous_application_path),
    )
