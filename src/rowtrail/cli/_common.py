"""Shared CLI plumbing: workspace option, JSON/human output, one error handler."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.console import Console

from rowtrail._workspace import Workspace, open_workspace
from rowtrail.errors import RowtrailError, VerificationError

__all__ = [
    "JsonOption",
    "TracebackOption",
    "WorkspaceOption",
    "console",
    "emit",
    "error_console",
    "handle_errors",
    "open_ws",
]

console = Console(highlight=False)
error_console = Console(stderr=True, highlight=False)

WorkspaceOption = Annotated[
    str | None,
    typer.Option(
        "--workspace",
        "-w",
        help="Workspace directory (default: $ROWTRAIL_WORKSPACE or ./.rowtrail).",
        envvar="ROWTRAIL_WORKSPACE",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]
TracebackOption = Annotated[
    bool, typer.Option("--traceback", help="Re-raise errors with the full traceback.")
]


def open_ws(workspace: str | None, *, read_only: bool = True) -> Workspace:
    """Open the workspace named on the command line (read-only unless the command writes).

    Reads never create or change anything: a location with no workspace is an error
    (:class:`~rowtrail.errors.WorkspaceNotFoundError`), never a new, empty workspace.
    """
    from rowtrail import _context

    location = workspace or _context.default_location()
    return open_workspace(location, read_only=read_only)


def emit(data: Any, *, as_json: bool, human: Callable[[], None]) -> None:
    """Print ``data`` as JSON, or call ``human`` to print it for people."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        human()


@contextmanager
def handle_errors(*, as_json: bool = False, traceback: bool = False) -> Iterator[None]:
    """Turn a :class:`RowtrailError` into its diagnostics and exit status 1."""
    try:
        yield
    except RowtrailError as exc:
        if traceback:
            raise
        if as_json:
            payload: dict[str, Any] = {
                "ok": False,
                "error": type(exc).__name__,
                "message": str(exc),
            }
            index = getattr(exc, "index", None)
            if index is not None:
                payload["index"] = index
            sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        else:
            style = "bold red" if isinstance(exc, VerificationError) else "red"
            error_console.print(f"[{style}]{exc.diagnostics()}[/]")
        raise typer.Exit(1) from None
