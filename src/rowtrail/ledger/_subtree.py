"""Subtree inclusion and consistency proofs (draft-ietf-plants-merkle-tree-certs, subtrees).

A *subtree* ``[start, end)`` of an RFC 9162 tree is valid when ``start`` is a multiple of the
smallest power of two not below ``end - start``; it is a node of the tree, or a ragged right
edge, and it names a contiguous range of entries (for rowtrail: the events of one training run,
one ingestion). A subtree inclusion proof shows an entry is in the subtree; a subtree
consistency proof shows the subtree's hash is part of a tree of ``size`` entries, so a range of
entries can be committed to by one hash and checked against a signed tree head. With
``start == 0`` both reduce to RFC 9162 proofs.

The verification follows transparency-dev/merkle's ``proof.VerifySubtreeInclusion`` and
``proof.VerifySubtreeConsistency`` step for step. Verification raises
:class:`~rowtrail.errors.InclusionProofError` or
:class:`~rowtrail.errors.ConsistencyProofError`; it never returns a bool.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from rowtrail.errors import ConsistencyProofError, InclusionProofError
from rowtrail.ledger._merkle import EMPTY_ROOT, _check_hash, _check_path, root_from_inclusion_path

__all__ = ["check_subtree", "verify_subtree_consistency", "verify_subtree_inclusion"]

_NODE = b"\x01"


def check_subtree(start: int, end: int, *, error: type[Exception] = ConsistencyProofError) -> None:
    """Raise ``error`` unless ``[start, end)`` is a valid subtree (empty subtrees are valid).

    Examples
    --------
    >>> check_subtree(4, 8)
    >>> check_subtree(4, 6)
    >>> check_subtree(2, 5)
    Traceback (most recent call last):
    ...
    rowtrail.errors.ConsistencyProofError: subtree start 2 is not a multiple of 4
    """
    if not 0 <= start <= end:
        raise error(f"subtree must satisfy 0 <= start <= end; got [{start}, {end})")
    length = end - start
    if start == 0 or length == 0:
        return
    if length > 1 << 63:
        raise error(f"subtree start must be 0 when its length {length} exceeds 2**63")
    ceiling = 1 << (length - 1).bit_length()
    if start & (ceiling - 1):
        raise error(f"subtree start {start} is not a multiple of {ceiling}")


def verify_subtree_inclusion(
    index: int, leaf: bytes, path: Sequence[bytes], root: bytes, *, start: int, end: int
) -> None:
    """Raise :class:`InclusionProofError` unless ``leaf`` is entry ``index`` of subtree ``root``.

    The proof is the RFC 9162 inclusion proof of entry ``index - start`` in the tree of the
    subtree's ``end - start`` entries.
    """
    check_subtree(start, end, error=InclusionProofError)
    if not start <= index < end:
        raise InclusionProofError(f"index {index} is outside the subtree [{start}, {end})")
    _check_hash(root, "subtree root", InclusionProofError)
    computed = root_from_inclusion_path(index - start, end - start, leaf, path)
    if not hmac.compare_digest(computed, root):
        raise InclusionProofError(
            f"proof for entry {index} gives subtree root {computed.hex()}, expected {root.hex()}"
        )


def verify_subtree_consistency(
    path: Sequence[bytes],
    subtree_root: bytes,
    root: bytes,
    *,
    start: int,
    end: int,
    size: int,
) -> None:
    """Raise :class:`ConsistencyProofError` unless subtree ``[start, end)`` is in the tree.

    ``subtree_root`` is the subtree's hash and ``root`` the hash of the tree of ``size``
    entries. An empty subtree (``start == end``) needs an empty path and the empty root.
    """
    _check_hash(subtree_root, "subtree root", ConsistencyProofError)
    _check_path(path, ConsistencyProofError)
    check_subtree(start, end)
    if end > size:
        raise ConsistencyProofError(f"subtree end {end} is beyond the tree size {size}")
    if start == end:  # in every tree; the tree's root plays no part
        if path:
            raise ConsistencyProofError("an empty subtree needs an empty proof")
        if not hmac.compare_digest(subtree_root, EMPTY_ROOT):
            raise ConsistencyProofError("an empty subtree's root must be the empty root")
        return
    _check_hash(root, "root", ConsistencyProofError)
    if start == 0 and end == size:
        if path:
            raise ConsistencyProofError("the whole tree as a subtree needs an empty proof")
        computed = subtree_root
    elif not path:
        raise ConsistencyProofError("proof is empty but the subtree is not the whole tree")
    else:
        computed = _root_from_subtree_path(list(path), subtree_root, start, end, size)
    if not hmac.compare_digest(computed, root):
        raise ConsistencyProofError(
            f"proof gives root {computed.hex()}, the tree head says {root.hex()}"
        )


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _chain_inner(seed: bytes, path: Sequence[bytes], index: int) -> bytes:
    for level, value in enumerate(path):
        seed = _node(seed, value) if not index >> level & 1 else _node(value, seed)
    return seed


def _chain_inner_right(seed: bytes, path: Sequence[bytes], index: int) -> bytes:
    # Only left siblings: the hash of the earlier version of this subtree.
    for level, value in enumerate(path):
        if index >> level & 1:
            seed = _node(value, seed)
    return seed


def _chain_border_right(seed: bytes, path: Sequence[bytes]) -> bytes:
    for value in path:
        seed = _node(value, seed)
    return seed


def _root_from_subtree_path(
    path: list[bytes], subtree_root: bytes, start: int, end: int, size: int
) -> bytes:
    if end == size:
        # The subtree ends at the tree's right edge: climb with one left sibling per level
        # where the subtree's ancestor is a right child.
        height = ((end - 1) ^ start).bit_length()
        want = (start >> height).bit_count()
        if len(path) != want:
            raise ConsistencyProofError(f"proof has {len(path)} hashes; this subtree needs {want}")
        return _chain_border_right(subtree_root, path)
    fork = ((end - 1) ^ (size - 1)).bit_length()  # where the paths to end-1 and size-1 part
    border = ((end - 1) >> fork).bit_count()
    shift = ((end - start) & -(end - start)).bit_length() - 1  # trailing zeros of end - start
    inner = fork - shift
    perfect = end - start == 1 << shift
    # A perfect subtree is its own rightmost part, whose hash the verifier already has.
    seed, first = (subtree_root, 0) if perfect else (path[0], 1)
    if len(path) != first + inner + border:
        raise ConsistencyProofError(
            f"proof has {len(path)} hashes; this subtree needs {first + inner + border}"
        )
    rest = path[first:]
    mask = (end - 1) >> shift
    if not perfect:
        height = ((end - 1) ^ start).bit_length()
        sub_inner = min(height, fork) - shift
        sub_border = max(0, border - ((end - 1) >> height).bit_count())
        computed = _chain_inner_right(seed, rest[:sub_inner], mask)
        computed = _chain_border_right(computed, rest[inner : inner + sub_border])
        if not hmac.compare_digest(computed, subtree_root):
            raise ConsistencyProofError(
                f"proof gives subtree root {computed.hex()}, expected {subtree_root.hex()}"
            )
    return _chain_border_right(_chain_inner(seed, rest[:inner], mask), rest[inner:])
