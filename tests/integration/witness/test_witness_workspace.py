"""A real workspace witnessed: its operator rolls the directory back and rewrites history.

The attacker holds the workspace and this user's trust state (deletes it, re-pins the rolled
back log); only the witnesses' state, kept elsewhere, and cosigned checkpoints kept by
others stand in the way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import rowtrail as rt
from _rawdb import copy_directory
from rowtrail.errors import WitnessError
from rowtrail.ledger import (
    Witness,
    WitnessedCheckpoint,
    WitnessPolicy,
    collect_cosignatures,
    cosign_ledger,
    default_state_dir,
    verify_no_split_view,
    verify_witnessed_log,
    verify_witnessed_prefix,
)


def cosign(ws: rt.Workspace, witnesses: list[Witness], **kwargs: object) -> WitnessedCheckpoint:
    note = ws.ledger.checkpoint().note
    return collect_cosignatures(
        note, witnesses, log_verifiers=[ws.ledger.verifier],
        prove=lambda a, b: ws.ledger.consistency(a, b).path, **kwargs,  # type: ignore[arg-type]
    )


def append(ws: rt.Workspace, n: int, tag: str) -> None:
    for i in range(n):
        ws.ledger.append("note.added", {"tag": tag, "i": i})


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, list[Witness]]:
    """A workspace of 10 events cosigned by two witnesses, and a copy of it at 5 events."""
    path, backup = tmp_path / "ws", tmp_path / "backup"
    ws = rt.init(path)
    ticks = iter(range(1_800_000_000, 1_900_000_000, 60))  # a minute per cosignature
    witnesses = [
        Witness.open(f"witness.example/w{i}", {ws.origin: [ws.ledger.verifier]},
                     state_dir=tmp_path / f"witness{i}", now=lambda: next(ticks))
        for i in range(2)
    ]
    append(ws, 5, "real")
    cosign(ws, witnesses)
    ws.close()
    copy_directory(path, backup)  # with its database (a schema of its own on PostgreSQL)
    ws = rt.open(path)
    append(ws, 5, "real")
    ten = cosign(ws, witnesses)
    assert ten.checkpoint.size == 10
    (tmp_path / "ten.note").write_text(ten.note)
    ws.close()
    return path, backup, witnesses


def roll_back(path: Path, backup: Path, state: Path) -> rt.Workspace:
    """Replace the workspace by its older copy, drop this user's trust state, re-pin it."""
    shutil.rmtree(path)
    shutil.copytree(backup, path)
    shutil.rmtree(state / "logs")
    ws = rt.open(path)
    ws.trust_current_state()
    return ws


def test_rolled_back_directory_is_refused_by_witnesses_that_kept_state(
    setup: tuple[Path, Path, list[Witness]]
) -> None:
    path, backup, witnesses = setup
    ws = roll_back(path, backup, default_state_dir())
    append(ws, 1, "rewritten")  # size 6, on another history
    with pytest.raises(WitnessError, match="rolled back") as info:
        cosign(ws, witnesses)
    assert (info.value.status, info.value.size) == (409, 10)
    append(ws, 6, "rewritten")  # grown past the witnessed size: 12
    with pytest.raises(WitnessError, match="not consistent") as info:
        cosign(ws, witnesses)
    assert info.value.status == 422
    assert witnesses[0].evidence(ws.origin)  # the forked checkpoint is kept as evidence
    ws.close()


def test_rolled_back_directory_without_witness_state(
    setup: tuple[Path, Path, list[Witness]], tmp_path: Path
) -> None:
    """With every witness's state deleted too, the fork gets cosigned; what still catches it.

    Not detectable by the witnesses themselves (they start over at old size 0), nor by a
    verifier that only checks the new cosignatures. Detectable by anyone who kept a checkpoint
    cosigned before: a smaller, later cosignature from the same witness (split-view check),
    and the current tree not extending the kept checkpoint (consistency check).
    """
    path, backup, witnesses = setup
    ten = WitnessPolicy(tuple(w.verifier for w in witnesses), 2)
    ws = roll_back(path, backup, default_state_dir())
    kept = ten.verify((tmp_path / "ten.note").read_text(), [ws.ledger.verifier])
    for witness in witnesses:
        shutil.rmtree(witness.state_dir / "logs")
    append(ws, 3, "rewritten")  # size 8
    forked = cosign(ws, witnesses)
    ten.verify(forked.note, [ws.ledger.verifier])  # the new cosignatures alone look fine
    with pytest.raises(WitnessError, match="rolled back or deleted"):
        verify_no_split_view([kept, forked])
    head = ws.ledger.head()
    with pytest.raises(WitnessError, match="rolled back"):
        verify_witnessed_prefix([kept], size=head.size, root=head.root,
                                prove=lambda a, b: ws.ledger.consistency(a, b).path)
    append(ws, 4, "rewritten")  # size 12: larger than the kept checkpoint, another history
    head = ws.ledger.head()
    with pytest.raises(WitnessError, match="does not extend"):
        verify_witnessed_prefix([kept], size=head.size, root=head.root,
                                prove=lambda a, b: ws.ledger.consistency(a, b).path)
    ws.close()


def test_honest_log_passes_every_check(
    setup: tuple[Path, Path, list[Witness]], tmp_path: Path
) -> None:
    path, _, witnesses = setup
    ws = rt.open(path)
    policy = WitnessPolicy(tuple(w.verifier for w in witnesses), 2)
    ten = policy.verify((tmp_path / "ten.note").read_text(), [ws.ledger.verifier])
    append(ws, 3, "more")
    thirteen = cosign(ws, witnesses, sizes={w.name: 10 for w in witnesses})
    head = ws.ledger.head()
    verify_no_split_view([ten, thirteen])
    verify_witnessed_prefix([ten, thirteen], size=head.size, root=head.root,
                            prove=lambda a, b: ws.ledger.consistency(a, b).path)
    ws.verify()
    ws.close()


def test_cosign_ledger_and_verify_witnessed_log(
    setup: tuple[Path, Path, list[Witness]], tmp_path: Path
) -> None:
    path, backup, witnesses = setup
    ws = rt.open(path)
    policy = WitnessPolicy(tuple(w.verifier for w in witnesses), 2)
    kept = [(tmp_path / "ten.note").read_text()]
    append(ws, 2, "more")
    kept.append(cosign_ledger(ws.ledger, witnesses, sizes={w.name: 10 for w in witnesses}).note)
    checked = verify_witnessed_log(ws.ledger, kept, policy)
    assert [c.checkpoint.size for c in checked] == [10, 12]
    ws.close()
    # the operator rolls the directory back and regrows it: the kept notes catch it
    ws = roll_back(path, backup, default_state_dir())
    append(ws, 9, "rewritten")  # size 14, another history
    with pytest.raises(WitnessError, match="does not extend"):
        verify_witnessed_log(ws.ledger, kept, policy)
    one_cosignature = "\n".join(x for x in kept[0].split("\n") if "/w1 " not in x)
    with pytest.raises(WitnessError, match="carries 1"):
        verify_witnessed_log(ws.ledger, [one_cosignature], policy)
    ws.close()
