"""``rowtrail verify`` and the ``rowtrail ledger`` command group."""

from __future__ import annotations

import base64
from pathlib import Path
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
from rowtrail.errors import InvalidInputError, StateError, TrustRootError
from rowtrail.ledger import TrustRoot

__all__ = ["init", "ledger_app", "trust", "verify"]

ledger_app = typer.Typer(
    help="Inspect the ledger: head, entries, inclusion and consistency proofs."
)


VkeyOption = Annotated[
    Path | None,
    typer.Option(
        "--vkey",
        help="Verifier key file the log's operator published (instead of this user's trust "
        "state). Give --checkpoint with it.",
    ),
]
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint",
        help="A signed checkpoint of this log saved earlier by a third party; the log must "
        "contain it.",
    ),
]


def verify(
    workspace: WorkspaceOption = None,
    vkey: VkeyOption = None,
    checkpoint: CheckpointOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Verify everything answers come from; exit 1 on the first failure. Writes nothing.

    Checks every ledger entry, tree node and index, the signed checkpoints and their chain,
    the log against a trust root kept outside the workspace (this user's trust state, or
    --vkey/--checkpoint), the cache tables, blobs and every digest-bound file.
    """
    with handle_errors(as_json=as_json, traceback=traceback):
        if checkpoint is not None and vkey is None:
            raise InvalidInputError(
                "--checkpoint of rowtrail verify needs --vkey: the key that signed it"
            )
        ws = open_ws(workspace)
        root = None if vkey is None else TrustRoot.from_files(vkey, checkpoint, origin=ws.origin)
        size = ws.ledger.size
        if as_json:
            report = ws.verify(trust_root=root)
        else:
            with Progress(console=console, transient=True) as progress:
                task = progress.add_task("verifying ledger", total=size)
                report = ws.verify(progress=lambda n: progress.advance(task, n), trust_root=root)

        def human() -> None:
            console.print(
                f"[green]OK[/] ledger {ws.origin}: {report.size} entries, root "
                f"{report.root.hex()}, {report.n_nodes} tree nodes, {report.n_blobs} blobs, "
                f"{report.n_checkpoints} checkpoints verified; trusted checkpoint of size "
                f"{report.witnessed_size} from {report.trust_source}; "
                + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in report.counts.items())
            )

        emit(report.to_json(), as_json=as_json, human=human)


def init(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Create a workspace (directory, keys, database) and pin its trust root for this user."""
    from rowtrail._workspace import init_workspace

    with handle_errors(as_json=as_json):
        from rowtrail import _context

        with init_workspace(workspace or _context.default_location()) as ws:
            data = {"workspace": str(ws.path), "origin": ws.origin, "vkey": ws.ledger.verifier.vkey}
        emit(
            data,
            as_json=as_json,
            human=lambda: console.print(
                f"workspace {data['workspace']}\nlog {data['origin']}\nverifier key "
                f"{data['vkey']}\nkeys/subject.key re-identifies subjects: back it up, never "
                "share it; verifiers need no key."
            ),
        )


def trust(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Trust a workspace received from elsewhere: pin its key and latest checkpoint.

    Check it first against what its operator published (rowtrail verify --vkey --checkpoint).
    """
    with handle_errors(as_json=as_json):
        ws = open_ws(workspace)
        pinned = ws.trust_current_state()
        data = {
            "origin": ws.origin,
            "vkey": ws.ledger.verifier.vkey,
            "size": 0 if pinned is None else pinned.size,
        }
        emit(data, as_json=as_json, human=lambda: console.print(
            f"trusted log {data['origin']} at size {data['size']} (key {data['vkey']})"
        ))


@ledger_app.command("head")
def head(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Print size, root and the latest signed checkpoint (checked against the trust root)."""
    with handle_errors(as_json=as_json):
        ws = open_ws(workspace)
        tree = ws.ledger.trusted_head()
        latest = ws.ledger.latest_checkpoint()
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
    """Print the RFC 9162 inclusion proof of an entry (default: against the signed head)."""
    with handle_errors(as_json=as_json):
        ledger = open_ws(workspace).ledger
        if size is None:
            proof = ledger.prove_signed([index])[1][0]
        else:
            proof = ledger.prove(index, size)
            proof.verify()
        data = proof.to_json()
        emit(data, as_json=as_json, human=lambda: console.print_json(data=data))


@ledger_app.command("checkpoint")
def checkpoint(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Check the latest signed checkpoint against the trust root and move the trust root to it.

    Every write signs a checkpoint; this is needed only after a writer crashed between its
    commit and updating the trust state.
    """
    with handle_errors(as_json=as_json):
        with open_ws(workspace, read_only=False) as ws:
            signed = ws.ledger.checkpoint()
        data = {"size": signed.size, "root": signed.root.hex(), "checkpoint": signed.note}
        emit(data, as_json=as_json, human=lambda: console.print(signed.note))


@ledger_app.command("key")
def key(workspace: WorkspaceOption = None, as_json: JsonOption = False) -> None:
    """Print the log's verifier key (C2SP vkey), so a third party can pin it.

    The key is the workspace's, checked against the trust root kept outside the workspace;
    save it and later run: rowtrail verify --vkey FILE --checkpoint FILE. Writes nothing.
    """
    with handle_errors(as_json=as_json):
        ws = open_ws(workspace)
        verifier = ws.ledger.verifier
        pinned = ws.trust_root().verifier
        if pinned.vkey != verifier.vkey:
            raise TrustRootError(
                f"the workspace's key {verifier.vkey} is not the key pinned for {ws.origin} "
                f"({pinned.vkey}); do not publish it. Run `rowtrail verify`."
            )
        data = {
            "origin": ws.origin,
            "vkey": verifier.vkey,
            "key_name": verifier.name,
            "key_id": verifier.key_id.hex(),
            "public_key": base64.b64encode(verifier.public_key).decode("ascii"),
        }
        emit(data, as_json=as_json, human=lambda: console.print(data["vkey"], soft_wrap=True))


@ledger_app.command("export-trust")
def export_trust(
    out: Annotated[Path, typer.Argument(help="Directory to write vkey and checkpoint into.")],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the verifier key and the latest trusted checkpoint for a third party to keep.

    They later run: rowtrail verify --vkey OUT/vkey --checkpoint OUT/checkpoint.
    """
    with handle_errors(as_json=as_json):
        ws = open_ws(workspace)
        head = ws.ledger.trusted_head()
        latest = ws.ledger.latest_checkpoint()
        if latest is None or latest.size != head.size:
            raise StateError("the ledger is empty: there is no checkpoint to export yet")
        if out.exists() and any(out.iterdir()):
            raise InvalidInputError(
                f"out of rowtrail ledger export-trust must be a new or empty directory; {out} "
                "holds files. Nothing was written."
            )
        out.mkdir(parents=True, exist_ok=True)
        (out / "vkey").write_text(ws.ledger.verifier.vkey + "\n", encoding="utf-8")
        (out / "checkpoint").write_text(latest.note, encoding="utf-8")
        data = {"vkey": str(out / "vkey"), "checkpoint": str(out / "checkpoint"),
                "size": head.size}
        emit(data, as_json=as_json, human=lambda: console.print(
            f"wrote {data['vkey']} and {data['checkpoint']} (size {head.size})"
        ))


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
