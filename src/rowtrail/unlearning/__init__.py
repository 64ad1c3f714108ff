"""Unlearning (L3): erasure requests resolved through lineage, removal, verification, certificates.

See DESIGN §6. ``ws.erase(subject=..., reason=...)`` resolves a request into an
:class:`ErasureJob` (``_resolve``, ``_job``); ``job.run(ModelInput(...))`` updates each affected
model by the method its class allows (``_methods``): Newton removal for convex fits
(``_convex``), exact retraining, or retraining the affected shards of a sharded run
(``_sisa``); compares with retraining (``_verify``); crypto-shreds the subjects' payloads; and
``job.certificate()`` issues a signed DSSE certificate (``_certificate``) that
``verify_certificate`` (or ``rowtrail certificate verify``) checks with nothing but the file
and a public key.
"""

from __future__ import annotations

from rowtrail.unlearning._certificate import (
    CertificateKey,
    issue_certificate,
    read_certificate,
    verify_certificate,
)
from rowtrail.unlearning._certificate_content import (
    CertificateContent,
    ErasureCounts,
    MethodRecord,
    ModelDigests,
    VerificationFigure,
)
from rowtrail.unlearning._certificate_html import render_certificate_html
from rowtrail.unlearning._commitments import (
    CommitmentOpening,
    commit_rows,
    open_commitment,
    verify_commitment,
)
from rowtrail.unlearning._convex import ConvexUnlearning, unlearn_convex
from rowtrail.unlearning._job import ErasureJob, ErasureResult
from rowtrail.unlearning._methods import ModelInput, ModelUpdate
from rowtrail.unlearning._resolve import ErasurePlan, ModelWork, erasure_status, resolve_request
from rowtrail.unlearning._sisa import ShardedModel, ShardUnlearning, train_sharded
from rowtrail.unlearning._sisa_load import load_sharded, verify_sharded
from rowtrail.unlearning._sklearn import unlearn_sklearn
from rowtrail.unlearning._verify import (
    ModelView,
    UnlearningVerification,
    compare_with_retraining,
    compute_auc,
    verify_unlearning,
)

__all__ = [
    "CertificateContent",
    "CertificateKey",
    "CommitmentOpening",
    "ConvexUnlearning",
    "ErasureCounts",
    "ErasureJob",
    "ErasurePlan",
    "ErasureResult",
    "MethodRecord",
    "ModelDigests",
    "ModelInput",
    "ModelUpdate",
    "ModelView",
    "ModelWork",
    "ShardUnlearning",
    "ShardedModel",
    "UnlearningVerification",
    "VerificationFigure",
    "commit_rows",
    "compare_with_retraining",
    "compute_auc",
    "erasure_status",
    "issue_certificate",
    "load_sharded",
    "open_commitment",
    "read_certificate",
    "render_certificate_html",
    "resolve_request",
    "train_sharded",
    "unlearn_convex",
    "unlearn_sklearn",
    "verify_certificate",
    "verify_commitment",
    "verify_sharded",
    "verify_unlearning",
]
