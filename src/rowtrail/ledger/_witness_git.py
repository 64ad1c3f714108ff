"""A git witness: every cosigned checkpoint is a signed commit of an append-only repository.

:class:`GitWitness` is a :class:`~rowtrail.ledger.Witness` whose state *is* a git repository:
accepting a checkpoint writes ``<sha256(origin)>/checkpoint`` (the note with the log's and the
witness's signature lines) and commits it, with the consistency proof the log sent in the
commit message, before the cosignature is returned; what the witness last cosigned is read
from ``HEAD``. The repository can be pushed anywhere and mirrored by anyone.

Commits are signed with git's SSH signing (``gpg.format=ssh``) by the witness's own Ed25519
key, so stock git verifies them (``git verify-commit`` with an allowed-signers line for the
witness key) and no second key needs managing. The alternative, a signature of the commit
content by the witness key recorded in the message, needs no ``ssh-keygen`` but only rowtrail
could check it; the cosignature inside each checkpoint file already covers its content, and
the commit signature binds the history (parents) to the key.

:func:`verify_git_witness` walks the whole history and raises
:class:`~rowtrail.errors.WitnessError` on: a commit not signed by the witness key, a merge, a
commit that deletes or touches more than one checkpoint, a checkpoint whose cosignature (or,
given the logs' keys, log signature) does not verify, a step whose recorded old size is not the
previous size or whose consistency proof fails (a removed or reordered commit), a time going
backwards, uncommitted changes in the work tree, and — given the head it verified last time —
that head no longer being an ancestor of ``HEAD`` (a force-push, an amended or dropped commit).
Without a remembered head, a history rewritten *and re-signed with the witness key* from the
first commit cannot be told from the original: keep the head (``rowtrail witness check-git
--head-file``) or a mirror.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rowtrail.errors import (
    CheckpointError,
    ConsistencyProofError,
    InvalidInputError,
    StateError,
    WitnessError,
)
from rowtrail.ledger._checkpoint import (
    Checkpoint,
    NoteVerifier,
    open_checkpoint,
    parse_checkpoint_body,
)
from rowtrail.ledger._cosignature import CosignatureSigner, CosignatureVerifier, cosignatures_of
from rowtrail.ledger._merkle import verify_consistency
from rowtrail.ledger._witness import (
    Witness,
    _write_durably,
    load_witness_signer,
    origin_hash,
    parse_add_checkpoint,
    witness_state_dir,
)

__all__ = ["GitWitness", "GitWitnessReport", "verify_git_witness"]

_EMAIL = "witness@rowtrail.invalid"


def _git(repo: Path, *args: str, env: Mapping[str, str] | None = None, data: bytes | None = None
         ) -> bytes:
    if shutil.which("git") is None:
        raise StateError("the git witness needs the git executable on PATH; install git")
    result = subprocess.run(
        ["git", "-C", str(repo), *args],
        input=data,
        capture_output=True,
        env={**os.environ, "GIT_TERMINAL_PROMPT": "0", **(env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise WitnessError(
            f"git {args[0]} in {repo} failed: {result.stderr.decode('utf-8', 'replace').strip()}"
        )
    return result.stdout


def _head(repo: Path) -> str | None:
    try:
        return _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").decode().strip()
    except WitnessError:
        return None


def _ssh_public(verifier: CosignatureVerifier) -> str:
    key = Ed25519PublicKey.from_public_bytes(verifier.public_key)
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


@contextlib.contextmanager
def _allowed_signers(verifier: CosignatureVerifier) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="rowtrail-git-witness-") as tmp:
        path = Path(tmp) / "allowed_signers"
        path.write_text(f'{verifier.name} namespaces="git" {_ssh_public(verifier)}\n')
        yield str(path)


class GitWitness(Witness):
    """A witness whose cosigned checkpoints are signed commits of a git repository.

    Parameters
    ----------
    signer, logs, now
        As for :class:`~rowtrail.ledger.Witness`.
    state_dir : path
        Holds the witness key (never committed) and the locks.
    repo : path
        The git repository (created if missing; must not be inside ``state_dir``'s key path).
    """

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Mapping[str, Sequence[NoteVerifier]],
        *,
        state_dir: str | os.PathLike[str],
        repo: str | os.PathLike[str],
        now: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(signer, logs, state_dir=state_dir, now=now)
        if shutil.which("ssh-keygen") is None:
            raise StateError("the git witness signs commits with ssh-keygen; install openssh")
        self.repo = Path(repo)
        self._ssh_key = self.state_dir / "ssh-signing-key"
        if not self._ssh_key.exists():
            pem = signer.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.OpenSSH,
                serialization.NoEncryption(),
            )
            _write_durably(self._ssh_key, pem)
        if not (self.repo / ".git").exists():
            self.repo.mkdir(parents=True, exist_ok=True)
            _git(self.repo, "init", "-q", "-b", "main")
        for key, value in (("core.fsync", "all"), ("core.fsyncMethod", "fsync")):
            _git(self.repo, "config", key, value)

    @classmethod
    def open(  # type: ignore[override]
        cls,
        name: str,
        logs: Mapping[str, Sequence[NoteVerifier]],
        *,
        repo: str | os.PathLike[str],
        state_dir: str | os.PathLike[str] | None = None,
        now: Callable[[], int] | None = None,
    ) -> GitWitness:
        """Open (or create) the git witness ``name`` committing to ``repo``."""
        directory = Path(state_dir) if state_dir is not None else witness_state_dir(name)
        return cls(
            load_witness_signer(name, directory), logs, state_dir=directory, repo=repo, now=now
        )

    def _lock_path(self, origin: str) -> Path:
        return self.state_dir / ".git-lock"  # one git index: one writer at a time

    def head(self) -> str | None:
        """Return the commit id of ``HEAD`` (``None`` before the first checkpoint)."""
        return _head(self.repo)

    def latest(self, origin: str) -> str | None:
        """Return the latest committed cosigned checkpoint of ``origin`` (from ``HEAD``)."""
        if self.head() is None:
            return None
        try:
            return _git(self.repo, "show", f"HEAD:{origin_hash(origin)}/checkpoint").decode()
        except WitnessError:
            return None

    def _persist(
        self, checkpoint: Checkpoint, cosigned: str, old_size: int, proof: Sequence[bytes]
    ) -> None:
        path = f"{origin_hash(checkpoint.origin)}/checkpoint"
        if self.latest(checkpoint.origin) == cosigned:
            return  # the same checkpoint cosigned again within one second: already committed
        (self.repo / path).parent.mkdir(exist_ok=True)
        _write_durably(self.repo / path, cosigned.encode("utf-8"), mode=0o644)
        stamp = max(c.timestamp for c in cosignatures_of(cosigned, [self.verifier]))
        message = (
            f"{checkpoint.origin} {checkpoint.size}\n\nold {old_size}\n"
            + "".join(base64.b64encode(value).decode() + "\n" for value in proof)
        )
        env = {"GIT_AUTHOR_DATE": f"@{stamp} +0000", "GIT_COMMITTER_DATE": f"@{stamp} +0000"}
        identity = [
            "-c", f"user.name={self.name}", "-c", f"user.email={_EMAIL}",
            "-c", "gpg.format=ssh", "-c", f"user.signingkey={self._ssh_key}",
        ]
        _git(self.repo, "add", "--", path)
        _git(self.repo, *identity, "commit", "-q", "-S", "--no-verify", "-F", "-",
             env=env, data=message.encode("utf-8"))
        _write_durably(self.state_dir / "git-head", (self.head() or "").encode() + b"\n")

    def _stored(
        self, origin: str, verifiers: list[NoteVerifier]
    ) -> tuple[Checkpoint, int] | None:
        # The repository is the state: refuse to work over one whose HEAD is not the commit
        # this witness made last (reset, amended or rewritten behind its back).
        try:
            expected = (self.state_dir / "git-head").read_text().strip() or None
        except FileNotFoundError:
            expected = None
        if expected != self.head():
            raise WitnessError(
                f"git witness {self.repo} is at {self.head()}, but this witness last committed "
                f"{expected}: its history was rewritten; refusing to cosign over it",
                status=500,
            )
        return super()._stored(origin, verifiers)

    def verify(
        self, *, known_head: str | None = None, check_logs: bool = True
    ) -> GitWitnessReport:
        """Verify this witness's repository (see :func:`verify_git_witness`)."""
        return verify_git_witness(
            self.repo, self.verifier, logs=self._logs if check_logs else None,
            known_head=known_head,
        )


@dataclass(frozen=True, slots=True)
class GitWitnessReport:
    """What a verified git witness history holds: its head, commit count and latest sizes."""

    head: str | None
    n_commits: int
    sizes: Mapping[str, int]


@dataclass(slots=True)
class _Step:
    commit: str
    signature: str
    message: str
    changes: list[tuple[str, str]]


def _read_steps(repo: Path, allowed: str) -> list[_Step]:
    out = _git(
        repo, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "log", "--reverse",
        "--first-parent", "--no-renames", "--name-status",
        "--format=%x1e%H%x1f%G?%x1f%B%x1f", "HEAD",
    ).decode("utf-8")
    steps = []
    for record in out.split("\x1e")[1:]:
        commit, signature, message, status = record.split("\x1f")
        changes = [tuple(line.split("\t", 1)) for line in status.strip().splitlines()]
        steps.append(_Step(commit, signature, message, [(c[0], c[-1]) for c in changes]))
    return steps


def _read_blobs(repo: Path, names: list[str]) -> list[str]:
    out = _git(repo, "cat-file", "--batch", data="".join(n + "\n" for n in names).encode())
    blobs, position = [], 0
    for name in names:
        header_end = out.index(b"\n", position)
        header = out[position:header_end].decode().split()
        if len(header) != 3:
            raise WitnessError(f"git witness: {name} is missing from the repository")
        size = int(header[2])
        blobs.append(out[header_end + 1 : header_end + 1 + size].decode("utf-8"))
        position = header_end + 1 + size + 1
    return blobs


def _check_step(
    step: _Step,
    note: str,
    previous: tuple[Checkpoint, int] | None,
    witness: CosignatureVerifier,
    logs: Mapping[str, Sequence[NoteVerifier]] | None,
) -> tuple[Checkpoint, int]:
    where = f"git witness commit {step.commit[:12]}"
    try:
        stamps = [c.timestamp for c in cosignatures_of(note, [witness])]
    except CheckpointError as exc:
        raise WitnessError(f"{where}: the checkpoint's cosignature does not verify: {exc}") from exc
    if not stamps:
        raise WitnessError(f"{where}: the checkpoint carries no cosignature by {witness.name!r}")
    body = note.partition("\n\n")[0] + "\n"
    head = parse_checkpoint_body(body)
    if logs is not None:
        if head.origin not in logs:
            raise WitnessError(f"{where}: checkpoint of the unknown log {head.origin!r}")
        open_checkpoint(note, logs[head.origin], origin=head.origin)
    old_size, proof, _ = parse_add_checkpoint(step.message.partition("\n\n")[2].encode() + b"\n")
    size, root, time = (0, b"", 0)
    if previous is not None:
        size, root, time = previous[0].size, previous[0].root, previous[1]
    if old_size != size:
        raise WitnessError(
            f"{where}: it extends size {old_size} of {head.origin!r}, but the previous commit "
            f"holds size {size}: a commit was removed, reordered or rewritten"
        )
    try:
        if 0 < old_size < head.size:
            verify_consistency(old_size, head.size, root, head.root, proof)
        elif old_size == head.size and (proof or root != head.root):
            raise ConsistencyProofError("equal sizes with different roots")
    except ConsistencyProofError as exc:
        raise WitnessError(
            f"{where}: size {head.size} does not extend size {old_size}: {exc}"
        ) from exc
    if max(stamps) < time:
        raise WitnessError(f"{where}: its cosignature is dated before the previous one")
    return Checkpoint(head.origin, head.size, head.root, note), max(stamps)


def verify_git_witness(
    repo: str | os.PathLike[str],
    witness: CosignatureVerifier,
    *,
    logs: Mapping[str, Sequence[NoteVerifier]] | None = None,
    known_head: str | None = None,
) -> GitWitnessReport:
    """Walk a git witness's history and raise :class:`~rowtrail.errors.WitnessError` if rewritten.

    Parameters
    ----------
    repo : path
        The repository (a clone or mirror will do).
    witness : CosignatureVerifier
        The witness key: it must sign every commit and cosign every checkpoint.
    logs : mapping, optional
        Log origins and their keys; given, every checkpoint's log signature is checked too.
    known_head : str, optional
        The head this check returned last time: it must still be an ancestor of ``HEAD``.

    Returns
    -------
    GitWitnessReport
        The head to remember for the next check, the commit count and each log's size.
    """
    path = Path(repo)
    if not (path / ".git").exists() and not (path / "HEAD").exists():
        raise InvalidInputError(
            f"repo of verify_git_witness must be a git repository; got {str(repo)!r}"
        )
    head = _head(path)
    if known_head is not None and (
        head is None
        or subprocess.run(
            ["git", "-C", str(path), "merge-base", "--is-ancestor", known_head, head],
            capture_output=True,
            check=False,
        ).returncode
        != 0
    ):
        raise WitnessError(
            f"git witness history was rewritten: commit {known_head[:12]}, verified before, "
            f"is no longer an ancestor of HEAD {str(head)[:12]} (force-push, amended or "
            "removed commit)"
        )
    if head is None:
        return GitWitnessReport(None, 0, {})
    if _git(path, "rev-list", "--merges", "HEAD").strip():
        raise WitnessError("git witness history has merge commits: it is not a single line")
    with _allowed_signers(witness) as allowed:
        steps = _read_steps(path, allowed)
    names = []
    for step in steps:
        if step.signature != "G":
            raise WitnessError(
                f"git witness commit {step.commit[:12]} is not signed by the witness key "
                f"{witness.name!r} (git signature status {step.signature!r})"
            )
        if len(step.changes) != 1 or step.changes[0][0] not in ("A", "M") or not step.changes[
            0
        ][1].endswith("/checkpoint"):
            raise WitnessError(
                f"git witness commit {step.commit[:12]} must add or update one checkpoint; it "
                f"changes {step.changes!r}"
            )
        names.append(f"{step.commit}:{step.changes[0][1]}")
    state: dict[str, tuple[Checkpoint, int]] = {}
    for step, note in zip(steps, _read_blobs(path, names), strict=True):
        directory = step.changes[0][1].split("/")[0]
        previous = state.get(directory)
        checked = _check_step(step, note, previous, witness, logs)
        if origin_hash(checked[0].origin) != directory:
            raise WitnessError(f"git witness commit {step.commit[:12]}: file of another origin")
        state[directory] = checked
    if _git(path, "status", "--porcelain", "--untracked-files=no").strip():
        raise WitnessError(f"git witness work tree {path} has uncommitted changes to checkpoints")
    sizes = {c.origin: c.size for c, _ in state.values()}
    return GitWitnessReport(head, len(steps), sizes)
