"""Fitted statistics of traced frames: statistic slots and the ``statistics()`` query.

A statistic (a mean, a standard deviation, a group mean used as a target encoding, an
imputation value) is recorded as a *statistic slot*: a group slot (see :mod:`._core`) whose
:class:`~rowtrail.lineage.frames._core.GroupNode` holds the rows the statistic was fitted on,
one group per fitted value (one group for a global statistic, one per key for a group-wise
one), and whose ``stat`` is the op that fitted it. Each row holds the code of the group whose
value it used (``-1``: it used none, e.g. a row a ``fillna`` left alone). The slot rides with
the row through filters, sorts, joins and concats like any other slot, so
``statistics(row=i)`` stays exact per row after any of them.

Statistics and aggregation lineage:

- a global statistic broadcast onto rows (``(x - x.mean()) / x.std()``, ``fillna(df.mean())``)
  is listed by ``statistics()`` only; ``rows_of(i)`` stays the row's own rows, exactly as for
  NumPy;
- a group-wise statistic written back onto the rows (pandas ``groupby(k)[c].transform("mean")``,
  polars ``pl.col(c).mean().over(k)``) is listed by ``statistics(row=i)`` with the rows of
  row ``i``'s group, and those rows also stay in ``rows_of(i)``: the row's new value *is* the
  group's aggregate, the aggregation lineage these ops always had;
- an aggregate merged back by a join (``df.merge(df.groupby(k).agg(...), on=k)``) is a join
  of aggregated rows: the group's rows are in ``rows_of(i)`` (aggregation lineage) and it is
  not listed by ``statistics()``, since rowtrail does not see a fit, only a join. A statistic
  computed later from such columns lists, as its fitted rows, every row the merged rows
  carry (their groups included).

Lineage is kept per row, not per column: once a column computed from a statistic is assigned
to a frame, every later statistic fitted on that frame's rows lists the earlier one too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from rowtrail.lineage.frames._core import GroupNode, IdArray, RowLineage, Slot
from rowtrail.lineage.frames._ops import OpNode

__all__ = [
    "STATISTICS",
    "TracedFloat",
    "TracedInt",
    "collect_statistics",
    "global_stat_slot",
    "number_slots",
    "traced_number",
    "union_slots",
    "with_slots",
]

# Reducers that fit a value on rows (pandas / polars names); a group transform with one of
# these is a group-wise statistic.
STATISTICS: Final = frozenset(
    {
        "mean",
        "median",
        "std",
        "var",
        "sum",
        "min",
        "max",
        "quantile",
        "sem",
        "prod",
        "count",
        "size",
        "nunique",
        "skew",
        "kurt",
        "first",
        "last",
        "idxmin",
        "idxmax",
        "any",
        "all",
    }
)


def global_stat_slot(fitted: RowLineage | Callable[[], RowLineage], op: OpNode) -> Slot:
    """Return the slot of a statistic fitted on every row of ``fitted`` (one group, code 0)."""

    def load() -> tuple[IdArray, RowLineage]:
        lineage = fitted() if callable(fitted) else fitted
        return np.zeros(lineage.n_rows, dtype=np.int64), lineage

    return Slot("group", GroupNode(load), stat=op, in_rows=False)


def with_slots(
    lineage: RowLineage, slots: Sequence[Slot], used: NDArray[np.bool_] | None = None
) -> RowLineage:
    """Add global statistic ``slots`` to ``lineage``; rows where ``used`` is false get ``-1``."""
    fresh = [s for s in dict.fromkeys(slots) if not any(s is t for t in lineage.slots)]
    if not fresh:
        return lineage
    if used is None:
        codes = np.zeros(lineage.n_rows, dtype=np.int64)
    else:
        codes = np.where(used, 0, -1).astype(np.int64)
    extra = RowLineage(fresh, [codes] * len(fresh), lineage.n_rows)
    return RowLineage.concat_columns([lineage, extra])


def union_slots(mine: RowLineage, theirs: RowLineage) -> RowLineage:
    """Side-by-side lineage of two row-aligned frames, dropping slots ``mine`` already holds."""
    keep: list[int] = []
    for k, (slot, values) in enumerate(zip(theirs.slots, theirs.values, strict=True)):
        duplicate = any(
            slot.same_as(own) and (values is own_values or np.array_equal(values, own_values))
            for own, own_values in zip(mine.slots, mine.values, strict=True)
        )
        if not duplicate:
            keep.append(k)
    if not keep:
        return mine
    extra = RowLineage(
        [theirs.slots[k] for k in keep], [theirs.values[k] for k in keep], theirs.n_rows
    )
    return RowLineage.concat_columns([mine, extra])


def collect_statistics(lineage: RowLineage, rows: NDArray[np.intp]) -> list[tuple[OpNode, IdArray]]:
    """Return ``(op, fitted source row ids)`` of every statistic that reached ``rows``.

    Walks the statistic slots of ``rows`` and, through every group slot, the statistics the
    grouped input rows depended on in turn (a mean of z-scores depends on the z-score's mean
    and std). Each group node is expanded once per set of codes, so shared ancestry is walked
    once. Oldest statistic first.
    """
    found: dict[str, tuple[OpNode, list[IdArray]]] = {}
    seen: set[tuple[int, bytes]] = set()
    stack: list[tuple[RowLineage, NDArray[np.intp]]] = [(lineage, rows)]
    while stack:
        current, picked = stack.pop()
        for slot, values in zip(current.slots, current.values, strict=True):
            group = slot.group
            if slot.kind != "group" or group is None:
                continue
            codes = np.unique(values[picked])
            codes = codes[codes >= 0]
            key = (id(group), codes.tobytes())
            if not codes.size or key in seen:
                continue
            seen.add(key)
            inputs = group.input_rows(codes)
            if slot.stat is not None:
                entry = found.setdefault(slot.stat.node_id, (slot.stat, []))
                entry[1].append(group.input.ids_of_rows(inputs))
            stack.append((group.input, inputs))
    ordered = sorted(found.values(), key=lambda item: int(item[0].node_id[1:]))
    return [(op, np.unique(np.concatenate(parts))) for op, parts in ordered]


class TracedFloat(np.float64):
    """A float (``np.float64``) fitted on traced rows (``s.mean()``); arithmetic keeps it.

    A ``numpy.float64`` like pandas' own reductions return, so ``.round(2)`` and every
    ``float`` use keep working.
    """

    _rt_slots: tuple[Slot, ...] = ()


class TracedInt(int):
    """An ``int`` fitted on traced rows (``s.count()``); arithmetic keeps its statistics."""

    _rt_slots: tuple[Slot, ...] = ()


def traced_number(value: Any, slots: tuple[Slot, ...]) -> Any:
    """Return ``value`` as a traced number carrying ``slots`` (other values unchanged)."""
    if isinstance(value, bool | np.bool_) or not slots:
        return value
    if isinstance(value, float | np.floating):
        number: Any = TracedFloat(value)
    elif isinstance(value, int | np.integer):
        number = TracedInt(value)
    else:
        return value
    number._rt_slots = tuple(dict.fromkeys(slots))
    return number


def _number_method(base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def method(self: Any, other: Any) -> Any:
        result = base(self, other)
        if result is NotImplemented:
            return result
        return traced_number(result, (*self._rt_slots, *getattr(other, "_rt_slots", ())))

    method.__name__ = base.__name__
    return method


def _install_arithmetic() -> None:
    """Give the traced numbers arithmetic that keeps their statistics."""
    names = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow")
    for name in (*names, *(f"r{n}" for n in names)):
        for cls, plain in ((TracedFloat, np.float64), (TracedInt, int)):
            setattr(cls, f"__{name}__", _number_method(getattr(plain, f"__{name}__")))


_install_arithmetic()


def _negative(self: Any) -> Any:
    plain = np.float64(self) if isinstance(self, float) else int(self)
    return traced_number(-plain, self._rt_slots)


TracedFloat.__neg__ = _negative  # type: ignore[method-assign]
TracedInt.__neg__ = _negative  # type: ignore[method-assign]


def number_slots(value: Any) -> list[Slot]:
    """Return the statistic slots of a traced number, or of those in a dict / list / tuple."""
    if isinstance(value, dict):
        values: list[Any] = list(value.values())
    elif isinstance(value, list | tuple):
        values = list(value)
    else:
        values = [value]
    return list(dict.fromkeys(s for v in values for s in getattr(v, "_rt_slots", ())))
