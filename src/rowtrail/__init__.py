"""rowtrail: which source rows, through which steps, drove this decision — with proofs.

``import rowtrail`` loads only the core (NumPy, cryptography); pandas, polars, torch and the
service are optional extras imported lazily.

Examples
--------
>>> import tempfile, rowtrail as rt
>>> ws = rt.open(tempfile.mkdtemp())
>>> ws.ledger.append("rows.ingested", {"source": "credit.csv", "n_rows": 3})
0
>>> ws.ledger.checkpoint().size
1
>>> ws.verify().size
1
"""

from __future__ import annotations

from rowtrail import errors
from rowtrail._workspace import Workspace, open_workspace
from rowtrail.errors import RowtrailError, VerificationError
from rowtrail.ledger import Event, Ledger

__version__ = "0.1.0"

open = open_workspace  # noqa: A001 - the public verb is rt.open(location)

__all__ = [
    "Event",
    "Ledger",
    "RowtrailError",
    "VerificationError",
    "Workspace",
    "__version__",
    "errors",
    "open",
    "open_workspace",
]
