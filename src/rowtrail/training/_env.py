"""What a sealed run links besides data: the code (git commit, dirty flag) and environment.

The environment is the Python version, the platform and a *packages lock digest*: the SHA-256
of the canonical JSON list of every installed distribution ``name==version`` (from
:mod:`importlib.metadata`), so two runs with the same digest ran on the same package set.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from rowtrail.hashing import canonical_json, sha256_digest

__all__ = ["code_info", "environment_info", "packages_lock"]


_LOCK_CACHE: dict[tuple[tuple[str, int], ...], list[str]] = {}


def _path_state() -> tuple[tuple[str, int], ...]:
    """``(entry, mtime_ns)`` of every import path directory (installs change the mtime)."""
    state = []
    for entry in sys.path:
        try:
            state.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            state.append((entry, -1))
    return tuple(state)


def packages_lock() -> list[str]:
    """Return the sorted ``name==version`` list of installed distributions.

    Reading every distribution's metadata takes ~0.1 s, paid by every recorded run; the list
    is kept while no import path directory changes (installing or removing a package adds or
    removes a ``*.dist-info`` entry, which changes its directory's mtime).
    """
    key = _path_state()
    cached = _LOCK_CACHE.get(key)
    if cached is not None:
        return list(cached)
    seen: set[str] = set()
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen.add(f"{name.lower().replace('_', '-')}=={dist.version}")
    lock = sorted(seen)
    _LOCK_CACHE.clear()
    _LOCK_CACHE[key] = lock
    return list(lock)


def environment_info() -> dict[str, Any]:
    """Return the Python version, platform, key package versions and the lock digest."""
    lock = packages_lock()
    key = {}
    for entry in lock:
        name, _, version = entry.partition("==")
        if name in {"torch", "numpy", "scikit-learn", "rowtrail"}:
            key[name] = version
    return {
        "python": platform.python_version(),
        "implementation": sys.implementation.name,
        "platform": platform.platform(terse=True),
        "packages_digest": sha256_digest(canonical_json(lock)),
        "n_packages": len(lock),
        "key_packages": key,
    }


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def code_info(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return the git commit and dirty flag of the repository holding ``path`` (default: cwd).

    Both are ``None`` outside a git repository or without a ``git`` executable.
    """
    where = Path(path) if path is not None else Path.cwd()
    commit = _git(["rev-parse", "HEAD"], where)
    if commit is None:
        return {"git_commit": None, "dirty": None, "entry_point": sys.argv[0] or None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], where)
    return {
        "git_commit": commit.strip(),
        "dirty": None if status is None else bool(status.strip()),
        "entry_point": sys.argv[0] or None,
    }
