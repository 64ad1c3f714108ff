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

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from rowtrail.lineage.frames._core import GroupNode, IdArray, RowLineage, Slot
from rowtrail.lineage.frames._ops import OpNode

__all__ = [
    "FITTED_VALUES",
    "STATISTICS",
    "TracedFloat",
    "TracedInt",
    "collect_statistics",
    "fitted_slots",
    "global_stat_slot",
    "note_fitted",
    "note_rows",
    "scope_of",
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
    _rt_scope: object = None


class TracedInt(int):
    """An ``int`` fitted on traced rows (``s.count()``); arithmetic keeps its statistics."""

    _rt_slots: tuple[Slot, ...] = ()
    _rt_scope: object = None


def traced_number(value: Any, slots: tuple[Slot, ...], scope: object = None) -> Any:
    """Return ``value`` as a traced number carrying ``slots`` (other values unchanged).

    ``scope`` (see :func:`scope_of`) is the workspace the value is noted under, so a plain
    copy of it is still recognised (see :class:`FittedValues`).
    """
    if isinstance(value, bool | np.bool_) or not slots:
        return value
    if isinstance(value, float | np.floating):
        number: Any = TracedFloat(value)
    elif isinstance(value, int | np.integer):
        number = TracedInt(value)
    else:
        return value
    number._rt_slots = tuple(dict.fromkeys(slots))
    number._rt_scope = scope
    note_fitted([value], number._rt_slots, scope)
    return number


def _number_method(base: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def method(self: Any, other: Any) -> Any:
        result = base(self, other)
        if result is NotImplemented:
            return result
        theirs = other._rt_slots if isinstance(other, TracedFloat | TracedInt) else ()
        return traced_number(result, (*self._rt_slots, *theirs), self._rt_scope)

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
    return traced_number(-plain, self._rt_slots, self._rt_scope)


TracedFloat.__neg__ = _negative  # type: ignore[method-assign]
TracedInt.__neg__ = _negative  # type: ignore[method-assign]


class FittedValues:
    """Values fitted on traced rows, by value, so a plain copy of one is still recognised.

    A statistic can leave the traced world as a plain Python number: ``float(s.mean())``,
    polars' ``df.select(pl.col("a").mean()).item()``, pandas' ``df.mean().to_dict()``, a Spark
    aggregate collected and then written into a Column expression (``F.col("a") - m``), where
    Spark and polars turn it into a literal without identity. So every float fitted on traced
    rows is noted here with its statistic slot, and an operation on a traced frame that receives
    a float literal equal to a noted value records that statistic. Matching by value can only
    add statistics (a constant that happens to equal a fitted value is listed too): sound, as
    lineage must be, never a miss for a value that was copied exactly.

    Values are kept per workspace (``scope``): a frame of one workspace never matches a value
    fitted in another. Not matched: NaN and infinities, and the everyday constants ``0.0``,
    ``1.0`` and ``-1.0``
    (``fillna(0)``, ``x - 1``), which would list every statistic of that value on every such
    call; a statistic with one of those values is recorded only while it stays traced (keep the
    :class:`TracedFloat`, or fill with the expression itself). Values are kept for the last
    ``max_slots`` statistics (each holds its fitted rows' lineage alive).
    """

    def __init__(self, max_slots: int = 64) -> None:
        self.max_slots = max_slots
        self._lock = threading.Lock()
        self._slots: OrderedDict[int, tuple[Slot, set[tuple[object, float]]]] = OrderedDict()
        self._by_value: dict[tuple[object, float], dict[int, Slot]] = {}

    def note(self, values: Iterable[Any], slot: Slot, scope: object) -> None:
        """Remember each float in ``values`` as fitted by ``slot`` in workspace ``scope``."""
        floats = {(scope, v) for v in map(_plain_float, values) if v is not None}
        if not floats:
            return
        with self._lock:
            key = id(slot)
            entry = self._slots.pop(key, None)
            kept = entry[1] if entry is not None else set()
            kept |= floats
            self._slots[key] = (slot, kept)
            for value in floats:
                self._by_value.setdefault(value, {})[key] = slot
            while len(self._slots) > self.max_slots:
                old_key, (_, old_values) = self._slots.popitem(last=False)
                for value in old_values:
                    holders = self._by_value.get(value, {})
                    holders.pop(old_key, None)
                    if not holders:
                        self._by_value.pop(value, None)

    def slots_of(self, values: Iterable[Any], scope: object) -> list[Slot]:
        """Return the statistic slots of ``scope`` whose fitted values include ``values``."""
        found: dict[int, Slot] = {}
        with self._lock:
            if not self._by_value:
                return []
            for value in values:
                plain = _plain_float(value)
                if plain is not None:
                    found.update(self._by_value.get((scope, plain), {}))
        return list(found.values())

    def clear(self) -> None:
        """Forget every noted value."""
        with self._lock:
            self._slots.clear()
            self._by_value.clear()


_ORDINARY: Final = frozenset({0.0, 1.0, -1.0})


def _plain_float(value: Any) -> float | None:
    if isinstance(value, bool | np.bool_) or not isinstance(value, float | np.floating):
        return None
    plain = float(value)
    if not math.isfinite(plain) or plain in _ORDINARY:
        return None
    return plain


FITTED_VALUES: Final = FittedValues()

# Numbers written in a Spark Column's text (Java doubles; polars literals are read from
# the serialized expression instead, see _polars_stats.literal_values).
_NUMBER: Final = re.compile(r"(?<![\w.])-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?(?![\w.])")


def scope_of(workspace: Any) -> object:
    """Return the key values fitted in ``workspace`` are noted under (its directory)."""
    if workspace is None:
        return None
    return str(getattr(workspace, "path", id(workspace)))


def note_fitted(values: Iterable[Any], slots: Sequence[Slot], scope: object) -> None:
    """Note ``values`` as fitted by each of ``slots`` (see :class:`FittedValues`)."""
    listed = list(values)
    for slot in slots:
        FITTED_VALUES.note(listed, slot, scope)


# Aggregated results with at most this many rows have their values noted row by row (a
# group-by's per-key means read back as a dict); larger results are data, not statistics.
MAX_NOTED_ROWS: Final = 64


def note_rows(
    rows: Sequence[Sequence[Any]], lineage: RowLineage, op: OpNode, scope: object
) -> None:
    """Note the floats of each row of an aggregated result as fitted on that row's rows."""
    if len(rows) > MAX_NOTED_ROWS or len(rows) != lineage.n_rows:
        return
    for i, values in enumerate(rows):
        if not any(_plain_float(v) is not None for v in values):
            continue
        own = RowLineage.from_ids(lineage.ids_of_rows(np.array([i], dtype=np.intp)))
        FITTED_VALUES.note(values, global_stat_slot(own, op), scope)


def _literals(value: Any) -> list[Any]:
    """Floats in a plain value, a dict / list / tuple of them, or a Spark Column's text."""
    if isinstance(value, dict):
        return [x for v in value.values() for x in _literals(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _literals(v)]
    if isinstance(value, float | np.floating):
        return [value]
    if isinstance(value, int | np.integer | str | bytes) or value is None:
        return []
    if type(value).__module__.startswith("pyspark"):  # a Column: read its literals
        return [float(m) for m in _NUMBER.findall(str(value)) if "." in m or "e" in m.lower()]
    return []


def fitted_slots(*values: Any, scope: object) -> list[Slot]:
    """Return the statistics whose fitted values appear as literals in ``values``.

    Traced numbers bring their own slots; plain floats (and the float literals of polars
    expressions and Spark Columns) are matched against :data:`FITTED_VALUES` in ``scope``
    (see :func:`scope_of`).
    """
    own = [s for v in values for s in number_slots(v)]
    plain = [x for v in values for x in _literals(v) if not isinstance(x, TracedFloat)]
    return list(dict.fromkeys([*own, *FITTED_VALUES.slots_of(plain, scope)]))


def number_slots(value: Any) -> list[Slot]:
    """Return the statistic slots of a traced number, or of those in a dict / list / tuple."""
    if isinstance(value, dict):
        values: list[Any] = list(value.values())
    elif isinstance(value, list | tuple):
        values = list(value)
    else:
        values = [value]
    traced = [v for v in values if isinstance(v, TracedFloat | TracedInt)]
    return list(dict.fromkeys(s for v in traced for s in v._rt_slots))
