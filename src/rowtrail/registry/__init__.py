"""Registry audit trail: datasets, runs, model versions, approvals, deployments, predictions.

Every entity is an append-only series of ledger events; its tables are caches that
``Workspace.verify`` rebuilds from the ledger.
"""

from __future__ import annotations

__all__: list[str] = []
