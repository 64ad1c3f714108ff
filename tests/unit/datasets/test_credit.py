"""Tests for rowtrail.datasets.credit: the synthetic Home-Credit-shaped three-table dataset."""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Literal

import numpy as np
import pytest

import rowtrail.datasets
from rowtrail.datasets import CreditDataset, credit
from rowtrail.datasets._credit import generate_credit_tables
from rowtrail.errors import InvalidInputError

TABLES = ("application", "bureau", "previous_application")
Columns = dict[str, list[str]]


def read_csv(path: Path) -> Columns:
    """Read a CSV written by credit() into columns of raw strings ("" = missing)."""
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def ints(values: list[str]) -> np.ndarray:
    return np.array([int(v) for v in values], dtype=np.int64)


def floats(values: list[str]) -> np.ndarray:
    return np.array([float(v) if v else np.nan for v in values], dtype=np.float64)


def missing_share(values: list[str]) -> float:
    return sum(v == "" for v in values) / len(values)


@pytest.fixture(scope="module")
def data_5k(tmp_path_factory: pytest.TempPathFactory) -> tuple[CreditDataset, dict[str, Columns]]:
    dataset = credit(n_applicants=5_000, seed=7, out_dir=tmp_path_factory.mktemp("credit5k"))
    return dataset, {name: read_csv(path) for name, path in dataset.paths.items()}


def test_datasets_all_is_complete() -> None:
    public = sorted(
        name
        for name, value in vars(rowtrail.datasets).items()
        if not name.startswith("_")
        and name != "annotations"  # the __future__ feature, not an export
        and not isinstance(value, type(rowtrail))
    )
    assert rowtrail.datasets.__all__ == public
    assert public == ["AdultData", "CreditDataset", "credit", "load_adult"]


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_same_seed_gives_byte_identical_files(
    tmp_path: Path, file_format: Literal["csv", "parquet"]
) -> None:
    first = credit(n_applicants=300, seed=11, out_dir=tmp_path / "a", format=file_format)
    second = credit(n_applicants=300, seed=11, out_dir=tmp_path / "b", format=file_format)
    for table in TABLES:
        assert first.paths[table].read_bytes() == second.paths[table].read_bytes(), table
    assert first.n_rows == second.n_rows


def test_different_seeds_give_different_data(tmp_path: Path) -> None:
    first = credit(n_applicants=300, seed=1, out_dir=tmp_path / "a")
    second = credit(n_applicants=300, seed=2, out_dir=tmp_path / "b")
    for table in TABLES:
        assert first.paths[table].read_bytes() != second.paths[table].read_bytes(), table
    ids_1 = read_csv(first.application_path)["applicant_id"]
    ids_2 = read_csv(second.application_path)["applicant_id"]
    assert set(ids_1).isdisjoint(ids_2)


def test_seed_size_gives_about_180k_rows_in_the_seed_proportions() -> None:
    tables = generate_credit_tables(20_000, 0)
    n_app, n_bureau, n_prev = (len(next(iter(tables[t].values()))) for t in TABLES)
    assert n_app == 20_000
    assert 170_000 <= n_app + n_bureau + n_prev <= 190_000
    assert 4.4 <= n_bureau / n_app <= 5.0
    assert 3.0 <= n_prev / n_app <= 3.6
    assert n_bureau / n_prev == pytest.approx(5.3 / 3.7, rel=0.08)


@pytest.mark.parametrize("n_applicants", [1, 50])
def test_tiny_sizes_write_consistent_tables(tmp_path: Path, n_applicants: int) -> None:
    dataset = credit(n_applicants=n_applicants, seed=3, out_dir=tmp_path)
    columns = {name: read_csv(path) for name, path in dataset.paths.items()}
    assert len(columns["application"]["SK_ID_CURR"]) == n_applicants
    assert len(columns["bureau"]["SK_ID_BUREAU"]) == dataset.n_bureau
    assert len(columns["previous_application"]["SK_ID_PREV"]) == dataset.n_previous_application
    assert dataset.n_total_rows == sum(dataset.n_rows.values())


def test_keys_are_unique_and_every_foreign_key_resolves(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    dataset, columns = data_5k
    for table, key in dataset.key_columns.items():
        keys = ints(columns[table][key])
        assert np.unique(keys).size == keys.size, table
    applicants = set(ints(columns["application"]["SK_ID_CURR"]).tolist())
    for table in ("bureau", "previous_application"):
        foreign = ints(columns[table][dataset.foreign_key])
        assert set(foreign.tolist()) <= applicants, table
        # Child rows are shuffled like real extracts, not grouped by applicant.
        assert np.any(np.diff(foreign) < 0), table
    # Some applicants have no bureau record, some have several.
    per_applicant = np.unique(ints(columns["bureau"]["SK_ID_CURR"]), return_counts=True)[1]
    assert 0.10 <= 1 - per_applicant.size / len(applicants) <= 0.18
    assert per_applicant.max() >= 10


def test_subject_column_holds_distinct_raw_identifiers(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    dataset, columns = data_5k
    subjects = columns["application"][dataset.subject_column]
    assert len(set(subjects)) == len(subjects)
    assert all(re.fullmatch(r"[A-Z]{2}\d{6}[A-D]", s) for s in subjects)


@pytest.mark.parametrize(
    ("table", "column", "low", "high"),
    [
        ("application", "OCCUPATION_TYPE", 0.25, 0.37),
        ("application", "EXT_SOURCE_1", 0.50, 0.62),
        ("application", "EXT_SOURCE_2", 0.0002, 0.01),
        ("application", "EXT_SOURCE_3", 0.16, 0.24),
        ("application", "OWN_CAR_AGE", 0.60, 0.72),
        ("bureau", "AMT_CREDIT_SUM_DEBT", 0.12, 0.18),
        ("bureau", "DAYS_ENDDATE_FACT", 0.30, 0.45),
        ("bureau", "AMT_CREDIT_MAX_OVERDUE", 0.60, 0.70),
        ("previous_application", "AMT_ANNUITY", 0.08, 0.25),
        ("previous_application", "AMT_DOWN_PAYMENT", 0.45, 0.65),
        ("previous_application", "AMT_GOODS_PRICE", 0.15, 0.35),
    ],
)
def test_missing_values_are_present_where_promised(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
    table: str,
    column: str,
    low: float,
    high: float,
) -> None:
    assert low <= missing_share(data_5k[1][table][column]) <= high


def test_keys_labels_and_subjects_are_never_missing(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    columns = data_5k[1]
    never_missing = {
        "application": ["SK_ID_CURR", "applicant_id", "TARGET", "DAYS_EMPLOYED", "AMT_CREDIT"],
        "bureau": ["SK_ID_BUREAU", "SK_ID_CURR", "CREDIT_ACTIVE", "AMT_CREDIT_SUM"],
        "previous_application": ["SK_ID_PREV", "SK_ID_CURR", "NAME_CONTRACT_STATUS"],
    }
    for table, names in never_missing.items():
        for name in names:
            assert missing_share(columns[table][name]) == 0.0, (table, name)


def test_days_employed_anomaly_marks_the_pensioners(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    application = data_5k[1]["application"]
    days_employed = ints(application["DAYS_EMPLOYED"])
    anomaly = days_employed == 365243
    pensioner = np.array(application["NAME_INCOME_TYPE"]) == "Pensioner"
    assert 0.15 <= anomaly.mean() <= 0.22
    np.testing.assert_array_equal(anomaly, pensioner)
    assert np.all(days_employed[~anomaly] <= 0)
    assert np.all(ints(application["DAYS_BIRTH"]) < -20 * 365)


def test_categories_and_amounts_look_like_home_credit(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    columns = data_5k[1]
    application, bureau = columns["application"], columns["bureau"]
    assert set(application["CODE_GENDER"]) == {"F", "M"}
    assert set(application["NAME_CONTRACT_TYPE"]) == {"Cash loans", "Revolving loans"}
    assert set(application["REGION_RATING_CLIENT"]) == {"1", "2", "3"}
    assert {"Active", "Closed"} <= set(bureau["CREDIT_ACTIVE"])
    statuses = set(columns["previous_application"]["NAME_CONTRACT_STATUS"])
    assert statuses == {"Approved", "Canceled", "Refused", "Unused offer"}
    income = floats(application["AMT_INCOME_TOTAL"])
    log_income = np.log(income)
    assert 11.5 <= np.median(log_income) <= 12.3  # median near 147k, as in Home Credit
    assert 0.35 <= log_income.std() <= 0.7
    assert np.all(floats(application["AMT_CREDIT"]) > 0)
    ext = floats(application["EXT_SOURCE_2"])
    assert np.nanmin(ext) > 0.0
    assert np.nanmax(ext) < 1.0


def test_target_rate_is_about_eight_percent(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    target = ints(data_5k[1]["application"]["TARGET"])
    assert set(np.unique(target).tolist()) == {0, 1}
    assert 0.065 <= target.mean() <= 0.095


def test_target_is_learnable_from_a_few_numeric_features(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    metrics = pytest.importorskip("sklearn.metrics")
    application = data_5k[1]["application"]
    names = ["EXT_SOURCE_1", "EXT_SOURCE_2", "EXT_SOURCE_3", "DAYS_BIRTH", "REGION_RATING_CLIENT"]
    features = np.column_stack([floats(application[name]) for name in names])
    features = np.where(np.isnan(features), np.nanmedian(features, axis=0), features)
    features = (features - features.mean(axis=0)) / features.std(axis=0)
    target = ints(application["TARGET"])
    model = linear_model.LogisticRegression().fit(features[:3_500], target[:3_500])
    scores = model.predict_proba(features[3_500:])[:, 1]
    assert metrics.roc_auc_score(target[3_500:], scores) > 0.72


def test_child_tables_carry_signal_about_the_target(
    data_5k: tuple[CreditDataset, dict[str, Columns]],
) -> None:
    columns = data_5k[1]
    application, previous = columns["application"], columns["previous_application"]
    applicant = {key: i for i, key in enumerate(ints(application["SK_ID_CURR"]).tolist())}
    owner = np.array([applicant[int(key)] for key in previous["SK_ID_CURR"]])
    refused = np.array(previous["NAME_CONTRACT_STATUS"]) == "Refused"
    n_refused = np.bincount(owner, weights=refused, minlength=len(applicant))
    target = ints(application["TARGET"]).astype(bool)
    assert n_refused[target].mean() > 1.3 * n_refused[~target].mean()


def test_csv_and_parquet_hold_the_same_values(tmp_path: Path) -> None:
    parquet = pytest.importorskip("pyarrow.parquet")
    from_csv = credit(n_applicants=400, seed=5, out_dir=tmp_path / "csv")
    from_parquet = credit(n_applicants=400, seed=5, out_dir=tmp_path / "pq", format="parquet")
    assert from_csv.n_rows == from_parquet.n_rows
    assert from_parquet.application_path.name == "application.parquet"
    for table in TABLES:
        text = read_csv(from_csv.paths[table])
        stored = parquet.read_table(from_parquet.paths[table])
        assert stored.column_names == list(text)
        for name in stored.column_names:
            values = stored.column(name).to_pylist()
            kind = type(next(v for v in values if v is not None))
            assert values == [_parse(raw, kind) for raw in text[name]], (table, name)
    ext_1 = parquet.read_table(from_parquet.application_path).column("EXT_SOURCE_1")
    assert ext_1.null_count > 0  # missing is a null, not a NaN
    assert not any(isinstance(v, float) and math.isnan(v) for v in ext_1.to_pylist())


def _parse(raw: str, kind: type) -> object:
    return None if raw == "" else kind(raw)


def test_pandas_reads_csv_and_parquet_alike(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from_csv = credit(n_applicants=200, seed=9, out_dir=tmp_path / "csv")
    from_parquet = credit(n_applicants=200, seed=9, out_dir=tmp_path / "pq", format="parquet")
    for table in TABLES:
        frame_csv = pandas.read_csv(from_csv.paths[table])
        frame_parquet = pandas.read_parquet(from_parquet.paths[table])
        pandas.testing.assert_frame_equal(frame_csv, frame_parquet, check_dtype=False)


def test_out_dir_is_created_with_parents(tmp_path: Path) -> None:
    out_dir = tmp_path / "nested" / "credit"
    dataset = credit(n_applicants=20, seed=0, out_dir=str(out_dir))
    assert dataset.paths == {name: out_dir / f"{name}.csv" for name in TABLES}
    assert all(path.is_file() for path in dataset.paths.values())
    assert (dataset.seed, dataset.format, dataset.subject_column) == (0, "csv", "applicant_id")


@pytest.mark.parametrize("n_applicants", [0, -5, 2.5, True, "100", 10_000_001])
def test_bad_n_applicants_is_rejected(tmp_path: Path, n_applicants: object) -> None:
    message = (
        r"n_applicants of rt\.datasets\.credit\(\) must be an integer in \[1, 10000000\]; "
        rf"got {re.escape(repr(n_applicants))}\."
    )
    with pytest.raises(InvalidInputError, match=message):
        credit(n_applicants=n_applicants, out_dir=tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("seed", [-1, 1.5, None])
def test_bad_seed_is_rejected(tmp_path: Path, seed: object) -> None:
    with pytest.raises(InvalidInputError, match=r"seed of rt\.datasets\.credit\(\) must be"):
        credit(n_applicants=10, seed=seed, out_dir=tmp_path)  # type: ignore[arg-type]


def test_unknown_format_is_rejected_with_the_choices(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidInputError,
        match=r"format of rt\.datasets\.credit\(\) must be one of 'csv', 'parquet'; got 'xlsx'\.",
    ):
        credit(n_applicants=10, out_dir=tmp_path, format="xlsx")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_out_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    a_file = tmp_path / "taken.csv"
    a_file.write_text("x\n")
    prefix = r"out_dir of rt\.datasets\.credit\(\) must be"
    with pytest.raises(InvalidInputError, match=prefix + " a directory.*which is a file"):
        credit(n_applicants=10, out_dir=a_file)
    with pytest.raises(
        InvalidInputError, match=prefix + r" a path \(str or os\.PathLike\); got 42"
    ):
        credit(n_applicants=10, out_dir=42)  # type: ignore[arg-type]
    assert a_file.read_text() == "x\n"


def test_errors_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_applicants"):
        credit(n_applicants=0, out_dir=tmp_path)
