"""Exceptions and warnings raised by rowtrail.

Every error rowtrail raises on purpose derives from :class:`RowtrailError`; the builtin mixins
keep ``except ValueError`` / ``except RuntimeError`` / ``except ImportError`` working::

    RowtrailError
    ├── InvalidInputError (ValueError)
    │   ├── SchemaMismatchError
    │   ├── CanonicalEncodingError
    │   └── WorkspaceNotFoundError
    ├── StateError (RuntimeError)
    │   ├── ShreddedError
    │   └── PolicyRefusedError
    ├── LineageError
    │   └── UnknownSourceError (KeyError-free lookup failures)
    ├── StorageError
    │   ├── SchemaVersionError
    │   ├── BlobNotFoundError
    │   └── MissingKeyError
    ├── VerificationError
    │   ├── InclusionProofError
    │   ├── ConsistencyProofError
    │   ├── CheckpointError
    │   │   └── TrustRootError
    │   ├── LogIntegrityError
    │   │   └── TableIntegrityError
    │   ├── FileIntegrityError
    │   ├── CertificateError
    │   └── ReplayMismatchError
    └── MissingDependencyError (ImportError)

Warnings: ``RowtrailWarning`` > ``LineageFallbackWarning``, ``LineageLostWarning``,
``SecurityWarning``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BlobNotFoundError",
    "CanonicalEncodingError",
    "CertificateError",
    "CheckpointError",
    "ConsistencyProofError",
    "FileIntegrityError",
    "InclusionProofError",
    "InvalidInputError",
    "LineageError",
    "LineageFallbackWarning",
    "LineageLostWarning",
    "LogIntegrityError",
    "MissingDependencyError",
    "MissingKeyError",
    "PolicyRefusedError",
    "ReplayMismatchError",
    "RowtrailError",
    "RowtrailWarning",
    "SchemaMismatchError",
    "SchemaVersionError",
    "SecurityWarning",
    "ShreddedError",
    "StateError",
    "StorageError",
    "TableIntegrityError",
    "TrustRootError",
    "UnknownSourceError",
    "VerificationError",
    "WorkspaceNotFoundError",
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


class ShreddedError(StateError):
    """A payload's data key was destroyed by an erasure: its content is gone for good.

    The payload's record, its digest and every proof stay valid; only the plaintext is lost.
    """


class PolicyRefusedError(StateError):
    """The registry's declarative policy refused an action (a promotion, a run, a model).

    ``reasons`` lists every reason (not only the first), and ``index`` is the ledger index of
    the ``registry.refusal`` event that records the refusal (``None`` when nothing could be
    recorded, e.g. on a read-only handle).
    """

    def __init__(self, message: str, *, reasons: Sequence[str], index: int | None) -> None:
        super().__init__(message)
        self.reasons = tuple(reasons)
        self.index = index


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


class WorkspaceNotFoundError(InvalidInputError):
    """A location names no workspace (and creating one was not asked for)."""


class MissingKeyError(StorageError):
    """A workspace key file is missing or empty; it must be restored, never regenerated."""


class TrustRootError(CheckpointError):
    """A log's signed checkpoint is not backed by the trust root kept outside the workspace.

    Raised when no trust root is known for a log, when the pinned verifier key differs from
    the workspace's, or when the trusted checkpoint is missing from, newer than or inconsistent
    with the stored log (a rollback or a fork).
    """


class TableIntegrityError(LogIntegrityError):
    """A cache table disagrees with what the ledger says it must hold.

    ``table`` names the table and ``key`` the first row (as text) that differs.
    """

    def __init__(self, message: str, *, table: str, key: str) -> None:
        super().__init__(message)
        self.table = table
        self.key = key


class FileIntegrityError(VerificationError):
    """A file bound to the ledger by a digest is missing, unreadable or altered.

    ``path`` names the file.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class CertificateError(VerificationError):
    """An erasure certificate does not verify.

    Raised for any reason a certificate must not be believed: its envelope or statement is
    malformed, its signature does not verify with the given key, its ledger checkpoint is not
    signed by that key, an inclusion proof does not lead to the checkpoint's root, an event it
    cites is not an erasure event of its job, or a verification figure it reports failed.
    """


class ReplayMismatchError(VerificationError):
    """Replaying a recorded training run did not reproduce the weights it recorded.

    ``step`` is the first optimizer step (0-based: the update applied by the ``step``-th
    ``optimizer.step()`` call) after which the replayed weights differ from the recorded
    digest, or ``None`` when they differ only from the sealed final weights.
    """

    def __init__(self, message: str, *, step: int | None) -> None:
        super().__init__(message)
        self.step = step


class LineageLostWarning(RowtrailWarning):
    """Traced rows left rowtrail's view: what is computed from them carries no lineage.

    Raised, for example, when scikit-learn converts a traced frame to a plain array outside
    ``rt.sklearn.trace``; the warning says how to keep the lineage.
    """


class SecurityWarning(RowtrailWarning):
    """Something about a workspace weakens its protection (e.g. key files readable by others)."""
