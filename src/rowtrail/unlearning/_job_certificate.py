"""The certificate of a completed erasure job, built from the job's proven ledger events.

DESIGN's rule applies to certificates too: what a certificate states is read back from the
job's ``erasure.*`` events after their inclusion in the signed checkpoint is proven (not from
the job object in memory), and :func:`~rowtrail.unlearning._certificate.issue_certificate`
then adds the checkpoint and the inclusion proof of every one of them. The only inputs that
are not in the ledger are the row ids behind the salted commitments, which the ledger holds
only as keyed commitments by design.

Per model: the method and whether it is exact (``"newton"`` is exact to its certified
tolerance: the residual and the implied parameter bound are stated; retraining and shard
retraining are exact; only first-order approximations would be "approximate"), and, when
the job compared the update with retraining, every judged figure
(:func:`~rowtrail.unlearning._verify.figure_checks`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rowtrail.errors import StateError
from rowtrail.unlearning._certificate import issue_certificate
from rowtrail.unlearning._certificate_content import (
    CertificateContent,
    ErasureCounts,
    ErasureRequest,
    MethodRecord,
    ModelDigests,
    VerificationFigure,
)
from rowtrail.unlearning._commitments import commit_rows
from rowtrail.unlearning._verify import figure_checks

__all__ = ["certificate_content", "certify_job"]


def _methods_and_figures(
    updates: list[dict[str, Any]],
) -> tuple[list[MethodRecord], list[VerificationFigure], list[ModelDigests]]:
    methods, figures, models = [], [], []
    for payload in updates:
        run = str(payload["run"])
        verification = payload.get("verification") or {}
        parameters = {
            k: payload[k] for k in ("tolerance", "steps", "seconds") if payload.get(k) is not None
        }
        if verification.get("exact_label"):
            parameters["exactness"] = verification["exact_label"]
        methods.append(
            MethodRecord(
                run,
                str(payload["method"]),
                exact=bool(payload["exact"]),
                parameters=parameters,
                residual=payload.get("residual"),
                bound=payload.get("bound"),
            )
        )
        models.append(
            ModelDigests(run, payload["model_digest_before"], payload["model_digest_after"])
        )
        if "prediction_agreement" in verification:
            for check in figure_checks(verification):
                figures.append(
                    VerificationFigure(
                        f"{run}: {check.name}", check.value, check.passed, check.criterion
                    )
                )
    return methods, figures, models


def certificate_content(job: Any) -> CertificateContent:
    """Return what ``job``'s certificate states, from its proven ``erasure.*`` events."""
    result = job.result
    if result is None:
        raise StateError(
            f"job {job.job_id} has not run; call job.run(...) before job.certificate()"
        )
    indices = sorted(i for group in result.events.values() for i in group)
    entries = {e.index: e.event for e in job.ws.ledger.proven(indices)}
    requested = entries[result.events["erasure.requested"][0]].payload
    updates = [entries[i].payload for i in result.events.get("erasure.model_updated", [])]
    shredded = [entries[i].payload for i in result.events.get("erasure.shredded", [])]
    items = requested["requests"]
    request = ErasureRequest(
        job.job_id,
        "; ".join(dict.fromkeys(str(r["reason"]) for r in items)),
        min(datetime.fromisoformat(r["requested_at"]) for r in items),
        max(datetime.fromisoformat(r["received_at"]) for r in items),
        subjects=tuple(sorted({r["subject"] for r in items if "subject" in r})),
        sources=tuple(sorted({str(r["source"]) for r in items if "source" in r})),
    )
    models = requested.get("models", [])
    counts = ErasureCounts(
        n_removed_samples=sum(int(m["n_removed"]) for m in models),
        n_recomputed_samples=sum(int(m["n_recomputed"]) for m in models),
        n_refitted_statistics=sum(1 for m in models if int(m["n_statistic_rows"]) > 0),
        n_shredded_payloads=sum(
            len(p.get("key_ids", [])) + len(p.get("predictions", [])) for p in shredded
        )
        + len(result.events.get("erasure.redacted", [])),
    )
    methods, figures, digests = _methods_and_figures(updates)
    return CertificateContent(
        request=request,
        row_commitments=tuple(commit_rows(job.ws, job.row_ids, job_id=job.job_id)),
        counts=counts,
        methods=tuple(methods),
        figures=tuple(figures),
        models=tuple(digests),
        event_indices=tuple(indices),
    )


def certify_job(job: Any, *, now: datetime | None = None) -> bytes:
    """Issue the signed certificate of a completed ``job`` (see :func:`certificate_content`)."""
    return issue_certificate(job.ws, certificate_content(job), now=now)
