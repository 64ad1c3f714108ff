"""Persisting the op DAG and row maps so lineage survives the process.

``rt.flush(obj)`` and leaving ``with ws.pipeline(name):`` write the DAG of the objects as one
canonical-JSON blob (nodes in creation order: op, parameters, code location, time, parents,
row maps) plus one compressed blob per index vector (masks as packed bits, sorted indices
delta-encoded), then append a ``lineage.persisted`` ledger event naming the DAG digest and
every blob. ``rt.load_lineage(ws, name_or_digest)`` rebuilds the nodes and returns a view
that answers the same queries.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail import _context
from rowtrail.errors import InvalidInputError, LineageError, StateError
from rowtrail.hashing import canonical_json, decode_canonical_json
from rowtrail.lineage._array import TracedArray, collectors
from rowtrail.lineage._node import Node, ancestor_nodes
from rowtrail.lineage._query import ArrayLineage
from rowtrail.lineage._rowmap import (
    ALL,
    INDIRECT,
    STAT,
    All,
    Csr,
    Group,
    Ids,
    Mask,
    Repeat,
    Segment,
    Slice,
    Take,
)

if TYPE_CHECKING:
    from rowtrail.lineage._store import LineageWorkspace

__all__ = ["PipelineContext", "flush", "load_lineage", "pipeline"]

_FORMAT = "rowtrail.lineage.dag/1"
_EVENT = "lineage.persisted"


def _put_ints(ws: LineageWorkspace, values: NDArray[Any], blobs: list[str]) -> dict[str, Any]:
    values = np.asarray(values, dtype=np.int64).ravel()
    delta = values.size > 1 and bool(np.all(values[1:] >= values[:-1]))
    stored = np.diff(values, prepend=0) if delta else values
    small = stored.size == 0 or (stored.min() >= 0 and stored.max() < 2**32)
    data = stored.astype("<u4" if small else "<i8").tobytes()
    digest = ws.ledger.put_blob(zlib.compress(data, 1))
    blobs.append(digest)
    return {"blob": digest, "dtype": "<u4" if small else "<i8", "delta": delta}


def _get_ints(ws: LineageWorkspace, ref: dict[str, Any]) -> NDArray[np.int64]:
    stored = np.frombuffer(zlib.decompress(ws.ledger.blobs.get(ref["blob"])), dtype=ref["dtype"])
    values = stored.astype(np.int64)
    return np.cumsum(values) if ref["delta"] else values


def _map_json(rowmap: Any, ws: LineageWorkspace, blobs: list[str]) -> Any:
    if rowmap is None or rowmap is STAT or rowmap is INDIRECT or isinstance(rowmap, All):
        return None if rowmap is None else rowmap.tag
    if isinstance(rowmap, Slice):
        return {"t": "slice", "start": rowmap.start, "step": rowmap.step}
    if isinstance(rowmap, Segment):
        return {"t": "segment", "offset": rowmap.offset}
    if isinstance(rowmap, Repeat | Group):
        return {"t": rowmap.tag, "factor": rowmap.factor}
    if isinstance(rowmap, Mask):
        packed = np.packbits(rowmap.mask)
        digest = ws.ledger.put_blob(zlib.compress(packed.tobytes(), 1))
        blobs.append(digest)
        return {"t": "mask", "blob": digest, "n": int(rowmap.mask.size)}
    if isinstance(rowmap, Take):
        return {"t": "take", "index": _put_ints(ws, rowmap.index, blobs)}
    if isinstance(rowmap, Csr):
        return {
            "t": "csr",
            "offsets": _put_ints(ws, rowmap.offsets, blobs),
            "index": _put_ints(ws, rowmap.index, blobs),
        }
    raise LineageError(f"row map {rowmap!r} cannot be persisted")


def _map_from_json(data: Any, ws: LineageWorkspace) -> Any:
    simple = {None: None, "stat": STAT, "indirect": INDIRECT, "all": ALL}
    if not isinstance(data, dict):
        return simple[data]
    tag = data["t"]
    if tag == "slice":
        return Slice(data["start"], data["step"])
    if tag == "segment":
        return Segment(data["offset"])
    if tag in ("repeat", "group"):
        return (Repeat if tag == "repeat" else Group)(data["factor"])
    if tag == "mask":
        packed = np.frombuffer(zlib.decompress(ws.ledger.blobs.get(data["blob"])), dtype=np.uint8)
        return Mask(np.unpackbits(packed, count=data["n"]).astype(bool))
    if tag == "take":
        return Take(_get_ints(ws, data["index"]))
    return Csr(_get_ints(ws, data["offsets"]), _get_ints(ws, data["index"]))


def _pinned_ids(node: Node, ws: LineageWorkspace, blobs: list[str]) -> dict[str, Any] | None:
    """Ids set directly on a node with no row edges (e.g. a frame turned into an array)."""
    cached = getattr(node, "cache", None)
    if cached is None or node.kind == "source" or node.maps is None:
        return None
    if any(m is not STAT and m is not INDIRECT for m in node.maps):
        return None
    return {
        "offsets": _put_ints(ws, cached.csr_offsets(), blobs),
        "ids": _put_ints(ws, cached.ids, blobs),
        "shared": _put_ints(ws, cached.shared, blobs),
    }


def _node_json(
    node: Node, index: dict[int, int], ws: LineageWorkspace, blobs: list[str]
) -> dict[str, Any]:
    maps = None if node.maps is None else [_map_json(m, ws, blobs) for m in node.maps]
    pinned = _pinned_ids(node, ws, blobs)
    extra = {} if pinned is None else {"pinned_ids": pinned}
    return {
        **extra,
        "name": node.name,
        "kind": node.kind,
        "params": dict(node.params or {}),
        "location": node.location,
        "at": datetime.fromtimestamp(node.t, UTC).isoformat(),
        "fallback": node.fallback,
        "n_rows": node.n_rows,
        "parents": [index[id(p)] for p in node.parents],
        "maps": maps,
    }


def _workspace_of(nodes: Sequence[Node], workspace: LineageWorkspace | None) -> Any:
    if workspace is not None:
        return workspace
    for node in nodes:
        for member in [node, *ancestor_nodes(node)[0]]:
            if getattr(member, "ws", None) is not None:
                return member.ws
    return _context.resolve_workspace(None)


def persist(
    outputs: Sequence[tuple[str, Node]], *, name: str, workspace: LineageWorkspace | None = None
) -> str:
    """Write the DAG of ``outputs`` and append a ``lineage.persisted`` event; return its digest."""
    ws = _workspace_of([n for _, n in outputs], workspace)
    members: dict[int, Node] = {}
    for _, node in outputs:
        members[id(node)] = node
        members.update((id(a), a) for a in ancestor_nodes(node)[0])
    ordered = sorted(members.values(), key=lambda n: n.serial)
    index = {id(n): i for i, n in enumerate(ordered)}
    blobs: list[str] = []
    records = [_node_json(n, index, ws, blobs) for n in ordered]
    dag = {
        "format": _FORMAT,
        "name": name,
        "nodes": records,
        "outputs": [{"name": label, "node": index[id(n)]} for label, n in outputs],
    }
    digest: str = ws.ledger.put_blob(canonical_json(dag))
    sources = [r["params"] for r in records if _is_source_record(r)]
    if _already_persisted(ws, name, digest):
        return digest  # a retry after a crash past the commit: the record exists once
    ws.ledger.append(
        _EVENT,
        {
            "name": name,
            "dag_digest": digest,
            "n_nodes": len(records),
            "outputs": dag["outputs"],
            "sources": sources,
            "n_rows": [n.n_rows for _, n in outputs],
        },
        blobs=[digest, *dict.fromkeys(blobs)],
    )
    return digest


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())


def flush(obj: Any, *, name: str | None = None, workspace: LineageWorkspace | None = None) -> str:
    """Persist the lineage of a traced object (op DAG and row maps); return the DAG digest.

    Parameters
    ----------
    obj : TracedArray or lineage view
        What to persist.
    name : str, optional
        Name to load it back by (``rt.load_lineage(ws, name)``); defaults to the DAG digest.
    workspace : Workspace, optional
        Defaults to the workspace its sources were registered in.
    """
    if type(obj) is TracedArray:
        node = obj._n
    elif isinstance(obj, ArrayLineage):
        node = obj.node
    else:
        raise LineageError(
            f"obj of flush must be a traced array or a lineage view; got {type(obj).__name__}. "
            "Create it with rt.load_csv or rt.track."
        )
    if name is not None and not _is_name(name):
        raise InvalidInputError(f"name of flush must be a non-empty str or None; got {name!r}")
    label = name or ""
    return persist([(label or "output", node)], name=label, workspace=workspace)


def _already_persisted(ws: LineageWorkspace, name: str, digest: str) -> bool:
    """Whether the latest event under ``name`` records exactly this DAG."""
    for entry in reversed(ws.ledger.entries_of_kind(_EVENT)):
        payload = entry.event.payload
        if payload.get("name") == name:
            return bool(payload.get("dag_digest") == digest)
    return False


def _find_event(ws: LineageWorkspace, key: str) -> dict[str, Any]:
    # Released only with a verified inclusion proof against the trusted signed head.
    for entry, _ in reversed(ws.ledger.proven_entries(kind=_EVENT)):
        payload = dict(entry.event.payload)
        if key in (payload["dag_digest"], payload["name"]):
            return payload
    raise LineageError(
        f"key of load_lineage must be the name or DAG digest of persisted lineage; {key!r} is "
        f"neither in workspace {ws.path}. Persist it with rt.flush(obj, name=...) first."
    )


def _is_source_record(record: dict[str, Any]) -> bool:
    """Whether a node record is a registered source (a frame's read op is kind ``source`` too)."""
    return record["kind"] == "source" and "source_index" in (record["params"] or {})


def _rebuild(ws: LineageWorkspace, records: list[dict[str, Any]]) -> list[Node]:
    nodes: list[Node] = []
    for record in records:
        parents = tuple(nodes[i] for i in record["parents"])
        maps = record["maps"]
        node = Node(
            record["name"],
            record["kind"],
            parents,
            None if maps is None else tuple(_map_from_json(m, ws) for m in maps),
            record["n_rows"],
            record["params"] or None,
            record["fallback"],
        )
        file, _, line = record["location"].rpartition(":")
        node.code, node.line = file, int(line) if line.isdigit() else 0
        node.t = datetime.fromisoformat(record["at"]).timestamp()
        pinned = record.get("pinned_ids")
        if pinned is not None:
            node.cache = Ids(
                record["n_rows"],
                _get_ints(ws, pinned["ids"]),
                _get_ints(ws, pinned["offsets"]),
                _get_ints(ws, pinned["shared"]),
            )
        if _is_source_record(record):
            node.source = ws.lineage_store.get_source(int(record["params"]["source_index"]))
            node.ws = ws
        nodes.append(node)
    return nodes


def load_lineage(
    workspace: LineageWorkspace | None, key: str, *, output: str | None = None
) -> ArrayLineage:
    """Return the lineage view of persisted lineage, by name or DAG digest.

    Parameters
    ----------
    workspace : Workspace or None
        Where it was persisted (``None``: the default workspace).
    key : str
        The name given to ``flush``/``pipeline``, or the ``sha256:`` DAG digest.
    output : str, optional
        Which named output of a pipeline; default: the last one.
    """
    ws = _context.resolve_workspace(workspace)
    payload = _find_event(ws, key)
    dag = decode_canonical_json(ws.ledger.blobs.get(payload["dag_digest"]))
    nodes = _rebuild(ws, dag["nodes"])
    outputs = {o["name"]: o["node"] for o in dag["outputs"]}
    if output is None:
        return ArrayLineage(nodes[dag["outputs"][-1]["node"]])
    if output not in outputs:
        raise LineageError(
            f"output of load_lineage must be one of {sorted(outputs)}; got {output!r}"
        )
    return ArrayLineage(nodes[outputs[output]])


class PipelineContext:
    """Record the traced arrays made inside ``with ws.pipeline(name) as p:`` and persist them.

    Their lineage is persisted when the block exits cleanly (nothing is written on an error).

    Use ``p.add(name, array)`` to name an output; arrays still alive at exit that are not an
    ancestor of another are persisted as ``out0``, ``out1``, ....
    """

    def __init__(self, workspace: LineageWorkspace | None, name: str) -> None:
        if not _is_name(name):
            raise InvalidInputError(f"name of pipeline must be a non-empty str; got {name!r}")
        self.workspace = workspace
        self.name = name
        self.digest: str | None = None
        self._named: dict[str, Node] = {}
        self._made: weakref.WeakValueDictionary[int, TracedArray] | None = None

    def add(self, name: str, obj: TracedArray) -> None:
        """Name an output of the pipeline."""
        if type(obj) is not TracedArray:
            raise LineageError(
                f"obj of pipeline.add must be a traced array; got {type(obj).__name__}"
            )
        self._named[name] = obj._n

    def __enter__(self) -> PipelineContext:
        if self._made is not None:
            raise StateError(f"pipeline {self.name!r} is already running; make a new one")
        self._made = weakref.WeakValueDictionary()
        collectors.append(self._made)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        made = self._made
        if made is not None and made in collectors:
            collectors.remove(made)
        if exc_type is not None or made is None:
            return
        alive = sorted(
            {id(a._n): a._n for a in list(made.values())}.values(), key=lambda n: n.serial
        )
        inner = {id(p) for n in alive for p in ancestor_nodes(n)[0]}
        leaves = [n for n in alive if id(n) not in inner and n.kind != "source"]
        outputs = list(self._named.items()) + [(f"out{i}", n) for i, n in enumerate(leaves)]
        if outputs:
            self.digest = persist(outputs, name=self.name, workspace=self.workspace)


def pipeline(workspace: LineageWorkspace | None, name: str) -> PipelineContext:
    """Return a context that persists the lineage of the arrays made inside it."""
    return PipelineContext(workspace, name)
