from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.hashing import file_digest
from rowtrail.lineage import register_source

NUMERIC = ["CNT_CHILDREN", "DAYS_BIRTH", "AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY",
           "EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3"]


@dataclass
class Credit:
    ws: rt.Workspace
    xs: np.ndarray
    y: np.ndarray
    row_ids: np.ndarray
    applicant_ids: list[str]


def load_credit(ws: rt.Workspace, directory: Path, n: int, seed: int = 0) -> Credit:
    from rowtrail.datasets import credit

    data = credit(n_applicants=n, seed=seed, out_dir=directory)
    with open(data.application_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    xs = np.array([[float(r[c]) if r[c] else np.nan for c in NUMERIC] for r in rows])
    xs = np.where(np.isnan(xs), np.nanmean(xs, axis=0), xs)
    xs = (xs - xs.mean(axis=0)) / xs.std(axis=0)
    y = np.array([float(r["TARGET"]) for r in rows])
    ids = [r["applicant_id"] for r in rows]
    info = register_source(
        ws, name="application.csv", digest=file_digest(data.application_path), format="csv",
        schema={c: "float" for c in NUMERIC}, n_rows=len(rows), path=str(data.application_path),
        subject_column="applicant_id", subject_ids=ids,
    )
    return Credit(ws, xs, y, info.row_ids(), ids)


@pytest.fixture
def ws(tmp_path: Path) -> rt.Workspace:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def credit_data(ws: rt.Workspace, tmp_path: Path) -> Credit:
    return load_credit(ws, tmp_path / "credit", 400)
