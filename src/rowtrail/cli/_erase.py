"""``rowtrail erase``: resolve an erasure request, print its plan, or run it.

The command runs a job whose rows no recorded model used (shredding the subject's stored
payloads and recording the ``erasure.*`` events). A request whose rows reached a model needs
the model and its rebuilt training data, which rowtrail does not keep: the command prints the
plan and exits 1 without writing, pointing to ``ws.erase(...).run(ModelInput(...))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rowtrail.cli._common import (
    JsonOption,
    TracebackOption,
    WorkspaceOption,
    console,
    emit,
    handle_errors,
    open_ws,
)
from rowtrail.errors import InvalidInputError, StateError

__all__ = ["erase"]


def _rows(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(
            f"--rows of rowtrail erase must be comma-separated row numbers; got {text!r}. "
            "E.g. --rows 1,2,5"
        ) from None


def _human(plan: dict[str, Any], done: dict[str, Any] | None) -> None:
    console.print(f"[bold]erasure job[/] {plan['job']}: {plan['n_rows']} row(s)")
    for request in plan["requests"]:
        target = request["request"].get("subject") or request["request"].get("source")
        console.print(
            f"  request {target}: {request['n_rows']} row(s), reason {request['reason']!r}"
        )
        for run in request["unknown_runs"]:
            console.print(f"  [yellow]unknown[/] {run['run']}: {run['reason']}")
    for model in plan["models"]:
        console.print(
            f"  model of run {model['run']}: remove {model['n_removed']} sample(s), recompute "
            f"{model['n_recomputed']}, {model['n_statistic_rows']} row(s) in fitted statistics"
        )
    if not plan["models"]:
        console.print("  no recorded model used these rows")
    if done is not None:
        console.print(
            f"[bold green]erased[/]: {len(done['key_ids'])} data key(s) destroyed; "
            f"erasure.completed at ledger entry {done['completed']}"
        )
        if done.get("certificate"):
            console.print(f"certificate: {done['certificate']}")


def erase(
    subject: Annotated[
        str | None, typer.Option(help="Subject identifier or pseudonym (ps:...).")
    ] = None,
    source: Annotated[str | None, typer.Option(help="Source name (with --rows).")] = None,
    rows: Annotated[
        str | None, typer.Option(help="Comma-separated 0-based row numbers of --source.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (e.g. 'GDPR Art. 17 request').")] = "",
    requested_at: Annotated[
        str | None,
        typer.Option("--requested-at", help="ISO 8601 time the request was made, with offset."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan; write nothing.")
    ] = False,
    certificate: Annotated[
        Path | None,
        typer.Option(
            help="Write the job's signed erasure certificate to this new file "
            "(check it with `rowtrail certificate verify FILE --vkey KEY`)."
        ),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Erase a data subject's rows (or rows of a source): resolve, shred, record.

    Resolves the request through the recorded lineage into the training samples to remove or
    recompute, the fitted statistics to refit and the stored payloads to shred. A bad request
    (unknown subject, rows out of range, unknown source) exits 1 and writes nothing.
    """
    with (
        handle_errors(as_json=as_json, traceback=traceback),
        open_ws(workspace, read_only=dry_run) as ws,
    ):
        job = ws.erase(
            subject=subject,
            source=source,
            rows=_rows(rows),
            reason=reason,
            requested_at=requested_at,
        )
        plan = job.to_json()
        done = None
        if not dry_run:
            if job.models:
                raise StateError(
                    f"this request reached the models of runs {sorted(job.models)}, which "
                    "must be updated with their rebuilt training data: run it from Python, "
                    "ws.erase(...).run(ModelInput(model, X_rebuilt=..., y_rebuilt=...)). See "
                    "the plan with --dry-run. Nothing was written."
                )
            if certificate is not None and certificate.exists():
                raise InvalidInputError(
                    f"--certificate of rowtrail erase must name a new file; {certificate} "
                    "exists. Choose another path. Nothing was written."
                )
            result = job.run()
            done = {
                "completed": result.completed_index,
                "key_ids": result.key_ids,
                "events": result.events,
            }
            if certificate is not None:
                certificate.write_bytes(job.certificate())
                done["certificate"] = str(certificate)
        emit(
            plan | {"dry_run": dry_run, "result": done},
            as_json=as_json,
            human=lambda: _human(plan, done),
        )
