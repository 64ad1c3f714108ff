"""RFC 9162 (Certificate Transparency v2.0) Merkle tree hashing and proofs.

Pure functions over 32-byte SHA-256 hashes, following RFC 9162 §2.1:

* leaf hash ``SHA-256(0x00 || entry)``, interior node ``SHA-256(0x01 || left || right)``;
* a tree of ``n`` leaves splits at the largest power of two ``k < n`` (no duplication);
* inclusion proofs (§2.1.3) and consistency proofs (§2.1.4) are generated from any
  ``subtree_hash(start, end)`` accessor and verified by the algorithms of §2.1.3.2 / §2.1.4.2.

Verification functions raise :class:`~rowtrail.errors.InclusionProofError` or
:class:`~rowtrail.errors.ConsistencyProofError`; they never return a bool.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

from rowtrail.errors import ConsistencyProofError, InclusionProofError, InvalidInputError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "compute_consistency_path",
    "compute_inclusion_path",
    "compute_root",
    "extend_tree",
    "leaf_hash",
    "leaf_hashes",
    "node_hash",
    "root_from_inclusion_path",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
_LEAF, _NODE = b"\x00", b"\x01"  # RFC 9162 §2.1.1 domain separation
EMPTY_ROOT = hashlib.sha256(b"").digest()

SubtreeHash = Callable[[int, int], bytes]
NodeReader = Callable[[int, int], bytes]


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(_LEAF + entry).digest()


def leaf_hashes(entries: Iterable[bytes]) -> list[bytes]:
    """Return :func:`leaf_hash` of every entry (the batched append path)."""
    sha256 = hashlib.sha256
    return [sha256(_LEAF + entry).digest() for entry in entries]


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE + left + right).digest()


def _split(size: int) -> int:
    """Largest power of two strictly smaller than ``size`` (``size >= 2``)."""
    return 1 << ((size - 1).bit_length() - 1)


def compute_root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a whole list of leaf hashes (iteratively, O(n))."""
    if not leaf_hashes:
        return EMPTY_ROOT
    # Folding perfect subtrees left to right gives the same tree as RFC 9162's recursive split.
    stack: list[tuple[int, bytes]] = []
    for value in leaf_hashes:
        size, current = 1, value
        while stack and stack[-1][0] == size:
            left_size, left = stack.pop()
            current = node_hash(left, current)
            size += left_size
        stack.append((size, current))
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root


def compute_inclusion_path(index: int, size: int, subtree_hash: SubtreeHash) -> list[bytes]:
    """Return the inclusion path of leaf ``index`` in the tree of the first ``size`` leaves.

    ``subtree_hash(start, end)`` must return the Merkle hash of leaves ``[start, end)``. The path
    is in RFC 9162 order (nearest the leaf first).
    """
    if not 0 <= index < size:
        raise InvalidInputError(f"index must be in [0, {size}); got {index!r}")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_hash(start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k))
            start += k
    path.reverse()
    return path


def compute_consistency_path(
    old_size: int, new_size: int, subtree_hash: SubtreeHash
) -> list[bytes]:
    """Return the RFC 9162 consistency proof between tree sizes ``old_size`` and ``new_size``."""
    if not 0 < old_size <= new_size:
        raise InvalidInputError(
            f"sizes must satisfy 0 < old_size <= new_size; got {old_size!r}, {new_size!r}"
        )
    path: list[bytes] = []
    start, end, m, complete = 0, new_size, old_size, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(subtree_hash(start + k, end))
            end = start + k
        else:
            path.append(subtree_hash(start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(subtree_hash(start, end))
    path.reverse()
    return path


def _check_hash(value: object, what: str, error: type[Exception]) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise error(f"{what} must be {HASH_SIZE} bytes; got {value!r:.80}")


def _check_path(path: Sequence[bytes], error: type[Exception]) -> None:
    # One pass, with the message built only on failure: this runs on every verification.
    for position, value in enumerate(path):
        if type(value) is not bytes or len(value) != HASH_SIZE:
            _check_hash(value, f"proof hash {position}", error)


def root_from_inclusion_path(
    index: int, size: int, leaf: bytes, path: Sequence[bytes]
) -> bytes:
    """Return the root implied by an inclusion path (RFC 9162 §2.1.3.2), raising if malformed."""
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(leaf, "leaf hash", InclusionProofError)
    _check_path(path, InclusionProofError)
    sha256 = hashlib.sha256
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise InclusionProofError(
                f"proof has {len(path)} hashes; a tree of size {size} needs fewer for index {index}"
            )
        if fn & 1 or fn == sn:
            result = sha256(_NODE + sibling + result).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            result = sha256(_NODE + result + sibling).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise InclusionProofError(
            f"proof has {len(path)} hashes; a tree of size {size} needs more for index {index}"
        )
    return result


def verify_inclusion(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`InclusionProofError` unless ``leaf`` is leaf ``index`` of ``root``.

    Examples
    --------
    >>> leaves = [leaf_hash(bytes([i])) for i in range(5)]
    >>> reader = lambda a, b: compute_root(leaves[a:b])
    >>> verify_inclusion(3, 5, leaves[3], compute_inclusion_path(3, 5, reader),
    ...                  compute_root(leaves))
    """
    _check_hash(root, "root", InclusionProofError)
    computed = root_from_inclusion_path(index, size, leaf, path)
    if not hmac.compare_digest(computed, root):
        raise InclusionProofError(
            f"proof for leaf {index} gives root {computed.hex()}, tree head says {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise :class:`ConsistencyProofError` unless ``new_root`` extends ``old_root``.

    Follows RFC 9162 §2.1.4.2. ``old_size == 0`` is rejected (nothing to prove), and
    ``old_size == new_size`` requires an empty path and equal roots.
    """
    _check_hash(old_root, "old root", ConsistencyProofError)
    _check_hash(new_root, "new root", ConsistencyProofError)
    if old_size <= 0 or new_size < old_size:
        raise ConsistencyProofError(
            f"sizes must satisfy 0 < old_size <= new_size; got {old_size}, {new_size}"
        )
    _check_path(path, ConsistencyProofError)
    if old_size == new_size:
        if path:
            raise ConsistencyProofError("equal sizes need an empty proof")
        if not hmac.compare_digest(old_root, new_root):
            raise ConsistencyProofError("equal sizes but different roots")
        return
    if not path:
        raise ConsistencyProofError("proof is empty but the sizes differ")
    proof = list(path)
    if old_size & (old_size - 1) == 0:  # exact power of two: old root is the first node
        proof.insert(0, old_root)
    sha256 = hashlib.sha256
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    first = second = proof[0]
    for value in proof[1:]:
        if sn == 0:
            raise ConsistencyProofError("proof is longer than the tree sizes allow")
        if fn & 1 or fn == sn:
            first = sha256(_NODE + value + first).digest()
            second = sha256(_NODE + value + second).digest()
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            second = sha256(_NODE + second + value).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ConsistencyProofError("proof is shorter than the tree sizes need")
    if not hmac.compare_digest(first, old_root):
        raise ConsistencyProofError(
            f"proof gives old root {first.hex()}, old head says {old_root.hex()}"
        )
    if not hmac.compare_digest(second, new_root):
        raise ConsistencyProofError(
            f"proof gives new root {second.hex()}, new head says {new_root.hex()}"
        )


def extend_tree(
    size: int,
    new_leaf_hashes: Sequence[bytes],
    read_node: NodeReader,
    *,
    include_leaves: bool = True,
) -> list[tuple[int, int, bytes]]:
    """Return the perfect-subtree nodes completed by appending leaves to a tree of ``size``.

    Each node is ``(level, index, hash)``: level 0 are the new leaves (left out when
    ``include_leaves`` is false), level ``l`` node ``i`` covers leaves
    ``[i * 2**l, (i + 1) * 2**l)``. ``read_node(level, index)`` returns an existing node of
    the right frontier; only O(log n) of them are read. Nodes come level by level, ascending.
    """
    sha256 = hashlib.sha256
    nodes: list[tuple[int, int, bytes]] = []
    level, start, current = 0, size, list(new_leaf_hashes)
    while current:
        if level or include_leaves:
            indices = range(start, start + len(current))
            nodes.extend(zip([level] * len(current), indices, current, strict=True))
        if start & 1:
            current.insert(0, read_node(level, start - 1))
            start -= 1
        current = [
            sha256(_NODE + current[j] + current[j + 1]).digest()
            for j in range(0, len(current) - 1, 2)
        ]
        start >>= 1
        level += 1
    return nodes
