r"""A C2SP ``tlog-witness``: cosigns a log's checkpoints only while they stay consistent.

For each log it is configured with (an origin and the log's verifier keys) the witness keeps
the latest checkpoint it cosigned. ``add-checkpoint`` brings an old size, a consistency proof
from that size and a new signed checkpoint; the witness checks, in the protocol's order:

* the request is well formed and the old size is not above the new one, else 400;
* the origin is one it knows, else 404;
* a signature by a trusted log key is present and every trusted key's signature verifies,
  else 403;
* the old size is the size it last cosigned (0 if none), else 409, answering its size;
* a size-0 checkpoint has the empty tree's root; with old size 0 the proof is empty; the
  proof leads from its stored root to the new root; equal sizes have equal roots; else 422;

then it persists the new checkpoint (write, fsync, rename, fsync of the directory) and only
then returns its cosignature (C2SP ``tlog-cosignature`` v1). Checking and persisting happen
under one exclusive lock per origin (a file lock, so two processes sharing a state directory
do not race and roll the state back). A refused checkpoint that carries a valid log signature
is kept in ``evidence``: with the stored one it proves the log forked.

State lives outside any workspace (default ``<per-user state>/witness/<sha256(name)[:40]>``)::

    <state>/name                       the witness's key name
    <state>/key                        its Ed25519 private key (PKCS#8 PEM, mode 0600)
    <state>/logs/<sha256(origin)>/checkpoint   latest cosigned checkpoint (log + witness lines)
    <state>/logs/<sha256(origin)>/evidence     refused, validly signed checkpoints (appended)

What a witness cannot do: if its state directory is deleted, it no longer knows what it
cosigned and accepts the next checkpoint of any log as the first one (old size 0). A rollback
is then caught only by other witnesses that kept their state, or by anyone holding an older
cosigned checkpoint (see :func:`~rowtrail.ledger.verify_no_split_view`).

Examples
--------
>>> import tempfile
>>> from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
>>> from rowtrail.ledger import NoteSigner, compute_root, format_checkpoint_body, leaf_hash
>>> log = NoteSigner("example.com/log", Ed25519PrivateKey.generate())
>>> witness = Witness.open("witness.example/w1", {log.name: [log.verifier]},
...                        state_dir=tempfile.mkdtemp())
>>> note = log.sign(format_checkpoint_body(log.name, 1, compute_root([leaf_hash(b"a")])))
>>> witness.add_checkpoint(0, [], note).startswith("\u2014 witness.example/w1 ")
True
>>> witness.latest(log.name) is not None
True
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import hmac
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rowtrail.errors import (
    CheckpointError,
    ConsistencyProofError,
    InvalidInputError,
    WitnessError,
)
from rowtrail.ledger._checkpoint import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint_body,
)
from rowtrail.ledger._cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    cosignatures_of,
)
from rowtrail.ledger._merkle import EMPTY_ROOT, verify_consistency
from rowtrail.ledger._trust import default_state_dir

__all__ = [
    "MAX_PROOF_LINES",
    "Witness",
    "format_add_checkpoint",
    "load_witness_signer",
    "origin_hash",
    "parse_add_checkpoint",
    "witness_state_dir",
]

#: The protocol's bound on consistency proof lines in one request.
MAX_PROOF_LINES = 63
_MAX_REQUEST = 1 << 20


def origin_hash(origin: str) -> str:
    """Return the lowercase hex SHA-256 of an origin (the monitoring URL path component)."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


def witness_state_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Return the state directory of the witness ``name`` under ``root`` (default per-user)."""
    base = Path(root) if root is not None else default_state_dir()
    return base / "witness" / hashlib.sha256(name.encode("utf-8")).hexdigest()[:40]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` atomically: temp file, fsync, rename, fsync of the directory."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def load_witness_signer(name: str, state: str | os.PathLike[str]) -> CosignatureSigner:
    """Return the witness key kept in the directory ``state``, creating it on first use.

    The key is written 0600 and durably (fsync of file and directory) before it is used; a
    state directory made for another witness name is refused.
    """
    directory = Path(state)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path, name_path = directory / "key", directory / "name"
    with _lock(directory / ".lock"):
        if not key_path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_durably(name_path, (name + "\n").encode("utf-8"))
            _write_durably(key_path, pem)
        stored = name_path.read_text(encoding="utf-8").strip()
        if stored != name:
            raise InvalidInputError(
                f"state of the witness {name!r} must be its own directory; {directory} holds "
                f"the witness {stored!r}. Give another --state."
            )
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(loaded, Ed25519PrivateKey):
        raise InvalidInputError(f"{key_path} does not hold an Ed25519 private key")
    return CosignatureSigner(name, loaded)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    # flock locks belong to one open file description: each call opens its own, so threads of
    # one server exclude each other as well as other processes do.
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """Return the body of an ``add-checkpoint`` request (old size, proof lines, blank, note)."""
    if type(old_size) is not int or old_size < 0:
        raise InvalidInputError(f"old_size of add-checkpoint must be an int >= 0; got {old_size!r}")
    if len(proof) > MAX_PROOF_LINES:
        raise InvalidInputError(
            f"proof of add-checkpoint must have at most {MAX_PROOF_LINES} hashes; got {len(proof)}"
        )
    lines = [f"old {old_size}"] + [base64.b64encode(value).decode() for value in proof]
    return ("\n".join(lines) + "\n\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> tuple[int, list[bytes], str]:
    """Parse an ``add-checkpoint`` request body; raise :class:`WitnessError` (400) if malformed."""
    def bad(why: str) -> WitnessError:
        return WitnessError(f"malformed add-checkpoint request: {why}", status=400)

    if len(body) > _MAX_REQUEST:
        raise bad(f"it is {len(body)} bytes, over {_MAX_REQUEST}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("it is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    lines = head.split("\n")
    if not sep or not lines[0].startswith("old "):
        raise bad("it must start with an 'old <size>' line and a blank line before the note")
    size_text = lines[0][4:]
    if not size_text.isdigit() or not size_text.isascii() or (
        len(size_text) > 1 and size_text[0] == "0"
    ):
        raise bad(f"old size must be a decimal with no leading zeroes; got {size_text!r}")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise bad(f"at most {MAX_PROOF_LINES} proof lines; got {len(lines) - 1}")
    proof = []
    for line in lines[1:]:
        try:
            value = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise bad(f"proof line {line!r:.60} is not base64") from None
        if len(value) != 32:
            raise bad(f"proof line {line!r:.60} is not a 32-byte hash")
        proof.append(value)
    return int(size_text), proof, note


class Witness:
    """An in-process witness: cosigns consistent checkpoints of the logs it is configured with.

    Parameters
    ----------
    signer : CosignatureSigner
        The witness key (see :func:`load_witness_signer`).
    logs : Mapping[str, Sequence[NoteVerifier]]
        For each log origin, the verifier keys trusted to sign its checkpoints.
    state_dir : path
        Where the witness keeps what it cosigned (outside any workspace).
    now : callable, optional
        Clock returning POSIX seconds (default ``time.time``).
    """

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, Sequence[NoteVerifier]],
        *,
        state_dir: str | os.PathLike[str],
        now: Callable[[], int] | None = None,
    ) -> None:
        if not isinstance(signer, CosignatureSigner):
            raise InvalidInputError(
                f"signer of Witness must be a CosignatureSigner; got {type(signer).__name__}"
            )
        self._signer = signer
        self._logs = {origin: list(keys) for origin, keys in logs.items()}
        for origin, keys in self._logs.items():
            if not keys or not all(isinstance(k, NoteVerifier) for k in keys):
                raise InvalidInputError(
                    f"logs of Witness must map each origin to NoteVerifier keys; {origin!r} "
                    f"has {keys!r:.80}"
                )
        self.state_dir = Path(state_dir)
        self._now = now or (lambda: int(time.time()))

    @classmethod
    def open(
        cls,
        name: str,
        logs: Mapping[str, Sequence[NoteVerifier]],
        *,
        state_dir: str | os.PathLike[str] | None = None,
        now: Callable[[], int] | None = None,
    ) -> Witness:
        """Open (or create) the witness ``name`` whose state lives in ``state_dir``.

        ``state_dir`` defaults to :func:`witness_state_dir` of ``name`` under the per-user
        state directory; the key is created there on first use.
        """
        directory = Path(state_dir) if state_dir is not None else witness_state_dir(name)
        return cls(load_witness_signer(name, directory), logs, state_dir=directory, now=now)

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self._signer.name

    @property
    def verifier(self) -> CosignatureVerifier:
        """The witness's cosignature verifier key (publish its ``vkey``)."""
        return self._signer.verifier

    @property
    def origins(self) -> list[str]:
        """The origins of the logs this witness cosigns."""
        return sorted(self._logs)

    def _log_dir(self, origin: str) -> Path:
        return self.state_dir / "logs" / origin_hash(origin)

    def _lock_path(self, origin: str) -> Path:
        """Return the lock file held while a checkpoint of ``origin`` is checked and stored."""
        return self._log_dir(origin) / ".lock"

    def latest(self, origin: str) -> str | None:
        """Return the latest checkpoint cosigned for ``origin`` (note with both lines), if any."""
        try:
            return (self._log_dir(origin) / "checkpoint").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def evidence(self, origin: str) -> list[str]:
        """Return the validly signed checkpoints of ``origin`` refused as inconsistent."""
        try:
            text = (self._log_dir(origin) / "evidence").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [part for part in text.split("\x1e\n") if part]

    def handle(self, request: bytes) -> str:
        """Answer a raw ``add-checkpoint`` request body (see :meth:`add_checkpoint`)."""
        return self.add_checkpoint(*parse_add_checkpoint(request))

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> str:
        """Check a checkpoint against the stored state; persist it; return the cosignature.

        Returns the response body: one note signature line (the cosignature), newline
        terminated. Raises :class:`~rowtrail.errors.WitnessError` with the protocol's status
        (400, 403, 404, 409 with ``size``, 422) and cosigns nothing when a check fails.
        """
        checkpoint, verifiers = self._open(note)
        if old_size > checkpoint.size:
            raise WitnessError(
                f"old size {old_size} is above the checkpoint's size {checkpoint.size}", status=400
            )
        directory = self._log_dir(checkpoint.origin)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _lock(self._lock_path(checkpoint.origin)):
            stored = self._stored(checkpoint.origin, verifiers)
            try:
                self._check(stored, old_size, proof, checkpoint)
            except WitnessError as exc:
                if exc.status == 422:
                    self._keep_evidence(directory, note)
                raise
            timestamp = max(self._now(), stored[1] if stored else 0)
            body, _, signatures = note.partition("\n\n")
            # the whole note body, extension lines included (cosignature/v1 signs them)
            cosignature = self._signer.cosign(body + "\n", timestamp=timestamp)
            own = [
                line + "\n"
                for line in signatures.splitlines()
                if not line.startswith(f"\u2014 {self.name} ")
            ]
            cosigned = body + "\n\n" + "".join(own) + cosignature.line
            self._persist(checkpoint, cosigned, old_size, proof)
        return cosignature.line

    def _open(self, note: str) -> tuple[Checkpoint, list[NoteVerifier]]:
        if "\n\n" not in note:
            raise WitnessError("malformed add-checkpoint request: no checkpoint note", status=400)
        try:
            checkpoint = parse_checkpoint_body(note.partition("\n\n")[0] + "\n")
        except CheckpointError as exc:
            raise WitnessError(f"malformed checkpoint: {exc}", status=400) from exc
        verifiers = self._logs.get(checkpoint.origin)
        if verifiers is None:
            raise WitnessError(
                f"witness {self.name!r} does not know the log {checkpoint.origin!r}", status=404
            )
        try:
            opened = open_checkpoint(note, verifiers, origin=checkpoint.origin)
        except CheckpointError as exc:
            raise WitnessError(
                f"checkpoint of {checkpoint.origin!r} is not validly signed by a trusted log "
                f"key: {exc}",
                status=403,
            ) from exc
        return Checkpoint(opened.origin, opened.size, opened.root, note), verifiers

    def _stored(
        self, origin: str, verifiers: list[NoteVerifier]
    ) -> tuple[Checkpoint, int] | None:
        note = self.latest(origin)
        if note is None:
            return None
        try:
            checkpoint = open_checkpoint(note, verifiers, origin=origin)
            own = cosignatures_of(note, [self.verifier])
        except CheckpointError as exc:
            raise WitnessError(
                f"the witness state {self._log_dir(origin)} does not verify ({exc}); refusing "
                "to cosign over it",
                status=500,
            ) from exc
        if not own:
            raise WitnessError(
                f"the witness state {self._log_dir(origin)} lacks this witness's cosignature",
                status=500,
            )
        return checkpoint, max(c.timestamp for c in own)

    @staticmethod
    def _check(
        stored: tuple[Checkpoint, int] | None,
        old_size: int,
        proof: Sequence[bytes],
        new: Checkpoint,
    ) -> None:
        have = stored[0] if stored else None
        size = have.size if have else 0
        if old_size != size:
            raise WitnessError(
                f"old size {old_size} is not the size this witness last cosigned for "
                f"{new.origin!r}: {size}",
                status=409,
                size=size,
            )
        if new.size == 0 and not hmac.compare_digest(new.root, EMPTY_ROOT):
            raise WitnessError("a checkpoint of size 0 must have the empty tree's root", status=422)
        if have is None or old_size == 0:
            if proof:
                raise WitnessError(
                    "with old size 0 the consistency proof must be empty", status=422
                )
            return
        if old_size == new.size:
            if proof or not hmac.compare_digest(have.root, new.root):
                raise WitnessError(
                    f"log {new.origin!r} signed two different roots at size {new.size}: this "
                    "witness cosigned another one (a fork)",
                    status=422,
                )
            return
        try:
            verify_consistency(old_size, new.size, have.root, new.root, proof)
        except ConsistencyProofError as exc:
            raise WitnessError(
                f"checkpoint of size {new.size} of {new.origin!r} is not consistent with the "
                f"one of size {old_size} this witness cosigned: {exc}",
                status=422,
            ) from exc

    def _keep_evidence(self, directory: Path, note: str) -> None:
        with open(directory / "evidence", "ab") as handle:
            handle.write(note.encode("utf-8") + b"\x1e\n")
            handle.flush()
            os.fsync(handle.fileno())

    def _persist(
        self, checkpoint: Checkpoint, cosigned: str, old_size: int, proof: Sequence[bytes]
    ) -> None:
        """Store ``cosigned`` durably before the cosignature leaves (a subclass may add more)."""
        _write_durably(self._log_dir(checkpoint.origin) / "checkpoint", cosigned.encode("utf-8"))
