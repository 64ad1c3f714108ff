"""Workspaces: a directory holding the database, blob store, keys and witness state.

Layout of a workspace directory (default ``./.rowtrail``, or ``$ROWTRAIL_WORKSPACE``)::

    rowtrail.db            SQLite (WAL): ledger entries, tree nodes, checkpoints, lineage tables
    blobs/                 content-addressed blobs (row maps, id arrays, features)
    keys/ledger.pem        Ed25519 checkpoint signing key (mode 0600)
    keys/subject.key       HMAC secret for subject pseudonyms (mode 0600)
    witness/checkpoint     latest signed checkpoint, kept outside the database

The storage backend is chosen by the location: a directory path or ``sqlite:///dir``; a
``postgresql://`` URL is reserved for the server backend.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail import _context
from rowtrail.errors import (
    InvalidInputError,
    MissingKeyError,
    StateError,
    StorageError,
    WorkspaceNotFoundError,
)
from rowtrail.ids import pseudonymize
from rowtrail.ledger import Ledger, NoteSigner, VerifyReport, verify_log
from rowtrail.lineage import PipelineContext
from rowtrail.lineage import pipeline as lineage_pipeline
from rowtrail.store import FileBlobStore, SQLiteDatabase, SQLiteLedgerStore, SQLiteLineageStore

if TYPE_CHECKING:
    from rowtrail.attribution import Attributor, Explanation
    from rowtrail.training import TrainingRun

__all__ = ["Workspace", "init_workspace", "open_workspace"]

DB_NAME = "rowtrail.db"


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


def _create_layout(path: Path) -> None:
    """Make a new workspace's directory and keys (mode 0700/0600); keep an existing one's."""
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"location of rowtrail.init must be a directory; {path} is a file")
    if path.is_dir() and not (path / DB_NAME).exists() and any(path.iterdir()):
        raise InvalidInputError(
            f"location of rowtrail.init must be a new or empty directory, or a workspace; "
            f"{path} holds other files. Choose another directory. Nothing was created."
        )
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = path / "keys"
    _write_new_file(keys / "subject.key", secrets.token_bytes(32))
    _write_new_file(keys / "ledger.pem", _new_signing_key())


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
    return data


def _load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(
            _read_key_file(path, "the checkpoint signing key"), password=None
        )
    except ValueError as exc:
        raise StorageError(f"{path} does not hold a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise StorageError(f"{path} does not hold an Ed25519 private key")
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
        actor: str = "rowtrail",
        now: Callable[[], datetime] | None = None,
        create: bool = False,
    ) -> None:
        self.path = path
        if create:
            _create_layout(path)
        elif not (path / DB_NAME).is_file():
            raise WorkspaceNotFoundError(
                f"location of rowtrail.open: no workspace at {path}. Create one with "
                f"rowtrail.init({str(path)!r}) (or `rowtrail init --workspace {path}`), or "
                "check the path for a typo. Nothing was created."
            )
        keys = path / "keys"
        # Keys are read before the database is touched: a missing key changes nothing.
        self._secret = _read_key_file(keys / "subject.key", "the subject pseudonym key")
        signing_key = _load_signing_key(keys / "ledger.pem")
        self.db = SQLiteDatabase(path / DB_NAME)
        self.workspace_id = self.db.set_meta_default("workspace_id", uuid.uuid4().hex[:16])
        self.origin = f"rowtrail.local/{self.workspace_id}"
        self.blobs = FileBlobStore(path / "blobs")
        signer = NoteSigner(self.origin, signing_key)
        self.ledger = Ledger(
            SQLiteLedgerStore(self.db),
            self.blobs,
            signer,
            origin=self.origin,
            actor=actor,
            now=now,
            witness=self._witness_checkpoint,
            witnessed=self.witnessed_checkpoint,
        )
        self.lineage_store = SQLiteLineageStore(self.db)
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

    # ------------------------------------------------------------ witness
    @property
    def witness_path(self) -> Path:
        """File holding the latest checkpoint seen, kept outside the database."""
        return self.path / "witness" / "checkpoint"

    def _witness_checkpoint(self, note: str) -> None:
        self.witness_path.parent.mkdir(parents=True, exist_ok=True)
        # Processes checkpointing at once must not let the witness go back to a smaller
        # checkpoint: read, compare and replace under an exclusive lock.
        with open(self.witness_path.parent / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            current = self.witnessed_checkpoint()
            if current is not None:
                seen = self.ledger.open_checkpoint(current)
                new = self.ledger.open_checkpoint(note)
                if seen.size >= new.size:
                    return
            fd, tmp = tempfile.mkstemp(dir=self.witness_path.parent, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(note)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.witness_path)

    def witnessed_checkpoint(self) -> str | None:
        """Return the latest checkpoint note the witness file holds, if any."""
        try:
            return self.witness_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    # ------------------------------------------------------------ training
    def training_run(self, name: str, **options: Any) -> TrainingRun:
        """Start a :class:`rowtrail.training.TrainingRun` (a context manager) in this workspace.

        ``options`` are those of ``TrainingRun`` (``model=``, ``params=``, ``optimizer=``, ...).
        """
        from rowtrail.training import TrainingRun

        self._check_open()
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

    # ------------------------------------------------------------ verification
    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Verify the whole ledger, blobs and checkpoints; raise on the first problem."""
        self._check_open()
        return verify_log(self.ledger, witness_note=self.witnessed_checkpoint(), progress=progress)

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
    actor: str = "rowtrail",
    now: Callable[[], datetime] | None = None,
    create: bool = False,
) -> Workspace:
    """Open an existing workspace (or create one with ``create=True``).

    Opening never creates anything: a location that holds no workspace raises
    :class:`~rowtrail.errors.WorkspaceNotFoundError`, so a typo cannot answer "not used".

    Parameters
    ----------
    location : str or path, optional
        A directory, ``sqlite:///<dir>``, or (reserved) ``postgresql://…``. Defaults to
        ``$ROWTRAIL_WORKSPACE`` or ``./.rowtrail``.
    actor : str
        Default actor recorded on events appended through this handle.
    now : callable, optional
        Clock returning an aware UTC datetime (inject for reproducible tests).
    create : bool
        Create the workspace (directory, keys, database) when it does not exist yet.
    """
    text = os.fspath(location) if location is not None else _context.default_location()
    if text.startswith(("postgresql://", "postgres://")):
        raise InvalidInputError(
            "location of rowtrail.open: the PostgreSQL backend is not available in this version; "
            "use a workspace directory such as './.rowtrail'"
        )
    if text.startswith("sqlite:///"):
        text = (
            text[len("sqlite:///") - 1 :]
            if text.startswith("sqlite:////")
            else text[len("sqlite:///") :]
        )
    elif "://" in text:
        raise InvalidInputError(
            "location of rowtrail.open must be a directory, sqlite:///<dir> or "
            f"postgresql://…; got {text!r}"
        )
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"location of rowtrail.open must be a directory; {path} is a file")
    return Workspace(path.resolve(), actor=actor, now=now, create=create)


def init_workspace(
    location: str | os.PathLike[str] | None = None,
    *,
    actor: str = "rowtrail",
    now: Callable[[], datetime] | None = None,
) -> Workspace:
    """Create a workspace (or open the one already there) and return it.

    Examples
    --------
    >>> import tempfile, rowtrail as rt
    >>> with rt.init(tempfile.mkdtemp()) as ws:
    ...     ws.ledger.size
    0
    """
    return open_workspace(location, actor=actor, now=now, create=True)


_context.register_opener(open_workspace)
