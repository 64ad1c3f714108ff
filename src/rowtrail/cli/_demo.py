"""``rowtrail demo``: the end-to-end walk, source row to evidence, on embedded defaults.

Each capability contributes one *section*: a function ``section(ctx: DemoContext) -> None``
that uses ``ctx.ws`` like a user would, prints what it shows with ``ctx.say`` and records its
key results with ``ctx.record`` (the ``--json`` output). Sections run in order; the last one
seals the ledger: checkpoint, full verification, an inclusion proof, and a tampered copy that
fails verification.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from rowtrail._workspace import Workspace
from rowtrail.cli._demo_attribution import section as _attribution
from rowtrail.cli._demo_erasure import section as _erasure
from rowtrail.cli._demo_evidence import section as _evidence
from rowtrail.cli._demo_frames import section as _frames
from rowtrail.cli._demo_guard import MARKER, finish_marker, prepare_demo_dir, start_marker
from rowtrail.cli._demo_lineage import section as _lineage
from rowtrail.cli._demo_registry import section as _registry
from rowtrail.cli._demo_replay import section as _replay
from rowtrail.cli._demo_serving import section as _serving
from rowtrail.cli._demo_training import section as _training
from rowtrail.errors import InvalidInputError, VerificationError
from rowtrail.ledger import verify_inclusion

__all__ = ["SECTIONS", "DemoContext", "run_demo"]


@dataclass
class DemoContext:
    """What a demo section gets: the workspace, a scratch directory, output helpers."""

    ws: Workspace
    workdir: Path
    console: Console
    quiet: bool = False
    seed: int = 0
    size: str = "small"
    results: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def say(self, text: str) -> None:
        """Print a line for people (suppressed with ``--json``)."""
        if not self.quiet:
            self.console.print(text, soft_wrap=True)

    def heading(self, text: str) -> None:
        """Print a section heading."""
        self.say(f"\n[bold cyan]== {text}[/]")

    def record(self, section: str, data: dict[str, Any]) -> None:
        """Record a section's key results for ``--json``."""
        self.results.setdefault(section, {}).update(data)


def _ledger_stream(ctx: DemoContext) -> None:
    """Record a realistic event stream: ingest, split, batches, a prediction."""
    ctx.heading("Ledger: a realistic event stream")
    ws, rng = ctx.ws, np.random.default_rng(ctx.seed)
    applicant = ws.pseudonymize("applicant-000042")
    rows = rng.permutation(1000).astype(np.int64)
    ids_digest = ws.ledger.put_blob(rows.tobytes())
    ws.ledger.append(
        "rows.ingested",
        {"source": "applications.csv", "n_rows": 1000},
        subjects=[applicant],
        blobs=[ids_digest],
    )
    ws.ledger.append(
        "split.assigned", {"train": 800, "validation": 100, "test": 100}, blobs=[ids_digest]
    )
    started = time.perf_counter()
    with ws.ledger.batch(max_events=500) as batch:
        for step in range(2000):
            batch.append(
                "training.batch",
                {
                    "step": step,
                    "epoch": step // 25,
                    "lr": 0.01,
                    "loss": round(float(1 / (1 + step)), 6),
                    "sample_ids_blob": ids_digest,
                },
            )
    elapsed = time.perf_counter() - started
    index = ws.ledger.append(
        "prediction.made",
        {"model": "scorecard-v1", "decision": "declined", "score": 0.27},
        subjects=[applicant],
    )
    ctx.say(
        f"appended {ws.ledger.size} events ({2000 / elapsed:,.0f} batch events/s, group commit)"
    )
    ctx.say(f"subject pseudonym of applicant-000042: {applicant[:19]}… (raw id never stored)")
    ctx.state["prediction_index"] = index
    ctx.state["subject"] = applicant
    ctx.record(
        "ledger_stream", {"events": ws.ledger.size, "prediction_index": index, "subject": applicant}
    )


def _seal(ctx: DemoContext) -> None:
    """Checkpoint, verify, prove, then show that a tampered copy fails."""
    ctx.heading("Ledger: checkpoint, verify, prove, tamper")
    ws = ctx.ws
    checkpoint = ws.ledger.checkpoint()
    ctx.say(f"signed checkpoint (C2SP signed note):\n{checkpoint.note}")
    report = ws.verify()
    ctx.say(
        f"[green]verify: OK[/] — {report.size} entries, {report.n_nodes} tree nodes, "
        f"{report.n_blobs} blobs, {report.n_checkpoints} checkpoint(s)"
    )
    index = ctx.state.get("prediction_index", ws.ledger.size - 1)
    proof = ws.ledger.prove(index)
    verify_inclusion(proof.index, proof.size, proof.leaf_hash, proof.path, checkpoint.root)
    ctx.say(
        f"entry {index} is in the signed tree: inclusion proof of {len(proof.path)} hashes verifies"
    )
    subject = ctx.state.get("subject")
    n_subject = len(ws.ledger.proven_entries(subject=subject)) if subject else 0
    ctx.say(f"events of the subject, each with a verified proof: {n_subject}")
    tampered_at, error = _tamper_copy(ws, ctx.workdir)
    ctx.say(
        f"tampered copy (one byte of entry {tampered_at} changed): "
        f"[bold red]verify FAILED[/] — {error}"
    )
    ctx.record(
        "ledger",
        {
            "size": report.size,
            "root": report.root.hex(),
            "checkpoint": checkpoint.note,
            "verified": True,
            "proof_length": len(proof.path),
            "subject_events": n_subject,
            "tampered_index": tampered_at,
            "tampered_error": error,
        },
    )


def _tamper_copy(ws: Workspace, workdir: Path) -> tuple[int, str]:
    copy = workdir / "tampered-copy"
    shutil.rmtree(copy, ignore_errors=True)
    ws.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(ws.path, copy)
    target = ws.ledger.size // 2
    with sqlite3.connect(copy / "rowtrail.db") as conn:
        (leaf,) = conn.execute("SELECT leaf FROM events WHERE idx = ?", (target,)).fetchone()
        edited = bytearray(leaf)
        position = bytes(edited).find(b'"step":') + 7
        edited[position] = ord("9") if edited[position] != ord("9") else ord("8")
        conn.execute("UPDATE events SET leaf = ? WHERE idx = ?", (bytes(edited), target))
    from rowtrail._workspace import open_workspace

    with open_workspace(copy) as other:
        try:
            other.verify()
        except VerificationError as exc:
            return target, str(exc)
    raise InvalidInputError("tampered copy verified: tamper detection is broken")


SECTIONS: list[tuple[str, Callable[[DemoContext], None]]] = [
    ("ledger_stream", _ledger_stream),
    ("lineage", _lineage),
    ("frames", _frames),
    ("training", _training),
    ("attribution", _attribution),
    ("replay", _replay),
    ("registry", _registry),
    ("serving", _serving),
    ("erasure", _erasure),
    ("evidence", _evidence),
    ("seal", _seal),
]


def run_demo(
    location: str | None, *, console: Console, quiet: bool, seed: int = 0, size: str = "small"
) -> dict[str, Any]:
    """Run every demo section in a fresh workspace and return the recorded results.

    The workspace goes into a new or empty directory, or replaces an earlier demo's (see
    :mod:`rowtrail.cli._demo_guard`); anything else is refused before a file is touched.
    """
    from rowtrail._workspace import open_workspace

    path = Path(location) if location else Path(".rowtrail-demo")
    from_env = location is not None and location == os.environ.get("ROWTRAIL_WORKSPACE")
    prepare_demo_dir(path, from_env=from_env)
    workdir = Path(tempfile.mkdtemp(prefix="rowtrail-demo-"))
    try:
        # The embedded default (SQLite), whatever $ROWTRAIL_DATABASE says: the demo's tamper
        # steps edit copies of the workspace's database file.
        with open_workspace(path, actor="demo", create=True, database="sqlite") as ws:
            start_marker(path)
            ctx = DemoContext(
                ws=ws, workdir=workdir, console=console, quiet=quiet, seed=seed, size=size
            )
            ctx.say(f"[bold]rowtrail demo[/] — workspace {ws.path}")
            for name, section in SECTIONS:
                started = time.perf_counter()
                section(ctx)
                elapsed = round(time.perf_counter() - started, 3)
                ctx.results.setdefault("timings_s", {})[name] = elapsed
            ctx.results["workspace"] = str(ws.path)
    finally:
        if (path / MARKER).is_file():  # every file there now is the demo's own
            finish_marker(path)
        shutil.rmtree(workdir, ignore_errors=True)
    return ctx.results
