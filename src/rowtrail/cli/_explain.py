"""``rowtrail explain``: a logged decision down to the source rows that drove it."""

from __future__ import annotations

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

__all__ = ["explain"]


def explain(
    prediction: Annotated[
        int, typer.Argument(help="Ledger index of a prediction.made event to explain.")
    ],
    top_k: Annotated[int, typer.Option("--top-k", help="Training samples per side.")] = 20,
    proofs: Annotated[
        bool, typer.Option("--proofs/--no-proofs", help="Prove the records relied on.")
    ] = True,
    workspace: WorkspaceOption = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Explain a logged prediction: top training samples, their table rows, subjects, proofs."""
    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        result = ws.explain(prediction, top_k=top_k, proofs=proofs)
        emit(
            result.to_json(),
            as_json=as_json,
            human=lambda: console.print(result.to_text(max_rows=top_k), soft_wrap=True),
        )
