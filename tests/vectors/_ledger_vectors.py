"""Small readers for the vector files (kept out of conftest so tests import them explicitly)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

VECTORS = Path(__file__).parent / "ledger"
TD = VECTORS / "transparency-dev-merkle" / "testdata"

# The classic 8-entry tree of transparency-dev's cmd/proofgen (see SOURCE.md).
CLASSIC_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]


def b64(value: str | None) -> bytes:
    return base64.b64decode(value) if value else b""


def b64_list(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(v) for v in values or []]


def load_cases(kind: str) -> list[tuple[str, dict[str, Any]]]:
    """Every JSON probe under ``testdata/<kind>``, as (relative name, data), sorted."""
    root = TD / kind
    return [
        (str(path.relative_to(root)), json.loads(path.read_text()))
        for path in sorted(root.rglob("*.json"))
    ]
