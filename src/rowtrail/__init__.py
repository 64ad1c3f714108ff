"""rowtrail: which source rows, through which steps, drove this decision — with proofs.

``import rowtrail`` loads only the core (NumPy, cryptography); pandas, polars, torch and the
service are optional extras imported lazily.

Examples
--------
>>> import tempfile, rowtrail as rt
>>> ws = rt.init(tempfile.mkdtemp())
>>> ws.ledger.append("rows.ingested", {"source": "credit.csv", "n_rows": 3})
0
>>> ws.ledger.checkpoint().size
1
>>> ws.verify().size
1
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rowtrail import errors
from rowtrail._workspace import Workspace, init_workspace, open_workspace
from rowtrail.errors import RowtrailError, VerificationError
from rowtrail.ledger import Event, Ledger
from rowtrail.lineage import flush, lineage, load_csv, load_lineage, track

__version__ = "0.1.0"

open = open_workspace  # the public verb is rt.open(location)
init = init_workspace  # and rt.init(location) creates one

if not TYPE_CHECKING:
    # ``rt.lineage`` is the subpackage itself, made callable (``rt.lineage(obj)``), so that
    # ``import rowtrail.lineage`` still gives the package and not the function.
    lineage = sys.modules["rowtrail.lineage"]

__all__ = [
    "Event",
    "Ledger",
    "RowtrailError",
    "VerificationError",
    "Workspace",
    "__version__",
    "errors",
    "flush",
    "init",
    "init_workspace",
    "lineage",
    "load_csv",
    "load_lineage",
    "open",
    "open_workspace",
    "track",
]


# Optional-dependency namespaces, imported on first attribute access so that ``import rowtrail``
# never imports pandas, polars, pyspark, torch or scikit-learn.
_LAZY_MODULES = {
    "attribution": "rowtrail.attribution",
    "datasets": "rowtrail.datasets",
    "training": "rowtrail.training",
    "pandas": "rowtrail.lineage.frames._pandas_io",
    "polars": "rowtrail.lineage.frames._polars_io",
    "sklearn": "rowtrail.lineage._sklearn",
    "spark": "rowtrail.lineage.frames._spark_io",
    "torch": "rowtrail.lineage.frames._torch",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _LAZY_MODULES:
        return importlib.import_module(_LAZY_MODULES[name])
    if name == "to_numpy":
        return importlib.import_module("rowtrail.lineage.frames._convert").to_numpy
    raise AttributeError(f"module 'rowtrail' has no attribute {name!r}")
