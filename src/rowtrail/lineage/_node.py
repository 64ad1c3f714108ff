"""Nodes of the op DAG and the graph walks behind every lineage query.

A :class:`Node` is the output of one operation: its name, parameters, code location, time,
parents and one row map per parent (see :mod:`rowtrail.lineage._rowmap`). Nodes are held only
by the traced objects that produced them and by their descendants: there is no global graph,
so a node dies with the last array that needs it. Serial numbers grow with creation time, so
sorting by serial is a topological order (parents are always created before children).
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail.errors import LineageFallbackWarning
from rowtrail.lineage._rowmap import (
    INDIRECT,
    STAT,
    Ids,
    RowMap,
    Segment,
    merge_ids,
    segments_concat,
)

if TYPE_CHECKING:
    from rowtrail.lineage._store import LineageWorkspace

__all__ = ["Node", "ancestor_nodes", "materialize", "source_ids", "warn_fallback"]

_serials = itertools.count(1)
_time = time.time
_getframe = sys._getframe
# File name -> whether it belongs to rowtrail, NumPy or scikit-learn (cached: string hashes
# are cached too, so this is one dict lookup per frame).
_skip_file: dict[str, bool] = {}
_warned: set[str] = set()
# Frames in these directories (rowtrail.lineage, NumPy, scikit-learn) are skipped when
# recording where user code ran an op.
_SKIP = (
    os.path.dirname(__file__) + os.sep,
    os.path.dirname(np.__file__) + os.sep,
    os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "sklearn") + os.sep,
)


class Node:
    """One node of the op DAG (see module docstring)."""

    __slots__ = (
        "__weakref__",
        "cache",
        "code",
        "fallback",
        "kind",
        "line",
        "maps",
        "n_rows",
        "name",
        "params",
        "parents",
        "serial",
        "source",
        "t",
        "ws",
    )

    # Set only where needed (reading an unset one gives its default through getattr): the
    # cached Ids of a queried node, and the SourceInfo and workspace of a source node.
    cache: Ids | None
    source: Any
    ws: LineageWorkspace

    def __init__(
        self,
        name: str,
        kind: str,
        parents: tuple[Node, ...],
        maps: tuple[Any, ...] | None,
        n_rows: int,
        params: Mapping[str, Any] | None = None,
        fallback: bool = False,
    ) -> None:
        self.name = name
        self.kind = kind
        self.parents = parents
        self.maps = maps  # None: every parent maps one-to-one (the elementwise fast path)
        self.n_rows = n_rows
        self.params = params
        self.fallback = fallback
        self.serial = next(_serials)
        self.t = _time()
        frame = _getframe(1)
        skip = _skip_file
        while True:
            code = frame.f_code
            internal = skip.get(code.co_filename)
            if internal is None:
                internal = skip[code.co_filename] = code.co_filename.startswith(_SKIP)
            back = frame.f_back
            if not internal or back is None:
                break
            frame = back
        self.code: Any = code
        # The bytecode offset is free to read; its line number is computed when asked for.
        self.line = ~frame.f_lasti

    @property
    def location(self) -> str:
        """Return ``file:line`` of the user code that ran the op."""
        if isinstance(self.code, str):
            return f"{self.code}:{self.line}"
        if self.line < 0:
            offset = ~self.line
            self.line = (
                next(
                    (line for start, end, line in self.code.co_lines() if start <= offset < end), 0
                )
                or 0
            )
        return f"{self.code.co_filename}:{self.line}"

    def map_of(self, k: int) -> Any:
        """Return the row map of parent ``k`` (``None`` is one-to-one)."""
        return None if self.maps is None else self.maps[k]

    def __repr__(self) -> str:
        return f"Node({self.name!r}, serial={self.serial}, n_rows={self.n_rows})"


def warn_fallback(name: str) -> None:
    """Warn once per op name that lineage fell back to "all input rows"."""
    if name not in _warned:
        _warned.add(name)
        warnings.warn(
            f"rowtrail does not know the row semantics of {name!r}; its output rows are "
            "recorded as depending on all input rows (sound but imprecise, op marked fallback)",
            LineageFallbackWarning,
            stacklevel=4,
        )


def reset_fallback_warnings() -> None:
    """Forget which fallbacks were already warned about (tests)."""
    _warned.clear()


def ancestor_nodes(node: Node, depth: int | None = None) -> tuple[list[Node], Sequence[int]]:
    """Return the ancestors of ``node`` nearest first, with their distance, each once.

    A plain chain (one parent per node) is walked without bookkeeping; below the first node
    with several parents a breadth-first walk with a visited set takes over.
    """
    out: list[Node] = []
    append = out.append
    limit = sys.maxsize if depth is None else depth
    current = node
    parents = current.parents
    if depth is None:
        while len(parents) == 1:
            current = parents[0]
            append(current)
            parents = current.parents
    else:
        while len(parents) == 1 and len(out) < limit:
            current = parents[0]
            append(current)
            parents = current.parents
    if not parents or len(out) >= limit:
        return out, range(1, len(out) + 1)
    depths = list(range(1, len(out) + 1))
    seen = {id(n) for n in out}
    seen.add(id(node))
    frontier, level = [current], len(out)
    while frontier and level < limit:
        level += 1
        nxt = []
        for member in frontier:
            for parent in member.parents:
                if id(parent) not in seen:
                    seen.add(id(parent))
                    nxt.append(parent)
        out.extend(nxt)
        depths.extend([level] * len(nxt))
        frontier = nxt
    return out, depths


def _row_ancestry(node: Node) -> list[Node]:
    """Return ``node`` and the ancestors reached through row edges, parents first."""
    seen = {id(node)}
    stack, out = [node], [node]
    while stack:
        member = stack.pop()
        if getattr(member, "cache", None) is not None:
            continue
        for k, parent in enumerate(member.parents):
            rowmap = member.map_of(k)
            if rowmap is STAT or rowmap is INDIRECT or id(parent) in seen:
                continue
            seen.add(id(parent))
            out.append(parent)
            stack.append(parent)
    out.sort(key=lambda n: n.serial)
    return out


def source_ids(node: Node) -> Ids:
    """Return the Ids of a source node (its own row ids)."""
    info = getattr(node, "source", None)
    ids = info.row_ids() if info is not None else np.arange(node.n_rows, dtype=np.int64)
    return Ids(node.n_rows, ids)


def _compute(node: Node, known: dict[int, Ids]) -> Ids:
    if node.kind == "source":
        return source_ids(node)
    parts: list[Ids] = []
    segments: list[tuple[int, Ids]] = []
    for k, parent in enumerate(node.parents):
        rowmap = node.map_of(k)
        if rowmap is STAT or rowmap is INDIRECT:
            continue
        ids = known[id(parent)]
        if rowmap is None:
            parts.append(ids)
        elif isinstance(rowmap, Segment):
            segments.append((rowmap.offset, ids))
        elif isinstance(rowmap, RowMap):
            parts.append(rowmap.apply(ids, node.n_rows))
    if segments:
        segments.sort(key=lambda item: item[0])
        if _tiles(segments, node.n_rows):
            parts.append(segments_concat([ids for _, ids in segments], node.n_rows))
        else:
            parts.extend(Segment(offset).apply(ids, node.n_rows) for offset, ids in segments)
    return merge_ids(parts, node.n_rows)


def _tiles(segments: list[tuple[int, Ids]], n_rows: int) -> bool:
    position = 0
    for offset, ids in segments:
        if offset != position:
            return False
        position += ids.n
    return position == n_rows


def materialize(node: Node) -> Ids:
    """Return (and cache on ``node``) the source row ids of every row of ``node``."""
    done: Ids | None = getattr(node, "cache", None)
    if done is not None:
        return done
    known: dict[int, Ids] = {}
    for member in _row_ancestry(node):
        cached = getattr(member, "cache", None)
        known[id(member)] = cached if cached is not None else _compute(member, known)
    result = node.cache = known[id(node)]
    return result
