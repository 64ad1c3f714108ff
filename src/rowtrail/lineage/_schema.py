"""Schema validation at ingestion: declared types, ranges and nullability, checked per row.

Violations are recorded as ``rows.validation_failed`` ledger events (one per column and rule,
row numbers in chunks, batched) and returned as a :class:`ValidationReport`, which answers
"were those records processed correctly" for every row of a source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import InvalidInputError

if TYPE_CHECKING:
    from rowtrail.lineage._store import LineageWorkspace

__all__ = ["ColumnSpec", "ValidationReport", "Violation", "check_schema", "validate_columns"]

_TYPES = ("float", "int", "str", "bool")
_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    """What one column must hold.

    Parameters
    ----------
    dtype : {"float", "int", "str", "bool"}
        Declared type; ``int`` accepts integral numbers written as ``3`` or ``3.0``.
    min, max : float, optional
        Inclusive bounds for numeric columns.
    nullable : bool
        Whether empty cells are allowed.
    choices : sequence of str, optional
        Allowed values (compared as text).
    """

    dtype: str = "float"
    min: float | None = None
    max: float | None = None
    nullable: bool = True
    choices: Sequence[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "dtype": self.dtype,
            "min": self.min,
            "max": self.max,
            "nullable": self.nullable,
            "choices": None if self.choices is None else list(self.choices),
        }


@dataclass(frozen=True, slots=True)
class Violation:
    """Rows of one column that broke one rule."""

    column: str
    rule: str
    constraint: str
    row_numbers: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "column": self.column,
            "rule": self.rule,
            "constraint": self.constraint,
            "row_numbers": list(self.row_numbers),
        }


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """Outcome of validating one source at ingestion."""

    source: str
    n_rows: int
    violations: tuple[Violation, ...] = ()
    ledger_indices: tuple[int, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether every row passed."""
        return not self.violations

    def invalid_rows(self) -> NDArray[np.int64]:
        """Return the sorted row numbers that broke any rule."""
        rows = [r for v in self.violations for r in v.row_numbers]
        return np.unique(np.asarray(rows, dtype=np.int64))

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "source": self.source,
            "n_rows": self.n_rows,
            "ok": self.ok,
            "n_invalid": int(self.invalid_rows().size),
            "violations": [v.to_json() for v in self.violations],
        }


def check_schema(schema: Mapping[str, Any] | None, columns: Sequence[str]) -> dict[str, ColumnSpec]:
    """Normalise a declared schema (``{column: "float" | dict | ColumnSpec}``) and check it."""
    if schema is None:
        return {}
    if not isinstance(schema, Mapping):
        raise InvalidInputError(
            f"schema of load_csv must be a mapping of column to spec; got {schema!r}"
        )
    specs: dict[str, ColumnSpec] = {}
    for name, spec in schema.items():
        if name not in columns:
            raise InvalidInputError(
                f"schema of load_csv names column {name!r}, which the file lacks; "
                f"columns: {list(columns)}"
            )
        if isinstance(spec, str):
            spec = ColumnSpec(dtype=spec)
        elif isinstance(spec, Mapping):
            spec = ColumnSpec(**spec)
        if not isinstance(spec, ColumnSpec) or spec.dtype not in _TYPES:
            raise InvalidInputError(
                f"schema[{name!r}] of load_csv must be one of {_TYPES}, a dict or a ColumnSpec; "
                f"got {spec!r}"
            )
        specs[name] = spec
    return specs


def _numbers(values: NDArray[Any]) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Parse text cells as float; return the values (NaN where not numeric) and a bad mask."""
    out = np.full(len(values), np.nan)
    bad = np.zeros(len(values), dtype=bool)
    for i, text in enumerate(values):
        if text != "":
            try:
                out[i] = float(text)
            except ValueError:
                bad[i] = True
    return out, bad


def _column_violations(name: str, spec: ColumnSpec, values: NDArray[Any]) -> list[Violation]:
    empty = values == ""
    found: list[tuple[str, str, NDArray[np.bool_]]] = []
    if not spec.nullable:
        found.append(("nullable", "not null", empty))
    if spec.dtype in ("float", "int"):
        numbers, bad = _numbers(values)
        if spec.dtype == "int":
            bad |= ~empty & ~bad & (numbers != np.round(numbers))
        found.append(("type", spec.dtype, bad))
        if spec.min is not None:
            found.append(("min", f">= {spec.min}", ~empty & ~bad & (numbers < spec.min)))
        if spec.max is not None:
            found.append(("max", f"<= {spec.max}", ~empty & ~bad & (numbers > spec.max)))
    elif spec.dtype == "bool":
        lowered = np.char.lower(values.astype(str))
        found.append(("type", "bool", ~empty & ~np.isin(lowered, ["true", "false", "0", "1"])))
    if spec.choices is not None:
        allowed = [str(c) for c in spec.choices]
        found.append(("choices", f"in {allowed}", ~empty & ~np.isin(values, allowed)))
    return [
        Violation(name, rule, constraint, tuple(np.flatnonzero(mask).tolist()))
        for rule, constraint, mask in found
        if mask.any()
    ]


def validate_columns(
    specs: Mapping[str, ColumnSpec], cells: Mapping[str, NDArray[Any]]
) -> list[Violation]:
    """Return every violation of ``specs`` by the text ``cells`` of each column."""
    violations: list[Violation] = []
    for name, spec in specs.items():
        violations.extend(_column_violations(name, spec, cells[name]))
    return violations


def record_violations(
    ws: LineageWorkspace,
    info: Any,
    violations: Sequence[Violation],
    subjects: Sequence[str | None] | None,
) -> tuple[int, ...]:
    """Append ``rows.validation_failed`` events (batched); return their ledger indices."""
    start = ws.ledger.size
    with ws.ledger.batch(max_events=1000) as batch:
        for v in violations:
            for at in range(0, len(v.row_numbers), _CHUNK):
                rows = list(v.row_numbers[at : at + _CHUNK])
                pseudonyms = (
                    sorted({s for s in (subjects[r] for r in rows) if s}) if subjects else []
                )
                batch.append(
                    "rows.validation_failed",
                    {
                        "source": info.name,
                        "source_index": info.index,
                        "version": info.version,
                        "column": v.column,
                        "rule": v.rule,
                        "constraint": v.constraint,
                        "row_numbers": rows,
                    },
                    subjects=[p for p in pseudonyms if p],
                )
    return tuple(range(start, ws.ledger.size))
