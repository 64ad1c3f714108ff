"""Crash safety and concurrent writers, with real processes.

* A child appending batches in a loop is SIGKILLed at random moments, several times; after
  reopening, every batch it reported committed is there, intact and in order, and ``verify``
  passes (no partial batch, no tree that disagrees with the events).
* Two processes append to one workspace at once: no event is lost, the indices interleave by
  whole batches, there is one consistent tree, and ``verify`` passes.
"""

from __future__ import annotations

import itertools
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rowtrail as rt

CHILD = Path(__file__).with_name("_ledger_child.py")


def spawn(
    ws: Path,
    report: Path,
    tag: str,
    batches: int,
    size: int,
    checkpoint_every: int = 0,
    go: str = "",
) -> subprocess.Popen[bytes]:
    args = [str(ws), str(report), tag, str(batches), str(size), str(checkpoint_every), go]
    with open(report.with_suffix(".err"), "ab") as err:
        return subprocess.Popen(
            [sys.executable, str(CHILD), *args], stdout=subprocess.DEVNULL, stderr=err
        )


def reported(report: Path) -> list[tuple[int, int, str, int]]:
    rows = []
    for line in report.read_text().splitlines():
        first, last, tag, number = line.split()
        rows.append((int(first), int(last), tag, int(number)))
    return rows


def check_batches(ws: rt.Workspace, rows: list[tuple[int, int, str, int]], size: int) -> None:
    """Every reported batch is present: whole, in order, with the payloads the child wrote."""
    for first, last, tag, number in rows:
        assert last - first + 1 == size
        entries = ws.ledger.entries(list(range(first, last + 1)))
        for seq, entry in enumerate(entries):
            assert entry.event.payload["tag"] == tag
            assert entry.event.payload["batch"] == number
            assert entry.event.payload["seq"] == seq


def wait_for_progress(report: Path, at_least: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if report.exists() and len(report.read_text().splitlines()) >= at_least:
            return
        time.sleep(0.01)
    raise AssertionError(f"child made no progress within {timeout} s")


@pytest.mark.slow
def test_sigkill_never_loses_committed_batches(tmp_path: Path) -> None:
    rng = random.Random(1234)
    ws_path, report, size = tmp_path / "ws", tmp_path / "report", 50
    rt.init(ws_path).close()  # create keys and schema once, so every round starts appending
    for round_number in range(6):
        before = len(reported(report)) if report.exists() else 0
        child = spawn(ws_path, report, f"r{round_number}", 0, size, checkpoint_every=3)
        wait_for_progress(report, before + 1)
        time.sleep(rng.uniform(0.0, 0.25))  # kill at a random moment, usually mid-batch
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL
        # After every crash: reopen, nothing reported is lost, the whole log verifies.
        ws = rt.init(ws_path)
        rows = reported(report)
        check_batches(ws, rows, size)
        assert ws.ledger.size >= max(last for _, last, _, _ in rows) + 1
        assert ws.ledger.size % size == 0  # never a partial batch
        ws.verify()
        ws.ledger.checkpoint()  # and the log still accepts a checkpoint consistent with the last
        ws.close()
    assert len(reported(report)) >= 6


@pytest.mark.slow
def test_two_processes_append_concurrently(tmp_path: Path) -> None:
    ws_path, size, batches, go = tmp_path / "ws", 40, 40, tmp_path / "go"
    rt.init(ws_path).close()
    reports = [tmp_path / "a", tmp_path / "b"]
    children = [
        spawn(ws_path, r, tag, batches, size, checkpoint_every=5, go=str(go))
        for r, tag in zip(reports, "ab", strict=True)
    ]
    time.sleep(0.5)  # both children have opened the workspace and wait at the barrier
    go.touch()
    for child, report in zip(children, reports, strict=True):
        child.wait(timeout=120)
        assert child.returncode == 0, report.with_suffix(".err").read_text()
    ws = rt.init(ws_path)
    rows = reported(reports[0]) + reported(reports[1])
    assert len(rows) == 2 * batches
    assert ws.ledger.size == 2 * batches * size  # no event lost
    check_batches(ws, rows, size)
    # Batches are whole and disjoint: together they tile [0, size) exactly.
    covered = sorted((first, last) for first, last, _, _ in rows)
    assert covered[0][0] == 0
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(covered))
    assert len(ws.ledger.indices(kind="test.appended")) == 2 * batches * size
    for tag in "ab":
        assert sum(1 for r in rows if r[2] == tag) == batches
    order = [tag for _, _, tag, _ in sorted(rows)]
    # The writers really ran at the same time (typically 25-45 switches between them).
    assert sum(a != b for a, b in itertools.pairwise(order)) >= 1
    verified = ws.verify()
    assert verified.n_checkpoints >= 2
    ws.ledger.checkpoint()
    ws.verify()


@pytest.mark.slow
def test_verify_while_another_process_appends(tmp_path: Path) -> None:
    """A full verify sees one committed state: concurrent appends and checkpoints by another
    process are never half-seen and never reported as tampering."""
    ws_path, report = tmp_path / "ws", tmp_path / "report"
    ws = rt.init(ws_path)
    child = spawn(ws_path, report, "w", 0, 20, checkpoint_every=1)
    try:
        wait_for_progress(report, 2)
        sizes = []
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            sizes.append(ws.verify().size)
            ws.ledger.checkpoint()  # the parent signs too, interleaved with the child
        assert sizes == sorted(sizes)
        assert sizes[-1] > sizes[0]  # the log grew while it was being verified
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    ws.verify()
    ws.close()
