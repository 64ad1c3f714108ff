"""Unlearning (L3): erasure requests resolved through lineage, removal, verification, certificates.

See DESIGN §6. Modules: ``_convex`` (Newton removal for convex fits), ``_verify`` (comparison
with retraining), ``_sisa`` (sharded training for networks), ``_certificate`` (signed DSSE
certificates), ``_job`` (the erasure job behind :meth:`Workspace.erase`).
"""

from __future__ import annotations

__all__: list[str] = []
