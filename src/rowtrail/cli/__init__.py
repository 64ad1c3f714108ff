"""The ``rowtrail`` command line (typer + rich).

Exit status: 0 success, 1 a rowtrail error or failed verification, 2 a usage error.
"""

from __future__ import annotations

from typing import Annotated

import typer

from rowtrail.cli._certificate import certificate_app
from rowtrail.cli._common import (
    JsonOption,
    TracebackOption,
    WorkspaceOption,
    console,
    emit,
    handle_errors,
)
from rowtrail.cli._demo import run_demo
from rowtrail.cli._erase import erase
from rowtrail.cli._explain import explain
from rowtrail.cli._interop import export_app, import_app, mlflow_app
from rowtrail.cli._ledger import init, ledger_app, trust, verify
from rowtrail.cli._registry import registry_app
from rowtrail.cli._reproduce import reconcile, reproduce, retention_app
from rowtrail.cli._witness import verify_offline, witness_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="rowtrail",
    help="Which source rows, through which steps, drove this decision — with proofs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("init")(init)
app.command("verify")(verify)
app.command("trust")(trust)
app.command("explain")(explain)
app.command("erase")(erase)
app.add_typer(ledger_app, name="ledger")
app.add_typer(certificate_app, name="certificate")
app.add_typer(witness_app, name="witness")
app.command("verify-offline")(verify_offline)
app.add_typer(registry_app, name="registry")
app.command("reproduce")(reproduce)
app.command("reconcile")(reconcile)
app.add_typer(retention_app, name="retention")
app.add_typer(export_app, name="export")
app.add_typer(import_app, name="import")
app.add_typer(mlflow_app, name="mlflow")


@app.command("demo")
def demo(
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    seed: Annotated[int, typer.Option(help="Seed of the generated data.")] = 0,
    size: Annotated[str, typer.Option(help="Data size: small or large.")] = "small",
    traceback: TracebackOption = False,
) -> None:
    """Walk the whole chain on generated data in a fresh workspace (default ./.rowtrail-demo)."""
    with handle_errors(as_json=as_json, traceback=traceback):
        results = run_demo(workspace, console=console, quiet=as_json, seed=seed, size=size)
        emit(
            results,
            as_json=as_json,
            human=lambda: console.print(
                f"\n[bold green]demo complete[/] — inspect it with: "
                f"rowtrail verify --workspace {results['workspace']}"
            ),
        )


def main() -> None:
    """Entry point of the ``rowtrail`` console script."""
    app()
