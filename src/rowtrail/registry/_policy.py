"""The declarative policy: promotion gates and provenance gates, one engine.

A policy is a JSON object, set with ``Registry.set_policy`` (itself a ledger event)::

    {
      "stages": {
        "production": {
          "approvals": 2,                 # approvals needed for this stage
          "distinct_actors": true,        # counted once per actor (default true)
          "approver_role": "approver",    # only approvals by holders of this role count
          "attestations": {"tests": "passed"}   # latest attestation of each kind must pass
        }
      },
      "provenance": {
        "lineage": "known",      # refuse inputs whose lineage is unknown       ("any": allow)
        "schema": "valid",       # refuse sources that failed schema validation ("any": allow)
        "records": "verified",   # refuse inputs whose ledger records do not prove ("any")
        "override_role": "risk-officer"  # who may approve a provenance override
      }
    }

Without a policy nothing is gated. Every check yields a :class:`Finding`; the findings an
override covers are waived (the override's event is named by the event it permits), and
every remaining one is a reason of the refusal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rowtrail.errors import InvalidInputError

__all__ = [
    "CHECKS",
    "DEFAULT_POLICY",
    "Finding",
    "check_policy",
    "required_findings",
    "stage_reasons",
]

#: The provenance checks, with the policy value that requires each.
CHECKS = {"lineage": "known", "schema": "valid", "records": "verified"}

DEFAULT_POLICY: dict[str, Any] = {
    "stages": {},
    "provenance": {"lineage": "any", "schema": "any", "records": "any", "override_role": None},
}

_STAGE_KEYS = {"approvals", "distinct_actors", "approver_role", "attestations"}
_PROVENANCE_KEYS = {*CHECKS, "override_role"}


def _fail(what: str, constraint: str, value: object) -> InvalidInputError:
    return InvalidInputError(
        f"{what} of Registry.set_policy must be {constraint}; got {value!r}. "
        "Nothing was written."
    )


def _check_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 128:
        raise _fail(what, "a non-empty str of at most 128 characters", value)
    return value


def _check_stage(name: str, spec: object) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise _fail(f"stages[{name!r}]", "a mapping", spec)
    unknown = sorted(set(spec) - _STAGE_KEYS)
    if unknown:
        raise _fail(f"stages[{name!r}]", f"a mapping with keys among {sorted(_STAGE_KEYS)}",
                    unknown)
    approvals = spec.get("approvals", 0)
    if type(approvals) is not int or approvals < 0:
        raise _fail(f"stages[{name!r}].approvals", "an int >= 0", approvals)
    distinct = spec.get("distinct_actors", True)
    if not isinstance(distinct, bool):
        raise _fail(f"stages[{name!r}].distinct_actors", "a bool", distinct)
    role = spec.get("approver_role")
    if role is not None:
        _check_name(role, f"stages[{name!r}].approver_role")
    attestations = spec.get("attestations", {})
    if not isinstance(attestations, Mapping) or any(
        v != "passed" for v in attestations.values()
    ):
        raise _fail(f"stages[{name!r}].attestations", "a mapping of kind -> 'passed'",
                    attestations)
    for kind in attestations:
        _check_name(kind, f"stages[{name!r}].attestations key")
    return {
        "approvals": approvals,
        "distinct_actors": distinct,
        "approver_role": role,
        "attestations": {str(k): "passed" for k in sorted(attestations)},
    }


def _check_provenance(spec: object) -> dict[str, Any]:
    if not isinstance(spec, Mapping):
        raise _fail("provenance", "a mapping", spec)
    unknown = sorted(set(spec) - _PROVENANCE_KEYS)
    if unknown:
        raise _fail("provenance", f"a mapping with keys among {sorted(_PROVENANCE_KEYS)}", unknown)
    out: dict[str, Any] = {}
    for check, required in CHECKS.items():
        value = spec.get(check, "any")
        if value not in (required, "any"):
            raise _fail(f"provenance.{check}", f"{required!r} or 'any'", value)
        out[check] = value
    role = spec.get("override_role")
    out["override_role"] = None if role is None else _check_name(role, "provenance.override_role")
    return out


def check_policy(policy: object) -> dict[str, Any]:
    """Validate a policy and return it with every default filled in (see the module doc)."""
    if not isinstance(policy, Mapping):
        raise _fail("policy", "a mapping", policy)
    unknown = sorted(set(policy) - {"stages", "provenance"})
    if unknown:
        raise _fail("policy", "a mapping with keys among ['provenance', 'stages']", unknown)
    stages = policy.get("stages", {})
    if not isinstance(stages, Mapping):
        raise _fail("stages", "a mapping of stage name -> gate", stages)
    return {
        "stages": {
            _check_name(name, "stage name"): _check_stage(name, spec)
            for name, spec in sorted(stages.items())
        },
        "provenance": _check_provenance(policy.get("provenance", {})),
    }


@dataclass(frozen=True, slots=True)
class Finding:
    """One provenance problem: ``check`` (lineage, schema, records) failed for ``target``."""

    check: str
    target: str
    message: str


def required_findings(
    policy: Mapping[str, Any],
    findings: Sequence[Finding],
    overrides: Mapping[tuple[str, str], int],
) -> tuple[list[str], list[int]]:
    """Return the reasons left after the policy and overrides, and the overrides used.

    ``overrides`` maps ``(target, check)`` to the ledger index of the override waiving it.
    """
    provenance = policy["provenance"]
    reasons: list[str] = []
    used: set[int] = set()
    for finding in findings:
        if provenance.get(finding.check, "any") == "any":
            continue
        waived = overrides.get((finding.target, finding.check))
        if waived is not None:
            used.add(waived)
            continue
        reasons.append(f"{finding.check}: {finding.message}")
    return reasons, sorted(used)


def stage_reasons(
    gate: Mapping[str, Any],
    approvals: Sequence[tuple[int, str]],
    attestations: Mapping[str, tuple[int, bool]],
    has_role: Callable[[str, str, int], bool],
) -> tuple[list[str], list[int], list[int]]:
    """Check one stage's gate; return the reasons, approvals and attestations relied on.

    ``approvals`` are ``(ledger index, actor)`` of the approvals for this stage;
    ``attestations`` the latest ``(index, passed)`` of each kind; ``has_role(actor, role,
    index)`` says whether an actor held a role when the event at ``index`` was made.
    """
    reasons: list[str] = []
    role = gate["approver_role"]
    counted: list[int] = []
    seen: set[str] = set()
    not_role: list[str] = []
    for index, actor in approvals:
        if role is not None and not has_role(actor, role, index):
            not_role.append(actor)
            continue
        if gate["distinct_actors"] and actor in seen:
            continue
        seen.add(actor)
        counted.append(index)
    needed = int(gate["approvals"])
    if len(counted) < needed:
        by = f" by distinct actors with the {role!r} role" if role else ""
        if not role and gate["distinct_actors"]:
            by = " by distinct actors"
        extra = f" (approvals by {sorted(set(not_role))} lack the role)" if not_role else ""
        reasons.append(f"approvals: {len(counted)} of {needed} required{by}{extra}")
    used_attestations: list[int] = []
    for kind in gate["attestations"]:
        latest = attestations.get(kind)
        if latest is None:
            reasons.append(f"attestations: no {kind!r} attestation")
        elif not latest[1]:
            reasons.append(f"attestations: the latest {kind!r} attestation (event {latest[0]}) "
                           "did not pass")
        else:
            used_attestations.append(latest[0])
    return reasons, counted[:needed] if needed else [], sorted(used_attestations)
