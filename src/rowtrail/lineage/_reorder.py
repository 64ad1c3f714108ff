"""Row-moving NumPy functions on traced arrays, and the ``ndarray`` methods of TracedArray.

Covers concatenate, stack, sort, unique, split, reshape, take, transpose, flip and roll.

Each handler computes the row map from what the function itself computes (the permutation of
a sort, the inverse of ``unique``, the offsets of a split), so capture costs O(rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rowtrail.lineage._array import TracedArray, elementwise, fallback, n_rows_of, unwrap, wrap
from rowtrail.lineage._functions import (
    HANDLERS,
    _handles,
    _mixes_rows,
    _node,
    apply_function,
    reduction_method,
)
from rowtrail.lineage._node import Node
from rowtrail.lineage._rowmap import ALL, STAT, Csr, Group, Repeat, Segment, Slice, Take

__all__ = ["install_methods"]

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


def _call(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    return func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})


def _concat_axis0(name: str, result: Any, arrays: list[Any]) -> TracedArray:
    sources, maps, offset = [], [], 0
    for item in arrays:
        n = n_rows_of(np.asarray(item._a if type(item) is TracedArray else item))
        if type(item) is TracedArray:
            sources.append(item)
            maps.append(Segment(offset))
        offset += n
    return wrap(result, _node(name, "join", sources, maps, n_rows_of(result)))


def _columns(name: str, result: Any, arrays: list[Any]) -> TracedArray:
    """Place inputs side by side: row ``i`` of each input is in output row ``i``."""
    n_out = n_rows_of(result)
    traced = [a for a in arrays if type(a) is TracedArray]
    maps = [None if a._a.ndim and len(a._a) == n_out else STAT for a in traced]
    return wrap(result, _node(name, "join", traced, maps, n_out))


@_handles(np.concatenate)
def _concatenate(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    axis = args[1] if len(args) > 1 else kwargs.get("axis", 0)
    if axis == 0 and len(args) <= 2 and kwargs.keys() <= {"axis"}:  # the common case
        raw, parents, maps, offset = [], [], [], 0
        for item in args[0]:
            if type(item) is TracedArray:
                item_data = item._a
                parents.append(item._n)
                maps.append(Segment(offset))
            else:
                item_data = np.asarray(item)
            raw.append(item_data)
            offset += len(item_data)
        result = func(raw, 0)
        node = Node("concatenate", "join", tuple(parents), tuple(maps), len(result))
        return wrap(result, node)
    arrays = list(args[0])
    result = _call(func, args, kwargs)
    traced = [a for a in arrays if type(a) is TracedArray]
    if axis is None:
        return fallback("concatenate[axis=None]", result, traced)
    if int(axis) % result.ndim == 0:
        return _concat_axis0("concatenate", result, arrays)
    return _columns("concatenate", result, arrays)


@_handles(np.vstack, np.hstack, np.column_stack, np.stack)
def _stacks(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    arrays = list(args[0])
    result = _call(func, args, kwargs)
    traced = [a for a in arrays if type(a) is TracedArray]
    ndims = {np.ndim(a._a if type(a) is TracedArray else a) for a in arrays}
    name = func.__name__
    if func is np.vstack and ndims.isdisjoint({0, 1}):
        return _concat_axis0(name, result, arrays)
    if func is np.hstack:
        return (
            _concat_axis0(name, result, arrays)
            if ndims <= {0, 1}
            else _columns(name, result, arrays)
        )
    if func is np.column_stack and ndims <= {1, 2}:
        return _columns(name, result, arrays)
    axis = args[1] if len(args) > 1 else kwargs.get("axis", 0)
    if func is np.stack and int(axis) % result.ndim != 0:
        return _columns(name, result, arrays)
    if func is np.column_stack:
        return fallback(name, result, traced)
    # Output row k is input k as a whole: it holds every row of input k.
    n_out = n_rows_of(result)
    maps = []
    for k, item in enumerate(arrays):
        if type(item) is TracedArray:
            n_in = n_rows_of(item._a)
            offsets = np.zeros(n_out + 1, dtype=np.int64)
            offsets[k + 1 :] = n_in
            maps.append(Csr(offsets, np.arange(n_in, dtype=np.int64)))
    return wrap(result, _node(name, "join", traced, maps, n_out))


@_handles(np.sort, np.argsort)
def _sort(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    data = source._a
    axis = args[1] if len(args) > 1 else kwargs.get("axis", -1)
    name = func.__name__
    if data.ndim == 1 and axis in (0, -1):
        kind = args[2] if len(args) > 2 else kwargs.get("kind")
        order = data.argsort(kind=kind)
        if func is np.argsort:  # the caller gets ``order`` and may change it: keep a copy
            result, index = order, np.array(order, dtype=np.int64)
        else:
            result, index = data[order], np.asarray(order, dtype=np.int64)
        return wrap(result, Node(name, "sort", (source._n,), (Take(index),), len(order)))
    result = _call(func, args, kwargs)
    if _mixes_rows(axis, data.ndim):
        return wrap(result, _node(name, "sort", [source], [ALL], n_rows_of(result), axis=axis))
    return elementwise(name, result, (source,))


@_handles(np.unique)
def _unique(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    data = source._a
    wanted = {
        k: bool(kwargs.get(k, False)) for k in ("return_index", "return_inverse", "return_counts")
    }
    axis = kwargs.get("axis")
    options = {k: v for k, v in kwargs.items() if k not in wanted}
    result = np.unique(data, return_index=True, return_inverse=True, return_counts=True, **options)
    values, _, inverse, counts = result
    inverse = np.asarray(inverse).ravel()
    per_row = data.size // data.shape[0] if axis is None and data.ndim > 1 else 1
    element_rows = np.arange(inverse.size, dtype=np.int64) // per_row
    order = np.argsort(inverse, kind="stable")
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    node = _node(
        "unique", "aggregation", [source], [Csr(offsets, element_rows[order])], len(values)
    )
    out: list[Any] = [wrap(values, node)]
    out += [result[i + 1] for i, k in enumerate(wanted) if wanted[k]]
    return out[0] if len(out) == 1 else tuple(out)


@_handles(np.split, np.array_split, np.vsplit, np.hsplit)
def _split(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    pieces = _call(func, args, kwargs)
    axis = args[2] if len(args) > 2 else kwargs.get("axis", 0)
    if func is np.vsplit:
        axis = 0
    elif func is np.hsplit:
        axis = 1 if source._a.ndim > 1 else 0
    if int(axis) % source._a.ndim != 0:
        return [elementwise(func.__name__, p, (source,)) for p in pieces]
    out, start = [], 0
    for piece in pieces:
        node = _node(func.__name__, "filter", [source], [Slice(start, 1)], len(piece), start=start)
        out.append(wrap(piece, node))
        start += len(piece)
    return out


def _reshape_map(before: tuple[int, ...], after: tuple[int, ...], order: str) -> Any:
    n_in = before[0] if before else 1
    n_out = after[0] if after else 1
    if n_in == n_out and (order in ("C", "A") or len(before) > 1):
        return None
    if order not in ("C", "A") or n_in == 0 or n_out == 0:
        return ALL
    if n_in == 1:
        return ALL
    if n_out % n_in == 0:
        return Repeat(n_out // n_in)
    if n_in % n_out == 0:
        return Group(n_in // n_out)
    return ALL


@_handles(np.reshape, np.ravel)
def _reshape(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    result = _call(func, args, kwargs)
    order = kwargs.get("order", "C")
    rowmap = _reshape_map(source._a.shape, result.shape, order)
    if rowmap is ALL and n_rows_of(source._a) > 1:
        return fallback(f"{func.__name__}[rows not kept]", result, [source])
    return wrap(
        result,
        _node(
            func.__name__,
            "transformation",
            [source],
            [rowmap],
            n_rows_of(result),
            shape=list(result.shape),
        ),
    )


@_handles(np.transpose)
def _transpose(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    result = _call(func, args, kwargs)
    axes = args[1] if len(args) > 1 else kwargs.get("axes")
    keeps = source._a.ndim <= 1 or (axes is not None and int(next(iter(axes))) == 0)
    rowmap = None if keeps else ALL
    return wrap(result, _node("transpose", "transformation", [source], [rowmap], n_rows_of(result)))


@_handles(np.take)
def _take(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    data = source._a
    index = np.asarray(unwrap(args[1] if len(args) > 1 else kwargs["indices"]))
    axis = args[2] if len(args) > 2 else kwargs.get("axis")
    result = _call(func, args, kwargs)
    if axis is not None and int(axis) % data.ndim != 0:
        return _columns("take", result, [source])
    per_row = 1 if axis is not None or data.ndim <= 1 else data.size // max(data.shape[0], 1)
    rows = np.where(
        index < 0, index + data.size // per_row if axis is None else index + len(data), index
    ) // (per_row if axis is None else 1)
    rowmap = Take(rows.astype(np.int64).ravel()) if rows.ndim <= 1 else _csr_rows(rows)
    return wrap(result, _node("take", "transformation", [source], [rowmap], n_rows_of(result)))


def _csr_rows(rows: np.ndarray[Any, Any]) -> Csr:
    per = rows.size // rows.shape[0] if rows.shape[0] else 1
    offsets = np.arange(0, rows.size + 1, max(per, 1), dtype=np.int64)
    return Csr(offsets, rows.astype(np.int64).ravel())


@_handles(np.flip, np.flipud, np.roll)
def _flip(func: Callable[..., Any], args: Args, kwargs: Kwargs) -> Any:
    source: TracedArray = args[0]
    result = _call(func, args, kwargs)
    n = len(source._a)
    if func is np.roll:
        axis = args[2] if len(args) > 2 else kwargs.get("axis")
        if axis is None or int(axis) != 0:
            return (
                fallback("roll", result, [source])
                if axis is None
                else elementwise("roll", result, (source,))
            )
        shift = args[1] if len(args) > 1 else kwargs["shift"]
        rowmap: Any = Take(np.roll(np.arange(n, dtype=np.int64), shift))
    else:
        axis = args[1] if len(args) > 1 else kwargs.get("axis", 0 if func is np.flipud else None)
        if axis is not None and int(axis) % source._a.ndim != 0:
            return elementwise(func.__name__, result, (source,))
        if axis is None and source._a.ndim > 1:
            return wrap(result, _node(func.__name__, "sort", [source], [ALL], len(result)))
        rowmap = Slice(n - 1, -1)
    return wrap(result, _node(func.__name__, "sort", [source], [rowmap], len(result)))


def _method(func: Callable[..., Any]) -> Callable[..., Any]:
    handler = HANDLERS[func]

    def method(self: TracedArray, *args: Any, **kwargs: Any) -> Any:
        return handler(func, (self, *args), kwargs)

    method.__name__ = func.__name__
    method.__doc__ = f"Like ``numpy.ndarray.{func.__name__}``; records the op."
    return method


def _reshape_method(self: TracedArray, *shape: Any, order: str = "C") -> Any:
    target = shape[0] if len(shape) == 1 else shape
    return _reshape(np.reshape, (self, target), {"order": order})


def _sort_inplace(self: TracedArray, axis: int = -1, kind: Any = None) -> None:
    sorted_ = _sort(np.sort, (self, axis), {"kind": kind})
    self._a[...] = sorted_._a
    self._n = sorted_._n


def install_methods() -> None:
    """Attach the NumPy-like methods and protocols to :class:`TracedArray`."""
    for name in ("mean", "sum", "std", "var", "min", "max", "prod", "any", "all"):
        setattr(TracedArray, name, reduction_method(name))
    for func in (
        np.argmin,
        np.argmax,
        np.ptp,
        np.cumsum,
        np.cumprod,
        np.clip,
        np.round,
        np.argsort,
        np.take,
        np.nonzero,
        np.ravel,
        np.transpose,
        np.copy,
    ):
        setattr(TracedArray, func.__name__, _method(func))
    extra: dict[str, Any] = {
        "flatten": TracedArray.ravel,
        "reshape": _reshape_method,
        "sort": _sort_inplace,
        "astype": lambda self, dtype, **kw: elementwise(
            "astype", self._a.astype(dtype, **kw), (self,)
        ),
        "dot": lambda self, other: HANDLERS[np.dot](np.dot, (self, other), {}),
        "__array_function__": lambda self, func, types, args, kwargs: apply_function(
            func, args, kwargs
        ),
    }
    for name, method in extra.items():
        setattr(TracedArray, name, method)


install_methods()
