"""The ``rowtrail registry`` command group: alias history, model versions, deployments.

Every command opens the workspace read-only and answers from proven ledger events.
"""

from __future__ import annotations

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
from rowtrail.errors import InvalidInputError

__all__ = ["registry_app"]

registry_app = typer.Typer(
    help="The registry audit trail: model versions, alias/stage history, deployments."
)


def _when(change: Any) -> str:
    return str(change.created_at.isoformat())


@registry_app.command("history")
def history(
    model: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[
        str | None, typer.Option("--alias", help="Only this alias or stage.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="ISO 8601 time with offset: what --alias pointed to then."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Print every move of a model's aliases and stages (who, when, which version, why).

    With --alias and --at, print what that alias pointed to at that time.
    """
    with handle_errors(as_json=as_json, traceback=traceback):
        if at is not None and alias is None:
            raise InvalidInputError("--at of rowtrail registry history needs --alias")
        reg = open_ws(workspace).registry
        if at is not None and alias is not None:
            found = reg.alias_at(model, alias, at)
            data: Any = {"model": model, "alias": alias, "at": at,
                         "change": None if found is None else found.to_json()}
            emit(data, as_json=as_json, human=lambda: console.print(
                f"{model} {alias} at {at}: "
                + ("not set" if found is None else
                   f"version {found.version} (set by {found.actor} at {_when(found)}, "
                   f"ledger event {found.index})")
            ))
            return
        changes = reg.history(model, alias)

        def human() -> None:
            if not changes:
                console.print(f"no alias or stage of {model!r} was ever set")
            for c in changes:
                target = "removed" if c.version is None else f"-> version {c.version}"
                console.print(
                    f"{_when(c)}  {c.alias:<12} {target:<14} by {c.actor} via {c.via} "
                    f"(event {c.index}; approvals {list(c.approvals)}, "
                    f"attestations {list(c.attestations)}, overrides {list(c.overrides)})"
                )

        emit([c.to_json() for c in changes], as_json=as_json, human=human)


@registry_app.command("show")
def show(
    model: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[
        str | None, typer.Argument(help="Version number or alias (default: the latest).")
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Print a model version: artifact, run, datasets, code, approvals and attestations."""
    with handle_errors(as_json=as_json, traceback=traceback):
        reg = open_ws(workspace).registry
        key: int | str | None = int(version) if version and version.isdigit() else version
        found = reg.model_version(model, key)
        data = found.to_json()
        data["approvals"] = [a.to_json() for a in reg.approvals(model, found.version)]
        data["attestations"] = [a.to_json() for a in reg.attestations(model, found.version)]
        data["aliases"] = sorted({
            c.alias for c in reg.history(model)
            if (cur := reg.current_alias(model, c.alias)) is not None
            and cur.version == found.version
        })

        def human() -> None:
            run = found.run
            console.print(f"[bold]{found.name} version {found.version}[/] (event {found.index}, "
                          f"by {found.actor} at {found.created_at.isoformat()})")
            console.print(f"artifact {found.artifact_digest} ({found.flavor}, {found.size} B); "
                          f"bound to sealed weights: {found.binding or 'no'}")
            console.print(f"aliases: {', '.join(data['aliases']) or '-'}")
            if run is not None:
                console.print(f"run {run.run_id} ({run.name}); training run {run.training_run}; "
                              f"code {run.code.get('git_commit')} dirty={run.code.get('dirty')}")
                for d in run.datasets:
                    console.print(f"  dataset {d.name} v{d.version}: lineage {d.lineage_status}, "
                                  f"schema {d.schema_status}")
            for a in data["approvals"]:
                console.print(f"approved for {a['stage']} by {a['actor']} at {a['created_at']}")
            for a in data["attestations"]:
                console.print(f"attestation {a['kind']}: "
                              f"{'passed' if a['passed'] else 'FAILED'} by {a['actor']}")

        emit(data, as_json=as_json, human=human)


@registry_app.command("deployments")
def deployments(
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    environment: Annotated[
        str | None, typer.Option("--environment", help="Only this environment.")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="ISO 8601 time with offset: what --environment ran then."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Print every recorded deployment: id, model version, environment, config digest.

    With --environment and --at, print what was deployed there at that time.
    """
    with handle_errors(as_json=as_json, traceback=traceback):
        if at is not None and environment is None:
            raise InvalidInputError("--at of rowtrail registry deployments needs --environment")
        reg = open_ws(workspace).registry
        if at is not None and environment is not None:
            then = reg.deployment_at(environment, at)
            found = [] if then is None else [then]
        else:
            found = reg.deployments(model)
        found = [d for d in found if (environment is None or d.environment == environment)
                 and (model is None or d.model_version.name == model)]

        def human() -> None:
            if not found:
                console.print("no deployment is recorded")
            for d in found:
                mv = d.model_version
                via = f" (alias {d.alias})" if d.alias else ""
                console.print(f"{d.deployment_id}  {mv.name} v{mv.version}{via} -> "
                              f"{d.environment}  config {d.config_digest}  by {d.actor} at "
                              f"{d.created_at.isoformat()}")

        emit([d.to_json() for d in found], as_json=as_json, human=human)
