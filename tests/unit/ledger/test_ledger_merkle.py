"""RFC 9162 Merkle hashing and proofs, against a naive recursive reference written from the RFC."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rowtrail.errors import ConsistencyProofError, InclusionProofError, InvalidInputError
from rowtrail.ledger import (
    EMPTY_ROOT,
    compute_consistency_path,
    compute_inclusion_path,
    compute_root,
    leaf_hash,
    node_hash,
    root_from_inclusion_path,
    verify_consistency,
    verify_inclusion,
)
from rowtrail.ledger._merkle import extend_tree, leaf_hashes

# ---------------------------------------------------------------- reference (RFC 9162 §2.1)


def ref_mth(entries: Sequence[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 §2.1.1 defines it (recursive, on entries)."""
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + ref_mth(entries[:k]) + ref_mth(entries[k:])).digest()


def ref_path(m: int, entries: Sequence[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1."""
    n = len(entries)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, entries[:k]), ref_mth(entries[k:])]
    return [*ref_path(m - k, entries[k:]), ref_mth(entries[:k])]


def ref_subproof(m: int, entries: Sequence[bytes], complete: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 §2.1.4.1."""
    n = len(entries)
    if m == n:
        return [] if complete else [ref_mth(entries)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, entries[:k], complete), ref_mth(entries[k:])]
    return [*ref_subproof(m - k, entries[k:], False), ref_mth(entries[:k])]


def entries_of(n: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randrange(0, 40)) for _ in range(n)]


def reader(entries: Sequence[bytes]):  # type: ignore[no-untyped-def]
    hashes = leaf_hashes(entries)
    return lambda a, b: compute_root(hashes[a:b])


# ---------------------------------------------------------------- hashing


def test_domain_separation() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert (
        node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(b"\x01" + b"a" * 32 + b"b" * 32).digest()
    )
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    # A leaf can never pose as a node: the prefixes differ.
    assert leaf_hash(b"\x01" + b"a" * 64) != node_hash(b"a" * 32, b"a" * 32)


def test_leaf_hashes_batch_equals_single() -> None:
    entries = entries_of(50)
    assert leaf_hashes(entries) == [leaf_hash(e) for e in entries]


@pytest.mark.parametrize("n", [*range(0, 34), 63, 64, 65, 100, 127, 128, 129, 257])
def test_root_matches_reference(n: int) -> None:
    entries = entries_of(n, seed=n)
    assert compute_root(leaf_hashes(entries)) == ref_mth(entries)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 17, 31, 33, 100])
def test_every_inclusion_path_matches_reference(n: int) -> None:
    entries = entries_of(n, seed=n)
    root = ref_mth(entries)
    for m in range(n):
        path = compute_inclusion_path(m, n, reader(entries))
        assert path == ref_path(m, entries)
        verify_inclusion(m, n, leaf_hash(entries[m]), path, root)
        assert root_from_inclusion_path(m, n, leaf_hash(entries[m]), path) == root


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64, 65])
def test_every_consistency_path_matches_reference(n: int) -> None:
    entries = entries_of(n, seed=n)
    for m in range(1, n + 1):
        path = compute_consistency_path(m, n, reader(entries))
        assert path == ref_subproof(m, entries, True)
        verify_consistency(m, n, ref_mth(entries[:m]), ref_mth(entries), path)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=300), st.data())
def test_append_prove_verify(n: int, data: st.DataObject) -> None:
    entries = entries_of(n, seed=n)
    index = data.draw(st.integers(min_value=0, max_value=n - 1))
    old = data.draw(st.integers(min_value=1, max_value=n))
    read = reader(entries)
    root = compute_root(leaf_hashes(entries))
    verify_inclusion(
        index, n, leaf_hash(entries[index]), compute_inclusion_path(index, n, read), root
    )
    verify_consistency(old, n, read(0, old), root, compute_consistency_path(old, n, read))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=8))
def test_extend_tree_stores_every_perfect_subtree(batches: list[int]) -> None:
    """Appending in batches yields every perfect subtree exactly once, with the right hash."""
    nodes: dict[tuple[int, int], bytes] = {}
    hashes: list[bytes] = []
    for count in batches:
        new = leaf_hashes(entries_of(count, seed=len(hashes)))
        for level, index, value in extend_tree(len(hashes), new, lambda lv, ix: nodes[(lv, ix)]):
            assert (level, index) not in nodes
            nodes[(level, index)] = value
        hashes.extend(new)
    expected = {
        (level, index): compute_root(hashes[index << level : (index + 1) << level])
        for level in range(len(hashes).bit_length())
        for index in range(len(hashes) >> level)
    }
    assert nodes == expected


def test_extend_tree_without_leaves() -> None:
    new = leaf_hashes(entries_of(4))
    nodes = extend_tree(0, new, lambda lv, ix: b"", include_leaves=False)
    assert sorted((lv, ix) for lv, ix, _ in nodes) == [(1, 0), (1, 1), (2, 0)]


# ---------------------------------------------------------------- verification raises

ENTRIES = entries_of(13, seed=1)
ROOT = ref_mth(ENTRIES)
PATH = ref_path(6, ENTRIES)
LEAF = leaf_hash(ENTRIES[6])


@pytest.mark.parametrize(
    ("index", "size", "leaf", "path", "root", "match"),
    [
        (7, 13, LEAF, PATH, ROOT, "gives root"),
        (6, 7, LEAF, PATH, ROOT, "root|hashes"),
        (6, 13, leaf_hash(b"x"), PATH, ROOT, "gives root"),
        (6, 13, LEAF, PATH[:-1], ROOT, "needs more"),
        (6, 13, LEAF, [*PATH, PATH[0]], ROOT, "needs fewer"),
        (6, 13, LEAF, [PATH[0][:31], *PATH[1:]], ROOT, "32 bytes"),
        (6, 13, LEAF, PATH, ROOT[:31], "32 bytes"),
        (6, 13, LEAF[:31], PATH, ROOT, "32 bytes"),
        (13, 13, LEAF, PATH, ROOT, "outside"),
        (-1, 13, LEAF, PATH, ROOT, "outside"),
        (0, 0, LEAF, [], EMPTY_ROOT, "outside"),
    ],
    ids=[
        "wrong-index",
        "wrong-size",
        "wrong-leaf",
        "short",
        "long",
        "short-hash",
        "short-root",
        "short-leaf",
        "index-eq-size",
        "negative",
        "empty-tree",
    ],
)
def test_bad_inclusion_raises(
    index: int, size: int, leaf: bytes, path: list[bytes], root: bytes, match: str
) -> None:
    with pytest.raises(InclusionProofError, match=match):
        verify_inclusion(index, size, leaf, path, root)


def test_every_single_bit_flip_of_a_path_is_detected() -> None:
    for position in range(len(PATH)):
        for bit in range(0, 256, 37):
            path = list(PATH)
            flipped = bytearray(path[position])
            flipped[bit // 8] ^= 1 << (bit % 8)
            path[position] = bytes(flipped)
            with pytest.raises(InclusionProofError):
                verify_inclusion(6, 13, LEAF, path, ROOT)


CONS = ref_subproof(5, ENTRIES, True)
OLD = ref_mth(ENTRIES[:5])


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "path", "match"),
    [
        (5, 13, OLD, ROOT, CONS[:-1], "shorter"),
        (5, 13, OLD, ROOT, [*CONS, CONS[0]], "longer"),
        (5, 13, ROOT, ROOT, CONS, "old root"),
        (5, 13, OLD, OLD, CONS, "new root"),
        (4, 13, OLD, ROOT, CONS, "root|longer|shorter"),
        (0, 13, EMPTY_ROOT, ROOT, [], "0 < old_size"),
        (13, 5, ROOT, OLD, CONS, "0 < old_size"),
        (13, 13, ROOT, ROOT, [ROOT], "empty proof"),
        (13, 13, ROOT, OLD, [], "different roots"),
        (5, 13, OLD, ROOT, [], "empty"),
        (5, 13, OLD, ROOT, [CONS[0][:5], *CONS[1:]], "32 bytes"),
        (5, 13, OLD[:3], ROOT, CONS, "32 bytes"),
    ],
    ids=[
        "short",
        "long",
        "wrong-old-root",
        "wrong-new-root",
        "wrong-old-size",
        "old-zero",
        "reversed",
        "equal-nonempty",
        "equal-different",
        "empty",
        "short-hash",
        "short-root",
    ],
)
def test_bad_consistency_raises(
    old: int, new: int, old_root: bytes, new_root: bytes, path: list[bytes], match: str
) -> None:
    verify_consistency(5, 13, OLD, ROOT, CONS)  # the unmodified proof holds
    with pytest.raises(ConsistencyProofError, match=match):
        verify_consistency(old, new, old_root, new_root, path)


def test_proof_generation_rejects_bad_ranges() -> None:
    read = reader(ENTRIES)
    with pytest.raises(InvalidInputError):
        compute_inclusion_path(13, 13, read)
    with pytest.raises(InvalidInputError):
        compute_consistency_path(0, 13, read)
    with pytest.raises(InvalidInputError):
        compute_consistency_path(14, 13, read)
