"""The in-process witness: every refusal of C2SP tlog-witness, durable state, one lock."""

from __future__ import annotations

import base64
import threading
from pathlib import Path

import pytest
from _witness_helpers import ORIGIN, MemoryLog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.errors import InvalidInputError, WitnessError
from rowtrail.ledger import (
    EMPTY_ROOT,
    NoteSigner,
    Witness,
    collect_cosignatures,
    cosignatures_of,
    format_add_checkpoint,
    format_checkpoint_body,
    open_checkpoint,
    parse_add_checkpoint,
    parse_cosignature_line,
    witness_state_dir,
)


class Clock:
    def __init__(self, now: int = 1_700_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def log() -> MemoryLog:
    log = MemoryLog()
    log.grow(10)
    return log


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def witness(tmp_path: Path, log: MemoryLog, clock: Clock) -> Witness:
    return Witness.open("witness.example/w1", {ORIGIN: [log.verifier]},
                        state_dir=tmp_path / "w1", now=clock)


def refusal(witness: Witness, old: int, proof: list[bytes], note: str) -> WitnessError:
    with pytest.raises(WitnessError) as info:
        witness.add_checkpoint(old, proof, note)
    return info.value


def test_first_checkpoint_then_extension(witness: Witness, log: MemoryLog, clock: Clock) -> None:
    line = witness.add_checkpoint(0, [], log.note(4))
    cosig = parse_cosignature_line(line)
    assert cosig.timestamp == clock.now
    witness.verifier.verify(log.note(4).partition("\n\n")[0] + "\n", cosig)
    stored = witness.latest(ORIGIN)
    assert stored is not None
    assert stored.startswith(log.note(4))
    assert stored.endswith(line)
    clock.now += 5
    witness.add_checkpoint(4, log.prove(4, 10), log.note(10))
    stored = witness.latest(ORIGIN)
    assert stored is not None
    assert open_checkpoint(stored, [log.verifier]).size == 10
    assert [c.timestamp for c in cosignatures_of(stored, [witness.verifier])] == [clock.now]
    # the same checkpoint again (old size = its size) is cosigned again; state unchanged
    witness.add_checkpoint(10, [], log.note(10))


def test_state_is_outside_the_workspace_by_default(log: MemoryLog) -> None:
    witness = Witness.open("witness.example/default", {ORIGIN: [log.verifier]})
    assert witness.state_dir == witness_state_dir("witness.example/default")
    assert (witness.state_dir / "key").stat().st_mode & 0o777 == 0o600
    witness.add_checkpoint(0, [], log.note())
    assert (witness.state_dir / "logs").is_dir()
    # reopening keeps the key and the state
    again = Witness.open("witness.example/default", {ORIGIN: [log.verifier]})
    assert again.verifier.vkey == witness.verifier.vkey
    assert again.latest(ORIGIN) == witness.latest(ORIGIN)


def test_replayed_older_checkpoint_is_refused(witness: Witness, log: MemoryLog) -> None:
    witness.add_checkpoint(0, [], log.note(10))
    conflict = refusal(witness, 0, [], log.note(6))
    assert (conflict.status, conflict.size) == (409, 10)
    assert refusal(witness, 10, [], log.note(6)).status == 400  # old size above the new one
    assert refusal(witness, 6, [], log.note(6)).status == 409


def test_forked_log_same_size_other_root(witness: Witness, log: MemoryLog) -> None:
    witness.add_checkpoint(0, [], log.note(10))
    fork = log.fork(6)
    fork.grow(4, b"other")
    error = refusal(witness, 10, [], fork.note(10))
    assert error.status == 422
    assert "fork" in str(error)
    assert witness.evidence(ORIGIN) == [fork.note(10)]  # kept: two signed roots for size 10


def test_forked_log_that_grew_is_inconsistent(witness: Witness, log: MemoryLog) -> None:
    witness.add_checkpoint(0, [], log.note(8))
    fork = log.fork(6)
    fork.grow(6, b"other")
    error = refusal(witness, 8, fork.prove(8, 12), fork.note(12))
    assert error.status == 422
    assert "not consistent" in str(error)
    # a proof made from the real log but for the forked root fails too
    assert refusal(witness, 8, log.prove(8, 10), fork.note(10)).status == 422


def test_unknown_origin_and_bad_signatures(witness: Witness, log: MemoryLog) -> None:
    stranger = MemoryLog("example.com/stranger")
    stranger.grow(2)
    assert refusal(witness, 0, [], stranger.note()).status == 404
    impostor = MemoryLog(ORIGIN)  # same origin and key name, another key: unknown key only
    impostor.grow(2)
    assert refusal(witness, 0, [], impostor.note()).status == 403
    note = log.note(3)
    body, _, line = note.partition("\n\n")
    raw = bytearray(base64.b64decode(line.split(" ")[-1]))
    raw[-1] ^= 1  # a trusted key's signature that fails: the note is malformed
    forged = f"{body}\n\n\u2014 {ORIGIN} {base64.b64encode(bytes(raw)).decode()}\n"
    assert refusal(witness, 0, [], forged).status == 403
    assert witness.latest(ORIGIN) is None  # nothing was stored by any refusal


def test_empty_tree_and_proof_rules(witness: Witness, log: MemoryLog) -> None:
    empty = log.signer.sign(format_checkpoint_body(ORIGIN, 0, EMPTY_ROOT))
    witness.add_checkpoint(0, [], empty)
    wrong = log.signer.sign(format_checkpoint_body(ORIGIN, 0, log.root(1)))
    assert refusal(witness, 0, [], wrong).status == 422
    assert refusal(witness, 0, [log.root(1)], log.note(3)).status == 422
    witness.add_checkpoint(0, [], log.note(3))
    assert refusal(witness, 3, log.prove(3, 9), log.note(10)).status == 422  # wrong sizes


def test_timestamps_never_go_back(witness: Witness, log: MemoryLog, clock: Clock) -> None:
    first = parse_cosignature_line(witness.add_checkpoint(0, [], log.note(4)))
    clock.now -= 3600  # the clock was set back
    second = parse_cosignature_line(witness.add_checkpoint(4, log.prove(4, 10), log.note(10)))
    assert second.timestamp >= first.timestamp


def test_edited_state_is_refused(witness: Witness, log: MemoryLog) -> None:
    witness.add_checkpoint(0, [], log.note(4))
    path = next((witness.state_dir / "logs").iterdir()) / "checkpoint"
    path.write_text(path.read_text().replace("\n4\n", "\n5\n"))
    assert refusal(witness, 4, log.prove(4, 10), log.note(10)).status == 500
    path.write_text(log.note(4))  # log-signed, but without the witness's own cosignature
    assert refusal(witness, 4, log.prove(4, 10), log.note(10)).status == 500


def test_state_directory_belongs_to_one_witness(tmp_path: Path, log: MemoryLog) -> None:
    Witness.open("witness.example/a", {ORIGIN: [log.verifier]}, state_dir=tmp_path)
    with pytest.raises(InvalidInputError, match="own directory"):
        Witness.open("witness.example/b", {ORIGIN: [log.verifier]}, state_dir=tmp_path)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"old 1\nAAAA\n", "blank line"),
        (b"new 1\n\nx", "blank line"),
        (b"old 01\n\nx", "leading zeroes"),
        (b"old -1\n\nx", "no leading"),
        (b"old 1\n!!!!\n\nx", "not base64"),
        (b"old 1\nAAAA\n\nx", "32-byte"),
        (b"old 1\n" + b"".join([base64.b64encode(bytes(32)) + b"\n"] * 64) + b"\nx", "at most"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_malformed_requests(body: bytes, why: str) -> None:
    with pytest.raises(WitnessError, match=why) as info:
        parse_add_checkpoint(body)
    assert info.value.status == 400


def test_request_round_trip(log: MemoryLog, witness: Witness) -> None:
    proof = log.prove(3, 10)
    request = format_add_checkpoint(3, proof, log.note(10))
    assert request.startswith(b"old 3\n")
    assert b"\n\n" + log.note(10).encode() in request
    assert parse_add_checkpoint(request) == (3, proof, log.note(10))
    assert refusal(witness, 0, [], "no note here").status == 400
    with pytest.raises(InvalidInputError):
        format_add_checkpoint(-1, [], "x")


def test_concurrent_submissions_never_roll_back(tmp_path: Path) -> None:
    log = MemoryLog()
    log.grow(40)
    witness = Witness.open("witness.example/race", {ORIGIN: [log.verifier]},
                           state_dir=tmp_path)
    cosigned: list[int] = []
    lock = threading.Lock()

    def submit(size: int) -> None:
        try:
            result = collect_cosignatures(log.note(size), [witness],
                                          log_verifiers=[log.verifier], prove=log.prove)
        except WitnessError:
            return  # overtaken by a larger checkpoint: refused, never cosigned
        with lock:
            cosigned.append(result.checkpoint.size)

    threads = [threading.Thread(target=submit, args=(size,)) for size in range(1, 41)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = witness.latest(ORIGIN)
    assert stored is not None
    assert cosigned
    assert open_checkpoint(stored, [log.verifier]).size == max(cosigned)


def test_checkpoint_with_extension_lines_and_other_signatures(
    witness: Witness, log: MemoryLog
) -> None:
    body = format_checkpoint_body(ORIGIN, 10, log.root(10)) + "extension line\n"
    other = NoteSigner("other.example/key", Ed25519PrivateKey.generate())
    note = log.signer.sign(body) + other.sign(body).split("\n\n")[1]
    line = witness.add_checkpoint(0, [], note)
    witness.verifier.verify(body, parse_cosignature_line(line))
