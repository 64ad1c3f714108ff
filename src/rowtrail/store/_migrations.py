"""Schema migrations of the SQLite workspace database, applied in order on open.

Each entry is ``(version, statements)``. A database whose ``schema_version`` is newer than the
last entry was written by a newer rowtrail and is refused with
:class:`~rowtrail.errors.SchemaVersionError`.
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            # One row per ledger entry. ``hashes`` is the entry's leaf hash followed by the
            # perfect-subtree hashes its append completed, levels 1..t where t is the number of
            # trailing one bits of idx: node (level l, index j) lives in row (j + 1) * 2**l - 1
            # at offset 32 * l. Every tree node is stored exactly once, with no extra rows.
            """CREATE TABLE events (
                idx INTEGER PRIMARY KEY,
                leaf BLOB NOT NULL,
                hashes BLOB NOT NULL
            )""",
            # The kind index as runs: entries [start, stop) all have this kind. Consecutive
            # appends of one kind extend one run, so a stream of batch records costs a row per
            # change of kind instead of an index entry per event.
            """CREATE TABLE event_kinds (
                kind TEXT NOT NULL,
                start INTEGER NOT NULL,
                stop INTEGER NOT NULL,
                PRIMARY KEY (kind, start)
            ) WITHOUT ROWID""",
            "CREATE INDEX event_kinds_start ON event_kinds (start)",
            """CREATE TABLE event_subjects (
                subject TEXT NOT NULL,
                idx INTEGER NOT NULL,
                PRIMARY KEY (subject, idx)
            ) WITHOUT ROWID""",
            "CREATE INDEX event_subjects_idx ON event_subjects (idx)",
            """CREATE TABLE checkpoints (
                size INTEGER PRIMARY KEY,
                root BLOB NOT NULL,
                note TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]

MIGRATIONS.append(
    (
        2,
        [
            # Registered sources: one row per (name, version); identical bytes = same row.
            """CREATE TABLE sources (
                source_index INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                digest TEXT NOT NULL,
                path TEXT,
                format TEXT NOT NULL,
                schema_json TEXT NOT NULL,
                n_rows INTEGER NOT NULL,
                subject_column TEXT,
                ledger_index INTEGER,
                created_at TEXT NOT NULL,
                UNIQUE (name, version),
                UNIQUE (name, digest)
            )""",
            # Subject pseudonym -> row ids (raw identifiers are never stored).
            """CREATE TABLE subject_rows (
                subject TEXT NOT NULL,
                row_id INTEGER NOT NULL,
                PRIMARY KEY (subject, row_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX subject_rows_row ON subject_rows (row_id)",
        ],
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

MIGRATIONS.append(
    (
        3,
        [
            # The signed checkpoint record (time and link to the previous record), so the
            # checkpoint history is verifiable; every write transaction stores one.
            "ALTER TABLE checkpoints ADD COLUMN record TEXT NOT NULL DEFAULT ''",
        ],
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

MIGRATIONS.append(
    (
        4,
        [
            # The subject.ingested event each subject row was projected from, so an answer
            # proves the very record that ties a row to a pseudonym.
            "ALTER TABLE subject_rows ADD COLUMN ledger_index INTEGER",
        ],
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]

MIGRATIONS.append(
    (
        5,
        [
            # The registry's cache tables (rowtrail.store.registry_tables): one row per
            # registry.* ledger event, keyed by its ledger index; rebuilt and compared by verify.
            """CREATE TABLE registry_datasets (
                ledger_index INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                lineage_digest TEXT,
                lineage_status TEXT NOT NULL,
                sources_json TEXT NOT NULL,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_datasets_name ON registry_datasets (name, version)",
            """CREATE TABLE registry_runs (
                ledger_index INTEGER PRIMARY KEY,
                run_id TEXT NOT NULL,
                name TEXT NOT NULL,
                training_run TEXT,
                git_commit TEXT,
                dirty INTEGER,
                packages_digest TEXT,
                params_json TEXT NOT NULL,
                metrics_json TEXT NOT NULL,
                datasets_json TEXT NOT NULL,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_runs_id ON registry_runs (run_id)",
            """CREATE TABLE registry_models (
                ledger_index INTEGER PRIMARY KEY,
                name TEXT NOT NULL,
                version INTEGER NOT NULL,
                run_id TEXT,
                artifact_digest TEXT NOT NULL,
                flavor TEXT NOT NULL,
                weights_digest TEXT,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_models_name ON registry_models (name, version)",
            """CREATE TABLE registry_aliases (
                ledger_index INTEGER PRIMARY KEY,
                model TEXT NOT NULL,
                alias TEXT NOT NULL,
                version INTEGER,
                previous INTEGER,
                via TEXT NOT NULL,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_aliases_model ON registry_aliases (model, alias)",
            """CREATE TABLE registry_deployments (
                ledger_index INTEGER PRIMARY KEY,
                deployment_id TEXT NOT NULL,
                model TEXT NOT NULL,
                version INTEGER NOT NULL,
                alias TEXT,
                environment TEXT NOT NULL,
                config_digest TEXT NOT NULL,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_deployments_id ON registry_deployments (deployment_id)",
            """CREATE TABLE registry_reviews (
                ledger_index INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                model TEXT NOT NULL,
                version INTEGER NOT NULL,
                name TEXT NOT NULL,
                passed INTEGER,
                report_digest TEXT,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX registry_reviews_model ON registry_reviews (model, version)",
            """CREATE TABLE registry_governance (
                ledger_index INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                name TEXT NOT NULL,
                detail_json TEXT NOT NULL,
                actor TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
        ],
    )
)
SCHEMA_VERSION = MIGRATIONS[-1][0]
