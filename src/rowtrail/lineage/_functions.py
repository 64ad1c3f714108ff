"""NumPy ufuncs and functions on traced arrays, each with its row map.

``__array_ufunc__`` and ``__array_function__`` land here. Every handled function says what it
does to axis 0 (the row axis): keep it (elementwise ops, reductions along other axes), reorder
or select it (sort, take, unique, split), tile it (concatenate, vstack) or mix it (reductions
along rows, transposes: every output row depends on all input rows, recorded as such).
Anything else runs unchanged and falls back soundly to "all input rows", with a warning.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from rowtrail.lineage._array import (
    TracedArray,
    binary,
    elementwise,
    fallback,
    traced_in,
    unwrap,
    wrap,
)
from rowtrail.lineage._node import Node
from rowtrail.lineage._rowmap import ALL, STAT, Take

__all__ = ["apply_function", "apply_ufunc", "matmul"]

Handler = Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Any]
HANDLERS: dict[Callable[..., Any], Handler] = {}


def _node(
    name: str, kind: str, sources: list[TracedArray], maps: list[Any], n: int, **params: Any
) -> Node:
    return Node(name, kind, tuple(s._n for s in sources), tuple(maps), n, params or None)


def _axes(axis: Any, ndim: int) -> tuple[int, ...] | None:
    if axis is None:
        return None
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(int(a) % max(ndim, 1) for a in axes)


def _mixes_rows(axis: Any, ndim: int) -> bool:
    axes = _axes(axis, ndim)
    return ndim <= 1 or axes is None or 0 in axes


# ------------------------------------------------------------------ ufuncs
def apply_ufunc(
    ufunc: np.ufunc, method: str, inputs: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """Run a ufunc on plain arrays and record it."""
    out = kwargs.get("out")
    if out is not None:
        kwargs["out"] = tuple(o._a if type(o) is TracedArray else o for o in out)
    for key in ("where",):
        if type(kwargs.get(key)) is TracedArray:
            kwargs[key] = kwargs[key]._a
    raw = tuple(x._a if type(x) is TracedArray else x for x in inputs)
    result = getattr(ufunc, method)(*raw, **kwargs)
    if method == "__call__":
        if ufunc.nout > 1:
            wrapped: Any = tuple(elementwise(ufunc.__name__, r, inputs) for r in result)
        else:
            wrapped = elementwise(ufunc.__name__, result, inputs)
    elif method == "reduce":
        source = inputs[0]
        wrapped = _reduced(
            f"{ufunc.__name__}.reduce",
            np.asarray(result),
            source,
            kwargs.get("axis", 0),
            source._a.ndim,
        )
    else:
        wrapped = fallback(f"{ufunc.__name__}.{method}", result, traced_in(inputs, []))
    if out is None:
        return wrapped
    return _rebind_out(out, wrapped)


def _rebind_out(out: tuple[Any, ...], wrapped: Any) -> Any:
    results = wrapped if isinstance(wrapped, tuple) else (wrapped,)
    for target, result in zip(out, results, strict=False):
        if type(target) is TracedArray and type(result) is TracedArray:
            target._n = result._n
    final = tuple(t if type(t) is TracedArray else r for t, r in zip(out, results, strict=False))
    return final if isinstance(wrapped, tuple) else final[0]


# ------------------------------------------------------------------ functions
def apply_function(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Dispatch a NumPy function to its handler, or run it with a sound fallback."""
    handler = HANDLERS.get(func)
    if handler is not None:
        return handler(func, args, kwargs)
    result = func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
    inputs = traced_in(args, traced_in(tuple(kwargs.values()), []))
    return fallback(getattr(func, "__name__", repr(func)), result, inputs)


def _handles(*funcs: Callable[..., Any]) -> Callable[[Handler], Handler]:
    def decorator(handler: Handler) -> Handler:
        for func in funcs:
            HANDLERS[func] = handler
        return handler

    return decorator


def _reduced(name: str, result: Any, source: TracedArray, axis: Any, ndim: int) -> TracedArray:
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    n_out = result.shape[0] if result.ndim else 1
    params = {"axis": axis if axis is None or type(axis) is int else _json_axis(axis)}
    if (
        ndim <= 1
        or axis is None
        or (axis % ndim == 0 if type(axis) is int else _mixes_rows(axis, ndim))
    ):
        node = Node(name, "aggregation", (source._n,), (ALL,), n_out, params)
    else:
        node = Node(name, "transformation", (source._n,), None, n_out, params)
    return wrap(result, node)


def reduction_method(name: str) -> Callable[..., Any]:
    """Return the ``ndarray`` reduction method ``name`` (``X.mean(axis=0)``) for TracedArray."""
    func = getattr(np, name)

    unbound = getattr(np.ndarray, name)

    def method(self: TracedArray, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if type(value) is TracedArray:  # a traced ``out=`` or ``where=``: the general path
                return _reduction(func, (self, *args), kwargs)
        result = unbound(self._a, *args, **kwargs)
        return _reduced(name, result, self, args[0] if args else kwargs.get("axis"), self._a.ndim)

    method.__name__ = name
    method.__doc__ = f"Like ``numpy.ndarray.{name}``; records the op."
    return method


def _json_axis(axis: Any) -> Any:
    if axis is None or isinstance(axis, int):
        return axis
    return list(axis) if isinstance(axis, tuple) else str(axis)


_AXIS_POSITION: dict[Callable[..., Any], int] = {
    np.mean: 1,
    np.sum: 1,
    np.std: 1,
    np.var: 1,
    np.min: 1,
    np.max: 1,
    np.amin: 1,
    np.amax: 1,
    np.prod: 1,
    np.any: 1,
    np.all: 1,
    np.median: 1,
    np.nanmean: 1,
    np.nanstd: 1,
    np.nansum: 1,
    np.nanvar: 1,
    np.nanmin: 1,
    np.nanmax: 1,
    np.nanmedian: 1,
    np.argmin: 1,
    np.argmax: 1,
    np.ptp: 1,
    np.count_nonzero: 1,
    np.average: 1,
    np.percentile: 2,
    np.quantile: 2,
    np.nanpercentile: 2,
    np.nanquantile: 2,
    np.linalg.norm: 2,
}


def _reduction(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    source = args[0]
    position = _AXIS_POSITION[func]
    axis = args[position] if len(args) > position else kwargs.get("axis")
    result = func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
    if type(source) is not TracedArray:
        return fallback(func.__name__, result, traced_in(args, []))
    extra_q = position == 2 and func is not np.linalg.norm and np.ndim(unwrap(args[1])) > 0
    if extra_q and not _mixes_rows(axis, source._a.ndim):
        return fallback(func.__name__, result, [source])
    others = traced_in(args[1:], traced_in(tuple(kwargs.values()), []))
    reduced = _reduced(func.__name__, result, source, axis, source._a.ndim)
    if others:  # weights or q given as traced arrays: every output depends on them
        node = reduced._n
        node.parents += tuple(o._n for o in others)
        node.maps = (*(node.maps or (None,)), *([STAT] * len(others)))
    return reduced


_handles(*_AXIS_POSITION)(_reduction)


@_handles(np.cumsum, np.cumprod, np.nancumsum, np.nancumprod)
def _cumulative(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    source = args[0]
    axis = args[1] if len(args) > 1 else kwargs.get("axis")
    result = func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
    if _mixes_rows(axis, source._a.ndim):
        return fallback(func.__name__, result, [source], kind="window")
    return elementwise(func.__name__, result, (source,))


@_handles(
    np.clip,
    np.round,
    np.around,
    np.nan_to_num,
    np.isclose,
    np.real,
    np.imag,
    np.copy,
    np.fix,
    np.ones_like,
    np.zeros_like,
    np.full_like,
    np.empty_like,
    np.isin,
    np.astype,
)
def _elementwise_function(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = func(*unwrap(args), **{k: unwrap(v) for k, v in kwargs.items()})
    if func in (np.ones_like, np.zeros_like, np.full_like, np.empty_like):
        return result  # values do not come from any row
    return elementwise(func.__name__, result, tuple(traced_in((args, kwargs.get("out")), [])))


@_handles(np.where)
def _where(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) == 1:
        return _nonzero(np.nonzero, args, kwargs)
    result = np.where(*unwrap(args))
    return elementwise("where", result, args)


@_handles(np.nonzero, np.argwhere, np.flatnonzero)
def _nonzero(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    source: TracedArray = args[0]
    data = source._a
    positions = np.nonzero(data)
    rows = positions[0] if data.ndim else np.zeros(len(positions[0]), dtype=np.intp)
    result = func(data)
    if func is np.flatnonzero:
        rows = result // max(data.size // max(data.shape[0], 1), 1) if data.ndim else rows
    maps = [Take(rows.astype(np.int64))]
    if isinstance(result, tuple):
        return tuple(
            wrap(r, _node(func.__name__, "filter", [source], maps, len(r))) for r in result
        )
    return wrap(result, _node(func.__name__, "filter", [source], maps, len(result)))


def matmul(func: Callable[..., Any], left: Any, right: Any) -> TracedArray:
    """``left @ right``: output rows are the rows of ``left``; ``right`` is a statistic.

    A 1-D left operand is contracted away, so then every output depends on all its rows.
    """
    left_traced, right_traced = type(left) is TracedArray, type(right) is TracedArray
    lraw = left._a if left_traced else left
    rraw = right._a if right_traced else right
    result = func(lraw, rraw)
    if type(result) is not np.ndarray:
        result = np.asarray(result)
    n_out = result.shape[0] if result.ndim else 1
    rows_kept = np.ndim(lraw) >= 2 and result.ndim >= 1
    if left_traced and not right_traced and rows_kept:  # the common case: X @ W
        return wrap(result, Node(func.__name__, "transformation", (left._n,), None, n_out))
    sources: list[TracedArray] = []
    maps: list[Any] = []
    if left_traced:
        sources.append(left)
        maps.append(None if rows_kept else ALL)
    if right_traced:
        sources.append(right)
        maps.append(STAT if rows_kept else ALL)
    return wrap(result, _node(func.__name__, "transformation", sources, maps, n_out))


@_handles(np.matmul, np.dot, np.inner)
def _matmul(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if kwargs or len(args) != 2:
        return fallback(func.__name__, func(*unwrap(args), **unwrap(kwargs)), traced_in(args, []))
    return matmul(func, args[0], args[1])


def _array_ufunc(
    self: TracedArray, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any
) -> Any:
    if method == "__call__" and not kwargs and ufunc.nout == 1:
        if len(inputs) == 1:  # fast path: np.exp(X), np.log1p(X)
            result = ufunc(self._a)
            if type(result) is np.ndarray and result.ndim:
                node = Node(ufunc.__name__, "transformation", (self._n,), None, result.shape[0])
                return wrap(result, node)
        elif len(inputs) == 2:
            return binary(ufunc, inputs[0], inputs[1])
    return apply_ufunc(ufunc, method, inputs, kwargs)


setattr(TracedArray, "__array_ufunc__", _array_ufunc)  # noqa: B010 - installed after the class
setattr(TracedArray, "__matmul__", lambda self, other: matmul(np.matmul, self, other))  # noqa: B010
setattr(TracedArray, "__rmatmul__", lambda self, other: matmul(np.matmul, other, self))  # noqa: B010
