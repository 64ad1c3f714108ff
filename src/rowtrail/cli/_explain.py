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
    """Explain a logged prediction: what it was made on, then the training rows that drove it.

    First the decision's own lineage as recorded with the prediction (its input's source rows
    in every table, the steps that built it, the fitted statistics applied to it, the model),
    or why it is unknown; then the top supporting and opposing training samples with their
    table rows and subjects, the scores' unit and sign in words, per-table sums of sample
    scores, and the ledger proofs of every record relied on.
    """
    with handle_errors(as_json=as_json, traceback=traceback), open_ws(workspace) as ws:
        result = ws.explain(prediction, top_k=top_k, proofs=proofs)
        emit(
            result.to_json(),
            as_json=as_json,
            human=lambda: console.print(result.to_text(max_rows=top_k), soft_wrap=True),
        )
