"""What a traced estimator hands scikit-learn, and the lineage node of those rows.

scikit-learn is given plain objects: the ``ndarray`` of a traced array, a plain
``pandas.DataFrame`` / ``Series`` sharing the traced frame's data (so ``ColumnTransformer``
selects columns by name, and nothing scikit-learn does inside is recorded as a frame op), or the
user columns of a traced polars frame as a ``polars.DataFrame`` (a lazy frame is collected
once). The rows' lineage becomes one DAG node whose row ``i`` carries the source rows of input
row ``i`` (the frame's slots resolved to CSR, as :func:`rowtrail.to_numpy` does), so outputs
map row ``i`` to it one-to-one and fits depend on all of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rowtrail._optional import require
from rowtrail.lineage._array import TracedArray
from rowtrail.lineage._node import Node

__all__ = ["as_input", "plain_input"]


def _frame_node(lineage: Any, state: Any, n_rows: int, caller: str) -> Node:
    from rowtrail.lineage.frames._convert import traced_array

    # A zero-column array carries the node: only its rows matter here.
    return traced_array(np.empty((n_rows, 0)), lineage, state, name=caller)._n


def _plain_pandas(obj: Any) -> Any:
    pandas = require("pandas", extra="pandas", feature="rt.sklearn")
    plain_type = pandas.DataFrame if isinstance(obj, pandas.DataFrame) else pandas.Series
    return plain_type(obj, copy=False)  # a plain object over the same data


def _pandas_input(obj: Any, caller: str) -> tuple[Any, Node]:
    plain = _plain_pandas(obj)
    return plain, _frame_node(obj._rt_lineage, obj._rt_state, len(obj), caller)


def _is_polars(obj: Any) -> bool:
    return hasattr(obj, "_slots") and hasattr(obj, "_inner") and hasattr(obj, "_state")


def _polars_input(obj: Any, caller: str) -> tuple[Any, Node]:
    from rowtrail.lineage.frames._polars import materialize

    frame = obj.collect() if hasattr(obj._inner, "collect") else obj
    inner = frame._inner
    lineage = materialize(frame._slots, inner.select(frame._hidden))
    plain = inner.drop(frame._hidden)
    return plain, _frame_node(lineage, frame._state, plain.height, caller)


def plain_input(obj: Any) -> Any:
    """Return what scikit-learn gets for ``obj`` (see :func:`as_input`), without lineage."""
    if type(obj) is TracedArray:
        return obj._a
    if getattr(obj, "_rt_lineage", None) is not None:
        return _plain_pandas(obj)
    if _is_polars(obj):
        frame = obj._inner.drop(obj._hidden)
        return frame.collect() if hasattr(frame, "collect") else frame
    return obj


def as_input(obj: Any, caller: str) -> tuple[Any, Node | None]:
    """Return ``(what scikit-learn gets, lineage node of its rows or None)``.

    Parameters
    ----------
    obj : any
        ``X`` or ``y`` as the user passed it: a traced array, a traced pandas / polars frame
        or Series, or anything untraced (returned as it is, with ``None``).
    caller : str
        Name of the op recorded for the conversion (e.g. ``"Pipeline.fit[input]"``).
    """
    if type(obj) is TracedArray:
        return obj._a, obj._n
    if getattr(obj, "_rt_lineage", None) is not None and getattr(obj, "_rt_state", None):
        return _pandas_input(obj, caller)
    if _is_polars(obj):
        return _polars_input(obj, caller)
    return obj, None
