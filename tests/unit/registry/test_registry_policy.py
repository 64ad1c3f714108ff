"""The policy engine, artifact codecs and cache-row projection, as pure functions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from rowtrail.errors import InvalidInputError
from rowtrail.ledger import Event, LedgerEntry
from rowtrail.registry._artifacts import (
    deserialize_artifact,
    parameters_digest,
    serialize_artifact,
)
from rowtrail.registry._build import parse_when, roles_before
from rowtrail.registry._policy import (
    DEFAULT_POLICY,
    Finding,
    check_policy,
    required_findings,
    stage_reasons,
)
from rowtrail.store.registry_tables import REGISTRY_EVENT_KINDS, registry_rows

GATE = check_policy(
    {"stages": {"prod": {"approvals": 2, "approver_role": "approver",
                         "attestations": {"tests": "passed", "fairness": "passed"}}}}
)["stages"]["prod"]


def test_check_policy_fills_defaults_and_is_idempotent() -> None:
    assert check_policy({}) == DEFAULT_POLICY
    full = check_policy({"stages": {"prod": {}}, "provenance": {"lineage": "known"}})
    assert full["stages"]["prod"] == {
        "approvals": 0, "distinct_actors": True, "approver_role": None, "attestations": {}
    }
    assert full["provenance"] == {
        "lineage": "known", "schema": "any", "records": "any", "override_role": None
    }
    assert check_policy(full) == full


def test_stage_reasons_counts_distinct_role_holders() -> None:
    def holders(actor: str, role: str, index: int) -> bool:
        return actor in {"alice", "bob"} and role == "approver"

    attestations = {"tests": (7, True), "fairness": (8, True)}
    reasons, used, attested = stage_reasons(
        GATE, [(1, "alice"), (2, "alice"), (3, "carol"), (4, "bob")], attestations, holders
    )
    assert (reasons, used, attested) == ([], [1, 4], [7, 8])
    reasons, used, _ = stage_reasons(GATE, [(1, "alice"), (2, "alice"), (3, "carol")],
                                     {"tests": (7, False)}, holders)
    assert reasons == [
        "approvals: 1 of 2 required by distinct actors with the 'approver' role (approvals "
        "by ['carol'] lack the role)",
        "attestations: no 'fairness' attestation",
        "attestations: the latest 'tests' attestation (event 7) did not pass",
    ]
    assert used == [1]


def test_stage_reasons_without_distinct_actors_counts_every_approval() -> None:
    gate = check_policy({"stages": {"s": {"approvals": 2, "distinct_actors": False}}})
    reasons, used, _ = stage_reasons(gate["stages"]["s"], [(1, "a"), (2, "a")], {},
                                     lambda *_: False)
    assert (reasons, used) == ([], [1, 2])


def test_required_findings_respects_policy_and_overrides() -> None:
    policy = check_policy({"provenance": {"lineage": "known", "schema": "any"}})
    findings = [Finding("lineage", "dataset:a:1", "unknown"),
                Finding("schema", "dataset:a:1", "failed"),
                Finding("lineage", "dataset:b:1", "unknown")]
    reasons, used = required_findings(policy, findings, {("dataset:b:1", "lineage"): 9})
    assert (reasons, used) == (["lineage: unknown"], [9])


def _entry(index: int, payload: dict[str, Any], actor: str = "root") -> LedgerEntry:
    event = Event(kind="registry.role", payload=payload, actor=actor,
                  time=datetime(2026, 1, 1, tzinfo=UTC))
    return LedgerEntry(index, event.leaf(), b"", event)


def test_roles_are_replayed_up_to_an_index() -> None:
    entries = [
        _entry(0, {"grantee": "a", "role": "approver", "granted": True, "bootstrap": True}),
        _entry(3, {"grantee": "a", "role": "approver", "granted": False}),
    ]
    assert roles_before(entries, 1) == {"root": {"admin"}, "a": {"approver"}}
    assert roles_before(entries, 4) == {"root": {"admin"}, "a": set()}
    assert roles_before(entries, 0) == {}


def test_parse_when() -> None:
    assert parse_when("2026-01-01T00:00:00Z", "f") == datetime(2026, 1, 1, tzinfo=UTC)
    for bad in ("2026-01-01T00:00:00", "tomorrow", 5, datetime(2026, 1, 1)):
        with pytest.raises(InvalidInputError, match="timezone-aware"):
            parse_when(bad, "f")


def test_artifact_round_trips() -> None:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
    data, flavor = serialize_artifact(model, None)
    assert flavor == "sklearn"
    assert deserialize_artifact(data, flavor).predict([[3.0]]).tolist() == [1]
    assert parameters_digest(model) is not None
    assert parameters_digest(object()) is None
    assert serialize_artifact(bytearray(b"x"), None) == (b"x", "bytes")
    with pytest.raises(InvalidInputError, match="flavor of an artifact"):
        deserialize_artifact(b"x", "onnx")


def test_registry_rows_skip_malformed_payloads_and_other_kinds() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    for kind in REGISTRY_EVENT_KINDS:
        assert registry_rows(0, Event(kind=kind, payload={}, actor="a", time=when)) == {}
    assert registry_rows(0, Event(kind="rows.ingested", payload={}, actor="a", time=when)) == {}
