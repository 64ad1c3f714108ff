"""Subtree proofs (draft-ietf-plants-merkle-tree-certs) against a naive recursive reference."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ledger_merkle import entries_of, ref_mth, ref_path, ref_subproof

from rowtrail.errors import ConsistencyProofError, InclusionProofError
from rowtrail.ledger import (
    EMPTY_ROOT,
    check_subtree,
    leaf_hash,
    verify_consistency,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)


def ref_subtree_proof(
    start: int, end: int, entries: Sequence[bytes], known: bool = True
) -> list[bytes]:
    """Subtree consistency proof by recursion on the RFC 9162 split, like SUBPROOF.

    ``known`` says whether the verifier holds the hash of the current node (RFC 9162's ``b``):
    it does for the subtree itself, not for a straddled part of ``[0, end)``.
    """
    n = len(entries)
    if start == 0 and end == n:
        return [] if known else [ref_mth(entries)]
    k = 1
    while k * 2 < n:
        k *= 2
    if end <= k:
        return [*ref_subtree_proof(start, end, entries[:k], known), ref_mth(entries[k:])]
    if start >= k:
        return [*ref_subtree_proof(start - k, end - k, entries[k:], known), ref_mth(entries[:k])]
    # Only [0, end) straddles the split (a valid subtree starting later cannot).
    return [*ref_subtree_proof(0, end - k, entries[k:], False), ref_mth(entries[:k])]


def valid_subtrees(n: int) -> list[tuple[int, int]]:
    found = []
    for end in range(1, n + 1):
        for start in range(end):
            try:
                check_subtree(start, end)
            except ConsistencyProofError:
                continue
            found.append((start, end))
    return found


def test_reference_matches_rfc9162_from_zero() -> None:
    entries = entries_of(37, seed=3)
    for m in range(1, 38):
        assert ref_subtree_proof(0, m, entries) == ref_subproof(m, entries, True)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 16, 17, 31, 33])
def test_every_valid_subtree_of_small_trees(n: int) -> None:
    entries = entries_of(n, seed=n)
    root = ref_mth(entries)
    for start, end in valid_subtrees(n):
        sub = ref_mth(entries[start:end])
        verify_subtree_consistency(
            ref_subtree_proof(start, end, entries), sub, root, start=start, end=end, size=n
        )
        for index in {start, (start + end) // 2, end - 1}:
            path = ref_path(index - start, entries[start:end])
            verify_subtree_inclusion(
                index, leaf_hash(entries[index]), path, sub, start=start, end=end
            )


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.data())
def test_subtree_proofs_property(n: int, data: st.DataObject) -> None:
    entries = entries_of(n, seed=n)
    root = ref_mth(entries)
    subtrees = valid_subtrees(min(n, 70)) if n <= 70 else [(0, n), (n - 1, n), (0, n // 2 or 1)]
    start, end = data.draw(st.sampled_from(subtrees))
    sub = ref_mth(entries[start:end])
    path = ref_subtree_proof(start, end, entries)
    verify_subtree_consistency(path, sub, root, start=start, end=end, size=n)
    if start == 0 and end < n:  # the same statement as RFC 9162 consistency
        verify_consistency(end, n, sub, root, path)
    if path:
        position = data.draw(st.integers(0, len(path) - 1))
        bad = list(path)
        bad[position] = hashlib.sha256(bad[position]).digest()
        with pytest.raises(ConsistencyProofError):
            verify_subtree_consistency(bad, sub, root, start=start, end=end, size=n)
        with pytest.raises(ConsistencyProofError):
            verify_subtree_consistency(path[:-1], sub, root, start=start, end=end, size=n)
    with pytest.raises(ConsistencyProofError):
        verify_subtree_consistency(
            path, hashlib.sha256(sub).digest(), root, start=start, end=end, size=n
        )


def test_empty_subtree_is_in_every_tree() -> None:
    verify_subtree_consistency([], EMPTY_ROOT, b"any root, unused", start=4, end=4, size=9)
    with pytest.raises(ConsistencyProofError, match="empty root"):
        verify_subtree_consistency([], bytes(32), EMPTY_ROOT, start=4, end=4, size=9)
    with pytest.raises(ConsistencyProofError, match="empty proof"):
        verify_subtree_consistency([bytes(32)], EMPTY_ROOT, EMPTY_ROOT, start=4, end=4, size=9)
    with pytest.raises(ConsistencyProofError, match="beyond"):
        verify_subtree_consistency([], EMPTY_ROOT, EMPTY_ROOT, start=10, end=10, size=9)


@pytest.mark.parametrize(
    ("start", "end"), [(1, 3), (2, 5), (6, 10), (-1, 2), (5, 4), (1, 2 + (1 << 63))]
)
def test_invalid_subtrees(start: int, end: int) -> None:
    with pytest.raises(ConsistencyProofError):
        check_subtree(start, end)
    with pytest.raises(InclusionProofError):
        verify_subtree_inclusion(start, bytes(32), [], bytes(32), start=start, end=end)


def test_subtree_inclusion_errors() -> None:
    entries = entries_of(8)
    sub = ref_mth(entries[4:8])
    path = ref_path(1, entries[4:8])
    verify_subtree_inclusion(5, leaf_hash(entries[5]), path, sub, start=4, end=8)
    with pytest.raises(InclusionProofError, match="outside"):
        verify_subtree_inclusion(3, leaf_hash(entries[5]), path, sub, start=4, end=8)
    with pytest.raises(InclusionProofError, match="gives subtree root"):
        verify_subtree_inclusion(5, leaf_hash(entries[6]), path, sub, start=4, end=8)
    with pytest.raises(InclusionProofError, match="32 bytes"):
        verify_subtree_inclusion(5, leaf_hash(entries[5]), path, sub[:5], start=4, end=8)


def test_whole_tree_as_subtree() -> None:
    entries = entries_of(6)
    root = ref_mth(entries)
    verify_subtree_consistency([], root, root, start=0, end=6, size=6)
    with pytest.raises(ConsistencyProofError, match="empty proof"):
        verify_subtree_consistency([root], root, root, start=0, end=6, size=6)
    with pytest.raises(ConsistencyProofError, match="tree head says"):
        verify_subtree_consistency([], root, EMPTY_ROOT, start=0, end=6, size=6)
    with pytest.raises(ConsistencyProofError, match="proof is empty"):
        verify_subtree_consistency([], ref_mth(entries[:4]), root, start=0, end=4, size=6)
