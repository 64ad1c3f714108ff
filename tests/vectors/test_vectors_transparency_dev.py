"""transparency-dev/merkle probes: every happy and corrupted inclusion/consistency case.

Happy cases must verify; every corrupted case (``wantErr``) must raise the typed error, never
pass and never fail with some other exception. Where a case's tree is the classic 8-entry tree,
rowtrail's own proof generation must reproduce the published proof byte for byte.
"""

from __future__ import annotations

from typing import Any

import pytest
from _ledger_vectors import CLASSIC_LEAVES, b64, b64_list, load_cases

from rowtrail.errors import ConsistencyProofError, InclusionProofError
from rowtrail.ledger import (
    compute_consistency_path,
    compute_inclusion_path,
    compute_root,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
    verify_subtree_consistency,
    verify_subtree_inclusion,
)

INCLUSION = load_cases("inclusion")
CONSISTENCY = load_cases("consistency")
SUBTREE_INCLUSION = load_cases("subtreeinclusion")
SUBTREE_CONSISTENCY = load_cases("subtreeconsistency")

CLASSIC_HASHES = [leaf_hash(leaf) for leaf in CLASSIC_LEAVES]


def classic_subtree(start: int, end: int) -> bytes:
    return compute_root(CLASSIC_HASHES[start:end])


# Where rowtrail is deliberately stricter than transparency-dev's Go verifier. Upstream returns
# early for size1 == size2 with equal roots without looking at their length, so it accepts two
# equal 12-byte "roots"; rowtrail requires every hash to be 32 bytes (as SOURCE.md states), so
# this happy probe must be rejected, with the typed error.
STRICTER = {
    "additional/sizes-are-equal-one-and-proof-is-empty.json": "must be 32 bytes",
}


def ids(cases: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [name for name, _ in cases]


def test_every_vector_file_is_loaded() -> None:
    # 534 files upstream minus LICENSE/SOURCE.md: nothing may be silently skipped.
    counts = [len(INCLUSION), len(CONSISTENCY), len(SUBTREE_INCLUSION), len(SUBTREE_CONSISTENCY)]
    assert sum(counts) == 518
    assert all(counts)


def _is_classic_root(size: int, root: bytes) -> bool:
    return 0 < size <= len(CLASSIC_HASHES) and classic_subtree(0, size) == root


@pytest.mark.parametrize(("name", "case"), INCLUSION, ids=ids(INCLUSION))
def test_inclusion(name: str, case: dict[str, Any]) -> None:
    args = (
        case["leafIdx"],
        case["treeSize"],
        b64(case["leafHash"]),
        b64_list(case["proof"]),
        b64(case["root"]),
    )
    if case["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_inclusion(*args)
        return
    verify_inclusion(*args)
    index, size, _, path, root = args
    if _is_classic_root(size, root):
        assert compute_inclusion_path(index, size, classic_subtree) == path


@pytest.mark.parametrize(("name", "case"), CONSISTENCY, ids=ids(CONSISTENCY))
def test_consistency(name: str, case: dict[str, Any]) -> None:
    args = (
        case["size1"],
        case["size2"],
        b64(case["root1"]),
        b64(case["root2"]),
        b64_list(case["proof"]),
    )
    if case["wantErr"] or name in STRICTER:
        with pytest.raises(ConsistencyProofError, match=STRICTER.get(name)):
            verify_consistency(*args)
        return
    verify_consistency(*args)
    old, new, old_root, _, path = args
    if _is_classic_root(new, args[3]) and _is_classic_root(old, old_root):
        assert compute_consistency_path(old, new, classic_subtree) == path


def test_some_generated_proofs_were_compared() -> None:
    # Guard the comparisons above: the classic-tree cases must actually occur.
    happy = [c for _, c in INCLUSION if not c["wantErr"]]
    assert sum(_is_classic_root(c["treeSize"], b64(c["root"])) for c in happy) == 5
    happy_c = [c for _, c in CONSISTENCY if not c["wantErr"]]
    assert sum(_is_classic_root(c["size2"], b64(c["root2"])) for c in happy_c) == 5


# --- subtrees (draft-ietf-plants-merkle-tree-certs, "Subtree Test Vectors") --------------
# rowtrail.ledger.verify_subtree_inclusion / verify_subtree_consistency follow transparency-dev's
# proof.VerifySubtreeInclusion / VerifySubtreeConsistency. Every probe runs through them; the
# ones with start == 0 and a non-empty subtree also run through RFC 9162 verify_consistency
# (from `end` to `size`), which must agree.


@pytest.mark.parametrize(("name", "case"), SUBTREE_INCLUSION, ids=ids(SUBTREE_INCLUSION))
def test_subtree_inclusion(name: str, case: dict[str, Any]) -> None:
    args = (case["leafIdx"], b64(case["leafHash"]), b64_list(case["proof"]), b64(case["root"]))
    bounds = {"start": case["start"], "end": case["end"]}
    if case["wantErr"]:
        with pytest.raises(InclusionProofError):
            verify_subtree_inclusion(*args, **bounds)
    else:
        verify_subtree_inclusion(*args, **bounds)


@pytest.mark.parametrize(("name", "case"), SUBTREE_CONSISTENCY, ids=ids(SUBTREE_CONSISTENCY))
def test_subtree_consistency(name: str, case: dict[str, Any]) -> None:
    args = (b64_list(case["proof"]), b64(case["root1"]), b64(case["root2"]))
    bounds = {"start": case["start"], "end": case["end"], "size": case["size"]}
    if case["wantErr"] or name in STRICTER:
        with pytest.raises(ConsistencyProofError, match=STRICTER.get(name)):
            verify_subtree_consistency(*args, **bounds)
    else:
        verify_subtree_consistency(*args, **bounds)


RFC9162_SUBTREE_CONSISTENCY = [
    (n, c) for n, c in SUBTREE_CONSISTENCY if c["start"] == 0 and c["end"] > 0
]


def test_subtree_consistency_inventory() -> None:
    # 91 probes are plain RFC 9162 consistency; the other 27 start after 0 or are empty.
    assert len(RFC9162_SUBTREE_CONSISTENCY) == 91
    assert len(SUBTREE_CONSISTENCY) == 118


@pytest.mark.parametrize(
    ("name", "case"), RFC9162_SUBTREE_CONSISTENCY, ids=ids(RFC9162_SUBTREE_CONSISTENCY)
)
def test_subtree_consistency_from_zero_is_rfc9162(name: str, case: dict[str, Any]) -> None:
    args = (
        case["end"],
        case["size"],
        b64(case["root1"]),
        b64(case["root2"]),
        b64_list(case["proof"]),
    )
    if case["wantErr"] or name in STRICTER:
        with pytest.raises(ConsistencyProofError, match=STRICTER.get(name)):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
