"""Registry governance: roles, policy, approvals, attestations, promotion gates, aliases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

import rowtrail as rt
from rowtrail.errors import InvalidInputError, PolicyRefusedError
from rowtrail.registry import Registry

PRODUCTION = {
    "stages": {
        "production": {
            "approvals": 2,
            "distinct_actors": True,
            "approver_role": "approver",
            "attestations": {"tests": "passed"},
        }
    }
}


def _setup(ws: rt.Workspace) -> tuple[Registry, Registry, Registry]:
    """alice: admin (bootstrap) and approver; bob: approver; carol: no role."""
    alice = ws.registry
    alice.grant_role("alice", "approver")
    alice.grant_role("bob", "approver")
    alice.set_policy(PRODUCTION)
    alice.register_model("scorecard", b"v1")
    return alice, Registry(ws, actor="bob"), Registry(ws, actor="carol")


def test_first_grant_bootstraps_admin_and_later_grants_need_it(ws: rt.Workspace) -> None:
    reg = ws.registry
    index = reg.grant_role("bob", "approver")
    assert ws.ledger.entry(index).event.payload["bootstrap"] is True
    assert reg.roles() == {"alice": {"admin"}, "bob": {"approver"}}
    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError, match="does not hold the 'admin' role") as caught:
        Registry(ws, actor="bob").grant_role("bob", "admin")
    assert caught.value.index == before  # the refusal is the next event
    [refusal] = reg.refusals()
    assert (refusal.action, refusal.actor) == ("grant_role", "bob")
    assert reg.has_role("alice", "admin")
    assert not reg.has_role("bob", "admin")
    reg.revoke_role("bob", "approver")
    assert not reg.has_role("bob", "approver")
    assert reg.has_role("bob", "approver", at=index + 1)  # held back then


def test_revoke_before_any_grant_is_bad_input(ws: rt.Workspace) -> None:
    with pytest.raises(InvalidInputError, match="nothing to revoke"):
        ws.registry.revoke_role("bob", "approver")
    assert ws.ledger.size == 0


def test_policy_is_audited_validated_and_admin_only(ws: rt.Workspace) -> None:
    reg = ws.registry
    with pytest.raises(PolicyRefusedError, match="no admin exists yet"):
        reg.set_policy(PRODUCTION)
    reg.grant_role("alice", "admin")
    index = reg.set_policy(PRODUCTION)
    event = ws.ledger.entry(index).event
    assert (event.kind, event.actor) == ("registry.policy", "alice")
    assert reg.policy()["stages"]["production"]["approvals"] == 2
    assert reg.policy()["provenance"]["lineage"] == "any"  # defaults filled in
    with pytest.raises(PolicyRefusedError, match="admin"):
        Registry(ws, actor="mallory").set_policy({})


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        ([], "policy of Registry.set_policy must be a mapping"),
        ({"gates": {}}, "keys among"),
        ({"stages": {"prod": {"approvals": -1}}}, "an int >= 0"),
        ({"stages": {"prod": {"approvals": True}}}, "an int >= 0"),
        ({"stages": {"prod": {"quorum": 2}}}, "keys among"),
        ({"stages": {"prod": {"attestations": {"tests": "failed"}}}}, "kind -> 'passed'"),
        ({"stages": {"prod": {"distinct_actors": "yes"}}}, "a bool"),
        ({"provenance": {"lineage": "recorded"}}, "'known' or 'any'"),
        ({"provenance": {"override_role": ""}}, "non-empty str"),
    ],
)
def test_bad_policies_are_refused_with_nothing_written(
    ws: rt.Workspace, policy: Any, match: str
) -> None:
    ws.registry.grant_role("alice", "admin")
    before = ws.ledger.size
    with pytest.raises(InvalidInputError, match=match):
        ws.registry.set_policy(policy)
    assert ws.ledger.size == before


def test_promotion_refused_with_every_reason_and_the_refusal_logged(ws: rt.Workspace) -> None:
    alice, _, _ = _setup(ws)
    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError) as caught:
        alice.promote("scorecard", 1, stage="production")
    reasons = caught.value.reasons
    assert any("approvals: 0 of 2" in r for r in reasons)
    assert any("no 'tests' attestation" in r for r in reasons)
    assert caught.value.index == before
    event = ws.ledger.entry(before).event
    assert event.kind == "registry.refusal"
    assert event.payload["reasons"] == list(reasons)
    assert event.actor == "alice"
    assert alice.current_alias("scorecard", "production") is None
    assert alice.refusals("model:scorecard:1")[0].reasons == reasons


def test_same_actor_approving_twice_counts_once(ws: rt.Workspace) -> None:
    alice, bob, _ = _setup(ws)
    alice.attest("scorecard", 1, kind="tests", passed=True, report={"passed": 12})
    alice.approve("scorecard", 1, stage="production")
    alice.approve("scorecard", 1, stage="production", comment="again")
    with pytest.raises(PolicyRefusedError, match="approvals: 1 of 2"):
        alice.promote("scorecard", 1, stage="production")
    second = bob.approve("scorecard", 1, stage="production", comment="looks good")
    change = alice.promote("scorecard", 1, stage="production")
    assert change.version == 1
    assert change.via == "promote"
    assert second.index in change.approvals
    assert len(change.approvals) == 2
    assert len(change.attestations) == 1
    assert alice.current_alias("scorecard", "production") == change
    assert alice.model_version("scorecard", "production").version == 1


def test_approvals_need_the_role_and_count_only_when_held(ws: rt.Workspace) -> None:
    alice, bob, carol = _setup(ws)
    before = ws.ledger.size
    with pytest.raises(PolicyRefusedError, match="'carol' does not hold the 'approver' role"):
        carol.approve("scorecard", 1, stage="production")
    assert ws.ledger.entry(before).event.kind == "registry.refusal"
    # an approval for a stage the policy does not gate needs no role
    assert carol.approve("scorecard", 1, stage="staging").actor == "carol"
    # approvals are counted only for the stage they name
    alice.attest("scorecard", 1, kind="tests", passed=True)
    alice.approve("scorecard", 1, stage="staging")
    with pytest.raises(PolicyRefusedError, match="approvals: 0 of 2"):
        alice.promote("scorecard", 1, stage="production")
    # a role revoked after approving still counts: it was held when the approval was made
    alice.approve("scorecard", 1, stage="production")
    bob.approve("scorecard", 1, stage="production")
    alice.revoke_role("bob", "approver")
    assert alice.promote("scorecard", 1, stage="production").version == 1


def test_failed_latest_attestation_blocks_promotion(ws: rt.Workspace) -> None:
    alice, bob, _ = _setup(ws)
    alice.attest("scorecard", 1, kind="tests", passed=True)
    failed = alice.attest("scorecard", 1, kind="tests", passed=False, report={"failed": ["t3"]})
    assert failed.report_digest is not None
    assert ws.blobs.has(failed.report_digest)
    alice.approve("scorecard", 1, stage="production")
    bob.approve("scorecard", 1, stage="production")
    with pytest.raises(PolicyRefusedError, match=f"event {failed.index}\\) did not pass"):
        alice.promote("scorecard", 1, stage="production")
    assert [a.passed for a in alice.attestations("scorecard", 1)] == [True, False]


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda r: r.attest("scorecard", 9, kind="tests", passed=True), "version 9"),
        (lambda r: r.attest("scorecard", 0, kind="tests", passed=True), "int >= 1"),
        (lambda r: r.attest("scorecard", 1, kind="", passed=True), "kind of Registry.attest"),
        (lambda r: r.attest("scorecard", 1, kind="t", passed="yes"), "passed of"),
        (lambda r: r.attest("scorecard", 1, kind="t", passed=True, report=[1]), "report of"),
        (lambda r: r.approve("scorecard", 1, stage=""), "stage of Registry.approve"),
        (lambda r: r.approve("scorecard", 1, stage="s", comment=3), "comment of"),
        (lambda r: r.promote("nope", 1, stage="production"), "no model 'nope'"),
        (lambda r: r.set_alias("scorecard", "", 1), "alias of Registry.set_alias"),
        (lambda r: r.set_alias("scorecard", "canary", None), "nothing to remove"),
        (lambda r: r.alias_at("scorecard", "production", "yesterday"), "timezone-aware"),
        (lambda r: r.override("scorecard", checks=["lineage"], reason="x"), "target of"),
        (lambda r: r.override("run:x", checks=["speed"], reason="x"), "checks of"),
        (lambda r: r.override("run:x", checks="lineage", reason="x"), "checks of"),
        (lambda r: r.override("run:x", checks=["lineage"], reason=""), "reason of"),
    ],
)
def test_governance_bad_input_writes_nothing(ws: rt.Workspace, call: Any, match: str) -> None:
    alice, _, _ = _setup(ws)
    before = ws.ledger.size
    with pytest.raises(InvalidInputError, match=match):
        call(alice)
    assert ws.ledger.size == before


def test_alias_history_and_alias_at_several_times(ws: rt.Workspace, clock: Any) -> None:
    reg = ws.registry
    for version in (1, 2, 3):
        reg.register_model("scorecard", f"v{version}".encode())
    first = reg.set_alias("scorecard", "champion", 1)
    second = reg.set_alias("scorecard", "champion", 2)
    reg.set_alias("scorecard", "challenger", 3)
    removed = reg.set_alias("scorecard", "champion", None)
    third = reg.set_alias("scorecard", "champion", 3)
    history = reg.history("scorecard", "champion")
    assert [(c.version, c.previous) for c in history] == [(1, None), (2, 1), (None, 2), (3, None)]
    assert all(c.actor == "alice" for c in history)
    assert [c.alias for c in reg.history("scorecard")].count("challenger") == 1
    tick = timedelta(seconds=1)
    assert reg.alias_at("scorecard", "champion", first.created_at - tick) is None
    assert reg.alias_at("scorecard", "champion", first.created_at) == first
    assert reg.alias_at("scorecard", "champion", second.created_at + tick) == second
    assert reg.alias_at("scorecard", "champion", removed.created_at + tick) is None
    at = (third.created_at + tick).isoformat()
    assert reg.alias_at("scorecard", "champion", at) == third
    assert reg.alias_at("scorecard", "champion", at.replace("+00:00", "Z")) == third
    assert reg.current_alias("scorecard", "champion") == third
    dep = reg.deploy("scorecard", "champion", environment="prod")
    assert (dep.model_version.version, dep.alias) == (3, "champion")


def test_set_alias_on_a_gated_stage_goes_through_the_gate(ws: rt.Workspace) -> None:
    alice, _, _ = _setup(ws)
    with pytest.raises(PolicyRefusedError, match="approvals"):
        alice.set_alias("scorecard", "production", 1)
    assert alice.refusals()[-1].action == "set_alias"
