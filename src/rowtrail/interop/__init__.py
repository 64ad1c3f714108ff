"""Interoperability: MLflow import and attachment, OpenLineage run events, W3C PROV export.

Each speaks another tool's format from rowtrail's verified records; the extras it needs
(``mlflow``, ``openlineage-python``, ``prov``, ``jsonschema``) are imported only when used
(``pip install 'rowtrail[interop]'``).

- :func:`export_openlineage` / :func:`openlineage_events`: OpenLineage run events (file
  transport) with a ``rowtrail_ledgerProof`` run facet, validated against the vendored
  OpenLineage JSON schemas; :func:`verify_openlineage_event` checks the facet with the
  verifier key alone.
- :func:`export_prov` / :func:`prov_document`: a W3C PROV-JSON document.
- :func:`import_mlflow`: MLflow runs and registered model versions as registry records;
  :func:`attach_to_mlflow` tags an MLflow run with its record's proof and signed checkpoint,
  which :func:`verify_mlflow_tags` checks with the verifier key (:func:`read_mlflow_tags`
  reads them back).
"""

from __future__ import annotations

from rowtrail.interop._mlflow import MLflowImport, import_mlflow
from rowtrail.interop._mlflow_attach import attach_to_mlflow, read_mlflow_tags
from rowtrail.interop._openlineage import (
    PROOF_FACET,
    OpenLineageExport,
    export_openlineage,
    openlineage_events,
)
from rowtrail.interop._prov import ProvExport, export_prov, prov_document
from rowtrail.interop._schemas import validate_openlineage_event
from rowtrail.interop._verify import verify_mlflow_tags, verify_openlineage_event

__all__ = [
    "PROOF_FACET",
    "MLflowImport",
    "OpenLineageExport",
    "ProvExport",
    "attach_to_mlflow",
    "export_openlineage",
    "export_prov",
    "import_mlflow",
    "openlineage_events",
    "prov_document",
    "read_mlflow_tags",
    "validate_openlineage_event",
    "verify_mlflow_tags",
    "verify_openlineage_event",
]
