"""Files bound to a ledger event by digest: record them, find the binding, check them when read.

DESIGN §7 ("the rule that makes answers evidence"): every file an answer is read from is a
content-addressed blob or bound to a ledger record by a digest that is checked when it is read.
A store directory (a gradient feature store, a saved attributor) writes its files first and then
appends one event whose payload has ``files``: ``{name: {"digest": "sha256:<hex>", "size": n}}``
for *every* file the loader reads. A load finds the latest such event for the directory and
compares every file (size, then SHA-256 with :func:`hmac.compare_digest`) before anything is
parsed; a missing, truncated, extended or altered file raises
:class:`~rowtrail.errors.FileIntegrityError` naming it.

Hashing a 10^6-row matrix costs a second, so a successful check is remembered for the life of
the process, keyed by the file's path and ``(device, inode, size, mtime_ns, ctime_ns)``: any
write or replacement changes the key (on file systems with coarse timestamps an in-place
rewrite of the same size within one clock tick would not, which is why ``verify_*`` functions
never use the cache). After parsing, the loader stats the file again and refuses it if the key
changed while it was being read.

Parsing helpers here turn every malformed ``.npy``/JSON into a typed error: ``FileIntegrityError``
for content, :class:`~rowtrail.errors.StorageError` for I/O failures.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rowtrail.errors import FileIntegrityError, StorageError
from rowtrail.hashing import DIGEST_PREFIX
from rowtrail.ledger import Ledger

__all__ = [
    "Binding",
    "BoundFile",
    "StatKey",
    "describe_files",
    "latest_binding",
    "latest_bindings",
    "load_json_file",
    "load_npy_file",
]

StatKey = tuple[int, int, int, int, int]

_CACHE_LIMIT = 4096
_CHUNK = 1 << 20
# path -> (stat key, digest) of the last successful check in this process.
_VERIFIED: dict[str, tuple[StatKey, str]] = {}


def _stat_key(info: os.stat_result) -> StatKey:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _remember(path: Path, key: StatKey, digest: str) -> None:
    if len(_VERIFIED) >= _CACHE_LIMIT:
        _VERIFIED.clear()
    _VERIFIED[str(path)] = (key, digest)


def _hash_handle(handle: io.BufferedReader) -> str:
    hasher = hashlib.sha256()
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        hasher.update(chunk)
    return DIGEST_PREFIX + hasher.hexdigest()


def describe_files(directory: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Hash each named file of ``directory`` for an event payload's ``files`` field.

    Returns ``{name: {"digest": "sha256:<hex>", "size": bytes}}``; each result is remembered so
    that the first load after a save does not hash again.
    """
    files: dict[str, dict[str, Any]] = {}
    for name in names:
        path = directory / name
        try:
            with open(path, "rb") as handle:
                key = _stat_key(os.fstat(handle.fileno()))
                digest = _hash_handle(handle)
        except OSError as exc:
            raise StorageError(f"cannot read {path} to record its digest: {exc}") from exc
        _remember(path, key, digest)
        files[name] = {"digest": digest, "size": key[2]}
    return files


@dataclass(frozen=True)
class BoundFile:
    """One file an event binds: its name in the directory, digest and size in bytes."""

    name: str
    digest: str
    size: int


@dataclass(frozen=True)
class Binding:
    """The latest ledger event that binds a directory's files.

    ``files`` is ``None`` when the event records no per-file digests (written before every
    file was bound); :meth:`check` refuses such a binding.
    """

    index: int
    kind: str
    payload: Mapping[str, Any]
    files: tuple[BoundFile, ...] | None
    fix: str

    def check(
        self, directory: Path, names: Sequence[str], *, use_cache: bool = True
    ) -> dict[str, StatKey]:
        """Compare every file in ``names`` with this event; return their stat keys.

        Raises
        ------
        FileIntegrityError
            A file is not bound by this event, or is missing, truncated, extended or altered.
        StorageError
            A file exists but cannot be read.
        """
        bound = {f.name: f for f in self.files or ()}
        if self.files is None or sorted(bound) != sorted(names):
            raise FileIntegrityError(
                f"ledger event {self.index} ({self.kind}) does not record the digest of every "
                f"file in {directory} (it binds {sorted(bound)}, the loader reads "
                f"{sorted(names)}), so the files cannot be trusted. {self.fix}",
                path=str(directory),
            )
        return {name: self._check_file(directory / name, bound[name], use_cache) for name in names}

    def _check_file(self, path: Path, expected: BoundFile, use_cache: bool) -> StatKey:
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise FileIntegrityError(
                f"{path} is missing; ledger event {self.index} ({self.kind}) binds it with "
                f"digest {expected.digest}. {self.fix}",
                path=str(path),
            ) from None
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}") from exc
        with handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise FileIntegrityError(
                    f"{path} is not a regular file; ledger event {self.index} binds a file "
                    f"there. {self.fix}",
                    path=str(path),
                )
            if info.st_size != expected.size:
                what = "truncated" if info.st_size < expected.size else "extended"
                raise FileIntegrityError(
                    f"{path} has {info.st_size} bytes; ledger event {self.index} ({self.kind}) "
                    f"recorded {expected.size}: the file was {what} after it was saved. "
                    f"{self.fix}",
                    path=str(path),
                )
            key = _stat_key(info)
            cached = _VERIFIED.get(str(path))
            if (
                use_cache
                and cached is not None
                and cached[0] == key
                and hmac.compare_digest(cached[1], expected.digest)
            ):
                return key
            _VERIFIED.pop(str(path), None)
            try:
                digest = _hash_handle(handle)
            except OSError as exc:
                raise StorageError(f"cannot read {path}: {exc}") from exc
            changed = _stat_key(os.fstat(handle.fileno())) != key
        if changed:
            raise FileIntegrityError(
                f"{path} changed while its digest was being computed; try again when nothing "
                "writes to it.",
                path=str(path),
            )
        if not hmac.compare_digest(digest, expected.digest):
            raise FileIntegrityError(
                f"{path} has digest {digest}; ledger event {self.index} ({self.kind}) recorded "
                f"{expected.digest}: the file was altered after it was saved. {self.fix}",
                path=str(path),
            )
        _remember(path, key, digest)
        return key

    def still_same(self, directory: Path, keys: Mapping[str, StatKey]) -> None:
        """Raise :class:`FileIntegrityError` if a checked file changed since :meth:`check`."""
        for name, key in keys.items():
            path = directory / name
            try:
                now = _stat_key(os.stat(path))
            except OSError:
                now = None
            if now != key:
                _VERIFIED.pop(str(path), None)
                raise FileIntegrityError(
                    f"{path} changed while it was being read after its digest was checked "
                    f"against ledger event {self.index}; try again when nothing writes to it.",
                    path=str(path),
                )


def _parse_files(value: object) -> tuple[BoundFile, ...] | None:
    if not isinstance(value, Mapping):
        return None
    out = []
    for name, spec in value.items():
        if not (
            isinstance(name, str)
            and isinstance(spec, Mapping)
            and isinstance(spec.get("digest"), str)
            and isinstance(spec.get("size"), int)
        ):
            return None
        out.append(BoundFile(name, spec["digest"], int(spec["size"])))
    return tuple(out)


def latest_bindings(
    ledger: Ledger, kind: str, field: str, *, fix: str, value: str | None = None
) -> dict[str, Binding]:
    """Return the latest ``kind`` event per ``payload[field]`` (only ``value`` when given)."""
    found: dict[str, Binding] = {}
    for entry in ledger.entries_of_kind(kind):
        event = entry.event
        name = event.payload.get(field)
        # The kind index is not signed: keep only entries that really are of this kind.
        if event.kind != kind or not isinstance(name, str) or (value is not None and name != value):
            continue
        found[name] = Binding(
            entry.index, kind, event.payload, _parse_files(event.payload.get("files")), fix
        )
    return found


def latest_binding(
    ledger: Ledger, kind: str, field: str, value: str, *, fix: str
) -> Binding | None:
    """Return the latest ``kind`` event whose ``payload[field] == value``, or ``None``."""
    return latest_bindings(ledger, kind, field, fix=fix, value=value).get(value)


def load_npy_file(path: Path, *, mmap: bool = False) -> NDArray[Any]:
    """Read a ``.npy`` file (memory-mapped read-only with ``mmap``), raising typed errors."""
    try:
        array: NDArray[Any] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise FileIntegrityError(f"{path} is missing", path=str(path)) from None
    except (ValueError, EOFError, TypeError) as exc:
        raise FileIntegrityError(
            f"{path} is not a readable .npy array (truncated or malformed): {exc}",
            path=str(path),
        ) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(array, np.ndarray):
        raise FileIntegrityError(f"{path} does not hold one .npy array", path=str(path))
    return array


def load_json_file(path: Path) -> dict[str, Any]:
    """Read a JSON object from ``path``, raising typed errors for missing or malformed files."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise FileIntegrityError(f"{path} is missing", path=str(path)) from None
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise FileIntegrityError(
            f"{path} is not valid UTF-8 JSON (truncated or malformed): {exc}", path=str(path)
        ) from exc
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise FileIntegrityError(
            f"{path} must hold a JSON object; got {type(data).__name__}", path=str(path)
        )
    return data
