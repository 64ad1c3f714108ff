"""Content-addressed blob directory: ``<root>/<2 hex>/<62 hex>``, written atomically."""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from pathlib import Path

from rowtrail.errors import BlobNotFoundError, StorageError, VerificationError
from rowtrail.hashing import DIGEST_PREFIX, check_digest

__all__ = ["FileBlobStore"]


class FileBlobStore:
    """Blobs as files named by their SHA-256; a blob is durable before ``put`` returns."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)  # made on the first put, so reads never create it

    def _path(self, digest: str) -> Path:
        hexdigest = check_digest(digest)[len(DIGEST_PREFIX) :]
        return self.root / hexdigest[:2] / hexdigest[2:]

    def put(self, data: bytes) -> str:
        """Store ``data`` (fsynced, renamed into place) and return ``sha256:<hex>``."""
        digest = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StorageError(f"could not write blob {digest} under {self.root}: {exc}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        """Return the bytes of ``digest``; raise if missing or if they no longer hash to it."""
        path = self._path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"blob {digest} is not in {self.root}") from exc
        except OSError as exc:
            raise StorageError(f"could not read blob {digest}: {exc}") from exc
        actual = DIGEST_PREFIX + hashlib.sha256(data).hexdigest()
        if not hmac.compare_digest(actual, digest):
            raise VerificationError(f"blob {digest} was altered: its bytes hash to {actual}")
        return data

    def has(self, digest: str) -> bool:
        """Return whether ``digest`` is stored."""
        return self._path(digest).exists()

    def iter_digests(self) -> list[str]:
        """Return the digest every stored blob file is named for (unsorted)."""
        if not self.root.is_dir():
            return []
        return [
            DIGEST_PREFIX + part.name + path.name
            for part in self.root.iterdir()
            if part.is_dir() and len(part.name) == 2
            for path in part.iterdir()
            if not path.name.startswith(".")
        ]

    def path_of(self, digest: str) -> Path:
        """Return the file path of a stored blob (for memory-mapping large arrays)."""
        path = self._path(digest)
        if not path.exists():
            raise BlobNotFoundError(f"blob {digest} is not in {self.root}")
        return path
