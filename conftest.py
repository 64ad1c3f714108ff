"""Hooks for everything pytest collects here: ``tests/`` and the doctests in ``src/rowtrail``.

They live at the root, not in ``tests/conftest.py``, because pytest applies a conftest's
fixtures and per-item hooks only to items below it, and the doctests are outside ``tests/``.

- Every item (doctests included) gets its own ``ROWTRAIL_STATE_DIR``, so nothing touches the
  user's trust state; ``tests/conftest.py`` defines the same fixture for ``tests/``.
- Under ``CI=true`` a skipped test or a skipped module fails the run (exit status 1), and the
  skips are listed at the end: CI has every optional package installed, so a skip there
  means a check silently did not run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(autouse=True)
def _trust_state(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point ROWTRAIL_STATE_DIR at a fresh directory, so tests never touch the user's state."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("ROWTRAIL_STATE_DIR", str(state))
    return state


class _SkipsFailCI:
    """Records skips as they are reported; under CI a run with skips exits with failure."""

    def __init__(self) -> None:
        self.skips: list[str] = []

    def _record(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):  # an xfail is not a skip
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.skips.append(f"{report.nodeid}: {reason}")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a skipped test."""
        self._record(report)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record a skipped module (``pytest.importorskip``, module-level ``pytest.skip``)."""
        self._record(report)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Turn a run that passed with skips into a failed run."""
        if self.skips and exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        """List the skips that failed the run."""
        if self.skips:
            terminalreporter.section("CI=true: skipped tests fail the run", red=True, bold=True)
            for line in self.skips:
                terminalreporter.line(line, red=True)


def pytest_configure(config: pytest.Config) -> None:
    """Under CI, register the plugin that makes skips fail the run."""
    if _ci():
        config.pluginmanager.register(_SkipsFailCI(), "rowtrail-skips-fail-ci")
