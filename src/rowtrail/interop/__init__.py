"""Interoperability: MLflow import and attachment, OpenLineage run events, W3C PROV export.

Each speaks another tool's format from rowtrail's verified records; the extras it needs
(``mlflow``, ``openlineage-python``, ``prov``) are imported only when used.
"""

from __future__ import annotations

__all__: list[str] = []
