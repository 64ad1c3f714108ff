"""The registry's cache tables: projections of ``registry.*`` ledger events (migration 5).

Every registry entity is an append-only series of ledger events; these tables make them
queryable with SQL (one row per event, each naming its ``ledger_index``). They are caches: the
registry answers from the proven events themselves, and :func:`verify_registry_caches`
(called by ``Workspace.verify``) rebuilds every table from the ledger and compares, so a row
deleted, added or edited outside rowtrail raises :class:`TableIntegrityError` naming the table.

The SQL here is portable (``?`` placeholders, TEXT/INTEGER columns, plain ``INSERT``), so the
same statements run on SQLite and, translated by the server backend, on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rowtrail.errors import TableIntegrityError
from rowtrail.ledger import Event

__all__ = [
    "REGISTRY_EVENT_KINDS",
    "REGISTRY_TABLES",
    "project_registry",
    "registry_rows",
    "verify_registry_caches",
]

#: The ledger event kinds the registry writes, one per entity.
REGISTRY_EVENT_KINDS = (
    "registry.dataset",
    "registry.run",
    "registry.model",
    "registry.alias",
    "registry.deployment",
    "registry.approval",
    "registry.attestation",
    "registry.policy",
    "registry.role",
    "registry.override",
    "registry.refusal",
)

_COMMON = "actor, created_at, ledger_index"
#: Columns of every registry cache table (``ledger_index`` is each table's primary key).
REGISTRY_TABLES: dict[str, str] = {
    "registry_datasets": f"name, version, lineage_digest, lineage_status, sources_json, {_COMMON}",
    "registry_runs": (
        "run_id, name, training_run, git_commit, dirty, packages_digest, params_json, "
        f"metrics_json, datasets_json, {_COMMON}"
    ),
    "registry_models": (
        f"name, version, run_id, artifact_digest, flavor, weights_digest, {_COMMON}"
    ),
    "registry_aliases": f"model, alias, version, previous, via, {_COMMON}",
    "registry_deployments": (
        f"deployment_id, model, version, alias, environment, config_digest, {_COMMON}"
    ),
    "registry_reviews": f"kind, model, version, name, passed, report_digest, {_COMMON}",
    "registry_governance": f"kind, name, detail_json, {_COMMON}",
}

_INSERT = {
    table: f"INSERT INTO {table} ({columns}) VALUES ({', '.join('?' * len(columns.split(',')))})"
    for table, columns in REGISTRY_TABLES.items()
}


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _row(kind: str, p: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]] | None:
    """Return ``(table, leading columns)`` of one registry event's row, or ``None``."""
    if kind == "registry.dataset":
        return "registry_datasets", (
            str(p["name"]), int(p["version"]), p.get("lineage_digest"),
            str(p["lineage_status"]), _text(p["sources"]),
        )
    if kind == "registry.run":
        code, env = p.get("code") or {}, p.get("environment") or {}
        return "registry_runs", (
            str(p["run_id"]), str(p["name"]), p.get("training_run"), code.get("git_commit"),
            _flag(code.get("dirty")), env.get("packages_digest"), _text(p["params"]),
            _text(p["metrics"]), _text(p["datasets"]),
        )
    if kind == "registry.model":
        return "registry_models", (
            str(p["name"]), int(p["version"]), p.get("run_id"), str(p["artifact_digest"]),
            str(p["flavor"]), p.get("weights_digest"),
        )
    if kind == "registry.alias":
        return "registry_aliases", (
            str(p["model"]), str(p["alias"]), _opt_int(p.get("version")),
            _opt_int(p.get("previous")), str(p["via"]),
        )
    if kind == "registry.deployment":
        return "registry_deployments", (
            str(p["deployment_id"]), str(p["model"]), int(p["version"]), p.get("alias"),
            str(p["environment"]), str(p["config_digest"]),
        )
    if kind in ("registry.approval", "registry.attestation"):
        name = p["stage"] if kind == "registry.approval" else p["kind"]
        return "registry_reviews", (
            kind.removeprefix("registry."), str(p["model"]), int(p["version"]), str(name),
            _flag(p.get("passed")), p.get("report_digest"),
        )
    if kind in ("registry.policy", "registry.role", "registry.override", "registry.refusal"):
        field = {"registry.policy": "policy", "registry.role": "grantee",
                 "registry.override": "target_key", "registry.refusal": "action"}[kind]
        name = "policy" if kind == "registry.policy" and p[field] is not None else p[field]
        return "registry_governance", (kind.removeprefix("registry."), str(name), _text(p))
    return None


def registry_rows(index: int, event: Event) -> dict[str, list[tuple[Any, ...]]]:
    """Return the cache rows one registry event implies (none for other kinds).

    A payload that lacks a field its table needs implies no row: only events the registry
    wrote (and checked) carry every field.
    """
    try:
        found = _row(event.kind, event.payload)
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}
    if found is None:
        return {}
    table, values = found
    return {table: [(*values, event.actor, event.time.isoformat(), index)]}


def project_registry(handle: Any, entries: Sequence[tuple[int, bytes]]) -> list[tuple[int, int]]:
    """Write the cache rows of appended registry events, in the append's transaction.

    Returns no bucket changes: registry rows are bound to their events by ``ledger_index``
    and checked by :func:`verify_registry_caches`; answers are read from the proven events.
    """
    for index, leaf in entries:
        for table, rows in registry_rows(index, Event.from_leaf(leaf)).items():
            handle.executemany(_INSERT[table], rows)
    return []


def verify_registry_caches(db: Any, events: Iterable[tuple[int, Event]]) -> int:
    """Rebuild every registry table from ``events`` and compare it with the stored rows.

    ``db`` has ``query(sql, params)``; ``events`` are the log's checked ``(index, event)``
    pairs of the registry kinds. Returns the number of rows checked.

    Raises
    ------
    TableIntegrityError
        Naming the table and the ledger index of the first row that is missing, extra or
        different.
    """
    expected: dict[str, set[tuple[Any, ...]]] = {table: set() for table in REGISTRY_TABLES}
    for index, event in events:
        for table, rows in registry_rows(index, event).items():
            expected[table].update(rows)
    checked = 0
    for table, columns in REGISTRY_TABLES.items():
        stored = {tuple(row) for row in db.query(f"SELECT {columns} FROM {table}")}
        missing = sorted(expected[table] - stored, key=lambda r: r[-1])
        extra = sorted(stored - expected[table], key=lambda r: repr(r[-1]))
        if missing or extra:
            row = (missing or extra)[0]
            what = "is missing" if missing else "is not backed by any ledger event"
            raise TableIntegrityError(
                f"cache table {table!r}: the row of ledger index {row[-1]!r} {what} "
                f"({len(missing)} missing, {len(extra)} extra or altered rows). The table was "
                "edited outside rowtrail; run `rowtrail verify` after restoring it from a "
                "backup (the ledger itself is intact).",
                table=table,
                key=repr(row[-1]),
            )
        checked += len(stored)
    return checked
