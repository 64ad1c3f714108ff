from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowtrail.errors import InvalidInputError, StorageError
from rowtrail.training import (
    decode_batch_sets,
    decode_positions,
    encode_batch_sets,
    encode_positions,
)


@given(st.lists(st.integers(min_value=0, max_value=(1 << 62) - 1), max_size=300))
def test_round_trip(values: list[int]) -> None:
    assert decode_positions(encode_positions(values)).tolist() == values


def test_permutation_costs_bit_width_not_eight_bytes() -> None:
    n = 100_000
    perm = np.random.default_rng(0).permutation(n)
    blob = encode_positions(perm)
    assert np.array_equal(decode_positions(blob), perm)
    # 17 bits per index (n < 2**17) plus a 16-byte header
    assert len(blob) <= 16 + (17 * n + 7) // 8


def test_sequential_draws_compress() -> None:
    blob = encode_positions(np.arange(100_000))
    assert len(blob) < 100_000 * 17 // 8 // 4


@pytest.mark.parametrize("bad", [[-1], [[1, 2]], [1.5]])
def test_bad_input_is_rejected(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="positions of encode_positions"):
        encode_positions(bad)  # type: ignore[arg-type]


def test_corrupt_blob_is_rejected() -> None:
    with pytest.raises(StorageError, match="not a rowtrail position blob"):
        decode_positions(b"XXXX" + bytes(20))
    with pytest.raises(StorageError, match="too few"):
        decode_positions(encode_positions([1, 2, 3, 4000])[:-2])


@given(st.lists(st.lists(st.integers(min_value=0, max_value=5000), max_size=40), max_size=20))
def test_batch_sets_round_trip_sorted_within_each_batch(batches: list[list[int]]) -> None:
    flat = np.array([v for b in batches for v in b], dtype=np.int64)
    blob, order = encode_batch_sets(flat, [len(b) for b in batches])
    decoded = decode_batch_sets(blob)
    assert np.array_equal(decoded, flat[order])
    assert decoded.tolist() == [v for b in batches for v in sorted(b)]


def test_batch_sets_beat_ordered_packing_for_shuffled_epochs() -> None:
    perm = np.random.default_rng(1).permutation(20_000)
    blob, _ = encode_batch_sets(perm, [128] * 156 + [32])
    assert len(blob) * 8 / perm.size < 2 + np.log2(20_000 / 128) + 0.5  # Elias-Fano bound
    assert len(blob) < len(encode_positions(perm)) * 0.7
