"""Buffers of traced arrays handed to other libraries, so that views of them can be traced back.

``np.asarray(X)`` and ``torch.as_tensor(X)`` (through ``X.__dlpack__``) give other code the
plain array under a :class:`~rowtrail.lineage.TracedArray` without a copy. Each such export is
noted here: the plain array (held weakly, its entry dropped when it dies) and the traced array
or, once that is gone, the node it had. :func:`exported_nodes` answers "which traced rows is
this memory?" for a buffer such as a tensor's, by its address, shape and strides.

Why this is sound: while the plain array is alive no other allocation can overlap its memory,
and a tensor created from it without a copy (``torch.from_numpy``, DLPack) keeps it alive, so
a live buffer inside an exported array *is* that array's memory. A buffer matches only if each
of its rows is the same row of the array (same row count and row stride, a start inside the
array's first row, and every other axis inside the array's row); anything else (a copy, a
reshaped or transposed view, rows of another array) matches nothing, and callers then say the
rows are unknown instead of guessing.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from rowtrail.lineage._array import TracedArray
    from rowtrail.lineage._node import Node

__all__ = ["exported_nodes", "note_export"]


class _Export:
    """One exported plain array, the traced array it belongs to, and that array's node."""

    __slots__ = ("node", "plain", "traced")

    def __init__(self, plain: weakref.ref[Any], traced: TracedArray) -> None:
        self.plain = plain
        self.traced = weakref.ref(traced)
        self.node = traced._n

    def current_node(self) -> Node:
        """Return the traced array's node now (an in-place op replaces it), else the noted one."""
        traced = self.traced()
        return self.node if traced is None else traced._n


#: ``id(plain array)`` -> its export; an entry is removed when its plain array dies.
_exports: dict[int, _Export] = {}


def note_export(traced: TracedArray) -> None:
    """Note that the plain array of ``traced`` was handed out without a copy."""
    plain = traced._a
    if plain.ndim == 0:
        return
    key = id(plain)
    entry = _exports.get(key)
    if entry is not None and entry.plain() is plain:
        if entry.traced() is not traced or entry.node is not traced._n:
            entry.traced, entry.node = weakref.ref(traced), traced._n
        return
    _exports[key] = _Export(weakref.ref(plain, _forget(key)), traced)


def _forget(key: int) -> Callable[[Any], None]:
    """Return the weakref callback dropping the entry of a plain array that died."""

    def forget(_: Any) -> None:
        _exports.pop(key, None)

    return forget


def _row_start(offset: int, plain: np.ndarray[Any, Any]) -> list[int] | None:
    """Return the index (along axes 1..) of the element of row 0 at byte ``offset``, or None."""
    start = [0] * plain.ndim
    remaining = offset
    for axis in sorted(range(1, plain.ndim), key=lambda a: -plain.strides[a]):
        stride = plain.strides[axis]
        if stride > 0 and remaining >= stride:
            start[axis] = min(remaining // stride, plain.shape[axis] - 1)
            remaining -= start[axis] * stride
    return start if remaining == 0 else None


def _same_rows(
    address: int, shape: Sequence[int], strides: Sequence[int], plain: np.ndarray[Any, Any]
) -> bool:
    """Whether row ``i`` of the buffer lies inside row ``i`` of ``plain``, for every ``i``."""
    if plain.ndim == 0 or not shape or plain.shape[0] != shape[0] or shape[0] == 0:
        return False
    if plain.strides[0] <= 0 or strides[0] != plain.strides[0]:
        return False
    start = _row_start(address - plain.__array_interface__["data"][0], plain)
    if start is None:
        return False
    used: set[int] = set()
    for size, stride in zip(shape[1:], strides[1:], strict=True):
        if size == 1:
            continue
        axis = next(
            (a for a in range(1, plain.ndim) if a not in used and plain.strides[a] == stride), None
        )
        if axis is None or start[axis] + size > plain.shape[axis]:
            return False
        used.add(axis)
    return True


def exported_nodes(address: int, shape: Sequence[int], strides: Sequence[int]) -> list[Node]:
    """Return the nodes of the exported arrays whose rows a buffer is (usually one).

    Parameters
    ----------
    address : int
        Address of the buffer's first element.
    shape : sequence of int
        The buffer's shape; axis 0 is the row axis.
    strides : sequence of int
        The buffer's strides in bytes.
    """
    found: dict[int, Node] = {}
    for entry in list(_exports.values()):
        plain = entry.plain()
        if plain is not None and _same_rows(address, shape, strides, plain):
            node = entry.current_node()
            found.setdefault(node.serial, node)
    return [found[serial] for serial in sorted(found)]
