"""``rowtrail verify`` and the ``rowtrail ledger`` command group."""

from __future__ import annotations

import base64
from typing import Annotated

import typer
from rich.progress import Progress

from rowtrail.cli._common import (
    JsonOption,
    TracebackOption,
    WorkspaceOption,
    console,
    emit,
    handle_errors,
    open_ws,
)

__all__ = ["ledger_app", "verify"]

ledger_app = typer.Typer(
    help="Inspect the ledger: head, entries, inclusion and consistency proofs."
)


def verify(
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Verify every ledger entry, tree node, blob and checkpoint; exit 1 on the first failure."""
    with handle_errors(as_json=as_json, traceback=traceback):
        ws = open_ws(workspace)
        size = ws.ledger.size
        if as_json:
            report = ws.verify()
        else:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("verifying ledger", total=size)
                report = ws.verify(progress=lambda n: progress.advance(task, n))

        def human() -> None:
            console.print(
                f"[green]OK[/] ledger {ws.origin}: {report.size} entries, root "
                f"{report.root.hex()}, {report.n_nodes} tree nodes, {report.n_blobs} blobs, "
                f"{report.n_checkpoints} checkpoints verified"
            )

        emit(report.to_json(), as_json=as_json, human=human)


@ledger_app.command("head")
def head(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Print size, root and the latest signed checkpoint."""
    with handle_errors(as_json=as_json):
        ws = open_ws(workspace)
        tree = ws.ledger.head()
        latest = ws.ledger.latest_checkpoint()
        if tree.size and (latest is None or latest.size != tree.size):
            latest_note = ws.ledger.checkpoint().note
        else:
            latest_note = latest.note if latest else ""
        data = {"size": tree.size, "root": tree.root.hex(), "checkpoint": latest_note}
        emit(
            data,
            as_json=as_json,
            human=lambda: console.print(
                f"size {tree.size}\nroot {tree.root.hex()}\n\n{latest_note}"
            ),
        )


@ledger_app.command("entry")
def entry(
    index: Annotated[int, typer.Argument(help="Ledger index (0-based).")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print one entry: exact leaf bytes (base64), leaf hash and decoded event."""
    with handle_errors(as_json=as_json):
        item = open_ws(workspace).ledger.entry(index)
        emit(
            item.to_json(),
            as_json=as_json,
            human=lambda: console.print(
                f"index {item.index}\nleaf_hash {item.leaf_hash.hex()}\nkind {item.event.kind}\n"
                f"leaf {base64.b64encode(item.leaf).decode()}"
            ),
        )


@ledger_app.command("prove")
def prove(
    index: Annotated[int, typer.Argument(help="Ledger index (0-based).")],
    size: Annotated[
        int | None, typer.Option("--size", help="Tree size (default: current).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the RFC 9162 inclusion proof of an entry."""
    with handle_errors(as_json=as_json):
        proof = open_ws(workspace).ledger.prove(index, size)
        proof.verify()
        data = proof.to_json()
        emit(data, as_json=as_json, human=lambda: console.print_json(data=data))


@ledger_app.command("consistency")
def consistency(
    old: Annotated[int, typer.Argument(help="Older tree size.")],
    new: Annotated[int, typer.Argument(help="Newer tree size.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the RFC 9162 consistency proof between two tree sizes."""
    with handle_errors(as_json=as_json):
        proof = open_ws(workspace).ledger.consistency(old, new)
        proof.verify()
        data = proof.to_json()
        emit(data, as_json=as_json, human=lambda: console.print_json(data=data))
