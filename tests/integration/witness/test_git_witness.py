"""The git witness: signed commits of cosigned checkpoints; every rewrite of history is caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "ledger"))
from _witness_helpers import ORIGIN, MemoryLog

from rowtrail.cli import app
from rowtrail.errors import WitnessError
from rowtrail.ledger import (
    CosignatureSigner,
    GitWitness,
    collect_cosignatures,
    origin_hash,
    verify_git_witness,
)

PATH = f"{origin_hash(ORIGIN)}/checkpoint"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True).stdout


@pytest.fixture
def log() -> MemoryLog:
    log = MemoryLog()
    log.grow(20)
    return log


@pytest.fixture
def witness(tmp_path: Path, log: MemoryLog) -> GitWitness:
    clock = iter(range(1_700_000_000, 1_800_000_000, 10))
    witness = GitWitness.open("witness.example/git", {ORIGIN: [log.verifier]},
                              repo=tmp_path / "repo", state_dir=tmp_path / "state",
                              now=lambda: next(clock))
    sizes = [0]
    for size in (3, 8, 8, 15, 20):
        collect_cosignatures(log.note(size), [witness], log_verifiers=[log.verifier],
                             prove=log.prove, sizes={witness.name: sizes[-1]})
        sizes.append(size)
    return witness


def signed(witness: GitWitness, *args: str) -> list[str]:
    key = witness.state_dir / "ssh-signing-key"
    return ["-c", "user.name=x", "-c", "user.email=x@x", "-c", "gpg.format=ssh",
            "-c", f"user.signingkey={key}", *args]


def check(witness: GitWitness, known: str | None = None) -> None:
    verify_git_witness(witness.repo, witness.verifier, logs={ORIGIN: [witness._logs[ORIGIN][0]]},
                       known_head=known)


def test_history_verifies_with_rowtrail_and_with_stock_git(
    witness: GitWitness, log: MemoryLog, tmp_path: Path
) -> None:
    report = witness.verify()
    assert report.n_commits == 5
    assert report.sizes == {ORIGIN: 20}
    assert report.head == witness.head()
    assert witness.latest(ORIGIN) == (witness.repo / PATH).read_text()
    allowed = tmp_path / "allowed"
    public = subprocess.run(["ssh-keygen", "-y", "-f", str(witness.state_dir / "ssh-signing-key")],
                            capture_output=True, text=True, check=True).stdout
    allowed.write_text(f'{witness.name} namespaces="git" {public}')
    for commit in git(witness.repo, "rev-list", "HEAD").split():
        subprocess.run(["git", "-C", str(witness.repo), "-c",
                        f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", commit],
                       capture_output=True, check=True)
    message = git(witness.repo, "log", "-1", "--format=%B")
    assert message.startswith(f"{ORIGIN} 20\n\nold 15\n")


def test_amended_last_commit_is_caught_by_the_remembered_head(
    witness: GitWitness, log: MemoryLog
) -> None:
    head = witness.verify().head
    git(witness.repo, *signed(witness, "commit", "-q", "-S", "--amend", "-m",
                              git(witness.repo, "log", "-1", "--format=%B")))
    check(witness)  # re-signed with the witness key: only the remembered head tells
    with pytest.raises(WitnessError, match="rewritten"):
        check(witness, head)
    with pytest.raises(WitnessError, match="rewritten"):
        witness.add_checkpoint(20, [], log.note(20))


def test_force_pushed_rollback_is_caught(witness: GitWitness, log: MemoryLog) -> None:
    head = witness.verify().head
    git(witness.repo, "reset", "-q", "--hard", "HEAD~2")
    with pytest.raises(WitnessError, match="no longer an ancestor"):
        check(witness, head)
    # the witness itself refuses to cosign over a repository reset behind its back
    with pytest.raises(WitnessError, match="rewritten") as info:
        witness.add_checkpoint(8, log.prove(8, 20), log.note(20))
    assert info.value.status == 500


def test_removed_commit_is_caught_without_a_remembered_head(witness: GitWitness) -> None:
    commits = git(witness.repo, "rev-list", "--reverse", "HEAD").split()
    git(witness.repo, "checkout", "-q", "-b", "rewritten", commits[1])
    for commit in commits[3:]:  # drop the third commit, replay the rest re-signed
        (witness.repo / PATH).write_text(git(witness.repo, "show", f"{commit}:{PATH}"))
        git(witness.repo, "add", PATH)
        git(witness.repo, *signed(witness, "commit", "-q", "-S", "-m",
                                  git(witness.repo, "log", "-1", "--format=%B", commit)))
    # commits[2] re-cosigned size 8; dropping it leaves an unbroken chain 3 -> 8 -> 15 -> 20
    check(witness)
    git(witness.repo, "checkout", "-q", "-B", "rewritten2", commits[0])
    for commit in commits[2:]:  # drop the second commit (size 8): the chain breaks
        (witness.repo / PATH).write_text(git(witness.repo, "show", f"{commit}:{PATH}"))
        git(witness.repo, "add", PATH)
        git(witness.repo, *signed(witness, "commit", "-q", "-S", "-m",
                                  git(witness.repo, "log", "-1", "--format=%B", commit)))
    with pytest.raises(WitnessError, match="removed, reordered or rewritten"):
        check(witness)


def test_changed_checkpoint_file_is_caught(witness: GitWitness, log: MemoryLog) -> None:
    path = witness.repo / PATH
    original = path.read_text()
    path.write_text(original.replace(log.note(20).split("\n")[2], log.note(19).split("\n")[2]))
    with pytest.raises(WitnessError, match="uncommitted"):
        check(witness)
    git(witness.repo, "add", PATH)
    git(witness.repo, *signed(witness, "commit", "-q", "-S", "-m", f"{ORIGIN} 20\n\nold 20\n"))
    with pytest.raises(WitnessError, match="does not verify"):
        check(witness)


def test_unsigned_or_foreign_commits_are_caught(witness: GitWitness, tmp_path: Path) -> None:
    path = witness.repo / PATH
    git(witness.repo, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q",
        "--allow-empty", "-m", "unsigned")
    with pytest.raises(WitnessError, match="not signed by the witness key"):
        check(witness)
    git(witness.repo, "reset", "-q", "--hard", "HEAD~1")
    other = CosignatureSigner("witness.example/other", Ed25519PrivateKey.generate())
    with pytest.raises(WitnessError, match="not signed by the witness key"):
        verify_git_witness(witness.repo, other.verifier)
    git(witness.repo, "rm", "-q", PATH)
    git(witness.repo, *signed(witness, "commit", "-q", "-S", "-m", "remove"))
    with pytest.raises(WitnessError, match="must add or update one checkpoint"):
        check(witness)
    assert not path.exists()


def test_check_git_command_remembers_the_head(witness: GitWitness, tmp_path: Path) -> None:
    runner = CliRunner()
    head_file = tmp_path / "head"
    args = ["witness", "check-git", "--repo", str(witness.repo), "--witness-vkey",
            witness.verifier.vkey, "--head-file", str(head_file), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["n_commits"] == 5
    assert head_file.read_text().strip() == witness.head()
    git(witness.repo, "reset", "-q", "--hard", "HEAD~1")
    second = runner.invoke(app, args)
    assert second.exit_code == 1
    assert json.loads(second.output)["error"] == "WitnessError"


def test_resubmitting_the_same_checkpoint(tmp_path: Path, log: MemoryLog) -> None:
    witness = GitWitness.open("witness.example/again", {ORIGIN: [log.verifier]},
                              repo=tmp_path / "r", state_dir=tmp_path / "s", now=lambda: 1_000)
    first = witness.add_checkpoint(0, [], log.note(5))
    assert witness.add_checkpoint(5, [], log.note(5)) == first  # same second: same cosignature
    assert witness.verify().n_commits == 1
