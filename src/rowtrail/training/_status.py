"""The status of a run, read from its ledger events: a killed run never looks completed.

A run writes ``training.started``, which names the process running it (host, pid, the
process's start time and the machine's boot id), and, when its context exits, the seal
``training.completed`` whose ``status`` is ``"completed"``, ``"failed:<Error>"`` (an exception
left the ``with`` block) or ``"aborted:<KeyboardInterrupt|SystemExit|GeneratorExit>"``. A
process killed by SIGKILL or a power cut writes nothing more, so a run with no seal is:

``"running"``     its process is alive (same host, boot, pid and process start time);
``"aborted"``     it ran on this host and that process is gone;
``"incomplete"``  it ran on another host (or recorded no process), so whether it still runs
                  cannot be checked from here.

A run is ``"completed"`` only when its seal says so. Statuses are computed from events whose
inclusion proofs are verified (:func:`prove_verified`), like every other answer.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rowtrail.errors import InvalidInputError
from rowtrail.ledger import InclusionProof, LedgerEntry

if TYPE_CHECKING:
    from rowtrail.lineage import LineageWorkspace

__all__ = [
    "RUN_STATUSES",
    "RunInfo",
    "list_runs",
    "process_info",
    "prove_verified",
    "run_status",
    "status_of",
]

RUN_STATUSES = ("completed", "failed", "aborted", "running", "incomplete")
_BOOT_ID = "/proc/sys/kernel/random/boot_id"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Start time of process ``pid`` in clock ticks since boot (Linux), or None."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    return int(fields[19]) if len(fields) > 19 else None


def process_info() -> dict[str, Any]:
    """Return what identifies this process for a later liveness check."""
    boot = _read(_BOOT_ID)
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "boot_id": None if boot is None else boot.strip(),
        "start_ticks": _start_ticks(pid),
    }


def _alive(process: Any) -> bool | None:
    """Whether the recorded process still runs: True, False, or None when it cannot be told."""
    if not isinstance(process, Mapping) or process.get("host") != socket.gethostname():
        return None
    pid = process.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    boot = _read(_BOOT_ID)
    recorded_boot = process.get("boot_id")
    if recorded_boot is not None and boot is not None and recorded_boot != boot.strip():
        return False  # the machine rebooted since: every process of that boot is gone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, owned by another user
    recorded, now = process.get("start_ticks"), _start_ticks(pid)
    # A different start time means the pid was reused by another process.
    return recorded is None or now is None or recorded == now


def status_of(started: Mapping[str, Any], seal: Mapping[str, Any] | None) -> str:
    """Return the status (one of :data:`RUN_STATUSES`) of a run from its two events."""
    if seal is not None:
        recorded = str(seal.get("status", "completed"))
        prefix = recorded.split(":", 1)[0]
        return prefix if prefix in RUN_STATUSES else "failed"
    alive = _alive(started.get("process"))
    if alive is None:
        return "incomplete"
    return "running" if alive else "aborted"


@dataclass(frozen=True)
class RunInfo:
    """A recorded run and its status (see the module docstring).

    ``proof`` proves the ``training.started`` event at ``started_index``; ``seal_proof`` the
    seal at ``sealed_index`` when there is one. Both were verified before being returned.
    """

    run_id: str
    name: str
    status: str
    started_index: int
    sealed_index: int | None
    proof: InclusionProof
    seal_proof: InclusionProof | None = None


def prove_verified(
    workspace: LineageWorkspace, indices: Sequence[int]
) -> dict[int, InclusionProof]:
    """Return verified inclusion proofs of ``indices``, keyed by index.

    Proofs are made against the latest signed checkpoint, checked against the trust root kept
    outside the workspace, and each one is verified (:meth:`Ledger.prove_signed`); a failure
    raises a :class:`~rowtrail.errors.VerificationError` and no answer is released.
    """
    wanted = sorted(set(indices))
    if not wanted:
        return {}
    _, proofs = workspace.ledger.prove_signed(wanted)
    return dict(zip(wanted, proofs, strict=True))


def _run_events(workspace: LineageWorkspace, kind: str) -> dict[str, LedgerEntry]:
    ledger = workspace.ledger
    found: dict[str, LedgerEntry] = {}
    for entry in ledger.entries_of_kind(kind):
        run = entry.event.payload.get("run")
        if isinstance(run, str) and "name" in entry.event.payload:
            found[run] = entry  # the latest event wins if a run id was reused
    return found


def _runs(workspace: LineageWorkspace, only: str | None = None) -> list[RunInfo]:
    started = _run_events(workspace, "training.started")
    sealed = _run_events(workspace, "training.completed")
    if only is not None:
        started = {k: v for k, v in started.items() if k == only}
    seals = {run: sealed[run] for run in started if run in sealed}
    proofs = prove_verified(
        workspace, [e.index for e in started.values()] + [e.index for e in seals.values()]
    )
    runs = []
    for run, entry in sorted(started.items(), key=lambda item: item[1].index):
        seal = seals.get(run)
        runs.append(RunInfo(
            run, str(entry.event.payload["name"]),
            status_of(entry.event.payload, None if seal is None else seal.event.payload),
            entry.index, None if seal is None else seal.index, proofs[entry.index],
            None if seal is None else proofs[seal.index],
        ))
    return runs


def list_runs(workspace: LineageWorkspace) -> list[RunInfo]:
    """Return every recorded run with its status, in the order they started.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> from rowtrail.training import list_runs
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> with ws.training_run("demo") as run:
    ...     pass
    >>> [(r.name, r.status) for r in list_runs(ws)]
    [('demo', 'completed')]
    """
    return _runs(workspace)


def run_status(workspace: LineageWorkspace, run_id: str) -> str:
    """Return the status of run ``run_id``: one of :data:`RUN_STATUSES`.

    ``"completed"`` only when the run's seal says so; a run whose process was killed (no seal,
    process gone) is ``"aborted"`` (see the module docstring).

    Raises
    ------
    InvalidInputError
        If no run ``run_id`` was recorded.
    """
    found = _runs(workspace, only=run_id)
    if not found:
        known = [r.run_id for r in _runs(workspace)][-10:]
        raise InvalidInputError(
            f"run_id of run_status must name a recorded run; got {run_id!r}. "
            f"Recorded runs (latest 10): {known}"
        )
    return found[0].status
