"""Indexing of traced arrays: ``X[key]`` and ``X[key] = value``, with exact row maps.

The row map depends only on what the key does to axis 0: a slice keeps a strided run of rows,
a boolean vector keeps the rows where it is true (copied, so later mutation cannot rewrite
history), an integer vector picks rows (copied), an integer drops the row axis. Keys that
move the row axis away from the front fall back soundly to "all input rows".
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rowtrail.lineage._array import TracedArray, elementwise, fallback, n_rows_of, wrap
from rowtrail.lineage._node import Node, warn_fallback
from rowtrail.lineage._rowmap import ALL, INDIRECT, Csr, Mask, RowMap, Slice, Take

__all__ = ["describe_key", "getitem", "setitem"]

_FALLBACK = object()


def _unwrap_key(key: Any) -> tuple[Any, list[TracedArray]]:
    if type(key) is TracedArray:
        return key._a, [key]
    if type(key) is tuple:
        selectors = [k for k in key if type(k) is TracedArray]
        if selectors:
            return tuple(k._a if type(k) is TracedArray else k for k in key), selectors
    return key, []


def _is_advanced(k: Any) -> bool:
    return isinstance(k, np.ndarray | list)


def _front_moves(rest: tuple[Any, ...]) -> bool:
    """Whether advanced indices after axis 0 are split by a slice (NumPy then moves them first)."""
    positions = [j for j, k in enumerate(rest) if _is_advanced(k)]
    if not positions:
        return False
    positions += [j for j, k in enumerate(rest) if isinstance(k, int | np.integer)]
    positions.sort()
    return positions[-1] - positions[0] + 1 != len(positions)


def _integer_map(arr: np.ndarray[Any, Any], rest: tuple[Any, ...], n_out: int) -> Any:
    advanced = [np.asarray(k) for k in rest if _is_advanced(k)]
    if advanced:
        arr = np.broadcast_arrays(arr, *advanced)[0]
    if arr.ndim == 0:
        return Take(np.full(n_out, int(arr), dtype=np.int64))
    if arr.ndim == 1:
        return Take(np.array(arr, dtype=np.int64))
    per_row = arr.size // arr.shape[0] if arr.shape[0] else 0
    offsets = np.arange(0, arr.size + 1, max(per_row, 1), dtype=np.int64)[: arr.shape[0] + 1]
    return Csr(offsets, np.array(arr, dtype=np.int64).ravel())


def _first_key(key: tuple[Any, ...], ndim: int) -> tuple[Any, tuple[Any, ...]]:
    k0, rest = key[0], key[1:]
    if k0 is Ellipsis:
        explicit = sum(1 for k in rest if k is not None and k is not Ellipsis)
        if explicit < ndim:
            return slice(None), rest
        return (rest[0], rest[1:]) if rest else (slice(None), ())
    return k0, rest


def key_rowmap(key: Any, data: np.ndarray[Any, Any], n_out: int) -> Any:
    """Return the row map of ``data[key]`` (``_FALLBACK`` when the key is not understood)."""
    if data.ndim == 0:
        return _FALLBACK
    k0, rest = _first_key(key if type(key) is tuple else (key,), data.ndim)
    if k0 is None:
        return ALL  # a new leading axis of length 1: the one row holds every row
    if type(k0) is slice:
        if rest and _front_moves(rest):
            return _FALLBACK
        start, _, step = k0.indices(data.shape[0])
        return Slice(start, step)
    if isinstance(k0, int | np.integer):
        index = int(k0) + (data.shape[0] if k0 < 0 else 0)
        return Take(np.full(n_out, index, dtype=np.int64))
    if not _is_advanced(k0):
        return _FALLBACK
    arr = np.asarray(k0)
    if arr.dtype == np.bool_:
        if any(_is_advanced(k) for k in rest):
            return _FALLBACK
        if arr.ndim == 1:
            return Mask(arr.copy())
        return Take(np.nonzero(arr)[0].astype(np.int64))
    if arr.dtype.kind in "iu" or arr.size == 0:
        return _integer_map(arr, rest, n_out)
    return _FALLBACK


def describe_key(key: Any) -> str:
    """Return a short description of an index key for the op parameters."""
    parts = key if type(key) is tuple else (key,)
    text = []
    for k in parts:
        if isinstance(k, np.ndarray | TracedArray):
            text.append(f"{k.dtype}{list(k.shape)}")
        elif isinstance(k, list):
            text.append(f"list[{len(k)}]")
        else:
            text.append(repr(k))
    return ", ".join(text)


_BASIC = (int, slice)
_FULL = slice(None)


def _fast_getitem(self: TracedArray, key: Any) -> Any:
    """Index with a common key quickly; return ``None`` for keys needing the general path."""
    data = self._a
    kt = type(key)
    if kt is slice:  # X[a:b:c]
        out = data[key]
        start, _, step = key.indices(data.shape[0])
        return wrap(
            out,
            Node(
                "getitem[slice]", "transformation", (self._n,), (Slice(start, step),), out.shape[0]
            ),
        )
    if (
        kt is tuple
        and len(key) == 2
        and type(key[0]) is slice
        and key[0] == _FULL
        and (type(key[1]) in _BASIC)
    ):
        out = data[key]  # X[:, j], X[:, a:b]: every row kept in place
        return wrap(out, Node("getitem[columns]", "transformation", (self._n,), None, out.shape[0]))
    if kt is int and data.ndim > 1:  # X[i]: one row, its elements become the rows
        out = data[key]
        row = key + data.shape[0] if key < 0 else key
        take = Take(np.full(out.shape[0], row, dtype=np.int64))
        return wrap(out, Node("getitem[int]", "transformation", (self._n,), (take,), out.shape[0]))
    if kt is TracedArray or kt is np.ndarray:
        index = key._a if kt is TracedArray else key
        if index.ndim != 1:
            return None
        out = data[index]
        if index.dtype == np.bool_:
            rowmap: RowMap = Mask(index.copy())
            name, kind = "getitem[mask]", "filter"
        elif index.dtype.kind in "iu":
            rowmap = Take(np.array(index, dtype=np.int64))
            name, kind = "getitem[take]", "transformation"
        else:
            return None
        if kt is TracedArray:
            node = Node(name, kind, (self._n, key._n), (rowmap, INDIRECT), out.shape[0])
        else:
            node = Node(name, kind, (self._n,), (rowmap,), out.shape[0])
        return wrap(out, node)
    return None


def getitem(self: TracedArray, key: Any) -> Any:
    """``X[key]`` with an exact row map."""
    if self._a.ndim:
        fast = _fast_getitem(self, key)
        if fast is not None:
            return fast
    raw, selectors = _unwrap_key(key)
    out = self._a[raw]
    if type(out) is not np.ndarray:
        return out
    n_out = n_rows_of(out)
    rowmap = key_rowmap(raw, self._a, n_out)
    if rowmap is _FALLBACK:
        return fallback("getitem", out, [self, *selectors], kind="filter")
    parents = (self._n, *(s._n for s in selectors))
    maps = (rowmap, *([INDIRECT] * len(selectors)))
    kind = "filter" if isinstance(rowmap, Mask) else "transformation"
    node = Node(f"getitem[{rowmap.tag}]", kind, parents, maps, n_out)
    return wrap(out, node)


def setitem(self: TracedArray, key: Any, value: Any) -> None:
    """``X[key] = value``: written in place and recorded as a ``setitem`` op."""
    raw, selectors = _unwrap_key(key)
    traced_value = type(value) is TracedArray
    self._a[raw] = value._a if traced_value else value
    parents: list[Node] = [self._n]
    maps: list[Any] = [None]
    if traced_value:
        # Which written row took which value row is not tracked: sound over-approximation.
        warn_fallback("setitem[traced value]")
        parents.append(value._n)
        maps.append(ALL)
    parents.extend(s._n for s in selectors)
    maps.extend([INDIRECT] * len(selectors))
    node = Node(
        "setitem",
        "write",
        tuple(parents),
        tuple(maps),
        n_rows_of(self._a),
        params={"key": describe_key(raw)},
        fallback=traced_value,
    )
    self._n = node


def take_rows(self: TracedArray, index: Any, name: str) -> TracedArray:
    """Return rows ``index`` of ``self`` (used by ``take`` and reorders)."""
    rowmap: RowMap = Take(np.array(index, dtype=np.int64))
    out = self._a[np.asarray(index)]
    node = Node(name, "sort", (self._n,), (rowmap,), n_rows_of(out))
    return wrap(out, node)


def _identity(name: str, out: Any, source: TracedArray) -> TracedArray:
    return elementwise(name, out, (source,))


setattr(TracedArray, "__getitem__", getitem)  # noqa: B010 - installed after the class body
setattr(TracedArray, "__setitem__", setitem)  # noqa: B010
