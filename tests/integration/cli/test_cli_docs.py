"""docs/cli.md documents every command and is up to date with the code."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import typer

from rowtrail.cli import app

ROOT = Path(__file__).resolve().parents[3]


def _render() -> str:
    spec = importlib.util.spec_from_file_location(
        "gen_cli_docs", ROOT / "scripts" / "gen_cli_docs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.render())


def test_cli_reference_is_current() -> None:
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == _render(), "docs/cli.md is stale: run python scripts/gen_cli_docs.py"


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    root = typer.main.get_command(app)
    names = list(root.commands)  # type: ignore[attr-defined]
    assert {"demo", "verify", "ledger", "explain"} <= set(names)
    for name in names:
        assert f"`rowtrail {name}" in text, f"command {name} is not in docs/cli.md"
