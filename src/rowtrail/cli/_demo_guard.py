"""Where ``rowtrail demo`` may write: never over anything it did not create itself.

The demo starts from a fresh workspace. It accepts a missing or empty directory, and it
replaces a directory only when that directory is an earlier demo's, proved by the marker file
:data:`MARKER` that the demo writes there: a JSON record of every file the run left, with its
SHA-256. A marked directory is replaced only while it holds exactly those files, unchanged
(files may be missing); any other file, a changed file, a link, an unfinished run or an
unreadable marker makes the demo refuse, and so does an existing workspace or any other
non-empty directory. Refusing changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rowtrail.errors import InvalidInputError
from rowtrail.hashing import file_digest

__all__ = ["MARKER", "finish_marker", "prepare_demo_dir", "start_marker"]

MARKER = ".rowtrail-demo"
_KIND = "rowtrail-demo-marker"
_VERSION = 1
_MAX_MARKER_BYTES = 1 << 20


def _refuse(path: Path, what: str, *, from_env: bool) -> InvalidInputError:
    where = f"{path} (from $ROWTRAIL_WORKSPACE)" if from_env else str(path)
    unset = " (or unset ROWTRAIL_WORKSPACE)" if from_env else ""
    return InvalidInputError(
        f"--workspace of rowtrail demo must be a new or empty directory, or one an earlier "
        f"demo created; {where} {what}. The demo never deletes or overwrites what it did not "
        f"create, and nothing was changed. Choose a new directory: "
        f"rowtrail demo --workspace <new-directory>{unset}."
    )


def _listing(path: Path, *, from_env: bool) -> dict[str, Path]:
    """Return every file under ``path`` by relative POSIX name; refuse links and special files."""
    found: dict[str, Path] = {}
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            entry = Path(root) / name
            relative = entry.relative_to(path).as_posix()
            if entry.is_symlink() or not (entry.is_dir() or entry.is_file()):
                raise _refuse(
                    path,
                    f"holds {relative}, which the demo does not make (a link or special file)",
                    from_env=from_env,
                )
            if name in files:
                found[relative] = entry
    return found


def _read_marker(path: Path, *, from_env: bool) -> dict[str, str]:
    """Return the marker's manifest (relative name -> digest), or raise if it is not usable."""
    marker = path / MARKER
    try:
        if marker.is_symlink() or marker.stat().st_size > _MAX_MARKER_BYTES:
            raise ValueError("not a small regular file")
        data: Any = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _refuse(
            path, f"has a demo marker {MARKER} that cannot be read ({exc})", from_env=from_env
        ) from exc
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("kind") != _KIND or not isinstance(files, dict):
        raise _refuse(path, f"has a file {MARKER} that is not a demo marker", from_env=from_env)
    if data.get("complete") is not True:
        raise _refuse(
            path,
            "holds a demo run that did not finish, so the demo cannot tell its "
            "own files from others; remove the directory yourself if it is yours to "
            "delete",
            from_env=from_env,
        )
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise _refuse(path, f"has a malformed demo marker {MARKER}", from_env=from_env)
    return dict(files)


def _demo_files(path: Path, *, from_env: bool) -> list[Path]:
    """Return the files of an earlier demo in ``path``; raise if anything else is there."""
    manifest = _read_marker(path, from_env=from_env)
    found = _listing(path, from_env=from_env)
    found.pop(MARKER, None)
    extra = sorted(set(found) - set(manifest))
    if extra:
        raise _refuse(
            path,
            f"is an earlier demo's directory but also holds files the demo did "
            f"not write: {extra[:5]}",
            from_env=from_env,
        )
    changed = sorted(name for name, file in found.items() if file_digest(file) != manifest[name])
    if changed:
        raise _refuse(
            path,
            f"is an earlier demo's directory whose files changed since the demo "
            f"wrote them: {changed[:5]}",
            from_env=from_env,
        )
    return list(found.values())


def _remove_demo(path: Path, files: list[Path]) -> None:
    """Delete an earlier demo's files, its marker and the directories left empty (not ``path``)."""
    for file in files:
        file.unlink()
    (path / MARKER).unlink()
    for root, dirs, _ in os.walk(path, topdown=False):
        for name in dirs:
            (Path(root) / name).rmdir()  # fails (OSError) if anything appeared meanwhile


def prepare_demo_dir(path: Path, *, from_env: bool = False) -> None:
    """Make ``path`` ready for a new demo workspace, or raise without changing anything.

    Parameters
    ----------
    path : Path
        Where the demo workspace goes.
    from_env : bool
        The location came from ``$ROWTRAIL_WORKSPACE`` (said in the message).

    Raises
    ------
    InvalidInputError
        ``path`` is a file, a workspace or non-empty directory the demo did not create, or an
        earlier demo's directory holding anything besides its own unchanged files.
    """
    if not path.exists():
        if path.is_symlink():
            raise _refuse(path, "is a broken link", from_env=from_env)
        return
    if not path.is_dir():
        raise _refuse(path, "is a file", from_env=from_env)
    if not any(path.iterdir()):
        return
    if (path / MARKER).exists() or (path / MARKER).is_symlink():
        _remove_demo(path, _demo_files(path, from_env=from_env))
        return
    if (path / "rowtrail.db").exists() or (path / "database.json").exists():  # SQLite / PostgreSQL
        raise _refuse(path, "is a rowtrail workspace the demo did not create", from_env=from_env)
    raise _refuse(path, "holds other files", from_env=from_env)


def _write_marker(path: Path, data: dict[str, Any]) -> None:
    marker = path / MARKER
    staged = path / f"{MARKER}.tmp"
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(staged, marker)


def start_marker(path: Path) -> None:
    """Mark ``path`` as a demo run in progress (a re-run refuses it until it is finished)."""
    _write_marker(path, {"kind": _KIND, "version": _VERSION, "complete": False, "files": {}})


def finish_marker(path: Path) -> None:
    """Record every file the demo left in ``path`` with its digest, so a re-run may replace it."""
    files = {
        name: file_digest(file)
        for name, file in sorted(_listing(path, from_env=False).items())
        if name != MARKER
    }
    _write_marker(path, {"kind": _KIND, "version": _VERSION, "complete": True, "files": files})
