"""Checks shared by the file readers (``load_csv``, ``rt.pandas``, ``rt.polars``).

A reader must fail before anything is written: a repeated header name (which the engines
rename, or which would let one column's data replace another's) and an engine's own error
(a missing file, a parser error, an unknown option) both become an
:class:`~rowtrail.errors.InvalidInputError` raised before the source is registered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from rowtrail.errors import InvalidInputError

__all__ = ["check_unique_header", "duplicated_names", "reader_error"]


def duplicated_names(names: Sequence[object]) -> list[str]:
    """Return the names that occur more than once in ``names``, in first-seen order.

    Examples
    --------
    >>> duplicated_names(["a", "b", "a", "c", "b", "a"])
    ['a', 'b']
    """
    seen: set[str] = set()
    repeated: dict[str, None] = {}
    for name in names:
        text = str(name)
        if text in seen:
            repeated[text] = None
        seen.add(text)
    return list(repeated)


def check_unique_header(caller: str, path: object, names: Sequence[object]) -> None:
    """Raise :class:`InvalidInputError` if the header ``names`` repeats a column name."""
    repeated = duplicated_names(names)
    if repeated:
        raise InvalidInputError(
            f"header of {caller} must name each column once; got {repeated!r} more than once "
            f"in {os.fspath(path) if isinstance(path, str | os.PathLike) else path!r}, so one "
            "column's data would replace or be renamed after another's. Rename the columns in "
            "the file. Nothing was registered."
        )


def reader_error(caller: str, path: object, exc: Exception) -> InvalidInputError:
    """Return the typed error for a reader engine's own failure (raise it ``from exc``)."""
    shown = os.fspath(path) if isinstance(path, str | os.PathLike) else path
    if isinstance(exc, TypeError):
        what = f"keyword arguments of {caller} must be options the reader accepts"
        fix = "Check the option names against the reader's documentation."
    elif isinstance(exc, OSError):
        what = f"path of {caller} must be a readable file"
        fix = "Check the path for a typo and the file's permissions."
    else:
        what = f"path of {caller} must be a file the reader can parse with these options"
        fix = "Fix the file or the parsing options."
    return InvalidInputError(
        f"{what}; got {shown!r}: {type(exc).__name__}: {exc}. {fix} Nothing was registered."
    )
