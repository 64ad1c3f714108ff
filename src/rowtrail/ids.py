"""Identifiers: row ids, source indices and subject pseudonyms.

A **row id** is one ``int64`` per source row: ``source_index << 40 | row_number``. Row numbers
are 0-based positions among a source's data rows (a CSV header is not a row), so a source may
hold up to 2**40 rows and a workspace up to 2**23 sources. Row maps are therefore plain
``int64`` arrays and per-source aggregation is a shift and a ``bincount``.

A **subject pseudonym** is ``HMAC-SHA256(workspace secret, identifier)`` written
``ps:<64 hex>``; raw identifiers are never stored. Identifiers are normalised first
(:func:`normalize_subject`: ``42``, ``42.0`` and ``" 42 "`` are one subject).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError

__all__ = [
    "MAX_ROWS_PER_SOURCE",
    "MAX_SOURCES",
    "PSEUDONYM_PREFIX",
    "ROW_BITS",
    "check_pseudonym",
    "is_pseudonym",
    "make_row_ids",
    "normalize_subject",
    "pseudonymize",
    "pseudonymize_many",
    "row_id",
    "row_numbers",
    "source_indices",
]

ROW_BITS = 40
MAX_ROWS_PER_SOURCE = 1 << ROW_BITS
MAX_SOURCES = 1 << (63 - ROW_BITS)
_ROW_MASK = MAX_ROWS_PER_SOURCE - 1
PSEUDONYM_PREFIX = "ps:"
_PSEUDONYM_RE = re.compile(r"^ps:[0-9a-f]{64}$")
# A canonical integer (no leading zeros, no "+"), optionally with a zero fraction ("42.00").
_INTEGER_TEXT = re.compile(r"(-?(?:0|[1-9][0-9]*))(?:\.0+)?")
_MISSING_TYPES = frozenset({"NAType", "NaTType"})


def _check_source_index(source_index: int) -> None:
    if not 0 <= source_index < MAX_SOURCES:
        raise InvalidInputError(f"source_index must be in [0, {MAX_SOURCES}); got {source_index!r}")


def row_id(source_index: int, row_number: int) -> int:
    """Pack one source index and row number into a row id.

    Examples
    --------
    >>> row_id(1, 5)
    1099511627781
    """
    _check_source_index(source_index)
    if not 0 <= row_number < MAX_ROWS_PER_SOURCE:
        raise InvalidInputError(
            f"row_number must be in [0, {MAX_ROWS_PER_SOURCE}); got {row_number!r}"
        )
    return (source_index << ROW_BITS) | row_number


def make_row_ids(source_index: int, n_rows: int) -> NDArray[np.int64]:
    """Return the row ids of rows ``0 .. n_rows-1`` of a source.

    Examples
    --------
    >>> make_row_ids(2, 3) - (2 << 40)
    array([0, 1, 2])
    """
    _check_source_index(source_index)
    if not 0 <= n_rows <= MAX_ROWS_PER_SOURCE:
        raise InvalidInputError(f"n_rows must be in [0, 2**40]; got {n_rows!r}")
    return np.arange(n_rows, dtype=np.int64) + np.int64(source_index << ROW_BITS)


def source_indices(row_ids: ArrayLike) -> NDArray[np.int64]:
    """Return the source index of each row id."""
    return np.asarray(row_ids, dtype=np.int64) >> ROW_BITS


def row_numbers(row_ids: ArrayLike) -> NDArray[np.int64]:
    """Return the row number (within its source) of each row id."""
    return np.asarray(row_ids, dtype=np.int64) & _ROW_MASK


def normalize_subject(identifier: object) -> str | None:
    """Return the canonical text of a subject identifier, or ``None`` if it names no subject.

    One subject must get one pseudonym however a file's reader typed its column. An integer
    column with a blank cell is read by pandas as floats, so subject ``42`` arrives as
    ``42.0``; a CSV reader gives ``"42"`` or ``" 42 "``. The rules:

    - ``None``, NaN (any float type, ``pandas.NA``, ``NaT``) and blank text: no subject
      (``None``);
    - integers (``int``, NumPy integers) and integer-valued floats (``42.0``,
      ``numpy.float32(42)``): the decimal integer (``"42"``);
    - text: stripped; text that spells a canonical integer, optionally with a zero fraction
      (``"42"``, ``" -7 "``, ``"42.0"``), becomes that integer (``"42"``, ``"-7"``). Leading
      zeros, a ``+`` sign, exponents and other fractions keep their text (``"007"`` is a
      code, not the number 7);
    - other floats keep their text (``"1.5"``; infinities ``"inf"``);
    - anything else: ``str(identifier)``, stripped.

    Booleans are rejected: ``True`` would otherwise be the subject ``1``, and a boolean
    column is never an identifier.

    Raises
    ------
    InvalidInputError
        If ``identifier`` is a ``bool`` or NumPy boolean.

    Examples
    --------
    >>> import numpy as np
    >>> [normalize_subject(v) for v in (42, np.int64(42), 42.0, np.float32(42), " 42 ", "42.0")]
    ['42', '42', '42', '42', '42', '42']
    >>> [normalize_subject(v) for v in ("007", 1.5, "alice ", "4.2e1")]
    ['007', '1.5', 'alice', '4.2e1']
    >>> [normalize_subject(v) for v in (None, float("nan"), "  ")]
    [None, None, None]
    """
    if isinstance(identifier, bool | np.bool_):
        raise InvalidInputError(
            f"identifier of pseudonymize must not be a bool; got {identifier!r}. "
            "Pass the subject column (an id), not a flag column."
        )
    if identifier is None or type(identifier).__name__ in _MISSING_TYPES:
        return None
    if isinstance(identifier, int | np.integer):
        return str(int(identifier))
    if isinstance(identifier, float | np.floating):
        value = float(identifier)
        if math.isnan(value):
            return None
        if value.is_integer():
            return str(int(value))
        return str(identifier).strip()
    text = str(identifier).strip()
    if not text:
        return None
    match = _INTEGER_TEXT.fullmatch(text)
    if match is not None:
        return str(int(match.group(1)))
    return text


def pseudonymize(secret: bytes, identifier: object) -> str:
    """Return the keyed pseudonym of a subject identifier.

    The identifier is first normalised by :func:`normalize_subject`, so ``42``, ``42.0``,
    ``numpy.int64(42)``, ``"42"``, ``" 42 "`` and ``"42.0"`` name the same subject, then keyed
    with HMAC-SHA256.

    Raises
    ------
    InvalidInputError
        If the secret is shorter than 16 bytes, or the identifier names no subject (``None``,
        NaN, blank text) or is a bool.

    Examples
    --------
    >>> pseudonymize(b"k" * 32, 42) == pseudonymize(b"k" * 32, " 42 ")
    True
    >>> pseudonymize(b"k" * 32, 42.0) == pseudonymize(b"k" * 32, "42")
    True
    """
    if len(secret) < 16:
        raise InvalidInputError("secret of pseudonymize must be at least 16 bytes")
    text = normalize_subject(identifier)
    if text is None:
        raise InvalidInputError(
            f"identifier of pseudonymize must not be empty; got {identifier!r}. None, NaN and "
            "blank cells name no subject: leave such rows out of the subject map."
        )
    mac = hmac.new(secret, text.encode("utf-8"), hashlib.sha256).hexdigest()
    return PSEUDONYM_PREFIX + mac


def pseudonymize_many(secret: bytes, identifiers: ArrayLike) -> list[str]:
    """Return the pseudonym of every identifier (see :func:`pseudonymize`)."""
    return [pseudonymize(secret, value) for value in np.asarray(identifiers, dtype=object)]


def is_pseudonym(value: object) -> bool:
    """Return whether ``value`` has the form of a subject pseudonym (``ps:<64 hex>``)."""
    return isinstance(value, str) and _PSEUDONYM_RE.match(value) is not None


def check_pseudonym(value: object, *, name: str = "subject") -> str:
    """Raise :class:`InvalidInputError` unless ``value`` is a pseudonym; return it."""
    if not is_pseudonym(value):
        raise InvalidInputError(
            f"{name} must be a subject pseudonym 'ps:<64 hex>' (raw identifiers are never "
            f"stored; use Workspace.pseudonymize(identifier)); got {value!r}"
        )
    return value  # type: ignore[return-value]
