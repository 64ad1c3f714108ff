"""``rowtrail witness serve`` in its own process, driven over HTTP on loopback."""

from __future__ import annotations

import http.client
import json
import sys
from pathlib import Path

import pytest
from _witness_process import witness_process
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "unit" / "ledger"))
from _witness_helpers import ORIGIN, MemoryLog

from rowtrail.errors import WitnessError
from rowtrail.ledger import (
    SIZE_CONTENT_TYPE,
    CosignatureVerifier,
    NoteSigner,
    WitnessClient,
    WitnessPolicy,
    collect_cosignatures,
    format_add_checkpoint,
    origin_hash,
)


@pytest.fixture
def log() -> MemoryLog:
    log = MemoryLog(ORIGIN, NoteSigner(ORIGIN, Ed25519PrivateKey.generate()))
    log.grow(12)
    return log


def raw_post(url: str, body: bytes) -> tuple[int, str, str]:
    host_port = url.removeprefix("http://")
    connection = http.client.HTTPConnection(host_port, timeout=10)
    try:
        connection.request("POST", "/add-checkpoint", body=body)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


def test_server_protocol_end_to_end(tmp_path: Path, log: MemoryLog) -> None:
    with witness_process("witness.example/http", [log.verifier.vkey], tmp_path / "w") as info:
        client = WitnessClient(info["url"], info["vkey"])
        assert client.latest(ORIGIN) is None
        first = collect_cosignatures(log.note(5), [client], log_verifiers=[log.verifier],
                                     prove=log.prove)
        second = collect_cosignatures(log.note(12), [client], log_verifiers=[log.verifier],
                                      prove=log.prove, sizes={client.name: 5})
        policy = WitnessPolicy((CosignatureVerifier.from_vkey(info["vkey"]),), 1)
        policy.verify(second.note, [log.verifier])
        assert first.cosignatures[0].timestamp <= second.cosignatures[0].timestamp
        latest = client.latest(ORIGIN)
        assert latest is not None
        assert latest.endswith(second.cosignatures[0].line)
        policy.verify(latest, [log.verifier])

        # the spec's status codes, seen on the wire
        status, kind, text = raw_post(info["url"], format_add_checkpoint(0, [], log.note(12)))
        assert (status, kind, text) == (409, SIZE_CONTENT_TYPE, "12\n")
        assert raw_post(info["url"], b"nonsense")[0] == 400
        assert raw_post(info["url"], format_add_checkpoint(13, [], log.note(12)))[0] == 400
        stranger = MemoryLog("example.com/stranger")
        stranger.grow(1)
        assert raw_post(info["url"], format_add_checkpoint(0, [], stranger.note()))[0] == 404
        impostor = MemoryLog(ORIGIN)
        impostor.grow(13)
        assert raw_post(info["url"], format_add_checkpoint(12, [], impostor.note()))[0] == 403
        fork = log.fork(8)
        fork.grow(4, b"fork")
        status, _, text = raw_post(info["url"], format_add_checkpoint(12, [], fork.note(12)))
        assert status == 422
        assert "fork" in text

        # the client maps refusals to typed errors
        with pytest.raises(WitnessError) as refused:
            client.add_checkpoint(12, [], fork.note(12))
        assert refused.value.status == 422
        with pytest.raises(WitnessError) as conflict:
            client.add_checkpoint(3, [], log.note(12))
        assert (conflict.value.status, conflict.value.size) == (409, 12)
        with pytest.raises(WitnessError, match="rolled back"):
            collect_cosignatures(log.note(9), [client], log_verifiers=[log.verifier],
                                 prove=log.prove)
        client.close()


def test_state_survives_a_restart(tmp_path: Path, log: MemoryLog) -> None:
    """The server persists before it answers: a new process refuses a rollback at once."""
    state = tmp_path / "w"
    with witness_process("witness.example/restart", [f"{ORIGIN}={log.verifier.vkey}"],
                         state) as info:
        with WitnessClient(info["url"], info["vkey"]) as client:
            collect_cosignatures(log.note(12), [client], log_verifiers=[log.verifier],
                                 prove=log.prove)
        info["process"].kill()  # no clean shutdown
        info["process"].wait()
    with witness_process("witness.example/restart", [log.verifier.vkey], state) as info:
        client = WitnessClient(info["url"], info["vkey"])
        with pytest.raises(WitnessError, match="rolled back"):
            collect_cosignatures(log.fork(7).note(7), [client],
                                 log_verifiers=[log.verifier], prove=log.prove)
        client.close()


def test_monitoring_endpoint_and_prefix(tmp_path: Path, log: MemoryLog) -> None:
    with witness_process("witness.example/prefixed", [log.verifier.vkey], tmp_path / "w",
                         "--prefix", "/witness") as info:
        assert info["url"].endswith("/witness")
        client = WitnessClient(info["url"], info["vkey"])
        client.add_checkpoint(0, [], log.note(3))
        host_port = info["url"].removeprefix("http://").split("/")[0]
        connection = http.client.HTTPConnection(host_port, timeout=10)
        connection.request("GET", f"/witness/{origin_hash(ORIGIN)}/checkpoint")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read().decode() == client.latest(ORIGIN)
        connection.request("GET", f"/witness/{'0' * 64}/checkpoint")
        response = connection.getresponse()
        assert response.status == 404
        response.read()
        connection.close()
        client.close()
    assert json.loads(json.dumps(info["logs"])) == [ORIGIN]


def test_unreachable_witness_is_a_failure_not_a_pass(log: MemoryLog) -> None:
    key = CosignatureVerifier("witness.example/gone", Ed25519PrivateKey.generate()
                              .public_key().public_bytes_raw())
    client = WitnessClient("http://127.0.0.1:9", key, timeout=5)  # nothing listens on port 9
    with pytest.raises(WitnessError, match=r"only 0 of the 1.*unreachable") as info:
        collect_cosignatures(log.note(), [client], log_verifiers=[log.verifier],
                             prove=log.prove)
    assert info.value.status is None


def test_git_witness_server_and_vkey_command(tmp_path: Path, log: MemoryLog) -> None:
    from typer.testing import CliRunner

    from rowtrail.cli import app
    from rowtrail.ledger import verify_git_witness

    state, repo = tmp_path / "w", tmp_path / "repo"
    with witness_process("witness.example/git-served", [log.verifier.vkey], state,
                         "--git", str(repo)) as info:
        client = WitnessClient(info["url"], info["vkey"])
        for old, size in [(0, 4), (4, 12)]:
            client.add_checkpoint(old, log.prove(old, size) if old else [], log.note(size))
        client.close()
    witness = CosignatureVerifier.from_vkey(info["vkey"])
    report = verify_git_witness(repo, witness, logs={ORIGIN: [log.verifier]})
    assert (report.n_commits, dict(report.sizes)) == (2, {ORIGIN: 12})
    shown = CliRunner().invoke(app, ["witness", "vkey", "--name", "witness.example/git-served",
                                     "--state", str(state), "--json"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["vkey"] == info["vkey"]
    other = CliRunner().invoke(app, ["witness", "vkey", "--name", "witness.example/other",
                                     "--state", str(state)])
    assert other.exit_code == 1
