"""Workspaces: a directory holding the database, blob store and keys.

Layout of a workspace directory (default ``./.rowtrail``, or ``$ROWTRAIL_WORKSPACE``), made
with mode 0700 (directories) and 0600 (files)::

    rowtrail.db            SQLite (WAL): ledger entries, tree nodes, checkpoints, cache tables
    database.json          instead of rowtrail.db: the PostgreSQL URL (never a password) and
                           the workspace's own schema on that server
    blobs/                 content-addressed blobs (row maps, id arrays, features)
    keys/ledger.pem        Ed25519 checkpoint signing key
    keys/subject.key       HMAC secret for subject pseudonyms

The trust root of a workspace's log (its pinned verifier key and latest checkpoint) is kept
outside it, in the per-user state directory (:class:`rowtrail.ledger.TrustStore`), so a
directory cannot vouch for itself. ``keys/subject.key`` re-identifies every subject whose raw
identifiers can be enumerated (sequential ids, phone numbers): never copy it with the rest of
the directory to someone who should only verify; a verifier needs no key at all.

The storage backend is chosen when the workspace is created: SQLite, or PostgreSQL with
``rowtrail.init(directory, database="postgresql://user@host:port/dbname")`` (or
``$ROWTRAIL_DATABASE`` set to such a URL). The directory always holds the keys and blobs;
``rowtrail.open(directory)`` finds the database from it.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
import uuid
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail import _context
from rowtrail.errors import (
    FileIntegrityError,
    InvalidInputError,
    MissingKeyError,
    SecurityWarning,
    StateError,
    StorageError,
    TrustRootError,
    VerificationError,
    WorkspaceNotFoundError,
)
from rowtrail.ids import pseudonymize
from rowtrail.ledger import (
    Checkpoint,
    Event,
    Ledger,
    NoteSigner,
    TrustRoot,
    TrustStore,
    VerifyReport,
    verify_log,
)
from rowtrail.lineage import SOURCE_EVENT_KINDS, PipelineContext
from rowtrail.lineage import pipeline as lineage_pipeline
from rowtrail.registry._predictions import (
    PREDICTION_BATCH_KIND,
    project_predictions,
    verify_prediction_cache,
    verify_prediction_keys,
)
from rowtrail.store import FileBlobStore, SQLiteDatabase, SQLiteLedgerStore, SQLiteLineageStore
from rowtrail.store.registry_tables import (
    REGISTRY_EVENT_KINDS,
    project_registry,
    verify_registry_caches,
)

if TYPE_CHECKING:
    from rowtrail.attribution import Attributor, Explanation
    from rowtrail.registry import Registry
    from rowtrail.store.postgres import PostgresDatabase
    from rowtrail.training import TrainingRun
    from rowtrail.unlearning._job import ErasureJob

__all__ = ["Workspace", "init_workspace", "open_workspace"]

DB_NAME = "rowtrail.db"
DATABASE_FILE = "database.json"  # a PostgreSQL workspace's server URL and schema
DATABASE_ENV = "ROWTRAIL_DATABASE"


def _write_new_file(path: Path, data: bytes) -> bytes:
    """Create ``path`` with mode 0600 holding ``data`` unless it exists; return its content."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)  # atomic create-if-absent, so concurrent openers agree on one key
    finally:
        os.unlink(tmp)
    return path.read_bytes()


def _new_signing_key() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def subject_key_check(secret: bytes) -> str:
    """Return a commitment to the subject key (reveals nothing about it), kept with the trust."""
    return hmac.new(secret, b"rowtrail.dev/subject-key-check/v1", hashlib.sha256).hexdigest()


def _warn_if_exposed(path: Path) -> None:
    """Warn when others may read the keys: a copy of subject.key re-identifies subjects."""
    for target in (path, path / "keys", path / "keys" / "subject.key", path / DB_NAME,
                   path / DATABASE_FILE):
        with contextlib.suppress(FileNotFoundError):
            if os.stat(target).st_mode & 0o077:
                warnings.warn(
                    f"{target} can be read by other users (mode "
                    f"{stat.S_IMODE(os.stat(target).st_mode):o}); keys/subject.key "
                    "re-identifies every subject of an enumerable id format. Run "
                    f"chmod -R go-rwx {path}",
                    SecurityWarning,
                    stacklevel=3,
                )
                return


def _verify_blob_files(blobs: FileBlobStore) -> int:
    """Re-hash every blob file, referenced or not: a blob's name is its digest."""
    count = 0
    for digest in sorted(blobs.iter_digests()):
        try:
            blobs.get(digest)
        except (VerificationError, StorageError) as exc:
            raise FileIntegrityError(
                f"blob file {blobs.path_of(digest)} does not hash to its name: {exc}",
                path=str(blobs.path_of(digest)),
            ) from exc
        count += 1
    return count


def _verify_bound_files(ws: Workspace) -> int:
    """Check every saved attributor and feature store against the digests its event records."""
    from rowtrail.attribution import verify_attribution_files
    from rowtrail.training import verify_feature_stores

    return verify_attribution_files(ws) + verify_feature_stores(ws)


def _default_actor() -> str:
    """Return ``$ROWTRAIL_ACTOR`` or ``"rowtrail"``: configured, never the OS user."""
    return os.environ.get("ROWTRAIL_ACTOR") or "rowtrail"


def _is_workspace_dir(path: Path) -> bool:
    return (path / DB_NAME).exists() or (path / DATABASE_FILE).exists()


def _check_layout(path: Path) -> None:
    """Refuse a location that is a file or a directory holding other files (nothing created)."""
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"location of rowtrail.init must be a directory; {path} is a file")
    if path.is_dir() and not _is_workspace_dir(path) and any(path.iterdir()):
        raise InvalidInputError(
            f"location of rowtrail.init must be a new or empty directory, or a workspace; "
            f"{path} holds other files. Choose another directory. Nothing was created."
        )


def _create_layout(path: Path) -> None:
    """Make a new workspace's directory and keys (mode 0700/0600); keep an existing one's."""
    _check_layout(path)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = path / "keys"
    _write_new_file(keys / "subject.key", secrets.token_bytes(32))
    _write_new_file(keys / "ledger.pem", _new_signing_key())


def _read_database_file(path: Path) -> tuple[str, str]:
    """Return the ``(url, schema)`` a PostgreSQL workspace's ``database.json`` records."""
    try:
        data = json.loads((path / DATABASE_FILE).read_text())
        url, schema = str(data["url"]), str(data["schema"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StorageError(
            f"{path / DATABASE_FILE} does not hold a PostgreSQL URL and schema ({exc}): it was "
            "edited or truncated. Restore it from your backup."
        ) from exc
    return url, schema


def _open_postgres(
    path: Path, database: str | None, *, new: bool, read_only: bool
) -> PostgresDatabase:
    """Open (or, ``new``, create) the PostgreSQL schema of the workspace at ``path``.

    A new workspace connects before anything is created locally, so an unreachable server
    leaves nothing behind; then it records the URL and schema in ``database.json``.
    """
    from rowtrail.store.postgres import PostgresDatabase, check_url, schema_name

    if not new:
        url, schema = _read_database_file(path)
        if database is not None and database != url:
            raise InvalidInputError(
                f"database of rowtrail.init must be the one {path} was created with "
                f"({url!r}); got {database!r}. Nothing was changed."
            )
        return PostgresDatabase(url, schema, read_only=read_only)
    url = check_url(str(database), "rowtrail.init")
    _check_layout(path)
    schema = schema_name(uuid.uuid4().hex[:16])
    db = PostgresDatabase(url, schema, create=True)
    try:
        _create_layout(path)
        record = json.dumps({"url": url, "schema": schema}, indent=2).encode() + b"\n"
        if _write_new_file(path / DATABASE_FILE, record) != record:  # another init won the race
            db.run(f'DROP SCHEMA "{schema}" CASCADE')
            db.close()
            return _open_postgres(path, database, new=False, read_only=read_only)
        db.set_meta_default("workspace_id", schema.removeprefix("rowtrail_"))
    except BaseException:
        if not (path / DATABASE_FILE).exists():  # leave no schema that nothing points to
            with contextlib.suppress(StorageError):
                db.run(f'DROP SCHEMA "{schema}" CASCADE')
        db.close()
        raise
    return db


def _read_key_file(path: Path, what: str) -> bytes:
    """Return a key file's bytes; a missing key is an error, never silently regenerated."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingKeyError(
            f"{what} {path} is missing. Restore it from your backup of the workspace: a new "
            "key cannot be made in its place (earlier pseudonyms and signatures would no "
            "longer match). Nothing was changed."
        ) from None
    if not data:
        raise MissingKeyError(f"{what} {path} is empty. Restore it from your backup.")
    if path.name == "subject.key" and len(data) != 32:
        raise StorageError(
            f"{what} {path} holds {len(data)} bytes, not 32: it was edited or truncated. "
            "Restore it from your backup."
        )
    return data


def _load_signing_key(path: Path) -> Ed25519PrivateKey:
    data = _read_key_file(path, "the checkpoint signing key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise StorageError(f"{path} does not hold a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError(f"{path} does not hold an Ed25519 private key")
    canonical = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    if not hmac.compare_digest(canonical, data):
        raise StorageError(
            f"{path} was edited: it is not the PEM file rowtrail wrote. Restore it from your "
            "backup."
        )
    return key


class Workspace:
    """An open rowtrail workspace. Use :func:`rowtrail.open` to get one.

    Examples
    --------
    >>> import tempfile, rowtrail
    >>> with rowtrail.init(tempfile.mkdtemp()) as ws:
    ...     ws.ledger.append("rows.ingested", {"n_rows": 3})
    0
    """

    def __init__(
        self,
        path: Path,
        *,
        actor: str | None = None,
        now: Callable[[], datetime] | None = None,
        create: bool = False,
        read_only: bool = False,
        trust: TrustStore | None = None,
        database: str | None = None,
    ) -> None:
        self.path = path
        exists = _is_workspace_dir(path)
        new = create and not exists
        if new and database is None:
            database = os.environ.get(DATABASE_ENV) or None
        if database is not None and database != "sqlite" and not database.startswith(
            ("postgresql://", "postgres://")
        ):
            raise InvalidInputError(
                f"database of rowtrail.init must be 'sqlite' or a "
                f"postgresql://user@host:port/dbname URL; got {database!r}"
            )
        if database == "sqlite":
            if exists and (path / DATABASE_FILE).exists():
                raise InvalidInputError(
                    f"database of rowtrail.init: {path} is a PostgreSQL workspace already; got "
                    "'sqlite'. Choose a new directory. Nothing was changed."
                )
            database = None
        postgres = (path / DATABASE_FILE).exists() if exists else database is not None
        if exists and database is not None and not postgres:
            raise InvalidInputError(
                f"database of rowtrail.init: {path} is a SQLite workspace already; got "
                f"{database!r}. Choose a new directory for a PostgreSQL workspace. Nothing "
                "was changed."
            )
        if create and not postgres:
            _create_layout(path)
        elif not create and not exists:
            raise WorkspaceNotFoundError(
                f"location of rowtrail.open: no workspace at {path}. Create one with "
                f"rowtrail.init({str(path)!r}) (or `rowtrail init --workspace {path}`), or "
                "check the path for a typo. Nothing was created."
            )
        # A new PostgreSQL workspace reaches its server before it creates anything here.
        made = (
            _open_postgres(path, database, new=True, read_only=False) if new and postgres else None
        )
        keys = path / "keys"
        # Keys are read before the database is touched: a missing key changes nothing.
        self._secret = _read_key_file(keys / "subject.key", "the subject pseudonym key")
        signing_key = _load_signing_key(keys / "ledger.pem")
        _warn_if_exposed(path)
        self.read_only = read_only
        self.db: SQLiteDatabase | PostgresDatabase
        if made is not None:
            self.db = made
        elif postgres:
            self.db = _open_postgres(path, database, new=False, read_only=read_only)
        else:
            self.db = SQLiteDatabase(path / DB_NAME, read_only=read_only)
            if new:
                os.chmod(path / DB_NAME, 0o600)
        workspace_id = self.db.get_meta("workspace_id")
        if workspace_id is None:
            workspace_id = self.db.set_meta_default("workspace_id", uuid.uuid4().hex[:16])
        self.workspace_id = workspace_id
        self.origin = f"rowtrail.local/{self.workspace_id}"
        self.blobs = FileBlobStore(path / "blobs")
        signer = NoteSigner(self.origin, signing_key)
        self.trust = trust if trust is not None else TrustStore()
        ledger_store = SQLiteLedgerStore(self.db)
        self.ledger = Ledger(
            ledger_store,
            self.blobs,
            signer,
            origin=self.origin,
            actor=_default_actor() if actor is None else actor,
            now=now,
            trust=self.trust,
        )
        self.lineage_store = SQLiteLineageStore(self.db, self.ledger)
        ledger_store.add_projection(SOURCE_EVENT_KINDS, self.lineage_store.project)
        ledger_store.add_projection(REGISTRY_EVENT_KINDS, project_registry)
        self._registry: Registry | None = None
        # Serving (issue 13): the prediction lookup cache, projected from batch events.
        ledger_store.add_projection([PREDICTION_BATCH_KIND], project_predictions)
        if new:
            self.ledger.pin_trust()
            self.trust.pin_subject_key(self.origin, subject_key_check(self._secret))
        self.closed = False
        self.extensions: dict[str, Any] = {}

    # ------------------------------------------------------------ identity
    def pseudonymize(self, identifier: object) -> str:
        """Return the keyed pseudonym (``ps:<hex>``) of a subject identifier."""
        return pseudonymize(self._secret, identifier)

    @property
    def secret(self) -> bytes:
        """The workspace's pseudonym secret (for adapters that pseudonymize columns)."""
        return self._secret

    # ------------------------------------------------------------ lineage
    def pipeline(self, name: str) -> PipelineContext:
        """Return ``with ws.pipeline(name):``, which persists the lineage made inside it."""
        return lineage_pipeline(self, name)

    # ------------------------------------------------------------ trust
    def trust_root(self) -> TrustRoot:
        """Return the trust root this workspace's log is checked against (outside it)."""
        return self.ledger.trust_root()

    def trust_current_state(self) -> Checkpoint | None:
        """Pin this workspace's key and latest checkpoint as trusted by this user.

        For a workspace received from elsewhere, after checking it by other means (e.g.
        ``verify(vkey=..., checkpoint=...)`` against what its operator published).
        """
        checkpoint = self.ledger.pin_trust()
        self.trust.pin_subject_key(self.origin, subject_key_check(self._secret))
        return checkpoint

    # ------------------------------------------------------------ registry
    @property
    def registry(self) -> Registry:
        """The registry audit trail (:class:`rowtrail.registry.Registry`) of this workspace.

        Its actor is this handle's (``rt.open(..., actor=...)`` or ``$ROWTRAIL_ACTOR``).
        """
        self._check_open()
        if self._registry is None:
            from rowtrail.registry import Registry

            self._registry = Registry(self)
        return self._registry

    # ------------------------------------------------------------ training
    def training_run(self, name: str, **options: Any) -> TrainingRun:
        """Start a :class:`rowtrail.training.TrainingRun` (a context manager) in this workspace.

        ``options`` are those of ``TrainingRun`` (``model=``, ``params=``, ``optimizer=``, ...).
        """
        from rowtrail.training import TrainingRun

        self._check_open()
        # The registry's provenance policy gates what the run trains on (see
        # Registry.gate_training); a policy that requires nothing refuses nothing.
        options.setdefault("provenance_gate", self.registry.gate_training)
        return TrainingRun(self, name, **options)

    # ------------------------------------------------------------ attribution
    def explain(
        self,
        prediction: object,
        top_k: int = 20,
        *,
        proofs: bool = True,
        attributor: Attributor | None = None,
    ) -> Explanation:
        """Explain a decision down to source rows; see :func:`rowtrail.attribution.explain`.

        ``prediction`` is the ledger index of a logged prediction or an input row (explained
        by the attributor registered as ``"default"``). Returns an ``Explanation``.
        """
        self._check_open()
        from rowtrail.attribution import explain

        return explain(self, prediction, top_k=top_k, proofs=proofs, attributor=attributor)

    # ------------------------------------------------------------ unlearning
    def erase(
        self,
        *,
        subject: object = None,
        source: str | int | tuple[str, int] | None = None,
        rows: Any = None,
        reason: str,
        requested_at: datetime | str | None = None,
    ) -> ErasureJob:
        """Resolve an erasure request into a job (nothing is written until ``job.run()``).

        Parameters
        ----------
        subject : str or int, optional
            A subject pseudonym (``ps:...``) or raw identifier: all of its recorded rows.
        source : str, int or (str, int), optional
            A source name, index or ``(name, version)``, with ``rows``.
        rows : sequence of int, optional
            0-based data row numbers of ``source``.
        reason : str
            Why (recorded with the request).
        requested_at : datetime or str, optional
            When the request was made (aware datetime or ISO 8601 with offset); default now.

        Returns
        -------
        ErasureJob
            Its ``plan`` says what the rows reached; ``job.run(ModelInput(...))`` updates
            the models, shreds the subject's payloads and records the ``erasure.*`` events
            (see :mod:`rowtrail.unlearning._job`).

        Raises
        ------
        InvalidInputError
            No rows of the subject are recorded, rows out of range, a malformed request.
        UnknownSourceError
            ``source`` is not registered. Nothing is written on any error.

        Examples
        --------
        >>> import tempfile, numpy as np, rowtrail as rt
        >>> ws = rt.init(tempfile.mkdtemp())
        >>> _ = rt.track(np.zeros((4, 2)), source="t", workspace=ws)
        >>> job = ws.erase(source="t", rows=[1], reason="GDPR Art. 17")
        >>> job.plan.n_rows, job.plan.has_model_work
        (1, False)
        >>> result = job.run()
        >>> ws.ledger.entry(result.completed_index).event.kind
        'erasure.completed'
        """
        self._check_open()
        from rowtrail.unlearning._job import new_job

        request: dict[str, Any] = {"subject": subject, "source": source, "rows": rows,
                                   "reason": reason}
        if requested_at is not None:
            request["requested_at"] = requested_at
        return new_job(self, [request], now=self.ledger.now())

    def erase_batch(self, requests: list[dict[str, Any]]) -> ErasureJob:
        """Resolve several requests received within one month into one erasure job."""
        self._check_open()
        from rowtrail.unlearning._job import new_job

        return new_job(self, requests, now=self.ledger.now())

    # ------------------------------------------------------------ verification
    def verify(
        self,
        *,
        progress: Callable[[int], None] | None = None,
        trust_root: TrustRoot | None = None,
    ) -> VerifyReport:
        """Verify everything answers are built from; raise on the first problem.

        Checks, without writing anything: every ledger entry, tree node and index; every
        signed checkpoint and the chain of their records; the log against the trust root kept
        outside the workspace (or ``trust_root``, e.g. files a third party saved); every cache
        table rebuilt from the ledger; every blob; every file bound to the ledger by a digest;
        every registry decision against the roles and policy in force when it was made.

        Raises
        ------
        VerificationError
            ``LogIntegrityError`` (``TableIntegrityError`` for a cache table),
            ``CheckpointError`` (``TrustRootError``), ``FileIntegrityError``.
        """
        self._check_open()
        root = trust_root if trust_root is not None else self.ledger.trust_root()
        check = None if trust_root is not None else self.trust.subject_key_check(self.origin)
        if check is not None and not hmac.compare_digest(check, subject_key_check(self._secret)):
            raise TrustRootError(
                f"keys/subject.key of {self.path} is not the key this log was created with: "
                "pseudonyms would not match. Restore it from your backup."
            )
        registry: list[tuple[int, Event]] = []
        with self.db.read_snapshot():  # the log and its caches as of one committed state
            report, cache_rows = self._verify_snapshot(root, trust_root, progress, registry)
        from rowtrail.attribution import verify_decision_keys
        from rowtrail.registry import verify_registry
        from rowtrail.registry._retention import verify_retention
        from rowtrail.unlearning._commitments import verify_commitment_keys

        extra = {
            "cache_rows": cache_rows,
            "blob_files": _verify_blob_files(self.blobs),
            "bound_files": _verify_bound_files(self),
            "data_keys": verify_decision_keys(self),
            "commitment_keys": verify_commitment_keys(self),
            "expired_payloads": verify_retention(self),
            "registry_decisions": verify_registry(self, registry),
        }
        return report.with_counts(extra)

    def _verify_snapshot(
        self,
        root: TrustRoot,
        given: TrustRoot | None,
        progress: Callable[[int], None] | None,
        registry_events: list[tuple[int, Event]],
    ) -> tuple[VerifyReport, int]:
        """Verify the log, then rebuild the cache tables from the events it decoded.

        The registry's events are added to ``registry_events`` for the decision checks.
        """
        kinds = set(SOURCE_EVENT_KINDS) | set(REGISTRY_EVENT_KINDS) | {PREDICTION_BATCH_KIND}
        events: list[tuple[int, Event]] = []
        report = verify_log(
            self.ledger,
            trust_root=root,
            trust_bound=None if given is not None else lambda: self.trust_root().bound,
            progress=progress,
            visit=lambda index, event: events.append((index, event))
            if event.kind in kinds
            else None,
        )
        registry = set(REGISTRY_EVENT_KINDS)
        batches = [(i, e) for i, e in events if e.kind == PREDICTION_BATCH_KIND]
        lineage = [
            (i, e) for i, e in events if e.kind not in registry and e.kind != PREDICTION_BATCH_KIND
        ]
        registry_events.extend((i, e) for i, e in events if e.kind in registry)
        rows = self.lineage_store.verify_caches(self.ledger, lineage, verifier=root.verifier)
        rows += verify_registry_caches(self.db, registry_events)
        rows += verify_prediction_cache(self, batches)
        verify_prediction_keys(self, batches)
        return report, rows

    # ------------------------------------------------------------ lifecycle
    def _check_open(self) -> None:
        if self.closed:
            raise StateError(f"workspace {self.path} is closed; open it again with rowtrail.open()")

    def close(self) -> None:
        """Close the database connection."""
        if not self.closed:
            self.db.close()
            self.closed = True

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r}, size={self.ledger.size})"


def open_workspace(
    location: str | os.PathLike[str] | None = None,
    *,
    actor: str | None = None,
    now: Callable[[], datetime] | None = None,
    create: bool = False,
    read_only: bool = False,
    database: str | None = None,
) -> Workspace:
    """Open an existing workspace (or create one with ``create=True``).

    Opening never creates anything: a location that holds no workspace raises
    :class:`~rowtrail.errors.WorkspaceNotFoundError`, so a typo cannot answer "not used".

    Parameters
    ----------
    location : str or path, optional
        A directory or ``sqlite:///<dir>``. Defaults to ``$ROWTRAIL_WORKSPACE`` or
        ``./.rowtrail``. A PostgreSQL workspace is opened by its directory too.
    actor : str, optional
        Default actor recorded on events appended through this handle; default
        ``$ROWTRAIL_ACTOR`` or ``"rowtrail"`` (never the operating-system user).
    now : callable, optional
        Clock returning an aware UTC datetime (inject for reproducible tests).
    create : bool
        Create the workspace (directory, keys, database) when it does not exist yet.
    read_only : bool
        Open without creating or changing any file (no migration, no WAL side files); every
        write raises :class:`~rowtrail.errors.StateError`. The CLI's reads use it.
    database : str, optional
        With ``create=True``: ``postgresql://user@host:port/dbname`` puts a new workspace's
        database on that PostgreSQL server, in a schema of its own; ``"sqlite"`` keeps it in
        the directory. Default ``$ROWTRAIL_DATABASE``, else SQLite. No password in the URL:
        libpq reads ``PGPASSWORD`` or ``~/.pgpass``. An existing workspace keeps its database.

    Raises
    ------
    WorkspaceNotFoundError
        No workspace at ``location`` (and ``create`` is false).
    StorageError
        The database cannot be opened, e.g. its PostgreSQL server is unreachable (nothing is
        created then).
    """
    text = os.fspath(location) if location is not None else _context.default_location()
    if text.startswith(("postgresql://", "postgres://")):
        raise InvalidInputError(
            f"location of rowtrail.open must be a workspace directory; got {text!r}. A "
            "PostgreSQL workspace keeps its keys and blobs in a directory: create it with "
            "rowtrail.init(directory, database='postgresql://user@host:port/dbname') and open "
            "it with rowtrail.open(directory)."
        )
    if text.startswith("sqlite:///"):
        text = (
            text[len("sqlite:///") - 1 :]
            if text.startswith("sqlite:////")
            else text[len("sqlite:///") :]
        )
    elif "://" in text:
        raise InvalidInputError(
            "location of rowtrail.open must be a directory or sqlite:///<dir>; got "
            f"{text!r}"
        )
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"location of rowtrail.open must be a directory; {path} is a file")
    if create and read_only:
        raise InvalidInputError("create and read_only of rowtrail.open exclude each other")
    if database is not None and not create:
        raise InvalidInputError(
            "database of rowtrail.open is only for creating a workspace (create=True or "
            "rowtrail.init); an existing workspace keeps the database it was created with"
        )
    return Workspace(
        path.resolve(), actor=actor, now=now, create=create, read_only=read_only, database=database
    )


def init_workspace(
    location: str | os.PathLike[str] | None = None,
    *,
    actor: str | None = None,
    now: Callable[[], datetime] | None = None,
    database: str | None = None,
) -> Workspace:
    """Create a workspace (or open the one already there) and return it.

    ``database="postgresql://user@host:port/dbname"`` (default ``$ROWTRAIL_DATABASE``) puts a
    new workspace's database on a PostgreSQL server; see :func:`open_workspace`.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> with rt.init(tempfile.mkdtemp()) as ws:
    ...     ws.ledger.size
    0
    """
    return open_workspace(location, actor=actor, now=now, create=True, database=database)


_context.register_opener(open_workspace)
