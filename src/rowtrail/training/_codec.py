"""Compact codecs for the integer arrays a training trail stores in blobs.

Batch compositions are stored as *dataset positions* (indices the sampler drew), which are
small non-negative integers: each one is written in ``width = bit_length(max)`` bits
(fixed-width bit packing, little-endian bit order), so a sample-use of a dataset of 10^5
samples costs 17 bits. A shuffled epoch is a random permutation, which no general-purpose
compressor shrinks much below that (its entropy is ``log2(n!)/n ≈ log2(n) - 1.44`` bits per
index). Sequential or sorted draws are packed as zig-zag deltas when that needs fewer bits,
and when zlib shrinks the packed bytes further (repeated or clustered draws), the compressed
form is kept instead.

When the order of samples *within* a batch need not be kept (``batch_order="set"``), each
batch is sorted and the chunk is written as one Elias-Fano sequence of ``slot * n + position``
(:func:`encode_batch_sets`): about ``2 + log2(n / batch_size)`` bits per sample-use (9 bits
for batches of 128 out of 20,000 instead of 15).

The positions blob layout is a 16-byte header ``b"RTBP" | version (u8) | width (u8) | flags (u8) |
reserved (u8) | count (u64 LE)`` followed by the packed (maybe zlib-compressed) bits.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rowtrail.errors import InvalidInputError, StorageError

__all__ = [
    "decode_batch_sets",
    "decode_ids_blob",
    "decode_positions",
    "encode_batch_sets",
    "encode_positions",
]

_MAGIC = b"RTBP"
_VERSION = 1
_FLAG_ZLIB = 1
_FLAG_DELTA = 2
_HEADER = struct.Struct("<4sBBBBQ")


def _pack_bits(values: NDArray[np.uint64], width: int) -> bytes:
    shifts = np.arange(width, dtype=np.uint64)
    bits = ((values[:, None] >> shifts) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little").tobytes()


def _unpack_bits(data: bytes, width: int, count: int) -> NDArray[np.int64]:
    raw = np.frombuffer(data, dtype=np.uint8)
    if width in (1, 2, 4, 8):  # whole values in each byte: shift them out
        shifts = np.arange(0, 8, width, dtype=np.uint8)
        used = raw[: (count * width + 7) // 8]
        values = (used[:, None] >> shifts) & np.uint8((1 << width) - 1)
        return values.reshape(-1)[:count].astype(np.int64)
    bits = np.unpackbits(raw, count=count * width, bitorder="little").reshape(count, width)
    if width > 12:  # regroup each value's bits into 8 bytes: faster than an integer matmul
        padded = np.zeros((count, 64), dtype=np.uint8)
        padded[:, :width] = bits
        return np.packbits(padded, axis=1, bitorder="little").view("<u8").reshape(count).view(
            np.int64
        )
    weights = np.left_shift(np.uint64(1), np.arange(width, dtype=np.uint64))
    return np.asarray(bits.astype(np.uint64) @ weights, dtype=np.uint64).view(np.int64)


def encode_positions(positions: ArrayLike) -> bytes:
    """Encode non-negative integers (< 2**62) in a compact, self-describing blob.

    Parameters
    ----------
    positions : array_like of int
        One-dimensional non-negative integers, e.g. the dataset indices drawn in some batches.

    Returns
    -------
    bytes
        Header plus fixed-width packed bits, zlib-compressed when that is smaller.

    Examples
    --------
    >>> blob = encode_positions([5, 0, 3, 7])
    >>> decode_positions(blob).tolist()
    [5, 0, 3, 7]
    >>> len(encode_positions(list(range(1000))[::-1])) < 1000
    True
    """
    values = np.asarray(positions)
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise InvalidInputError(
            "positions of encode_positions must be a 1-d array of integers; "
            f"got shape {values.shape} dtype {values.dtype}"
        )
    if values.size and (int(values.min()) < 0 or int(values.max()) >= 1 << 62):
        raise InvalidInputError(
            "positions of encode_positions must be in [0, 2**62); "
            f"got min {int(values.min())!r}, max {int(values.max())!r}"
        )
    unsigned = values.astype(np.uint64)
    width = max(1, int(values.max()).bit_length()) if values.size else 1
    flags = 0
    if values.size > 1:
        as_int = values.astype(np.int64)
        signed = np.empty_like(as_int)
        signed[0] = 0  # the first value travels raw in 8 bytes after the header
        np.subtract(as_int[1:], as_int[:-1], out=signed[1:])
        zigzag = ((signed << np.int64(1)) ^ (signed >> np.int64(63))).astype(np.uint64)
        delta_width = max(1, int(zigzag.max()).bit_length())
        if delta_width * values.size + 64 < width * values.size:
            unsigned, width, flags = zigzag, delta_width, _FLAG_DELTA
            first = struct.pack("<q", int(as_int[0]))
    packed = _pack_bits(unsigned, width) if values.size else b""
    if flags & _FLAG_DELTA:
        packed = first + packed
    squeezed = zlib.compress(packed, 6)
    if len(squeezed) < len(packed):
        packed, flags = squeezed, flags | _FLAG_ZLIB
    return _HEADER.pack(_MAGIC, _VERSION, width, flags, 0, values.size) + packed


def decode_positions(blob: bytes) -> NDArray[np.int64]:
    """Decode a blob written by :func:`encode_positions` into an ``int64`` array.

    Examples
    --------
    >>> decode_positions(encode_positions([])).tolist()
    []
    """
    if len(blob) < _HEADER.size:
        raise StorageError(f"position blob is {len(blob)} bytes, shorter than its header")
    magic, version, width, flags, _, count = _HEADER.unpack_from(blob)
    if magic != _MAGIC or version != _VERSION or not 1 <= width <= 64:
        raise StorageError(
            f"blob is not a rowtrail position blob (magic {magic!r}, version {version}, "
            f"width {width})"
        )
    body = blob[_HEADER.size :]
    if flags & _FLAG_ZLIB:
        try:
            body = zlib.decompress(body)
        except zlib.error as exc:
            raise StorageError(f"position blob body does not decompress: {exc}") from exc
    if len(body) * 8 < count * width + (64 if flags & _FLAG_DELTA else 0):
        raise StorageError(f"position blob holds {len(body)} bytes, too few for {count} values")
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if flags & _FLAG_DELTA:
        (first,) = struct.unpack_from("<q", body)
        zigzag = _unpack_bits(body[8:], width, count)
        signed = (zigzag.view(np.uint64) >> np.uint64(1)).view(np.int64) ^ -(zigzag & 1)
        return np.cumsum(signed, dtype=np.int64) + np.int64(first)
    return _unpack_bits(body, width, count)


_EF = struct.Struct("<4sBBBBQQQ")
_EF_MAGIC = b"RTEF"


def encode_batch_sets(positions: ArrayLike, counts: ArrayLike) -> tuple[bytes, NDArray[np.int64]]:
    """Encode batches as sorted sets (Elias-Fano); return the blob and the sorting order.

    Parameters
    ----------
    positions : array_like of int
        Non-negative dataset positions of consecutive batches, concatenated.
    counts : array_like of int
        The size of each batch.

    Returns
    -------
    blob : bytes
    order : ndarray of int64
        ``positions[order]`` is what :func:`decode_batch_sets` returns (each batch sorted),
        so values aligned with ``positions`` (per-sample signals) can be reordered the same way.

    Examples
    --------
    >>> blob, order = encode_batch_sets([5, 1, 9, 2, 2], [3, 2])
    >>> decode_batch_sets(blob).tolist(), order.tolist()
    ([1, 5, 9, 2, 2], [1, 0, 2, 3, 4])
    """
    values = np.asarray(positions, dtype=np.int64).reshape(-1)
    sizes = np.asarray(counts, dtype=np.int64).reshape(-1)
    if int(sizes.sum()) != values.size or (values.size and int(values.min()) < 0):
        raise InvalidInputError(
            "positions of encode_batch_sets must be non-negative with counts summing to their "
            f"number; got {values.size} positions, counts summing to {int(sizes.sum())}"
        )
    group = int(values.max()) + 1 if values.size else 1
    slots = np.repeat(np.arange(sizes.size, dtype=np.int64), sizes)
    keyed = slots * group + values
    order = np.argsort(keyed, kind="stable")
    ordered = keyed[order].astype(np.uint64)
    m = ordered.size
    universe = int(ordered[-1]) + 1 if m else 1
    low_bits = max(0, (universe // max(m, 1)).bit_length() - 1)
    low = _pack_bits(ordered & np.uint64((1 << low_bits) - 1), low_bits) if low_bits and m else b""
    high = (ordered >> np.uint64(low_bits)).astype(np.int64) + np.arange(m, dtype=np.int64)
    bits = np.zeros(int(high[-1]) + 1 if m else 0, dtype=np.uint8)
    bits[high] = 1
    high_bytes = np.packbits(bits, bitorder="little").tobytes()
    header = _EF.pack(_EF_MAGIC, _VERSION, low_bits, 0, 0, m, group, len(low))
    return header + low + high_bytes, order.astype(np.int64)


def decode_batch_sets(blob: bytes) -> NDArray[np.int64]:
    """Decode :func:`encode_batch_sets` into positions (each batch sorted), concatenated."""
    if len(blob) < _EF.size:
        raise StorageError(f"batch-set blob is {len(blob)} bytes, shorter than its header")
    magic, version, low_bits, _, _, m, group, n_low = _EF.unpack_from(blob)
    if magic != _EF_MAGIC or version != _VERSION or group < 1:
        raise StorageError(f"blob is not a rowtrail batch-set blob (magic {magic!r})")
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    body = blob[_EF.size :]
    low = (
        _unpack_bits(body[:n_low], low_bits, m) if low_bits else np.zeros(m, dtype=np.int64)
    )
    ones = np.flatnonzero(np.unpackbits(np.frombuffer(body[n_low:], dtype=np.uint8),
                                        bitorder="little"))
    if ones.size != m:
        raise StorageError(f"batch-set blob holds {ones.size} values; its header says {m}")
    keyed = ((ones - np.arange(m)) << low_bits) | low
    return np.asarray(keyed % group, dtype=np.int64)


def decode_ids_blob(blob: bytes) -> NDArray[np.int64]:
    """Decode either position format, recognised by its magic bytes."""
    return decode_batch_sets(blob) if blob[:4] == _EF_MAGIC else decode_positions(blob)
