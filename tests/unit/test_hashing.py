"""Canonical JSON encoding and digests (rowtrail.hashing)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rowtrail.errors import CanonicalEncodingError, InvalidInputError
from rowtrail.hashing import (
    canonical_json,
    canonical_json_text,
    check_digest,
    decode_canonical_json,
    digest_bytes,
    file_digest,
    sha256_digest,
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=25,
)


def test_sorted_keys_no_spaces_utf8() -> None:
    assert (
        canonical_json({"b": 1, "a": {"d": [], "c": "é"}})
        == '{"a":{"c":"é","d":[]},"b":1}'.encode()
    )
    assert canonical_json("\u2028") == '"\u2028"'.encode()  # UTF-8, not \\u escapes


def test_integers_are_exact() -> None:
    big = 2**64 + 1
    assert canonical_json([big, -big]) == f"[{big},{-big}]".encode()
    assert decode_canonical_json(canonical_json(big)) == big


def test_floats_use_shortest_round_trip() -> None:
    assert canonical_json([0.1, 1e-7, 1e22, -0.0]) == b"[0.1,1e-07,1e+22,-0.0]"


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"x": [1, math.nan]}])
def test_nan_and_infinities_are_rejected(value: Any) -> None:
    with pytest.raises(CanonicalEncodingError, match="JSON compliant"):
        canonical_json(value)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (b"raw", "bytes"),
        ({"a": b"raw"}, "bytes"),
        ({1, 2}, "set"),
        ({"a": {1, 2}}, "set"),
        ({1: "x"}, "keys must be str"),
        ({"a": [{None: 1}]}, "keys must be str"),
        ({True: 1}, "keys must be str"),
        ({("t",): 1}, "keys must be str"),
        (object(), "object"),
        ({"a": "\ud800"}, "surrogates"),
    ],
)
def test_non_json_values_are_rejected(value: Any, match: str) -> None:
    with pytest.raises(CanonicalEncodingError, match=match):
        canonical_json(value)


def test_errors_are_value_errors_for_callers() -> None:
    with pytest.raises(ValueError, match="bytes"):
        canonical_json(b"x")


def test_cycles_are_rejected() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(CanonicalEncodingError):
        canonical_json(loop)


def test_numpy_scalars_are_converted() -> None:
    value = {"i": np.int64(7), "f": np.float32(0.5), "d": np.float64(0.1), "b": np.bool_(True)}
    assert canonical_json(value) == b'{"b":true,"d":0.1,"f":0.5,"i":7}'
    with pytest.raises(CanonicalEncodingError):
        canonical_json({"x": np.float64("nan")})
    with pytest.raises(CanonicalEncodingError):
        canonical_json({"x": np.array([1, 2])})


def test_tuples_and_str_subclasses_encode_like_lists_and_str() -> None:
    class Name(str):
        pass

    assert canonical_json({Name("k"): (1, 2)}) == b'{"k":[1,2]}'


def test_text_form_matches_bytes() -> None:
    value = {"z": [1, 2.5], "a": "é"}
    assert canonical_json_text(value).encode() == canonical_json(value)
    with pytest.raises(CanonicalEncodingError):
        canonical_json_text("\udc80")


@pytest.mark.parametrize(
    "data",
    [
        b'{"b":1,"a":2}',  # unsorted keys
        b'{"a": 1}',  # white space
        b'{"a":1.0e0}',  # not the shortest float
        b'"\\u00e9"',  # escaped non-ASCII
        b"NaN",
        b'{"a":Infinity}',
        b"\xff",
        b'{"a":1,"a":1}',  # duplicate key
        b"",
    ],
)
def test_decode_rejects_non_canonical(data: bytes) -> None:
    with pytest.raises(CanonicalEncodingError):
        decode_canonical_json(data)


@given(json_values)
def test_round_trip(value: Any) -> None:
    encoded = canonical_json(value)
    decoded = decode_canonical_json(encoded)
    assert canonical_json(decoded) == encoded
    # Same bytes as the standard library with the canonical options (the reference encoding).
    reference = json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    assert encoded == reference.encode("utf-8")


@given(st.dictionaries(st.text(), json_scalars, max_size=8))
def test_key_order_does_not_matter(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert canonical_json(reordered) == canonical_json(value)


def test_digests() -> None:
    assert sha256_digest(b"abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert digest_bytes(sha256_digest(b"abc")) == hashlib.sha256(b"abc").digest()
    assert check_digest("sha256:" + "0" * 64) == "sha256:" + "0" * 64


@pytest.mark.parametrize(
    "bad", ["sha256:" + "A" * 64, "sha256:" + "0" * 63, "md5:" + "0" * 64, None, 7, "0" * 64]
)
def test_bad_digests_are_rejected(bad: object) -> None:
    with pytest.raises(InvalidInputError, match="sha256:"):
        check_digest(bad, name="blob")


def test_file_digest(tmp_path: Any) -> None:
    path = tmp_path / "data.bin"
    data = bytes(range(256)) * 5000  # more than one 1 MiB chunk
    path.write_bytes(data)
    assert file_digest(path) == sha256_digest(data)
