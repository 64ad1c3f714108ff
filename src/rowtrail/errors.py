"""Exceptions and warnings raised by rowtrail.

Every error rowtrail raises on purpose derives from :class:`RowtrailError`; the builtin mixins
keep ``except ValueError`` / ``except RuntimeError`` / ``except ImportError`` working::

    RowtrailError
    ├── InvalidInputError (ValueError)
    │   ├── SchemaMismatchError
    │   └── CanonicalEncodingError
    ├── StateError (RuntimeError)
    ├── LineageError
    │   └── UnknownSourceError (KeyError-free lookup failures)
    ├── StorageError
    │   ├── SchemaVersionError
    │   └── BlobNotFoundError
    ├── VerificationError
    │   ├── InclusionProofError
    │   ├── ConsistencyProofError
    │   ├── CheckpointError
    │   └── LogIntegrityError
    └── MissingDependencyError (ImportError)

Warnings: ``RowtrailWarning`` > ``LineageFallbackWarning``.
"""

from __future__ import annotations

__all__ = [
    "BlobNotFoundError",
    "CanonicalEncodingError",
    "CheckpointError",
    "ConsistencyProofError",
    "InclusionProofError",
    "InvalidInputError",
    "LineageError",
    "LineageFallbackWarning",
    "LogIntegrityError",
    "MissingDependencyError",
    "RowtrailError",
    "RowtrailWarning",
    "SchemaMismatchError",
    "SchemaVersionError",
    "StateError",
    "StorageError",
    "UnknownSourceError",
    "VerificationError",
]


class RowtrailError(Exception):
    """Root of every error rowtrail raises on purpose."""

    def diagnostics(self) -> str:
        """Return the text shown by the CLI and the audit service for this error."""
        return f"{type(self).__name__}: {self}"


class InvalidInputError(RowtrailError, ValueError):
    """An argument has the wrong type, shape or value."""


class SchemaMismatchError(InvalidInputError):
    """Data does not match the schema it was declared or expected to have."""


class CanonicalEncodingError(InvalidInputError):
    """A value cannot be encoded as canonical JSON (NaN, bytes, non-string keys, ...)."""


class StateError(RowtrailError, RuntimeError):
    """A call was made out of order or on a closed object."""


class LineageError(RowtrailError):
    """A lineage query or capture could not be answered or recorded."""


class UnknownSourceError(LineageError, LookupError):
    """A source name or row that the workspace does not know was asked for."""


class StorageError(RowtrailError):
    """The storage backend failed or holds data rowtrail cannot use."""


class SchemaVersionError(StorageError):
    """The workspace schema is newer than, or unknown to, this version of rowtrail."""


class BlobNotFoundError(StorageError, LookupError):
    """A blob referenced by digest is not in the blob store."""


class VerificationError(RowtrailError):
    """Evidence failed to verify. Never caught and logged away."""


class InclusionProofError(VerificationError):
    """An inclusion proof does not lead to the claimed root."""


class ConsistencyProofError(VerificationError):
    """A consistency proof does not link the two claimed tree heads."""


class CheckpointError(VerificationError):
    """A checkpoint (signed tree head) is malformed, unsigned by a known key, or replayed."""


class LogIntegrityError(VerificationError):
    """Stored ledger events, blobs or tree state disagree with each other.

    Attributes
    ----------
    index : int or None
        The first ledger index at which the disagreement was found, if it concerns one entry.
    """

    def __init__(self, message: str, *, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class MissingDependencyError(RowtrailError, ImportError):
    """An optional dependency needed for a feature is not installed."""


class RowtrailWarning(UserWarning):
    """Base category of warnings emitted by rowtrail."""


class LineageFallbackWarning(RowtrailWarning):
    """An operation was not understood and lineage fell back to "all input rows"."""
