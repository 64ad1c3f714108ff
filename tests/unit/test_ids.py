"""Row ids and subject pseudonyms (rowtrail.ids)."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowtrail.errors import InvalidInputError
from rowtrail.ids import (
    MAX_ROWS_PER_SOURCE,
    MAX_SOURCES,
    ROW_BITS,
    check_pseudonym,
    is_pseudonym,
    make_row_ids,
    normalize_subject,
    pseudonymize,
    pseudonymize_many,
    row_id,
    row_numbers,
    source_indices,
)

SECRET = b"s" * 32


@given(
    st.integers(min_value=0, max_value=MAX_SOURCES - 1),
    st.integers(min_value=0, max_value=MAX_ROWS_PER_SOURCE - 1),
)
def test_row_id_round_trip(source: int, row: int) -> None:
    packed = row_id(source, row)
    assert 0 <= packed < 2**63  # fits int64
    assert source_indices([packed])[0] == source
    assert row_numbers([packed])[0] == row


def test_make_row_ids_matches_row_id() -> None:
    ids = make_row_ids(3, 5)
    assert ids.dtype == np.int64
    assert ids.tolist() == [row_id(3, r) for r in range(5)]
    assert (source_indices(ids) == 3).all()
    assert row_numbers(ids).tolist() == list(range(5))
    assert make_row_ids(0, 0).shape == (0,)


def test_per_source_aggregation_is_a_shift_and_bincount() -> None:
    ids = np.concatenate([make_row_ids(0, 3), make_row_ids(2, 4)])
    assert np.bincount(ids >> ROW_BITS).tolist() == [3, 0, 4]


@pytest.mark.parametrize(
    ("source", "row"), [(-1, 0), (MAX_SOURCES, 0), (0, -1), (0, MAX_ROWS_PER_SOURCE)]
)
def test_row_id_out_of_range(source: int, row: int) -> None:
    with pytest.raises(InvalidInputError, match="must be in"):
        row_id(source, row)


@pytest.mark.parametrize(("source", "n"), [(-1, 1), (0, -1), (0, MAX_ROWS_PER_SOURCE + 1)])
def test_make_row_ids_out_of_range(source: int, n: int) -> None:
    with pytest.raises(InvalidInputError):
        make_row_ids(source, n)


def test_pseudonym_is_keyed_hmac_of_stripped_text() -> None:
    expected = "ps:" + hmac.new(SECRET, b"42", hashlib.sha256).hexdigest()
    assert pseudonymize(SECRET, 42) == expected
    assert pseudonymize(SECRET, " 42 ") == expected
    assert pseudonymize(b"t" * 32, 42) != expected  # another workspace, another pseudonym
    assert is_pseudonym(expected)
    assert check_pseudonym(expected) == expected


def test_pseudonymize_many() -> None:
    assert pseudonymize_many(SECRET, np.array([1, 2])) == [
        pseudonymize(SECRET, 1),
        pseudonymize(SECRET, 2),
    ]


def test_pseudonym_input_errors() -> None:
    with pytest.raises(InvalidInputError, match="at least 16 bytes"):
        pseudonymize(b"short", 1)
    with pytest.raises(InvalidInputError, match="must not be empty"):
        pseudonymize(SECRET, "  ")


@pytest.mark.parametrize("value", ["alice", "ps:" + "0" * 63, "ps:" + "G" * 64, None, 3])
def test_raw_identifiers_are_not_pseudonyms(value: object) -> None:
    assert not is_pseudonym(value)
    with pytest.raises(InvalidInputError, match="raw identifiers are never stored"):
        check_pseudonym(value)


@pytest.mark.parametrize(
    "value",
    [42, np.int64(42), np.int32(42), np.uint8(42), 42.0, np.float64(42.0), np.float32(42.0),
     "42", " 42 ", "42.0", "42.00", np.str_("42")],
)
def test_issue9_integer_subject_spellings_are_one_subject(value: object) -> None:
    assert normalize_subject(value) == "42"
    assert pseudonymize(SECRET, value) == pseudonymize(SECRET, 42)


@pytest.mark.parametrize(
    ("value", "text"),
    [("007", "007"), ("+42", "+42"), ("4.2e1", "4.2e1"), (1.5, "1.5"), ("1.5", "1.5"),
     (np.float32(0.5), "0.5"), ("alice ", "alice"), (-3, "-3"), ("-3.0", "-3"), ("0", "0"),
     ("-0", "0"), (float("inf"), "inf"), ("42.", "42.")],
)
def test_issue9_other_identifiers_keep_their_text(value: object, text: str) -> None:
    assert normalize_subject(value) == text


@pytest.mark.parametrize("value", [None, float("nan"), np.float32("nan"), "", "   "])
def test_issue9_missing_cells_name_no_subject(value: object) -> None:
    assert normalize_subject(value) is None
    with pytest.raises(InvalidInputError, match="must not be empty"):
        pseudonymize(SECRET, value)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_issue9_bools_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInputError, match="must not be a bool"):
        pseudonymize(SECRET, value)


def test_issue9_pandas_missing_values_name_no_subject() -> None:
    pd = pytest.importorskip("pandas")
    assert normalize_subject(pd.NA) is None
    assert normalize_subject(pd.NaT) is None
    column = pd.Series([41, None, 42]).to_numpy()  # read as float64: 41.0, nan, 42.0
    assert column.dtype == np.float64
    assert normalize_subject(column[2]) == "42"
