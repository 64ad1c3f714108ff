"""The ``rowtrail certificate`` command group: verify an erasure certificate, render it as HTML.

Neither command opens a workspace: a certificate is checked with the file and the operator's
published verifier key only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rowtrail.cli._common import JsonOption, TracebackOption, console, emit, handle_errors
from rowtrail.errors import InvalidInputError
from rowtrail.ledger._events import format_time
from rowtrail.unlearning._certificate import (
    CertificateKey,
    read_certificate,
    verify_certificate,
)
from rowtrail.unlearning._certificate_content import CertificateContent
from rowtrail.unlearning._certificate_html import render_certificate_html

__all__ = ["certificate_app"]

certificate_app = typer.Typer(
    help="Check erasure certificates with nothing but the file and a public key."
)

FileArgument = Annotated[Path, typer.Argument(help="The certificate file (a DSSE envelope).")]


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(
            f"{what} of rowtrail certificate must be a readable file; got {str(path)!r} "
            f"({exc.strerror})"
        ) from exc


def _key(path: Path) -> CertificateKey:
    return CertificateKey.parse(_read(path, "--vkey"))


def summary(content: CertificateContent) -> dict[str, Any]:
    """Return the JSON summary ``rowtrail certificate verify --json`` prints."""
    evidence = content.ledger
    return {
        "ok": True,
        "job_id": content.request.job_id,
        "reason": content.request.reason,
        "subjects": list(content.request.subjects),
        "sources": list(content.request.sources),
        "requested_at": format_time(content.request.requested_at),
        "issued_at": format_time(content.issued_at) if content.issued_at else None,
        "n_rows": len(content.row_commitments),
        "counts": content.counts.to_json(),
        "methods": [method.to_json() for method in content.methods],
        "figures": {figure.name: figure.to_json() for figure in content.figures},
        "models": [model.to_json() for model in content.models],
        "event_indices": list(content.event_indices),
        "checkpoint": evidence.checkpoint if evidence else None,
    }


def _print_summary(content: CertificateContent, path: Path) -> None:
    request = content.request
    methods = ", ".join(f"{m.model}: {m.name} ({m.exactness})" for m in content.methods)
    figures = ", ".join(f"{f.name}={f.value:.6g} ({'pass' if f.passed else 'FAIL'})"
                        for f in content.figures) or "none recorded"
    console.print(
        f"[green]OK[/] erasure certificate {path}: job {request.job_id}, issued "
        f"{format_time(content.issued_at) if content.issued_at else '?'}\n"
        f"  request   {request.reason} (requested {format_time(request.requested_at)}); "
        f"{len(request.subjects)} subject(s), {len(content.row_commitments)} row commitment(s)\n"
        f"  done      {content.counts.n_removed_samples} removed, "
        f"{content.counts.n_recomputed_samples} recomputed, "
        f"{content.counts.n_refitted_statistics} refitted, "
        f"{content.counts.n_shredded_payloads} shredded; {methods}\n"
        f"  checked   {figures}\n"
        f"  models    " + ", ".join(f"{m.name} {m.after_digest}" for m in content.models) + "\n"
        f"  ledger    {len(content.event_indices)} erasure event(s) proven in a checkpoint "
        "signed by the same key",
        soft_wrap=True,
    )


@certificate_app.command("verify")
def verify(
    file: FileArgument,
    vkey: Annotated[
        Path,
        typer.Option(
            "--vkey",
            help="The operator's verifier key file (as `rowtrail ledger export-trust` writes "
            "it) or a PEM Ed25519 public key.",
        ),
    ],
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Verify an erasure certificate; exit 0 and print a summary if valid, 1 otherwise.

    Checks the DSSE signature, the in-toto Statement, the ledger checkpoint's signature by the
    same key, every inclusion proof, that each event is an erasure event of the job, and that
    every verification figure passed. Needs no workspace.
    """
    with handle_errors(as_json=as_json, traceback=traceback):
        content = verify_certificate(_read(file, "FILE"), _key(vkey))
        emit(summary(content), as_json=as_json, human=lambda: _print_summary(content, file))


@certificate_app.command("html")
def html(
    file: FileArgument,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")],
    vkey: Annotated[
        Path | None,
        typer.Option(
            "--vkey",
            help="Verify with this key first (the page then says so); without it the page "
            "is marked NOT VERIFIED.",
        ),
    ] = None,
    as_json: JsonOption = False,
    traceback: TracebackOption = False,
) -> None:
    """Write a readable, self-contained HTML page of a certificate for a compliance officer."""
    with handle_errors(as_json=as_json, traceback=traceback):
        data = _read(file, "FILE")
        if vkey is None:
            content, verified = read_certificate(data), False
        else:
            content, verified = verify_certificate(data, _key(vkey)), True
        page = render_certificate_html(
            content,
            verified=verified,
            filename=file.name,
            vkey_name=vkey.name if vkey is not None else "vkey",
        )
        out.write_text(page, encoding="utf-8")
        result = {"out": str(out), "verified": verified, "job_id": content.request.job_id}
        emit(result, as_json=as_json, human=lambda: console.print(
            f"wrote {out} ({'verified' if verified else 'NOT VERIFIED: give --vkey'})"
        ))
