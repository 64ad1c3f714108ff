"""Model inputs that keep lineage: ``rt.to_numpy(frame, columns)`` and ``rt.torch.dataset``.

``to_numpy`` turns a traced pandas/polars frame into the NumPy adapter's
:class:`~rowtrail.lineage.TracedArray`: the frame's per-row lineage (group-bys resolved) is
materialized once as CSR (offsets + source row ids) and becomes the array's source of truth,
with the frame's op chain as its ancestors, so ``rt.lineage(X)`` answers the same per-table
queries as ``rt.lineage(frame)`` and ``rt.lineage(X).ops()`` lists the frame's ops (each read
op under the registered source it read, every op with its parameters, code location and time)
followed by ``frame.to_numpy``.

Each frame op becomes one DAG node (:func:`frame_op_node`), made once per op and shared by every
array converted from frames it produced, so persisting them (``rt.flush``, pipelines) writes
the chain once. Its edges are ``INDIRECT``: a frame's rows are followed through its hidden
slots, not through row maps, so row queries stop at the converted array's pinned ids and the
frame-op nodes only carry the chain (their ``n_rows`` is ``-1``: not recorded by the frames).

The CSR flattens how each row arrived; the ids that reached the array through an aggregation
(a group slot: a bureau row summed into an applicant's row) are remembered per node in
:data:`AGGREGATED`, so a training trail can say a row was *aggregated* into a sample rather
than *joined* to it (:func:`aggregated_ids`).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import CanonicalEncodingError, InvalidInputError
from rowtrail.hashing import canonical_json
from rowtrail.lineage._array import TracedArray, wrap
from rowtrail.lineage._node import Node, ancestor_nodes
from rowtrail.lineage._rowmap import INDIRECT, STAT, Ids
from rowtrail.lineage._sources import SourceInfo
from rowtrail.lineage._track import source_node
from rowtrail.lineage.frames._core import FrameState, OpNode, RowLineage
from rowtrail.lineage.frames._stats import collect_statistics

__all__ = [
    "AGGREGATED",
    "aggregated_ids",
    "frame_lineage",
    "frame_op_node",
    "to_numpy",
    "traced_array",
]

#: Node of a frame-derived array -> sorted source row ids that reached it through a group slot.
AGGREGATED: weakref.WeakKeyDictionary[Node, NDArray[np.int64]] = weakref.WeakKeyDictionary()
#: Frame op -> its DAG node (made on the first conversion, alive as long as the op).
_OP_NODES: weakref.WeakKeyDictionary[OpNode, Node] = weakref.WeakKeyDictionary()
_EMPTY = np.zeros(0, dtype=np.int64)
#: ``n_rows`` of a frame-op node: the frame adapters do not record row counts per op.
_UNKNOWN_ROWS = -1


def frame_lineage(frame: Any, caller: str) -> tuple[RowLineage, FrameState]:
    """Return the materialized lineage and state of a traced pandas or polars frame."""
    lineage = getattr(frame, "_rt_lineage", None)
    state = getattr(frame, "_rt_state", None)
    if lineage is not None and state is not None:
        return lineage, state
    if hasattr(frame, "_slots") and hasattr(frame, "_inner"):
        from rowtrail.lineage.frames._polars import materialize

        hidden = frame._inner.select(frame._hidden)
        collected = hidden.collect() if hasattr(hidden, "collect") else hidden
        return materialize(frame._slots, collected), frame._state
    raise InvalidInputError(
        f"frame of {caller} must be a traced pandas or polars frame; got {type(frame).__name__}. "
        "Read it with rt.pandas.read_csv / rt.polars.scan_csv or wrap it with rt.pandas.track."
    )


def _read_source(op: OpNode, sources: dict[int, SourceInfo]) -> SourceInfo | None:
    """Return the registered source a read op (kind ``source``) read, if exactly one matches.

    Read ops record the source name and its digest, or its path where the digest is computed
    later (a lazy polars scan).
    """
    params = op.params
    digest, path = params.get("digest"), params.get("path")
    found = [
        info
        for info in sources.values()
        if info.name == params.get("source")
        and (info.digest == digest if digest is not None else path is None or info.path == path)
    ]
    return found[0] if len(found) == 1 else None


def _json_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``params`` with any value canonical JSON cannot hold replaced by its ``repr``.

    The frame adapters record JSON-ready parameters; this keeps a stray one (a NaN fill value,
    an object) from making the chain impossible to persist with ``rt.flush``.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        try:
            canonical_json(value)
        except CanonicalEncodingError:
            value = repr(value)
        out[str(key)] = value
    return out


def _op_node(op: OpNode, state: FrameState) -> Node:
    """Return a new DAG node for frame op ``op`` (its inputs must be converted already)."""
    parents = [_OP_NODES[p] for p in op.inputs]
    info = _read_source(op, state.sources) if op.kind == "source" else None
    if info is not None:
        parents.insert(0, source_node(info, state.workspace))
    n_rows = info.n_rows if info is not None and not op.inputs else _UNKNOWN_ROWS
    node = Node(
        op.name,
        op.kind,
        tuple(parents),
        tuple(INDIRECT for _ in parents),
        n_rows,
        params=_json_params(op.params),
        fallback=op.fallback,
    )
    # The op ran when (and where) the frame adapter recorded it, not now.
    file, _, line = op.location.rpartition(":")
    node.code, node.line = (file, int(line)) if line.isdigit() else (op.location, 0)
    node.t = op.created_at.timestamp()
    return node


def frame_op_node(state: FrameState) -> Node:
    """Return the DAG node of the op that made a frame, with the frame's whole op chain.

    Ops are converted oldest first and once each (memoized per op), so ancestors are always
    created before their children (serial order stays topological) and arrays converted from
    related frames share the nodes of their common ops.
    """
    # Depth first, inputs in order, parents before children (``OpNode.chain``'s order), without
    # descending into ops converted earlier: a long chain converted step by step stays linear.
    stack: list[tuple[OpNode, bool]] = [(state.node, False)]
    while stack:
        op, expanded = stack.pop()
        if op in _OP_NODES:
            continue
        if expanded:
            _OP_NODES[op] = _op_node(op, state)
            continue
        stack.append((op, True))
        stack.extend((parent, False) for parent in reversed(op.inputs))
    return _OP_NODES[state.node]


def _chain_parents(state: FrameState) -> tuple[Node, ...]:
    """Return the frame's op node, then a source node for each source no read op names."""
    head = frame_op_node(state)
    linked = {
        n.source.index for n in ancestor_nodes(head)[0] if getattr(n, "source", None) is not None
    }
    extra = [
        source_node(info, state.workspace)
        for index, info in sorted(state.sources.items())
        if index not in linked
    ]
    return (head, *extra)


def traced_array(
    data: NDArray[Any], lineage: RowLineage, state: FrameState, name: str = "frame.to_numpy"
) -> TracedArray:
    """Wrap ``data`` (one row per frame row) as a traced array carrying the frame's lineage."""
    offsets, ids = lineage.csr()
    parents = _chain_parents(state)  # the frame's op chain, back to each source
    sources = tuple(source_node(info, state.workspace) for _, info in sorted(state.sources.items()))
    fitted = _statistic_nodes(lineage, sources)
    node = Node(
        name,
        "transformation",
        (*parents, *fitted),
        (*(INDIRECT for _ in parents), *(STAT for _ in fitted)),
        len(data),
        params={"frame_op": state.node.name, "frame_node": state.node.node_id},
    )
    node.cache = Ids(len(data), ids, offsets)
    aggregated = _group_ids(lineage)
    if aggregated.size:
        AGGREGATED[node] = aggregated
    return wrap(data, node)


def _statistic_nodes(lineage: RowLineage, sources: tuple[Node, ...]) -> list[Node]:
    """Return one node per fitted statistic of the frame's rows, holding its fitted rows.

    The array links them with ``STAT`` edges, as NumPy statistics are linked, so
    ``rt.lineage(X).statistics()`` and the training trail (``statistic_ids``) still see them
    after the conversion (per array: a NumPy statistic applies to every row).
    """
    nodes = []
    for op, fitted in collect_statistics(lineage, np.arange(lineage.n_rows, dtype=np.intp)):
        stat = Node(op.name, op.kind, sources, tuple(INDIRECT for _ in sources), 1, dict(op.params))
        stat.cache = Ids(1, fitted, np.array([0, len(fitted)], dtype=np.int64))
        code, _, line = op.location.rpartition(":")
        if code and line.isdigit():
            stat.code, stat.line = code, int(line)
        nodes.append(stat)
    return nodes


def _group_ids(lineage: RowLineage) -> NDArray[np.int64]:
    """Return the sorted source row ids that reach ``lineage`` through group slots."""
    parts = []
    for slot, values in zip(lineage.slots, lineage.values, strict=True):
        if slot.kind == "group" and slot.group is not None and slot.in_rows:
            codes = np.unique(values[values >= 0])
            if codes.size:
                parts.append(slot.group.ids_of_groups(codes))
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else _EMPTY


def aggregated_ids(node: Node) -> NDArray[np.int64]:
    """Return the source row ids that reached ``node`` or its ancestors through aggregations."""
    nodes = [node, *ancestor_nodes(node)[0]]
    parts = [AGGREGATED[n] for n in nodes if n in AGGREGATED]
    return np.unique(np.concatenate(parts)).astype(np.int64) if parts else _EMPTY


def to_numpy(frame: Any, columns: Sequence[str] | None = None, *, dtype: Any = None) -> TracedArray:
    """Return the chosen columns of a traced frame as a traced NumPy array.

    Parameters
    ----------
    frame : TracedDataFrame, TracedPolarsFrame or TracedLazyFrame
        A frame from ``rt.pandas`` or ``rt.polars`` (a lazy frame is collected once).
    columns : sequence of str, optional
        Columns in order (default: all user columns).
    dtype : numpy dtype, optional
        Passed to the engine's ``to_numpy``.

    Returns
    -------
    TracedArray
        Row ``i`` is frame row ``i``; ``rt.lineage(X).rows_of(i)`` names the same source rows
        in every table as ``rt.lineage(frame).rows_of(i)``.

    Examples
    --------
    >>> import tempfile, pandas as pd, rowtrail as rt
    >>> ws = rt.init(tempfile.mkdtemp())
    >>> df = rt.pandas.track(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), source="t", workspace=ws)
    >>> X = rt.to_numpy(df[df.a > 1], ["a"])
    >>> dict(rt.lineage(X).rows_of(0))
    {'t': [1]}
    """
    if columns is not None and (
        isinstance(columns, str) or not all(isinstance(c, str) for c in columns)
    ):
        raise InvalidInputError(
            f"columns of rt.to_numpy must be a sequence of column names; got {columns!r}. "
            "Pass e.g. ['AMT_CREDIT', 'AMT_ANNUITY']."
        )
    if hasattr(frame, "_slots") and hasattr(frame, "_inner"):
        return _polars_to_numpy(frame, columns, dtype)
    lineage, state = frame_lineage(frame, "rt.to_numpy()")
    selected = frame if columns is None else frame[list(columns)]
    data = np.asarray(selected.to_numpy(dtype=dtype))
    return traced_array(data, lineage, state)


def _polars_to_numpy(frame: Any, columns: Sequence[str] | None, dtype: Any) -> TracedArray:
    from rowtrail.lineage.frames._polars import materialize

    names = list(frame.columns if columns is None else columns)
    inner = frame._inner.select(*names, *frame._hidden)
    collected = inner.collect() if hasattr(inner, "collect") else inner
    data = collected.select(names).to_numpy()
    if dtype is not None:
        data = data.astype(dtype)
    return traced_array(data, materialize(frame._slots, collected), frame._state)
