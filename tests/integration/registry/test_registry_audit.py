"""verify re-checks every registry decision: events appended around the registry are caught."""

from __future__ import annotations

from typing import Any

import pytest

import rowtrail as rt
from rowtrail.errors import LogIntegrityError
from rowtrail.registry import Registry, verify_registry

GATED = {"stages": {"production": {"approvals": 1, "approver_role": "approver"}}}


def _gated(ws: rt.Workspace) -> Registry:
    reg = ws.registry
    reg.grant_role("bob", "approver")
    reg.set_policy(GATED)
    reg.register_model("scorecard", b"v1")
    return reg


def test_registry_decisions_made_through_the_registry_verify(ws: rt.Workspace) -> None:
    reg = _gated(ws)
    Registry(ws, actor="bob").approve("scorecard", 1, stage="production")
    reg.promote("scorecard", 1, stage="production")
    reg.set_alias("scorecard", "production", None)
    reg.deploy("scorecard", 1, environment="prod")
    assert verify_registry(ws) == 7
    assert ws.verify().counts["registry_decisions"] == 7


def _forge(ws: rt.Workspace, kind: str, payload: dict[str, Any], actor: str = "mallory") -> int:
    return ws.ledger.append(kind, payload, actor=actor)


FORGERIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "promotion without approvals": ("registry.alias", {
        "model": "scorecard", "alias": "production", "version": 1, "previous": None,
        "via": "promote", "approvals": [], "attestations": [], "overrides": []},
        "approvals: 0 of 1"),
    "role granted by a non-admin": ("registry.role", {
        "grantee": "mallory", "role": "admin", "granted": True, "bootstrap": False},
        "did not hold the 'admin' role"),
    "second bootstrap": ("registry.role", {
        "grantee": "mallory", "role": "admin", "granted": True, "bootstrap": True},
        "bootstrap grant while an admin already existed"),
    "policy by a non-admin": ("registry.policy", {"policy": {"stages": {}, "provenance": {
        "lineage": "any", "schema": "any", "records": "any", "override_role": None}}},
        "did not hold the 'admin' role"),
    "approval without the role": ("registry.approval", {
        "model": "scorecard", "version": 1, "stage": "production", "comment": ""},
        "needed the 'approver' role"),
    "override without the role": ("registry.override", {
        "target_key": "model:scorecard:1", "checks": ["lineage"], "reason": "x"},
        "override role was None"),
    "duplicate version": ("registry.model", {
        "name": "scorecard", "version": 1, "artifact_digest": "sha256:" + "0" * 64,
        "flavor": "bytes", "size": 0}, "version 1 of 'scorecard' was already registered"),
    "citing a later event": ("registry.alias", {
        "model": "scorecard", "alias": "canary", "version": 1, "previous": None,
        "via": "set_alias", "approvals": [10_000], "attestations": [], "overrides": []},
        "cites an event made after it"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_events_appended_around_the_registry_fail_verify(ws: rt.Workspace, name: str) -> None:
    _gated(ws)
    kind, payload, match = FORGERIES[name]
    index = _forge(ws, kind, payload)
    with pytest.raises(LogIntegrityError, match=match) as caught:
        ws.verify()
    assert caught.value.index == index


@pytest.mark.parametrize(
    ("kind", "payload"),
    [
        ("registry.alias", {"model": "scorecard"}),
        ("registry.deployment", {"deployment_id": "dep-x", "model": "scorecard", "version": "1"}),
        ("registry.policy", {"policy": {"stages": {"p": {"approvals": -3}}}}),
        ("registry.run", {"run_id": "r", "name": "n", "params": {}, "metrics": {},
                          "datasets": [], "code": ["not", "a", "mapping"]}),
    ],
)
def test_malformed_registry_events_raise_typed_errors_on_read(
    ws: rt.Workspace, kind: str, payload: dict[str, Any]
) -> None:
    _gated(ws)
    index = _forge(ws, kind, payload)
    with pytest.raises(LogIntegrityError, match=f"registry event {index}") as caught:
        Registry(ws).history("scorecard")
    assert caught.value.index == index
