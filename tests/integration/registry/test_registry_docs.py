"""docs/registry.md's Python examples run as written (docs checked by tests)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rowtrail.registry import check_policy

DOC = Path(__file__).resolve().parents[3] / "docs" / "registry.md"
TEXT = DOC.read_text(encoding="utf-8")
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_registry_doc_python_block_runs(
    code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__registry_doc__"}
    exec(compile(code, str(DOC), "exec"), namespace)  # running our own docs


def test_registry_doc_policy_is_valid() -> None:
    [policy] = re.findall(r"```json\n(.*?)```", TEXT, flags=re.S)
    checked = check_policy(json.loads(policy))
    assert checked["provenance"]["override_role"] == "risk-officer"
    assert checked["stages"]["production"]["approvals"] == 2
