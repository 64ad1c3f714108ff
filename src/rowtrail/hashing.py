"""Canonical JSON encoding and SHA-256 digests.

Canonical JSON (used for every ledger leaf and every digest of structured data): object keys
sorted, no insignificant white space, UTF-8, no NaN or infinities, integers exact, floats written
with Python's shortest round-trip representation. Values are restricted to JSON types (``dict``
with ``str`` keys, ``list``/``tuple``, ``str``, ``int``, ``float``, ``bool``, ``None``; NumPy
scalars are converted); anything else raises :class:`~rowtrail.errors.CanonicalEncodingError`.

Digests are written ``sha256:<64 hex digits>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from rowtrail.errors import CanonicalEncodingError, InvalidInputError

__all__ = [
    "DIGEST_PREFIX",
    "canonical_json",
    "canonical_json_text",
    "check_digest",
    "decode_canonical_json",
    "digest_bytes",
    "file_digest",
    "sha256_digest",
]

DIGEST_PREFIX = "sha256:"
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


def _convert(value: Any) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise CanonicalEncodingError(
        f"value of type {type(value).__name__} cannot be encoded as canonical JSON; "
        "use str, int, float, bool, None, list or dict with str keys (bytes go in blobs)"
    )


_CONTAINERS = (dict, list, tuple)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR_ONLY = frozenset({str})


def _check_keys(value: Any) -> None:
    # json silently turns int/bool/None keys into strings; canonical JSON must not guess.
    # This walk is on the append hot path: flat objects are checked by type sets, in C.
    if isinstance(value, dict):
        if not _STR_ONLY.issuperset(map(type, value)):
            for key in value:
                if not isinstance(key, str):
                    raise CanonicalEncodingError(
                        f"object keys must be str for canonical JSON; got {key!r} "
                        f"({type(key).__name__})"
                    )
        items: Any = value.values()
    else:
        items = value
    if _SCALARS.issuperset(map(type, items)):
        return
    for item in items:
        if isinstance(item, _CONTAINERS):
            _check_keys(item)


def _make_encoder() -> Callable[[Any], str]:
    """Return a reusable encoder equivalent to ``json.dumps`` with the canonical options.

    Building a ``JSONEncoder`` per call costs more than encoding a small event, so the C
    encoder is built once. Cycles end in ``RecursionError`` (no marker dict, which would not be
    thread safe), which :func:`canonical_json` reports like any other encoding error.
    """
    c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
    if c_make_encoder is not None:
        iterencode = c_make_encoder(
            None, _convert, json.encoder.encode_basestring, None, ":", ",", True, False, False
        )
        join = "".join

        def encode(value: Any) -> str:
            return join(iterencode(value, 0))

        return encode
    encoder = json.JSONEncoder(  # pragma: no cover - CPython always has the C encoder
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=_convert,
    )
    return encoder.encode  # pragma: no cover


_encode = _make_encoder()


def _encode_checked(value: Any) -> str:
    try:
        if isinstance(value, _CONTAINERS):
            _check_keys(value)
        return _encode(value)
    except CanonicalEncodingError:
        raise
    except (ValueError, TypeError, RecursionError) as exc:
        raise CanonicalEncodingError(f"value cannot be encoded as canonical JSON: {exc}") from exc


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates have no UTF-8 form
        raise CanonicalEncodingError(f"value cannot be encoded as canonical JSON: {exc}") from exc


def canonical_json(value: Any) -> bytes:
    r"""Encode ``value`` as canonical JSON bytes.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [True, None, 1.5, "é"]})
    b'{"a":[true,null,1.5,"\xc3\xa9"],"b":1}'
    """
    return _utf8(_encode_checked(value))


def canonical_json_text(value: Any) -> str:
    """Encode ``value`` as canonical JSON text (:func:`canonical_json` before UTF-8).

    The text is guaranteed to have a UTF-8 form (no lone surrogates).

    Examples
    --------
    >>> canonical_json_text({"z": [1, 2.5], "a": "é"})
    '{"a":"é","z":[1,2.5]}'
    """
    text = _encode_checked(value)
    _utf8(text)
    return text


def _reject_constant(name: str) -> Any:
    raise CanonicalEncodingError(f"canonical JSON must not contain {name}")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_json(data: bytes) -> Any:
    """Decode UTF-8 JSON (no NaN or infinities) without checking that it is canonical."""
    try:
        return _DECODER.decode(data.decode("utf-8"))
    except CanonicalEncodingError:
        raise
    except (ValueError, UnicodeDecodeError) as exc:
        raise CanonicalEncodingError(f"bytes are not valid UTF-8 JSON: {exc}") from exc


def decode_canonical_json(data: bytes) -> Any:
    """Decode canonical JSON bytes, raising unless ``data`` is exactly canonical.

    Examples
    --------
    >>> decode_canonical_json(b'{"a":1}')
    {'a': 1}
    """
    value = _decode_json(data)
    if canonical_json(value) != data:
        raise CanonicalEncodingError(
            "bytes are valid JSON but not canonical (sorted keys, no spaces, shortest floats)"
        )
    return value


def sha256_digest(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``.

    Examples
    --------
    >>> sha256_digest(b"")
    'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def digest_bytes(digest: str) -> bytes:
    """Return the 32 raw bytes of a ``sha256:<hex>`` digest, validating its form."""
    check_digest(digest)
    return bytes.fromhex(digest[len(DIGEST_PREFIX) :])


def check_digest(digest: object, *, name: str = "digest") -> str:
    """Raise :class:`InvalidInputError` unless ``digest`` is ``sha256:`` + 64 lowercase hex."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidInputError(
            f"{name} must be 'sha256:' followed by 64 lowercase hex digits; got {digest!r}"
        )
    return digest


def file_digest(path: str | os.PathLike[str]) -> str:
    """Return ``sha256:<hex>`` of a file's bytes, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(chunk)
    return DIGEST_PREFIX + hasher.hexdigest()
