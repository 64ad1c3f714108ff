"""Traced frames converted to plain arrays by scikit-learn outside ``rt.sklearn.trace``.

scikit-learn validates its input with ``numpy.asarray(X)``: a traced pandas or polars frame
handed to an unwrapped estimator becomes a plain array there, and the estimator's output and
fit carry no lineage. That is the one place a frame's lineage is lost without a call the user
can see, so the conversion warns (:class:`~rowtrail.errors.LineageLostWarning`) when the
caller of ``__array__`` is scikit-learn code, naming the fix. Conversions by any other code
(``np.asarray(df)`` in user code, rowtrail's own exports) do not warn: the user asked for a
plain array there.
"""

from __future__ import annotations

import sys
import warnings
from types import FrameType

from rowtrail.errors import LineageLostWarning

__all__ = ["warn_if_sklearn_converts"]

# How many callers to look through: numpy's asarray is C, so the first Python caller is the
# scikit-learn helper (check_array, _asarray_with_order, ...) itself.
_DEPTH = 3


def warn_if_sklearn_converts(kind: str) -> None:
    """Warn when the caller converting a traced ``kind`` to an array is scikit-learn."""
    frame: FrameType | None = sys._getframe(2)
    for _ in range(_DEPTH):
        if frame is None:
            return
        module = str(frame.f_globals.get("__name__", ""))
        if module == "sklearn" or module.startswith("sklearn."):
            warnings.warn(
                f"scikit-learn converted a traced {kind} to a plain array: the estimator is "
                "not wrapped by rt.sklearn.trace, so its fit and outputs keep no row lineage. "
                "Wrap it (model = rt.sklearn.trace(model)) to keep it.",
                LineageLostWarning,
                stacklevel=3,
            )
            return
        frame = frame.f_back
