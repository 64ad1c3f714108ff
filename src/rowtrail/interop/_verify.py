"""Verification of exported evidence with the log's verifier key alone (no workspace needed).

- :func:`verify_openlineage_event`: an OpenLineage event's ``rowtrail_ledgerProof`` run facet —
  the signed C2SP checkpoint note, the RFC 9162 inclusion proof of the leaf, and that the leaf
  is the rowtrail event this run event was made from (kind, run, time).
- :func:`verify_mlflow_tags`: the ``rowtrail.*`` tags :func:`attach_to_mlflow` set on an
  MLflow run.

Both raise :class:`~rowtrail.errors.VerificationError` (or a subclass) and never return a bool.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rowtrail.errors import (
    CheckpointError,
    InclusionProofError,
    InvalidInputError,
    VerificationError,
)
from rowtrail.interop._evidence import run_uuid
from rowtrail.interop._mlflow import TAG_PREFIX
from rowtrail.interop._openlineage import PROOF_FACET, run_key
from rowtrail.ledger import Event, NoteVerifier, leaf_hash, open_checkpoint, verify_inclusion
from rowtrail.ledger._events import format_time

__all__ = ["verify_mlflow_tags", "verify_openlineage_event"]


def _verifier_of(key: object) -> NoteVerifier:
    if isinstance(key, NoteVerifier):
        return key
    if isinstance(key, str):
        return NoteVerifier.from_vkey(key.strip())
    trust_root = getattr(key, "trust_root", None)
    if callable(trust_root):
        verifier = trust_root().verifier
        if isinstance(verifier, NoteVerifier):
            return verifier
    raise InvalidInputError(
        "key of verify_openlineage_event must be a Workspace (its pinned key is used), a "
        f"NoteVerifier or a verifier key string (`rowtrail ledger key`); got {type(key).__name__}"
    )


def _proof_fields(event: Mapping[str, Any]) -> dict[str, Any]:
    run = event.get("run")
    facets = run.get("facets") if isinstance(run, Mapping) else None
    facet = facets.get(PROOF_FACET) if isinstance(facets, Mapping) else None
    if not isinstance(facet, Mapping):
        raise VerificationError(
            f"event of verify_openlineage_event carries no {PROOF_FACET} run facet: there is no "
            "rowtrail evidence to check"
        )
    try:
        return {
            "origin": str(facet["origin"]),
            "index": int(facet["ledgerIndex"]),
            "kind": str(facet["eventKind"]),
            "leaf": base64.b64decode(str(facet["leaf"]), validate=True),
            "leaf_hash": bytes.fromhex(str(facet["leafHash"])),
            "size": int(facet["treeSize"]),
            "root": bytes.fromhex(str(facet["rootHash"])),
            "path": tuple(bytes.fromhex(str(step)) for step in facet["inclusionPath"]),
            "note": str(facet["checkpoint"]),
        }
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationError(f"{PROOF_FACET} facet is malformed: {exc}") from exc


def _check_binding(event: Mapping[str, Any], fields: Mapping[str, Any], decoded: Event) -> None:
    """Raise unless the proven ledger event is the one this run event says it was made from."""
    if decoded.kind != fields["kind"]:
        raise VerificationError(
            f"{PROOF_FACET} says entry {fields['index']} is {fields['kind']!r} but its leaf is "
            f"a {decoded.kind!r} event"
        )
    try:
        key = run_key(decoded.kind, decoded.payload, fields["index"])
    except KeyError as exc:
        raise VerificationError(
            f"{PROOF_FACET}: ledger entry {fields['index']} names no run: {exc}"
        ) from exc
    expected_run = run_uuid(fields["origin"], *key)
    if event["run"].get("runId") != expected_run:
        raise VerificationError(
            f"runId {event['run'].get('runId')!r} is not the run of ledger entry "
            f"{fields['index']} ({expected_run}): the proof was moved to another event"
        )
    if event.get("eventTime") != format_time(decoded.time):
        raise VerificationError(
            f"eventTime {event.get('eventTime')!r} differs from the time of ledger entry "
            f"{fields['index']} ({format_time(decoded.time)})"
        )


def verify_openlineage_event(key: object, event: Mapping[str, Any]) -> None:
    """Check an OpenLineage event's ``rowtrail_ledgerProof`` facet; raise if it does not hold.

    Checks, with the verifier key only (no access to the workspace is needed): the checkpoint
    note is signed by ``key`` and names the facet's tree size and root; the leaf bytes hash to
    the leaf hash; the inclusion proof places that leaf at the index in that tree; the leaf
    is a canonical rowtrail event of the stated kind, whose run and time are the event's
    ``runId`` and ``eventTime``.

    Parameters
    ----------
    key : Workspace, NoteVerifier or str
        Whose signature to require: a workspace (its pinned verifier key, kept outside it), a
        :class:`~rowtrail.ledger.NoteVerifier`, or a verifier key string as printed by
        ``rowtrail ledger key``.
    event : mapping
        One event as JSON (a line of the export file, parsed).

    Raises
    ------
    VerificationError
        :class:`~rowtrail.errors.CheckpointError` (bad signature, another log),
        :class:`~rowtrail.errors.InclusionProofError` (leaf or path altered), or a
        :class:`~rowtrail.errors.VerificationError` naming the mismatch.
    InvalidInputError
        ``key`` is none of the accepted kinds.
    """
    verifier = _verifier_of(key)
    fields = _proof_fields(event)
    checkpoint = open_checkpoint(fields["note"], [verifier], origin=fields["origin"])
    if checkpoint.size != fields["size"] or not hmac.compare_digest(
        checkpoint.root, fields["root"]
    ):
        raise CheckpointError(
            f"{PROOF_FACET}: the signed checkpoint is of size {checkpoint.size} and root "
            f"{checkpoint.root.hex()}, not the proof's {fields['size']} and {fields['root'].hex()}"
        )
    if not hmac.compare_digest(leaf_hash(fields["leaf"]), fields["leaf_hash"]):
        raise InclusionProofError(
            f"{PROOF_FACET}: the leaf bytes of entry {fields['index']} do not hash to its leaf hash"
        )
    verify_inclusion(fields["index"], fields["size"], fields["leaf_hash"], fields["path"],
                     fields["root"])
    try:
        decoded = Event.from_leaf(fields["leaf"])
    except InvalidInputError as exc:
        raise VerificationError(f"{PROOF_FACET}: the leaf is not a rowtrail event: {exc}") from exc
    _check_binding(event, fields, decoded)


def verify_mlflow_tags(key: object, tags: Mapping[str, str]) -> None:
    """Check the ``rowtrail.*`` tags of an MLflow run with a verifier key; raise if they fail.

    The checkpoint note must be signed by ``key`` (a :class:`~rowtrail.ledger.NoteVerifier`
    or a verifier key string — not the ``rowtrail.vkey`` tag itself, which anyone who can
    write tags could replace) and name the tagged size and root; the inclusion path must place
    the tagged leaf hash at the tagged ledger index of that tree.

    Raises
    ------
    VerificationError
        A tag is missing or malformed, the signature or the proof fails.
    """
    verifier = key if isinstance(key, NoteVerifier) else None
    if verifier is None:
        if not isinstance(key, str):
            raise InvalidInputError(
                "key of verify_mlflow_tags must be a NoteVerifier or a verifier key string; "
                f"got {type(key).__name__}"
            )
        verifier = NoteVerifier.from_vkey(key.strip())
    try:
        origin = tags[TAG_PREFIX + "origin"]
        index = int(tags[TAG_PREFIX + "ledger_index"])
        leaf = bytes.fromhex(tags[TAG_PREFIX + "leaf_hash"])
        path: Sequence[bytes] = [bytes.fromhex(s) for s in
                                 json.loads(tags[TAG_PREFIX + "inclusion_path"])]
        size = int(tags[TAG_PREFIX + "checkpoint.size"])
        root = bytes.fromhex(tags[TAG_PREFIX + "checkpoint.root"])
        note = tags[TAG_PREFIX + "checkpoint.note"]
    except (KeyError, TypeError, ValueError, binascii.Error) as exc:
        raise VerificationError(f"rowtrail tags of the MLflow run are missing or malformed: "
                                f"{exc!r}") from exc
    checkpoint = open_checkpoint(note, [verifier], origin=origin)
    if checkpoint.size != size or not hmac.compare_digest(checkpoint.root, root):
        raise CheckpointError(
            "rowtrail.checkpoint.size/root of the MLflow run are not those of the signed note"
        )
    verify_inclusion(index, size, leaf, path, root)
