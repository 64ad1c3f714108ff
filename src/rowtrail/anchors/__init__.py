"""External anchors for signed checkpoints: RFC 3161 time-stamps and EVM transactions.

The backends need the ``anchors`` extra (``pip install 'rowtrail[anchors]'``); importing this
package does not import them.
"""

from __future__ import annotations

from rowtrail.anchors._base import AnchorBackend, AnchorError, AnchorReceipt, anchored_digest

__all__ = ["AnchorBackend", "AnchorError", "AnchorReceipt", "anchored_digest"]
