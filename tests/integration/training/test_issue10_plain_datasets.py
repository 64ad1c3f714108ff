"""Issue 10: ``run.track`` over plain ``TensorDataset`` / ``Subset`` built from traced arrays.

Row ids must be found from the tensors themselves when they are the memory of traced arrays
(``torch.as_tensor(X)``, ``torch.from_numpy(np.asarray(X))``), compose through ``Subset``,
nested subsets and ``random_split``, and be recorded as "unknown" when the tensors are copies.
Recorded ids are checked against the ``SK_ID_CURR`` column carried through the pipeline by
hand and mapped to rows of the raw files with the ``csv`` module.
"""

# ruff: noqa: N803, N806 - X: the NumPy naming of a feature matrix

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.datasets import credit
from rowtrail.ids import ROW_BITS
from rowtrail.training import read_batches, sample_usage
from rowtrail.training._rows import dataset_row_ids

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

from torch.utils.data import (  # noqa: E402
    ConcatDataset,
    DataLoader,
    Subset,
    TensorDataset,
    random_split,
)

torch.set_num_threads(1)
FEATURES = ["AMT_CREDIT", "AMT_ANNUITY", "b_n", "b_debt"]
MASK = (1 << ROW_BITS) - 1


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


class Credit:
    """A traced credit table, with the rows each applicant's sample must name (from the csv)."""

    def __init__(self, ws: Any, directory: Path) -> None:
        data = credit(n_applicants=120, seed=1, out_dir=directory)
        read = rt.pandas.read_csv
        app = read(data.paths["application"], source="application", subject="applicant_id",
                   workspace=ws)
        bureau = read(data.paths["bureau"], source="bureau", workspace=ws)
        b = bureau.groupby("SK_ID_CURR").agg(
            b_n=("SK_ID_BUREAU", "size"), b_debt=("AMT_CREDIT_SUM_DEBT", "sum")
        )
        table = app.merge(b, on="SK_ID_CURR", how="left").fillna({"b_n": 0, "b_debt": 0.0})
        self.table = table.sort_values("AMT_CREDIT")
        self.keys = self.table["SK_ID_CURR"].to_numpy().astype(np.int64)  # carried by hand
        info = {s.name: s for s in rt.lineage(self.table).source_infos()}
        self.app_index, self.bureau_index = info["application"].index, info["bureau"].index
        self.app_row: dict[int, int] = {}
        self.subject: dict[int, str] = {}
        self.bureau_rows: dict[int, list[int]] = defaultdict(list)
        with open(data.paths["application"], newline="") as handle:
            for row, record in enumerate(csv.DictReader(handle)):
                self.app_row[int(record["SK_ID_CURR"])] = row
                self.subject[int(record["SK_ID_CURR"])] = record["applicant_id"]
        with open(data.paths["bureau"], newline="") as handle:
            for row, record in enumerate(csv.DictReader(handle)):
                self.bureau_rows[int(record["SK_ID_CURR"])].append(row)

    def expected_ids(self, positions: Any = None) -> np.ndarray:
        """Application row id of the samples at ``positions`` of the table (all by default)."""
        keys = self.keys if positions is None else self.keys[np.asarray(positions)]
        rows = np.array([self.app_row[int(k)] for k in keys], dtype=np.int64)
        return (np.int64(self.app_index) << ROW_BITS) | rows

    def arrays(self) -> tuple[Any, Any]:
        """Features and labels as traced float32 arrays (``torch.as_tensor`` shares them)."""
        X = rt.to_numpy(self.table, FEATURES, dtype=np.float32)
        y = rt.to_numpy(self.table, ["TARGET"], dtype=np.float32)[:, 0]
        return X, y


@pytest.fixture
def data(ws: Any, tmp_path: Path) -> Credit:
    return Credit(ws, tmp_path / "credit")


def _train(ws: Any, loaders: dict[str, Any], name: str = "plain") -> str:
    model = torch.nn.Linear(len(FEATURES), 1)
    with ws.training_run(name, model=model) as run:
        for role, loader in loaders.items():
            for batch in run.track(loader, role=role):
                assert batch[0].shape[1] == len(FEATURES)
    return str(run.run_id)


def _drawn(ws: Any, run_id: str, role: str = "train") -> np.ndarray:
    batches = read_batches(ws, run_id, role=role)
    return np.concatenate([b.row_ids for b in batches])


def _split_payloads(ws: Any, run_id: str) -> list[dict[str, Any]]:
    entries = ws.ledger.proven_entries(kind="training.split")
    return [dict(e.event.payload) for e, _ in entries if e.event.payload["run"] == run_id]


def test_issue10_tensor_dataset_from_as_tensor_records_row_ids(ws: Any, data: Credit) -> None:
    X, y = data.arrays()
    dataset = TensorDataset(torch.as_tensor(X), torch.as_tensor(y))
    loader = DataLoader(dataset, batch_size=16, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    run_id = _train(ws, {"train": loader})
    recorded = read_batches(ws, run_id)
    for batch in recorded:
        assert batch.row_ids.tolist() == data.expected_ids(batch.positions).tolist()
    assert sorted(_drawn(ws, run_id).tolist()) == sorted(data.expected_ids().tolist())
    [split] = _split_payloads(ws, run_id)
    assert split["row_ids"] is True
    assert split["lineage"]["aggregated_rows"] is not None  # bureau rows summed per applicant
    # An applicant with bureau rows: used through its own row, found by subject too.
    position = next(i for i, k in enumerate(data.keys.tolist()) if len(data.bureau_rows[k]) > 1)
    key = int(data.keys[position])
    uses = sample_usage(ws, subject=data.subject[key])
    assert [u.kind for u in uses] == ["split", "batch"]
    assert {u.row_id for u in uses} == {int(data.expected_ids([position])[0])}
    # A bureau row reached the sample of its applicant through the aggregation.
    bureau_row = data.bureau_rows[key][-1]
    via = sample_usage(ws, source="bureau", rows=[bureau_row])
    assert [(u.kind, u.via) for u in via] == [("split", "aggregated"), ("batch", "aggregated")]
    assert {u.sample_row_id for u in via} == {int(data.expected_ids([position])[0])}
    # Featurization resolves the same ids (a run and its features must agree).
    ids = dataset_row_ids(ws, dataset, name="features", caller="test")
    assert ids.tolist() == data.expected_ids().tolist()


def test_issue10_from_numpy_subsets_and_random_split_compose(ws: Any, data: Credit) -> None:
    X, y = data.arrays()
    # Copies made by traced ops (the frame's own arrays are read-only, which torch warns about).
    X, y = X.copy(), y.copy()
    base = TensorDataset(torch.from_numpy(np.asarray(X)), torch.from_numpy(np.asarray(y)))
    outer = Subset(base, list(range(10, 110)))
    nested = Subset(outer, [5, 3, 99, 0, 42])
    train, valid = random_split(outer, [80, 20], generator=torch.Generator().manual_seed(1))
    run_id = _train(ws, {
        "train": DataLoader(train, batch_size=16, shuffle=True),
        "validation": DataLoader(valid, batch_size=7),
        "test": DataLoader(nested, batch_size=2),
    })
    outer_positions = np.arange(10, 110)
    expect_train = data.expected_ids(outer_positions[np.asarray(train.indices)])
    expect_valid = data.expected_ids(outer_positions[np.asarray(valid.indices)])
    assert sorted(_drawn(ws, run_id).tolist()) == sorted(expect_train.tolist())
    assert sorted(_drawn(ws, run_id, "validation").tolist()) == sorted(expect_valid.tolist())
    assert _drawn(ws, run_id, "test").tolist() == data.expected_ids(
        outer_positions[[5, 3, 99, 0, 42]]
    ).tolist()
    splits = _split_payloads(ws, run_id)
    assert [(s["role"], s["row_ids"], s["n_samples"]) for s in splits] == [
        ("train", True, 80), ("validation", True, 20), ("test", True, 5)
    ]
    # A row outside every subset was never used: answered with nothing, not "unknown".
    unused = data.app_row[int(data.keys[0])]
    assert sample_usage(ws, source="application", rows=[unused]) == []


def test_issue10_column_slices_and_concat_are_recognised(ws: Any, data: Credit) -> None:
    M = rt.to_numpy(data.table, [*FEATURES, "TARGET"], dtype=np.float64).copy()
    plain = np.asarray(M)
    halves = [
        TensorDataset(torch.from_numpy(plain[:, :4]), torch.from_numpy(plain[:, 4])),
        TensorDataset(torch.as_tensor(M[60:, :4]), torch.as_tensor(M[60:, 4])),
    ]
    run_id = _train(ws, {"train": DataLoader(ConcatDataset(halves), batch_size=32)})
    expected = np.concatenate([data.expected_ids(), data.expected_ids(np.arange(60, 120))])
    assert _drawn(ws, run_id).tolist() == expected.tolist()


def test_issue10_fitted_statistics_reach_every_sample(ws: Any, tmp_path: Path) -> None:
    raw = np.random.default_rng(0).normal(size=(40, 3))
    X = rt.track(raw, source="measurements", workspace=ws)
    scaled = (X - X.mean(axis=0)) / X.std(axis=0)
    kept = scaled[np.asarray(scaled)[:, 0] > -1.0]
    rows = np.flatnonzero(((raw - raw.mean(0)) / raw.std(0))[:, 0] > -1.0)
    dataset = TensorDataset(torch.as_tensor(kept))
    model = torch.nn.Linear(3, 1)
    with ws.training_run("scaled", model=model) as run:
        for _ in run.track(DataLoader(dataset, batch_size=8)):
            pass
    assert (_drawn(ws, run.run_id) & MASK).tolist() == rows.tolist()
    dropped = int(np.setdiff1d(np.arange(40), rows)[0])
    # A dropped row is in no sample, but it shaped the mean and std every sample was scaled by.
    assert [(u.kind, u.via) for u in sample_usage(ws, source="measurements", rows=[dropped])] == [
        ("split", "statistic")
    ]


@pytest.mark.parametrize(
    "convert",
    [
        lambda X: torch.tensor(np.asarray(X)),  # a copy
        lambda X: torch.as_tensor(X, dtype=torch.float64),  # float32 -> float64: a copy
        lambda X: torch.as_tensor(X)[1:],  # rows shifted by one: not row i of X
        lambda X: torch.as_tensor(X).reshape(-1, 2),  # rows split in two
        lambda X: torch.as_tensor(X.astype(">f4")),  # DLPack shares no byte-swapped memory
    ],
    ids=["tensor-copy", "dtype-copy", "shifted-rows", "reshaped", "byte-swapped"],
)
def test_issue10_unrecognised_tensors_record_lineage_unknown(
    ws: Any, data: Credit, convert: Any
) -> None:
    X, _ = data.arrays()
    tensor = convert(X)
    dataset = Subset(TensorDataset(tensor), list(range(0, len(tensor), 2)))
    with ws.training_run("copied") as run:
        for _ in run.track(DataLoader(dataset, batch_size=16)):
            pass
    run_id = str(run.run_id)
    [split] = _split_payloads(ws, run_id)
    assert split["row_ids"] is False
    row = data.app_row[int(data.keys[0])]
    [use] = sample_usage(ws, source="application", rows=[row])
    assert (use.kind, use.run_id, use.row_id) == ("unknown", run_id, None)
    assert "unknown" in (use.reason or "")



class ShiftedDataset(TensorDataset):
    """A TensorDataset whose sample i is row i + 1: its rows cannot be read from its tensors."""

    def __getitem__(self, index: int) -> Any:
        shifted = (index + 1) % len(self)
        return tuple(tensor[shifted] for tensor in self.tensors)


def test_issue10_recognition_needs_row_i_to_be_sample_i(ws: Any, data: Credit) -> None:
    X, y = data.arrays()
    # Labels as a column (a size-1 axis added) are still rows of y; the copied X adds nothing.
    labelled = TensorDataset(torch.tensor(np.asarray(X)), torch.as_tensor(y)[:, None])
    shifted = ShiftedDataset(torch.as_tensor(X), torch.as_tensor(y))
    with ws.training_run("layouts") as run:
        for _ in run.track(DataLoader(labelled, batch_size=32)):
            pass
        for _ in run.track(DataLoader(shifted, batch_size=32), role="validation"):
            pass
    assert _drawn(ws, run.run_id).tolist() == data.expected_ids().tolist()
    assert [(s["role"], s["row_ids"]) for s in _split_payloads(ws, run.run_id)] == [
        ("train", True), ("validation", False)
    ]
