"""The log's side: collecting cosignatures, k-of-n policies, split views and rollbacks."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from _witness_helpers import ORIGIN, MemoryLog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.errors import InvalidInputError, WitnessError
from rowtrail.ledger import (
    CosignatureSigner,
    Witness,
    WitnessedCheckpoint,
    WitnessPolicy,
    collect_cosignatures,
    verify_no_split_view,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def log() -> MemoryLog:
    log = MemoryLog()
    log.grow(10)
    return log


@pytest.fixture
def witnesses(tmp_path: Path, log: MemoryLog) -> list[Witness]:
    clock = Clock()
    return [
        Witness.open(f"witness.example/w{i}", {ORIGIN: [log.verifier]},
                     state_dir=tmp_path / f"w{i}", now=clock)
        for i in range(3)
    ]


def collect(log: MemoryLog, witnesses: list[Witness], size: int | None = None,
            **kwargs: object) -> WitnessedCheckpoint:
    return collect_cosignatures(log.note(size), witnesses, log_verifiers=[log.verifier],
                                prove=log.prove, **kwargs)  # type: ignore[arg-type]


def policy(witnesses: list[Witness], quorum: int) -> WitnessPolicy:
    return WitnessPolicy(tuple(w.verifier for w in witnesses), quorum)


def test_collect_and_verify_k_of_n(log: MemoryLog, witnesses: list[Witness]) -> None:
    first = collect(log, witnesses, 4)
    assert first.cosigners == sorted(w.name for w in witnesses)
    log.grow(5)
    second = collect(log, witnesses, sizes={w.name: 4 for w in witnesses})
    assert second.checkpoint.size == 15
    checked = policy(witnesses, 3).verify(second.note, [log.verifier], origin=ORIGIN)
    assert len(checked.cosignatures) == 3
    verify_no_split_view([first, second, checked])
    # a verifier that trusts two of the three and needs both
    policy(witnesses[:2], 2).verify(second.note, [log.verifier])
    assert WitnessPolicy.from_vkeys([w.verifier.vkey for w in witnesses], 2).quorum == 2


def test_follows_409_from_a_stale_size_hint(log: MemoryLog, witnesses: list[Witness]) -> None:
    collect(log, witnesses[:1], 6)
    result = collect(log, witnesses[:1], 10, sizes={witnesses[0].name: 2})
    assert result.checkpoint.size == 10


def test_rolled_back_log_is_refused(log: MemoryLog, witnesses: list[Witness]) -> None:
    collect(log, witnesses, 10)
    rolled = log.fork(7)
    with pytest.raises(WitnessError, match="rolled back") as info:
        collect(rolled, witnesses, 7)
    assert (info.value.status, info.value.size) == (409, 10)
    rolled.grow(8, b"rewritten")  # grown past the witnessed size, on another history
    with pytest.raises(WitnessError, match="not consistent") as info:
        collect(rolled, witnesses, 15)
    assert info.value.status == 422


def test_inconsistency_is_never_outvoted(
    tmp_path: Path, log: MemoryLog, witnesses: list[Witness]
) -> None:
    collect(log, witnesses[:1], 10)  # only w0 saw the real history
    fork = log.fork(5)
    fork.grow(5, b"fork")
    with pytest.raises(WitnessError) as info:
        collect(fork, witnesses, 10, quorum=1)  # w1 and w2 would cosign, w0 refuses
    assert info.value.status == 422


def test_quorum_counts_unreachable_or_unconfigured(
    tmp_path: Path, log: MemoryLog, witnesses: list[Witness]
) -> None:
    stranger = Witness.open("witness.example/stranger", {"other.example/log": [log.verifier]},
                            state_dir=tmp_path / "stranger")
    with pytest.raises(WitnessError, match="only 3 of the 4"):
        collect(log, [*witnesses, stranger])
    result = collect(log, [*witnesses, stranger], quorum=3)
    assert list(result.failures) == ["witness.example/stranger"]
    with pytest.raises(InvalidInputError, match="quorum"):
        collect(log, witnesses, quorum=4)


def test_forged_and_misplaced_cosignatures(log: MemoryLog, witnesses: list[Witness]) -> None:
    good = collect(log, witnesses, 10)
    impostor = CosignatureSigner(witnesses[0].name, Ed25519PrivateKey.generate())
    forged_line = impostor.cosign(log.note(10).partition("\n\n")[0] + "\n", timestamp=5).line
    # same name but another key: a different key id, so only an unknown line
    with pytest.raises(WitnessError, match="carries 2"):
        policy(witnesses, 3).verify(log.note(10) + forged_line + "".join(
            c.line for c in good.cosignatures[1:]), [log.verifier])
    # a cosignature with the right key id but a forged signature refuses the note
    line = good.cosignatures[0].line
    forged = line[:-6] + ("A" if line[-6] != "A" else "B") + line[-5:]
    with pytest.raises(WitnessError, match="forged"):
        policy(witnesses, 1).verify(good.note.replace(line, forged), [log.verifier])
    # a cosignature made for another root, pasted under this checkpoint
    log.grow(1)
    other = collect(log, witnesses[:1], 11)
    with pytest.raises(WitnessError, match="another checkpoint"):
        policy(witnesses, 1).verify(log.note(10) + other.cosignatures[0].line, [log.verifier])
    with pytest.raises(WitnessError, match="future"):
        policy(witnesses, 1).verify(good.note, [log.verifier], not_after=1_000)


def test_split_view_two_roots_for_one_size(
    tmp_path: Path, log: MemoryLog, witnesses: list[Witness]
) -> None:
    real = collect(log, witnesses[:1], 10)
    fork = log.fork(5)
    fork.grow(5, b"fork")
    shown = collect(fork, witnesses[1:], 10)  # other witnesses were shown the fork
    with pytest.raises(WitnessError, match="split view"):
        verify_no_split_view([real, shown])


def test_witness_that_lost_its_state(log: MemoryLog, witnesses: list[Witness]) -> None:
    """What is and is not detectable when a witness's state directory is deleted.

    Not detectable by that witness: it accepts the rolled-back log as a first checkpoint
    and cosigns it. Detectable: by a witness that kept its state (it refuses), and by anyone
    holding an earlier cosignature of the same witness (a later cosignature of a smaller tree).
    """
    before = collect(log, witnesses[:2], 10)
    shutil.rmtree(witnesses[0].state_dir / "logs")
    rolled = log.fork(6)
    after = collect(rolled, witnesses[:1], 6)  # the witness without state cosigns it
    assert after.checkpoint.size == 6
    with pytest.raises(WitnessError, match="rolled back"):
        collect(rolled, witnesses[1:2], 6)  # the witness that kept its state
    with pytest.raises(WitnessError, match="rolled back or deleted"):
        verify_no_split_view([before, after])


def test_policy_input_checks(witnesses: list[Witness]) -> None:
    keys = tuple(w.verifier for w in witnesses)
    with pytest.raises(InvalidInputError, match="quorum"):
        WitnessPolicy(keys, 0)
    with pytest.raises(InvalidInputError, match="quorum"):
        WitnessPolicy(keys, 4)
    with pytest.raises(InvalidInputError, match="distinct"):
        WitnessPolicy((keys[0], keys[0]), 1)
