"""Issue 9: under ``CI=true`` a skip fails the run, and the docstring examples run as doctests.

The hook lives in the root ``conftest.py`` (it must cover the doctests in ``src/rowtrail``,
which ``tests/conftest.py`` does not reach). Each check runs a tiny pytest in a subprocess
against a copy of that file.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SKIPS = """
import pytest

def test_passes():
    assert True

def test_skips():
    pytest.skip("no frobnicator here")
"""
MODULE_SKIP = """
import pytest

pytest.importorskip("rowtrail_no_such_package_for_the_ci_check")

def test_never_runs():
    assert False
"""
XFAIL = """
import pytest

@pytest.mark.xfail(reason="known", strict=True)
def test_known_bug():
    assert False

def test_passes():
    assert True
"""


def run_pytest(directory: Path, files: dict[str, str], *, ci: str | None) -> tuple[int, str]:
    directory.mkdir()
    shutil.copy(ROOT / "conftest.py", directory / "conftest.py")
    (directory / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (directory / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(directory)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_issue9_ci_true_makes_a_skipped_test_or_module_fail_the_run(tmp_path: Path) -> None:
    code, out = run_pytest(
        tmp_path / "t", {"test_skips.py": SKIPS, "test_module_skip.py": MODULE_SKIP}, ci="true"
    )
    assert code == pytest.ExitCode.TESTS_FAILED, out
    assert "CI=true: skipped tests fail the run" in out
    assert "test_skips.py::test_skips: Skipped: no frobnicator here" in out
    assert "test_module_skip.py" in out


def test_issue9_without_ci_a_skip_does_not_fail_the_run(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "t", {"test_skips.py": SKIPS}, ci=None)
    assert code == pytest.ExitCode.OK, out
    assert "1 skipped" in out


def test_issue9_ci_true_run_without_skips_passes_and_xfail_is_not_a_skip(tmp_path: Path) -> None:
    code, out = run_pytest(tmp_path / "t", {"test_xfail.py": XFAIL}, ci="true")
    assert code == pytest.ExitCode.OK, out
    assert "1 xfailed" in out


def test_issue9_docstring_examples_run_as_doctests() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"][
        "ini_options"
    ]
    assert "src/rowtrail" in options["testpaths"]
    assert "--doctest-modules" in options["addopts"].split()
