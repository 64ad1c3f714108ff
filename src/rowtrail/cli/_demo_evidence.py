"""Demo section: answers only from verified records, checked against a trust root outside.

Shows, on the demo's own workspace and on copies of it, what the evidence rule means for a
user: where the trust root lives and what a third party keeps; that an auditor verifies with
only the published key and checkpoint; that a deleted cache row makes "was my data used?"
refuse instead of answering "no"; and that a copy rolled back to an earlier state fails
against the trust root even though every signature in it is valid.
"""

from __future__ import annotations

import shutil
import sqlite3
from typing import TYPE_CHECKING

from rowtrail.errors import RowtrailError, VerificationError
from rowtrail.ledger import TrustRoot
from rowtrail.training import sample_usage

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]


def _refusal(call: object) -> str:
    """Run ``call`` and return the error it raised (the demo expects one)."""
    try:
        call()  # type: ignore[operator]
    except VerificationError as exc:
        text = str(exc)
        if len(text) > 150:
            text = text[:150].rsplit(" ", 1)[0] + " …"
        return f"{type(exc).__name__}: {text}"
    raise RowtrailError("a tampered copy answered: the evidence checks are broken")


def section(ctx: DemoContext) -> None:
    """Trust root, third-party verification, a refused answer and a rolled-back copy."""
    from rowtrail._workspace import open_workspace

    ctx.heading("Evidence: every answer from verified records")
    ws = ctx.ws
    root = ws.trust_root()
    trusted = ws.ledger.checkpoint()  # moves the trust root to the latest signed head
    ctx.say(
        f"trust root outside the workspace: {root.source.removeprefix('the trust state in ')}"
        f"\n  pinned key {root.verifier.vkey[:40]}…, trusted checkpoint of size {trusted.size}"
    )
    kept = ctx.workdir / "auditor"
    kept.mkdir()
    (kept / "vkey").write_text(root.verifier.vkey + "\n", encoding="utf-8")
    (kept / "checkpoint").write_text(trusted.note, encoding="utf-8")
    audit = ws.verify(trust_root=TrustRoot.from_files(kept / "vkey", kept / "checkpoint"))
    ctx.say(
        f"an auditor who kept only the key and that checkpoint verifies {audit.size} entries "
        f"and {sum(audit.counts.values())} cache rows and files "
        f"(rowtrail verify --vkey … --checkpoint …): [green]OK[/]"
    )

    subject = _used_subject(ctx)
    uses = sample_usage(ws, subject=subject)
    ws.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    edited = ctx.workdir / "edited-copy"
    shutil.copytree(ws.path, edited)
    with sqlite3.connect(edited / "rowtrail.db") as conn:
        conn.execute("DELETE FROM subject_rows WHERE subject = ?", (subject,))
    with open_workspace(edited, read_only=True) as copy:
        refused = _refusal(lambda: sample_usage(copy, subject=subject))
    ctx.say(
        f"was subject {subject[:15]}… used? {len(uses)} uses, each proven. In a copy with "
        f"that subject's row deleted from the cache table, the answer is refused, not 'no':\n"
        f"  [bold red]{refused}[/]"
    )

    rolled = ctx.workdir / "rolled-back-copy"
    shutil.copytree(ws.path, rolled)
    ws.ledger.append("audit.note", {"text": "evidence section ran"})
    with open_workspace(rolled, read_only=True) as copy:
        rollback = _refusal(copy.verify)
    ctx.say(
        "a copy from before the last write, every signature in it valid, fails against the "
        f"trust root:\n  [bold red]{rollback}[/]"
    )
    ctx.record(
        "evidence",
        {
            "trust_root": root.source,
            "trusted_size": trusted.size,
            "auditor_verified_size": audit.size,
            "subject_uses": len(uses),
            "edited_cache_refused": refused,
            "rolled_back_refused": rollback,
        },
    )


def _used_subject(ctx: DemoContext) -> str:
    """Return the subject of the top supporting row of the explained decision (it trained)."""
    index = ctx.state.get("attribution_prediction_index")
    if isinstance(index, int):
        for sample in ctx.ws.explain(index, top_k=5).supporting:
            if sample.subject:
                return sample.subject
    return str(ctx.state["subject"])
