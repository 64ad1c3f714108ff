"""``rowtrail reproduce``, ``rowtrail reconcile`` and ``rowtrail retention`` (issue 13).

``reproduce`` and ``retention show``/``retention apply`` (a dry run unless ``--apply``) read
the workspace; ``reconcile`` records its findings as ledger events, so it opens it for
writing (``--no-record`` only reads). Exit status 1 when a prediction is not reproduced or a
blob does not match.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from rowtrail.cli._common import (
    JsonOption,
    TracebackOption,
    WorkspaceOption,
    console,
    emit,
    error_console,
    handle_errors,
    open_ws,
)
from rowtrail.errors import InvalidInputError

__all__ = ["reconcile", "reproduce", "retention_app"]


def reproduce(
    prediction_id: Annotated[
        str, typer.Argument(help="Prediction id returned by the logger (pred-<session>-<n>).")
    ],
    rtol: Annotated[float, typer.Option(help="Relative tolerance of the comparison.")] = 1e-9,
    atol: Annotated[float, typer.Option(help="Absolute tolerance of the comparison.")] = 1e-12,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Walk a prediction back to deployment, model, run, data and code, and re-score it.

    Every record on the chain is proven against the signed checkpoint; the model artifact is
    re-hashed and loaded; the logged input is re-scored and compared with the logged output
    (|a - b| <= atol + rtol * |b|). A shredded (erased) or expired input is reported as such,
    naming the erasure job or the expiry date. Exit status 1 unless the output matches.
    """
    from rowtrail.registry._reproduce import reproduce as run_reproduce

    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        result = run_reproduce(ws, prediction_id, rtol=rtol, atol=atol)
        emit(result.to_json(), as_json=as_json, human=lambda: console.print(result.to_text()))
    if not result.ok:
        raise typer.Exit(1)


def reconcile(
    record: Annotated[
        bool,
        typer.Option(
            "--record/--no-record",
            help="Record mismatches and a summary as ledger events (opens for writing).",
        ),
    ] = True,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Re-hash every artifact and blob against its digest, with a progress bar on stderr.

    Every blob file must hash to its name and every blob a ledger event names must be stored
    (unless an erasure or retention event accounts for it). Each mismatch is recorded as a
    registry.reconcile_failed event and the run as registry.reconciled; exit status 1 on any
    mismatch. Reports MB/s.
    """
    from rowtrail.registry._reconcile import reconcile as run_reconcile
    from rowtrail.registry._reconcile import total_blob_bytes

    with (
        handle_errors(as_json=as_json, traceback=traceback),
        open_ws(workspace, read_only=not record) as ws,
    ):
        total = total_blob_bytes(ws)
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=error_console,
            transient=as_json,
            disable=not error_console.is_terminal,
        ) as bar:
            task = bar.add_task("re-hashing blobs", total=total)
            report = run_reconcile(
                ws, progress=lambda n: bar.advance(task, n), record=record, check=False
            )

        def human() -> None:
            console.print(
                f"{report.n_files} blobs, {report.n_bytes / 1e6:.1f} MB re-hashed at "
                f"{report.mb_per_s:.1f} MB/s; {report.n_named} named by the ledger"
            )
            for m in report.mismatches:
                error_console.print(f"[bold red]{m.problem}[/]: {m.blob} — {m.detail}")
            if report.ok:
                console.print("[bold green]every blob matches its digest[/]")

        emit(report.to_json(), as_json=as_json, human=human)
    if not report.ok:
        raise typer.Exit(1)


retention_app = typer.Typer(
    help="Retention of payloads per event kind (the chain and proofs stay).",
    no_args_is_help=True,
)


@retention_app.command("set")
def retention_set(
    days: Annotated[
        list[str],
        typer.Argument(help="KIND=DAYS pairs, e.g. registry.prediction_batch=365."),
    ],
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Record a retention policy (refused below a kind's legal minimum)."""
    from rowtrail.registry._retention import set_retention_policy

    with handle_errors(as_json=as_json, traceback=traceback):
        parsed = {}
        for item in days:
            kind, _, value = item.partition("=")
            if not value.strip().isdigit():
                raise InvalidInputError(
                    f"days of rowtrail retention set must be KIND=DAYS pairs; got {item!r}."
                )
            parsed[kind.strip()] = int(value)
        with open_ws(workspace, read_only=False) as ws:
            policy = set_retention_policy(ws, parsed)
        emit(
            policy.to_json(),
            as_json=as_json,
            human=lambda: console.print(f"retention policy recorded (entry {policy.ledger_index})"),
        )


@retention_app.command("apply")
def retention_apply(
    apply: Annotated[
        bool, typer.Option("--apply", help="Delete expired payloads (default: a dry run).")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(help="Judge expiry at this ISO 8601 time (no later than now)."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """List (or with --apply delete) payload blobs whose retention ran out."""
    from rowtrail.registry._retention import apply_retention

    with handle_errors(as_json=as_json, traceback=traceback):
        when = None
        if now is not None:
            try:
                when = datetime.fromisoformat(now)
            except ValueError as exc:
                raise InvalidInputError(
                    f"now of rowtrail retention apply must be an ISO 8601 time with an offset; "
                    f"got {now!r}."
                ) from exc
        with open_ws(workspace, read_only=not apply) as ws:
            report = apply_retention(ws, now=when, dry_run=not apply)

        def human() -> None:
            verb = "would expire" if report.dry_run else "expired"
            if report.policy is None:
                console.print("no retention policy is recorded: nothing expires")
            for item in report.expired:
                console.print(
                    f"{verb}: entry {item.ledger_index} ({item.kind}) blob {item.blob}, "
                    f"{item.size} bytes, retention ran out {item.expires_at.isoformat()}"
                )
            if report.dry_run and report.expired:
                console.print("dry run: nothing was deleted; rerun with --apply")

        emit(report.to_json(), as_json=as_json, human=human)
