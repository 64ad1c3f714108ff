"""A readable, self-contained HTML page of an erasure certificate, for a compliance officer.

One file with inline CSS and no scripts, links or external assets; every piece of text taken
from the certificate is HTML-escaped (a reason or model name cannot inject markup).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence

from rowtrail.hashing import canonical_json
from rowtrail.ledger import Event, parse_checkpoint_body
from rowtrail.ledger._events import format_time
from rowtrail.unlearning._certificate_content import CertificateContent

__all__ = ["render_certificate_html"]

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;max-width:60rem;margin:2rem auto;
padding:0 1rem;color:#1b1f24}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;
border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #d0d7de;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}
code,pre{font-family:ui-monospace,'SFMono-Regular',Menlo,monospace;font-size:.85em;
word-break:break-all}
pre{background:#f6f8fa;padding:.6rem;white-space:pre-wrap}
.banner{padding:.6rem .8rem;border-radius:6px;margin:1rem 0;font-weight:600}
.ok{background:#dafbe1;color:#116329}.warn{background:#fff8c5;color:#7d4e00}
.fail{background:#ffebe9;color:#a40e26}.muted{color:#57606a}
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Return a table; ``rows`` cells are already-escaped HTML."""
    head = "".join(f"<th>{_e(name)}</th>" for name in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if any(header) else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _number(value: float | None) -> str:
    return "—" if value is None else _e(f"{value:.6g}")


def _request(content: CertificateContent) -> str:
    request = content.request
    rows = [
        ("Erasure job", f"<code>{_e(request.job_id)}</code>"),
        ("Reason", _e(request.reason)),
        ("Requested by the data subject", _e(format_time(request.requested_at))),
        ("Received by the operator", _e(format_time(request.received_at))),
        ("Data subjects (keyed pseudonyms, not identities)",
         "<br>".join(f"<code>{_e(s)}</code>" for s in request.subjects) or "—"),
        ("Sources named", "<br>".join(_e(s) for s in request.sources) or "—"),
    ]
    return "<h2>1. What was requested</h2>" + _table(("", ""), rows)


def _found(content: CertificateContent) -> str:
    counts = content.counts
    rows = [
        ("Source rows resolved (salted commitments below)", _e(len(content.row_commitments))),
        ("Training samples that were these rows: removed", _e(counts.n_removed_samples)),
        ("Training samples built from them: recomputed", _e(counts.n_recomputed_samples)),
        ("Fitted statistics that used them: refitted", _e(counts.n_refitted_statistics)),
        ("Stored payloads holding their data: crypto-shredded", _e(counts.n_shredded_payloads)),
    ]
    return "<h2>2. What was found</h2>" + _table(("", "count"), rows)


def _done(content: CertificateContent) -> str:
    rows = [
        (
            _e(m.model),
            _e(m.name),
            f"<strong>{_e(m.exactness)}</strong>",
            f"<code>{_e(canonical_json(dict(m.parameters)).decode('utf-8'))}</code>",
            _number(m.residual),
            _number(m.bound),
        )
        for m in content.methods
    ]
    models = [
        (_e(m.name), f"<code>{_e(m.before_digest)}</code>", f"<code>{_e(m.after_digest)}</code>")
        for m in content.models
    ]
    return (
        "<h2>3. What was done</h2>"
        + _table(("model", "method", "exactness", "parameters", "residual", "bound"), rows)
        + "<p class='muted'>Exact: the result equals retraining without the erased data. "
        "Approximate: a first-order estimate, not a guarantee.</p>"
        + "<h3>Model digests</h3>" + _table(("model", "before erasure", "after erasure"), models)
    )


def _checked(content: CertificateContent) -> str:
    if not content.figures:
        return ("<h2>4. How it was checked</h2><p class='banner warn'>No comparison with a "
                "retrained model was recorded for this erasure.</p>")
    rows = [
        (
            _e(f.name),
            _number(f.value),
            _e(f.criterion) or "—",
            "<span class='ok'>pass</span>" if f.passed else "<span class='fail'>FAIL</span>",
        )
        for f in content.figures
    ]
    return ("<h2>4. How it was checked (against a model retrained without the data)</h2>"
            + _table(("figure", "value", "criterion", "result"), rows))


def _ledger(content: CertificateContent) -> str:
    evidence = content.ledger
    if evidence is None:
        return "<h2>5. Ledger evidence</h2><p>none (the certificate was not issued)</p>"
    checkpoint = parse_checkpoint_body(evidence.checkpoint.partition("\n\n")[0] + "\n")
    rows = []
    for event in evidence.events:
        try:
            decoded: Event | None = Event.from_leaf(event.leaf)
        except ValueError:
            decoded = None
        kind = _e(decoded.kind) if decoded else "<em>undecodable</em>"
        when = _e(format_time(decoded.time)) if decoded else "—"
        rows.append((_e(event.index), kind, when, _e(len(event.path))))
    return (
        "<h2>5. Ledger evidence</h2>"
        f"<p>Log <code>{_e(checkpoint.origin)}</code>, signed checkpoint of "
        f"{_e(checkpoint.size)} entries, root <code>{_e(checkpoint.root.hex())}"
        "</code>. Each erasure event below is proven to be in that checkpoint by an RFC 9162 "
        "inclusion proof.</p>"
        + _table(("ledger index", "event", "time", "audit path length"), rows)
        + f"<details><summary>Signed checkpoint note</summary><pre>{_e(evidence.checkpoint)}"
        "</pre></details>"
    )


def _how_to_verify(filename: str, vkey_name: str) -> str:
    command = f"rowtrail certificate verify {filename} --vkey {vkey_name}"
    return (
        "<h2>6. How to verify this certificate</h2>"
        "<p>On any machine with rowtrail installed (no workspace is needed), with the "
        "operator's published verifier key (the <code>vkey</code> file written by "
        "<code>rowtrail ledger export-trust</code>):</p>"
        f"<pre>{_e(command)}</pre>"
        "<p>It checks the Ed25519 signature of the DSSE envelope, the in-toto Statement, that "
        "the ledger checkpoint is signed by the same key, every inclusion proof, that each "
        "cited event is an erasure event of this job, and that every figure passed; it exits "
        "0 only if all hold. This page itself proves nothing: only that command does.</p>"
        "<p>Rows are listed as salted commitments: they reveal nothing about which rows were "
        "erased. The operator can open one commitment to show that a given row was "
        "included.</p>"
    )


def render_certificate_html(
    content: CertificateContent,
    *,
    verified: bool = False,
    filename: str = "certificate.json",
    vkey_name: str = "vkey",
) -> str:
    """Return a self-contained HTML page describing a certificate.

    Parameters
    ----------
    content : CertificateContent
        From :func:`~rowtrail.unlearning._certificate.verify_certificate` (or, shown as
        unverified, ``read_certificate``).
    verified : bool
        Whether ``content`` came from a successful verification (shown in a banner).
    filename, vkey_name : str
        File names used in the "how to verify" command.
    """
    banner = (
        "<p class='banner ok'>Signature, ledger proofs and figures verified with the given key."
        "</p>" if verified else
        "<p class='banner warn'>NOT VERIFIED: this page was made without checking the "
        "certificate. Run the command in section 6 before relying on it.</p>"
    )
    issued = _e(format_time(content.issued_at)) if content.issued_at else "—"
    commitments = "\n".join(content.row_commitments)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>Erasure certificate {_e(content.request.job_id)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Erasure certificate</h1><p class='muted'>job <code>{_e(content.request.job_id)}"
        f"</code> · issued {issued}</p>",
        banner,
        _request(content), _found(content), _done(content), _checked(content),
        _ledger(content), _how_to_verify(filename, vkey_name),
        "<h2>Appendix: row commitments</h2><details><summary>"
        f"{_e(len(content.row_commitments))} commitments</summary><pre>{_e(commitments)}</pre>"
        "</details>",
        "<h2>Appendix: the full predicate</h2><details><summary>JSON</summary><pre>"
        f"{_e(_predicate_text(content))}</pre></details>",
        "</body></html>\n",
    ]
    return "".join(parts)


def _predicate_text(content: CertificateContent) -> str:
    if content.ledger is None or content.issued_at is None:
        return "(not issued)"
    return json.dumps(content.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
