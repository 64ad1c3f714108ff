"""The exports answer from proven ledger records only: caches edited change nothing, a ledger
edited is refused (DESIGN: the rule that makes answers evidence)."""

from __future__ import annotations

from pathlib import Path

import pytest
from _interop_fixtures import build

import rowtrail as rt
from _rawdb import raw_connection
from rowtrail.errors import VerificationError
from rowtrail.interop import openlineage_events, prov_document


def test_cache_tables_edited_change_no_export(tmp_path: Path) -> None:
    built = build(tmp_path)
    events = openlineage_events(built.ws)
    document = prov_document(built.ws)
    built.ws.close()
    with raw_connection(built.path) as conn:
        conn.execute("DELETE FROM registry_runs")
        conn.execute("UPDATE registry_models SET artifact_digest = ?", ("sha256:" + "00" * 32,))
        conn.execute("DELETE FROM registry_deployments")
        conn.execute("DELETE FROM sources WHERE name = 'noise'")
    with rt.open(built.path, read_only=True) as ws:
        assert openlineage_events(ws) == events
        assert prov_document(ws) == document
        with pytest.raises(VerificationError):
            ws.verify()  # while verify names the edited caches


def test_an_edited_ledger_entry_is_refused(tmp_path: Path) -> None:
    built = build(tmp_path)
    index = built.ws.ledger.entries_of_kind("training.completed")[0].index
    built.ws.close()
    with raw_connection(built.path) as conn:
        (leaf,) = conn.execute("SELECT leaf FROM events WHERE idx = ?", (index,)).fetchone()
        forged = bytes(leaf).replace(b'"status":"completed"', b'"status":"failed:Forged"')
        assert forged != bytes(leaf)
        conn.execute("UPDATE events SET leaf = ? WHERE idx = ?", (forged, index))
    with rt.open(built.path, read_only=True) as ws:
        with pytest.raises(VerificationError):
            openlineage_events(ws)
        with pytest.raises(VerificationError):
            prov_document(ws)
