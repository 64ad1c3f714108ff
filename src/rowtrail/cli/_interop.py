"""``rowtrail export openlineage|prov``, ``rowtrail import mlflow``, ``rowtrail mlflow attach``.

Exports and ``mlflow attach`` open the workspace read-only (attach writes tags to MLflow, not
to the workspace); ``import mlflow`` writes registry events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

__all__ = ["export_app", "import_app", "mlflow_app"]

export_app = typer.Typer(
    help="Export the workspace's proven records to other tools' formats.", no_args_is_help=True
)
import_app = typer.Typer(help="Import records from other tools into the registry.",
                         no_args_is_help=True)
mlflow_app = typer.Typer(help="Link MLflow runs to rowtrail's evidence.", no_args_is_help=True)

OutOption = Annotated[Path, typer.Option("--out", "-o", help="File to write (must not exist).")]
TrackingUriOption = Annotated[
    str,
    typer.Option("--tracking-uri", help="MLflow tracking URI, e.g. sqlite:////path/mlflow.db."),
]


@export_app.command("openlineage")
def export_openlineage_command(
    out: OutOption,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Write OpenLineage run events (one JSON per line) with a ledger-proof facet each."""
    from rowtrail.interop import export_openlineage

    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        result = export_openlineage(ws, out)
        emit(result.to_json(), as_json=as_json, human=lambda: console.print(
            f"wrote {result.n_events} OpenLineage events of {result.n_runs} runs to "
            f"{result.path} (proofs against the signed checkpoint of size {result.tree_size})"
        ))


@export_app.command("prov")
def export_prov_command(
    out: OutOption,
    subject: Annotated[
        str | None,
        typer.Option(help="Only this subject's decisions and erasures (pseudonym or raw id)."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Write a W3C PROV-JSON document of sources, pipelines, runs, models and decisions."""
    from rowtrail.interop import export_prov

    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        result = export_prov(ws, out, subject=subject)
        counts = ", ".join(f"{n} {kind}" for kind, n in result.counts.items())
        emit(result.to_json(), as_json=as_json,
             human=lambda: console.print(f"wrote PROV-JSON to {result.path}: {counts}"))


@import_app.command("mlflow")
def import_mlflow_command(
    tracking_uri: TrackingUriOption,
    experiment: Annotated[
        str | None, typer.Option(help="Only this MLflow experiment (default: all).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Import MLflow runs and their registered model versions as registry records."""
    from rowtrail.interop import import_mlflow

    with handle_errors(as_json=as_json, traceback=traceback), open_ws(
        workspace, read_only=False
    ) as ws:
        result = import_mlflow(ws, tracking_uri, experiment=experiment)
        emit(result.to_json(), as_json=as_json, human=lambda: console.print(
            f"{len(result.runs)} MLflow runs and {len(result.model_versions)} model versions "
            f"found; {result.n_new} recorded now"
        ))


@mlflow_app.command("attach")
def mlflow_attach_command(
    run_id: Annotated[str, typer.Argument(help="The MLflow run id.")],
    tracking_uri: TrackingUriOption,
    registry_run: Annotated[
        str | None,
        typer.Option(help="The registry run it matches (default: the one imported from it)."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Tag an MLflow run with its rowtrail record's ledger proof and signed checkpoint."""
    from rowtrail.interop import attach_to_mlflow

    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        tags = attach_to_mlflow(ws, run_id, tracking_uri=tracking_uri, registry_run=registry_run)
        emit(tags, as_json=as_json, human=lambda: console.print(
            f"set {len(tags)} rowtrail.* tags on MLflow run {run_id} (ledger index "
            f"{tags['rowtrail.ledger_index']}, checkpoint size {tags['rowtrail.checkpoint.size']})"
        ))


@mlflow_app.command("verify")
def mlflow_verify_command(
    run_id: Annotated[str, typer.Argument(help="The MLflow run id.")],
    tracking_uri: TrackingUriOption,
    vkey: Annotated[
        str,
        typer.Option(help="The log's verifier key, or a file holding it (`rowtrail ledger "
                     "key`); never taken from the run's own tags."),
    ],
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Check an MLflow run's rowtrail.* tags against a pinned verifier key (no workspace)."""
    from rowtrail.interop import read_mlflow_tags, verify_mlflow_tags

    with handle_errors(as_json=as_json, traceback=traceback):
        key = Path(vkey).read_text("utf-8").strip() if Path(vkey).is_file() else vkey
        tags = read_mlflow_tags(run_id, tracking_uri=tracking_uri)
        verify_mlflow_tags(key, tags)
        result = {"ok": True, "run_id": run_id,
                  "ledger_index": int(tags["rowtrail.ledger_index"]),
                  "checkpoint_size": int(tags["rowtrail.checkpoint.size"])}
        emit(result, as_json=as_json, human=lambda: console.print(
            f"[green]verified[/]: MLflow run {run_id}'s record is ledger entry "
            f"{result['ledger_index']} of the signed checkpoint of size "
            f"{result['checkpoint_size']}"
        ))
