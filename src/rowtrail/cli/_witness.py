"""``rowtrail witness`` (serve, vkey, check-git) and ``rowtrail verify-offline``.

None of these opens a workspace: a witness keeps its own state (``--state``, default under the
per-user state directory) and the offline verifier needs only the files a third party holds.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rowtrail.cli._common import JsonOption, TracebackOption, console, emit, handle_errors
from rowtrail.errors import InvalidInputError
from rowtrail.ledger import (
    CosignatureVerifier,
    GitWitness,
    NoteVerifier,
    Witness,
    WitnessServer,
    verify_git_witness,
    witness_state_dir,
)

__all__ = ["verify_offline", "witness_app"]

witness_app = typer.Typer(
    help="Run a witness that cosigns only consistent checkpoints (C2SP tlog-witness)."
)

NameOption = Annotated[
    str, typer.Option("--name", help="The witness's key name, e.g. witness.example.com/w1.")
]
StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Witness state directory (key, cosigned checkpoints); default: under the "
        "per-user state directory ($ROWTRAIL_STATE_DIR). Never inside a workspace.",
    ),
]
LogOption = Annotated[
    list[str],
    typer.Option(
        "--log",
        help="A log to witness: ORIGIN=VKEY, or VKEY alone when its key name is the origin "
        "(as for rowtrail logs). Repeatable.",
    ),
]


def parse_logs(values: list[str]) -> dict[str, list[NoteVerifier]]:
    """Parse ``--log ORIGIN=VKEY`` / ``--log VKEY`` options into origin -> verifier keys."""
    logs: dict[str, list[NoteVerifier]] = {}
    for value in values:
        head, sep, rest = value.partition("=")
        origin, vkey = (head, rest) if sep and "+" not in head else (None, value)
        verifier = NoteVerifier.from_vkey(vkey)
        logs.setdefault(origin or verifier.name, []).append(verifier)
    return logs


def _state(name: str, state: Path | None) -> Path:
    return state if state is not None else witness_state_dir(name)


@witness_app.command("serve")
def serve(
    name: NameOption,
    log: LogOption,
    state: StateOption = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port (0: any free port).")] = 0,
    prefix: Annotated[str, typer.Option("--prefix", help="URL prefix, e.g. /witness.")] = "",
    git: Annotated[
        Path | None,
        typer.Option(
            "--git",
            help="Run a git witness: keep what it cosigns as signed commits of this repository "
            "(created if missing), readable by anyone with `rowtrail witness check-git`.",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Log requests to stderr.")] = False,
    traceback: TracebackOption = False,
) -> None:
    """Serve POST /add-checkpoint and GET /<origin hash>/checkpoint until stopped.

    Prints one JSON line first: {"url", "name", "vkey"} (publish the vkey). Stops cleanly on
    SIGTERM or Ctrl-C.
    """
    with handle_errors(traceback=traceback):
        logs = parse_logs(log)
        if not logs:
            raise InvalidInputError("--log of rowtrail witness serve must name at least one log")
        directory = _state(name, state)
        witness = (
            Witness.open(name, logs, state_dir=directory)
            if git is None
            else GitWitness.open(name, logs, state_dir=directory, repo=git)
        )
        server = WitnessServer(witness, (host, port), prefix=prefix, verbose=verbose)

        def stop(*_: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        info = {"url": server.url, "name": witness.name, "vkey": witness.verifier.vkey,
                "state": str(directory), "logs": sorted(logs)}
        sys.stdout.write(json.dumps(info) + "\n")
        sys.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


@witness_app.command("vkey")
def vkey(
    name: NameOption,
    state: StateOption = None,
    as_json: JsonOption = False,
) -> None:
    """Print the witness's cosignature verifier key (creating its key on first use)."""
    with handle_errors(as_json=as_json):
        directory = _state(name, state)
        witness = Witness.open(name, {}, state_dir=directory)
        data = {"name": name, "vkey": witness.verifier.vkey, "state": str(directory)}
        emit(data, as_json=as_json, human=lambda: console.print(data["vkey"], soft_wrap=True))


@witness_app.command("check-git")
def check_git(
    repo: Annotated[Path, typer.Option("--repo", help="The git witness repository (or a clone).")],
    witness_vkey: Annotated[
        str, typer.Option("--witness-vkey", help="The witness's cosignature vkey (text or file).")
    ],
    log: LogOption = [],  # noqa: B006 - typer reads the default, never mutates it
    head_file: Annotated[
        Path | None,
        typer.Option(
            "--head-file",
            help="Where the head verified last time is kept: it must still be an ancestor; "
            "on success the new head is written there.",
        ),
    ] = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Walk a git witness's history; exit 1 if it was rewritten or does not verify."""
    with handle_errors(as_json=as_json, traceback=traceback):
        text = Path(witness_vkey).read_text() if Path(witness_vkey).is_file() else witness_vkey
        witness = CosignatureVerifier.from_vkey(text.strip())
        known = None
        if head_file is not None and head_file.exists():
            known = head_file.read_text(encoding="utf-8").strip() or None
        report = verify_git_witness(
            repo, witness, logs=parse_logs(log) if log else None, known_head=known
        )
        if head_file is not None and report.head is not None:
            head_file.write_text(report.head + "\n", encoding="utf-8")
        data = {"ok": True, "head": report.head, "n_commits": report.n_commits,
                "sizes": dict(report.sizes)}
        emit(data, as_json=as_json, human=lambda: console.print(
            f"[green]OK[/] git witness {repo}: {report.n_commits} signed commit(s), head "
            f"{report.head}; " + ", ".join(f"{o} at size {s}" for o, s in report.sizes.items())
        ))


def verify_offline(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="The checkpoint note file.")],
    vkey: Annotated[Path, typer.Option("--vkey", help="The log's verifier key file.")],
    witness_vkey: Annotated[
        list[Path],
        typer.Option("--witness-vkey", help="A trusted witness's vkey file (repeatable)."),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    quorum: Annotated[
        int | None,
        typer.Option("--quorum", help="How many witnesses must have cosigned (default: all)."),
    ] = None,
    proof: Annotated[
        Path | None,
        typer.Option("--proof", help="Inclusion or consistency proof (JSON, as `ledger prove "
                     "--json` / `ledger consistency --json` print it)."),
    ] = None,
    leaf: Annotated[Path | None, typer.Option("--leaf", help="The exact leaf bytes.")] = None,
    entry: Annotated[
        Path | None, typer.Option("--entry", help="`rowtrail ledger entry --json` output.")
    ] = None,
    old_checkpoint: Annotated[
        Path | None,
        typer.Option("--old-checkpoint", help="An older signed checkpoint (for consistency)."),
    ] = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Check a checkpoint, its cosignatures and a proof without any workspace.

    The same checks as the standalone module rowtrail/verify_offline.py (stdlib and
    cryptography only), which a third party can copy and run alone.
    """
    from rowtrail.verify_offline import verify_files

    with handle_errors(as_json=as_json, traceback=traceback):
        result: dict[str, Any] = verify_files(
            checkpoint=checkpoint, vkey=vkey, witness_vkeys=witness_vkey, quorum=quorum,
            proof=proof, leaf=leaf, entry=entry, old_checkpoint=old_checkpoint,
        )
        emit(result, as_json=as_json, human=lambda: console.print(
            f"[green]OK[/] checkpoint {result['origin']} size {result['size']} root "
            f"{result['root']}; cosigned by {sorted(result['cosigners']) or 'no witness'}"
            + (f"; entry {result['inclusion']['index']} included" if result["inclusion"] else "")
            + (f"; consistent with size {result['consistency']['old_size']}"
               if result["consistency"] else ""),
            soft_wrap=True,
        ))
