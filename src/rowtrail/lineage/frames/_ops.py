"""The op DAG of traced frames and the names of hidden lineage columns.

One :class:`OpNode` per recorded call, stamped with the user's code location; ``fresh_name``
gives the adapters unique hidden column names.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rowtrail.lineage._view import OpInfo

__all__ = ["OpNode", "caller_location", "fresh_name", "record_op"]

_counter = itertools.count()
_PACKAGE_DIR = __file__.rsplit("/lineage/", 1)[0]


def fresh_name() -> str:
    """Return a new hidden lineage column name (``__rt_<n>``, unique in this process)."""
    return f"__rt_{next(_counter)}"


def caller_location() -> str:
    """Return ``file:line`` of the nearest caller outside rowtrail, pandas, polars and pyspark."""
    frame: Any = sys._getframe(1)
    while frame is not None:
        name = frame.f_code.co_filename
        if not (
            name.startswith(_PACKAGE_DIR)
            or "/pandas/" in name
            or "/polars/" in name
            or "/pyspark/" in name
        ):
            return f"{name}:{frame.f_lineno}"
        frame = frame.f_back
    return "<unknown>"


@dataclass(eq=False)
class OpNode:
    """One recorded operation producing a frame (a node of the op DAG)."""

    name: str
    kind: str
    params: Mapping[str, Any]
    inputs: tuple[OpNode, ...] = ()
    location: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fallback: bool = False
    statistics: bool = False  # the op fitted a statistic on rows (see frames._stats)
    node_id: str = field(default_factory=lambda: f"f{next(_counter)}")

    def info(self, depth: int = 0) -> OpInfo:
        """Return the :class:`~rowtrail.lineage._view.OpInfo` of this op."""
        return OpInfo(
            name=self.name,
            kind=self.kind,
            params=dict(self.params),
            location=self.location,
            created_at=self.created_at,
            fallback=self.fallback,
            node=self.node_id,
            inputs=tuple(n.node_id for n in self.inputs),
            depth=depth,
            statistics=self.statistics,
        )

    def chain(self) -> list[OpNode]:
        """Return this node and all its ancestors, oldest first (a topological order)."""
        seen: dict[str, OpNode] = {}
        order: list[OpNode] = []
        stack: list[tuple[OpNode, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node.node_id in seen:
                continue
            seen[node.node_id] = node
            stack.append((node, True))
            stack.extend((parent, False) for parent in reversed(node.inputs))
        return order

    def ancestors(self, depth: int | None = None) -> list[OpInfo]:
        """Return ops up to ``depth`` steps back, nearest first."""
        out: list[OpInfo] = []
        seen: set[str] = set()
        level: list[OpNode] = [self]
        distance = 0
        while level and (depth is None or distance <= depth):
            following: list[OpNode] = []
            for node in level:
                if node.node_id in seen:
                    continue
                seen.add(node.node_id)
                out.append(node.info(distance))
                following.extend(node.inputs)
            level, distance = following, distance + 1
        return out


def record_op(
    name: str,
    kind: str,
    inputs: Sequence[OpNode],
    params: Mapping[str, Any] | None = None,
    *,
    fallback: bool = False,
    statistics: bool = False,
) -> OpNode:
    """Create the op node of one call, stamped with the user's code location."""
    return OpNode(
        name=name,
        kind=kind,
        params=dict(params or {}),
        inputs=tuple(inputs),
        location=caller_location(),
        fallback=fallback,
        statistics=statistics,
    )
