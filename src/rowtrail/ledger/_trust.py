"""Trust roots kept outside the workspace: a pinned verifier key and the latest checkpoint.

A workspace cannot vouch for itself: whoever can rewrite its directory can rewrite its
database, its checkpoints and its key. A :class:`TrustStore` keeps, for each log origin, the
verifier key pinned when the log was created and the latest signed checkpoint seen, in a
per-user state directory (``$ROWTRAIL_STATE_DIR``, else ``$XDG_STATE_HOME/rowtrail``, else
``~/.local/state/rowtrail``)::

    <state>/logs/<sha256(origin)[:40]>/origin        the log origin (text)
    <state>/logs/<sha256(origin)[:40]>/vkey          pinned verifier key (C2SP vkey text)
    <state>/logs/<sha256(origin)[:40]>/checkpoint    latest signed checkpoint note
    <state>/logs/<sha256(origin)[:40]>/pending       checkpoint of a write not yet committed
    <state>/logs/<sha256(origin)[:40]>/subject-key-check   HMAC commitment to the subject key

Files are replaced atomically (write, fsync, rename) under an exclusive lock, and the
checkpoint only moves forward: a smaller checkpoint is ignored, and a different root at the
same size is refused as a fork. A write stages its checkpoint as ``pending`` inside its
database transaction, before it commits, and promotes it once committed; so a log never
holds a signed checkpoint beyond what the trust state has seen, and a crash between the two
steps leaves a pending checkpoint that is either committed (and promoted by the next write)
or never was (and is replaced). A :class:`TrustRoot` is what a verifier checks a
log against: the per-user state, or what a third party saved (``--vkey`` / ``--checkpoint``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rowtrail.errors import CheckpointError, InvalidInputError, TrustRootError
from rowtrail.ledger._checkpoint import Checkpoint, NoteVerifier, open_checkpoint

__all__ = ["TrustRoot", "TrustStore", "default_state_dir"]


def default_state_dir() -> Path:
    """Return the per-user state directory (see the module docstring)."""
    explicit = os.environ.get("ROWTRAIL_STATE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base).expanduser() / "rowtrail"


@dataclass(frozen=True, slots=True)
class TrustRoot:
    """What a log is checked against: a verifier key and, if any, the latest trusted checkpoint.

    ``source`` says where it came from (shown in errors), e.g. the state directory or the
    files a third party saved. ``current`` is true for the user's own trust state, which every
    write moves forward, so a log with newer signed checkpoints than it means the state was
    rolled back; a third party's saved checkpoint may be older than the log.
    """

    verifier: NoteVerifier
    checkpoint: Checkpoint | None
    source: str
    current: bool = False
    pending: Checkpoint | None = None

    @property
    def bound(self) -> int:
        """The largest log size a writer may have committed under this trust state."""
        sizes = [c.size for c in (self.checkpoint, self.pending) if c is not None]
        return max(sizes, default=0)

    @classmethod
    def from_files(cls, vkey_path: str | os.PathLike[str], checkpoint_path: str | os.PathLike[str]
                   | None, *, origin: str | None = None) -> TrustRoot:
        """Load a trust root a third party saved: a verifier key file and a checkpoint note."""
        try:
            verifier = NoteVerifier.from_vkey(Path(vkey_path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInputError(
                f"vkey of verify must be a readable verifier key file; got {str(vkey_path)!r} "
                f"({exc.strerror})"
            ) from exc
        checkpoint = None
        if checkpoint_path is not None:
            try:
                note = Path(checkpoint_path).read_text(encoding="utf-8")
            except OSError as exc:
                raise InvalidInputError(
                    "checkpoint of verify must be a readable checkpoint note file; got "
                    f"{str(checkpoint_path)!r} ({exc.strerror})"
                ) from exc
            checkpoint = open_checkpoint(note, [verifier], origin=origin)
        return cls(verifier, checkpoint, f"the files {vkey_path}, {checkpoint_path}")


class TrustStore:
    """Per-user trust state for every log this user created or chose to trust."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_state_dir()
        # The files are read on every use (another process may have moved them forward);
        # what they say is verified once per distinct content.
        self._opened: dict[tuple[str, str, str | None, str | None], TrustRoot] = {}

    def directory(self, origin: str) -> Path:
        """Return the directory holding ``origin``'s trust state."""
        digest = hashlib.sha256(origin.encode("utf-8")).hexdigest()[:40]
        return self.root / "logs" / digest

    # ------------------------------------------------------------------ reads
    def _read(self, origin: str, name: str) -> str | None:
        try:
            return (self.directory(origin) / name).read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TrustRootError(
                f"cannot read the trust state {self.directory(origin) / name}: {exc.strerror}"
            ) from exc

    def pinned_vkey(self, origin: str) -> str | None:
        """Return the verifier key pinned for ``origin``, or ``None`` when none is."""
        text = self._read(origin, "vkey")
        return None if text is None else text.strip()

    def latest_note(self, origin: str) -> str | None:
        """Return the latest checkpoint note trusted for ``origin``, or ``None``."""
        return self._read(origin, "checkpoint")

    def root_for(self, origin: str) -> TrustRoot:
        """Return ``origin``'s trust root; raise :class:`TrustRootError` when none is kept."""
        vkey = self.pinned_vkey(origin)
        if vkey is None:
            raise TrustRootError(
                f"no trust root for log {origin!r} in {self.root}: this user never created or "
                "trusted it. Verify against what its operator published with "
                "`rowtrail verify --vkey KEY --checkpoint FILE`, or, if you trust the "
                "workspace's current state, pin it with `rowtrail trust --workspace DIR`."
            )
        key = (origin, vkey, self.latest_note(origin), self._read(origin, "pending"))
        cached = self._opened.get(key)
        if cached is not None:
            return cached
        verifier = NoteVerifier.from_vkey(vkey)
        checkpoint = self._open(origin, key[2], "checkpoint", verifier)
        pending = self._open(origin, key[3], "pending", verifier)
        root = TrustRoot(
            verifier,
            checkpoint,
            f"the trust state in {self.directory(origin)}",
            current=True,
            pending=pending,
        )
        if len(self._opened) > 64:
            self._opened.clear()
        self._opened[key] = root
        return root

    def _open(
        self, origin: str, note: str | None, name: str, verifier: NoteVerifier
    ) -> Checkpoint | None:
        if note is None:
            return None
        try:
            return open_checkpoint(note, [verifier], origin=origin)
        except CheckpointError as exc:
            raise TrustRootError(
                f"the trusted {name} of {origin!r} in {self.directory(origin)} does not open "
                f"with the pinned key: {exc}"
            ) from exc

    # ------------------------------------------------------------------ writes
    @contextlib.contextmanager
    def _locked(self, origin: str) -> Iterator[Path]:
        directory = self.directory(origin)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(directory / ".lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            yield directory

    @staticmethod
    def _replace(directory: Path, name: str, text: str, *, sync_dir: bool = True) -> None:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, directory / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        if not sync_dir:
            return
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def pin(self, origin: str, vkey: str, *, note: str | None = None) -> None:
        """Pin ``vkey`` for ``origin`` (and trust ``note``); refuse to replace another key."""
        with self._locked(origin) as directory:
            current = self.pinned_vkey(origin)
            if current is not None and not hmac.compare_digest(current, vkey.strip()):
                raise TrustRootError(
                    f"log {origin!r} already has the pinned verifier key {current!r}; refusing "
                    f"to pin {vkey.strip()!r}. A log's key never changes: a different key means "
                    "a different log or a forged one."
                )
            if current is None:
                self._replace(directory, "origin", origin + "\n")
                self._replace(directory, "vkey", vkey.strip() + "\n")
        if note is not None:
            self.advance(origin, note)

    def subject_key_check(self, origin: str) -> str | None:
        """Return the commitment to ``origin``'s subject key kept here, if any."""
        text = self._read(origin, "subject-key-check")
        return None if text is None else text.strip()

    def pin_subject_key(self, origin: str, check: str) -> None:
        """Keep a commitment to the workspace's subject key (never the key itself)."""
        with self._locked(origin) as directory:
            current = self.subject_key_check(origin)
            if current is None:
                self._replace(directory, "subject-key-check", check + "\n")
            elif not hmac.compare_digest(current, check):
                raise TrustRootError(
                    f"log {origin!r} was created with another subject key; refusing to pin this one"
                )

    def stage(self, origin: str, note: str) -> None:
        """Record ``note`` as pending: called inside the write transaction, before it commits."""
        with self._locked(origin) as directory:
            root = self.root_for(origin)
            new = open_checkpoint(note, [root.verifier], origin=origin)
            self._check_fork(origin, root.checkpoint, new)
            self._replace(directory, "pending", note, sync_dir=False)

    def advance(self, origin: str, note: str) -> None:
        """Trust ``note`` unless an equal or larger checkpoint is trusted already.

        The caller has shown ``note`` consistent with the trusted one (a consistency proof
        from the log) or committed it over the trusted state; here a different root at the
        same size is refused as a fork.
        """
        with self._locked(origin) as directory:
            root = self.root_for(origin)
            new = open_checkpoint(note, [root.verifier], origin=origin)
            old = root.checkpoint
            self._check_fork(origin, old, new)
            if old is not None and old.size >= new.size:
                return
            pending = root.pending
            if pending is not None and pending.size == new.size and pending.root == new.root:
                os.replace(directory / "pending", directory / "checkpoint")
            else:
                self._replace(directory, "checkpoint", note, sync_dir=False)

    @staticmethod
    def _check_fork(origin: str, old: Checkpoint | None, new: Checkpoint) -> None:
        if old is not None and old.size == new.size and not hmac.compare_digest(old.root, new.root):
            raise TrustRootError(
                f"log {origin!r} signed two different roots at size {new.size}: a fork"
            )
