r"""Verify a rowtrail (or any C2SP) log's evidence offline: one module, stdlib + cryptography.

A third party who holds a checkpoint note, the log's verifier key, witness cosignatures and a
proof can check them without a workspace, a database or the rest of rowtrail. This file
imports nothing from rowtrail: copy it alone and run ``python verify_offline.py --help``
(it needs only ``pip install cryptography``); inside rowtrail it is ``rowtrail
verify-offline`` and ``python -m rowtrail.verify_offline``. It is written from the specs,
independently of rowtrail's ledger code, and the test suite checks the two agree.

What it checks (each failure raises :class:`OfflineVerificationError`; nothing returns False):

* C2SP ``signed-note`` / ``tlog-checkpoint``: the note's body is ``origin``, ``size``,
  ``base64 root`` (extension lines allowed), signed by the log's Ed25519 key (vkey type 0x01,
  key id ``SHA-256(name || 0x0A || 0x01 || key)[:4]``); lines by unknown keys are ignored, a
  line by the known key that fails to verify rejects the note;
* C2SP ``tlog-cosignature`` v1: each cosignature by a given witness key (vkey type 0x04) is
  Ed25519 over ``"cosignature/v1\ntime <t>\n" + body``; at least ``quorum`` distinct trusted
  witnesses must have cosigned, and a forged one rejects the note;
* RFC 9162 §2.1.3.2 inclusion of a leaf (``SHA-256(0x00 || entry)``) at an index, and §2.1.4.2
  consistency from an older tree (ideally an older signed checkpoint) to the checkpoint.

Examples
--------
Command line (the files come from ``rowtrail ledger export-trust`` / ``ledger prove --json``
/ ``ledger entry --json`` and the witnesses' published vkeys)::

    python -m rowtrail.verify_offline --checkpoint checkpoint --vkey vkey \
        --witness-vkey w1.vkey --witness-vkey w2.vkey --quorum 2 \
        --proof proof.json --entry entry.json

>>> import base64, hashlib
>>> leaf = leaf_hash(b"entry")
>>> verify_inclusion_path(0, 1, leaf, [], leaf)
>>> verify_consistency_path(1, 1, leaf, leaf, [])
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

# Inside rowtrail the error joins rowtrail's tree (importing only rowtrail.errors, which the
# package has loaded anyway); copied out and run alone, it imports nothing of rowtrail.
if TYPE_CHECKING:  # noqa: SIM114 - mypy must see one definition
    from rowtrail.errors import VerificationError as _Base
elif __package__ == "rowtrail":
    from rowtrail.errors import VerificationError as _Base
else:
    _Base = Exception

__all__ = [
    "OfflineVerificationError",
    "VerifiedCheckpoint",
    "leaf_hash",
    "main",
    "verify_checkpoint",
    "verify_consistency_path",
    "verify_files",
    "verify_inclusion_path",
]

_DASH = "\u2014 "


class OfflineVerificationError(_Base):
    """Evidence checked offline does not verify (a :class:`~rowtrail.errors.VerificationError`).

    When the module runs outside rowtrail it derives from :class:`Exception` instead.
    """


def _fail(message: str) -> OfflineVerificationError:
    return OfflineVerificationError(message)


# ------------------------------------------------------------------ RFC 9162 Merkle proofs


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash ``SHA-256(0x00 || entry)``."""
    return hashlib.sha256(b"\x00" + entry).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(values: Sequence[bytes], what: str) -> None:
    for value in values:
        if len(value) != 32:
            raise _fail(f"{what} must be 32-byte hashes; got {value!r:.60}")


def verify_inclusion_path(
    index: int, size: int, leaf: bytes, path: Sequence[bytes], root: bytes
) -> None:
    """Raise unless ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree ``root``.

    RFC 9162 §2.1.3.2.
    """
    _check_hashes([leaf, root, *path], "leaf, root and proof")
    if not 0 <= index < size:
        raise _fail(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, result = index, size - 1, leaf
    for sibling in path:
        if sn == 0:
            raise _fail("inclusion proof is longer than the tree allows")
        if fn & 1 or fn == sn:
            result = _node(sibling, result)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            result = _node(result, sibling)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _fail("inclusion proof is shorter than the tree needs")
    if not hmac.compare_digest(result, root):
        raise _fail(f"inclusion proof of leaf {index} leads to {result.hex()}, not {root.hex()}")


def verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> None:
    """Raise unless ``path`` proves the tree ``new_root`` extends ``old_root``.

    RFC 9162 §2.1.4.2.
    """
    _check_hashes([old_root, new_root, *path], "roots and proof")
    if not 0 < old_size <= new_size:
        raise _fail(f"sizes must satisfy 0 < old <= new; got {old_size}, {new_size}")
    if old_size == new_size:
        if path or not hmac.compare_digest(old_root, new_root):
            raise _fail("equal sizes need an empty proof and equal roots")
        return
    nodes = list(path)
    if old_size & (old_size - 1) == 0:
        nodes.insert(0, old_root)
    if not nodes:
        raise _fail("consistency proof is empty but the sizes differ")
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for value in nodes[1:]:
        if sn == 0:
            raise _fail("consistency proof is longer than the sizes allow")
        if fn & 1 or fn == sn:
            fr, sr = _node(value, fr), _node(value, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, value)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise _fail("consistency proof is shorter than the sizes need")
    if not hmac.compare_digest(fr, old_root) or not hmac.compare_digest(sr, new_root):
        raise _fail(f"consistency proof does not link size {old_size} to size {new_size}")


# ------------------------------------------------------------------ signed notes


@dataclass(frozen=True)
class _Key:
    name: str
    key_id: bytes
    key: Ed25519PublicKey
    kind: int


def _parse_vkey(vkey: str, kind: int) -> _Key:
    parts = vkey.strip().split("+", 2)
    if len(parts) != 3:
        raise _fail(f"a vkey is name+keyid+key; got {vkey!r:.80}")
    name, hex_id, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise _fail(f"vkey {vkey!r:.80} key material is not base64") from None
    if len(raw) != 33 or raw[0] != kind:
        what = "an Ed25519 note key (0x01)" if kind == 1 else "an Ed25519 cosignature key (0x04)"
        raise _fail(f"vkey {vkey!r:.80} is not {what}")
    key_id = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4]
    if key_id.hex() != hex_id.lower():
        raise _fail(f"vkey {vkey!r:.80}: key id {hex_id} does not match the key")
    return _Key(name, key_id, Ed25519PublicKey.from_public_bytes(raw[1:]), kind)


def _split(note: str) -> tuple[str, list[tuple[str, bytes]]]:
    # the body ends at the last blank line (C2SP signed-note); the note ends in a newline
    cut = note.rfind("\n\n", 0, len(note) - 1)
    if cut < 0 or not note.endswith("\n"):
        raise _fail("a signed note is a body, a blank line and signature lines")
    body, block = note[: cut + 1], note[cut + 2 :]
    lines = []
    for line in block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise _fail(f"malformed signature line {line!r:.80}")
        name, _, encoded = line[len(_DASH) :].rpartition(" ")
        try:
            lines.append((name, base64.b64decode(encoded, validate=True)))
        except binascii.Error:
            raise _fail(f"signature of {name!r} is not base64") from None
    return body, lines


@dataclass(frozen=True)
class VerifiedCheckpoint:
    """A checkpoint whose log signature (and cosignatures, if asked) verified."""

    origin: str
    size: int
    root: bytes
    cosigners: dict[str, int]  # witness name -> cosignature timestamp

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready summary."""
        return {"origin": self.origin, "size": self.size, "root": self.root.hex(),
                "cosigners": dict(sorted(self.cosigners.items()))}


def _parse_body(body: str) -> tuple[str, int, bytes]:
    lines = body.split("\n")
    if len(lines) < 4 or not lines[0] or "" in lines[:-1]:
        raise _fail("checkpoint body must be origin, size and root lines")
    size_text = lines[1]
    if not size_text.isascii() or not size_text.isdigit() or (
        len(size_text) > 1 and size_text[0] == "0"
    ):
        raise _fail(f"checkpoint size must be a decimal; got {size_text!r}")
    try:
        root = base64.b64decode(lines[2], validate=True)
    except binascii.Error:
        raise _fail("checkpoint root is not base64") from None
    if len(root) != 32:
        raise _fail("checkpoint root must be 32 bytes")
    return lines[0], int(size_text), root


def verify_checkpoint(
    note: str,
    log_vkey: str,
    *,
    witness_vkeys: Sequence[str] = (),
    quorum: int | None = None,
    not_after: int | None = None,
) -> VerifiedCheckpoint:
    """Verify a checkpoint note's log signature and its witnesses' cosignatures.

    ``quorum`` (default: every witness given) distinct witness keys must have cosigned;
    ``not_after`` refuses cosignatures dated after it (POSIX seconds).
    """
    log = _parse_vkey(log_vkey, 1)
    witnesses = [_parse_vkey(v, 4) for v in witness_vkeys]
    need = len(witnesses) if quorum is None else quorum
    if not 0 <= need <= len(witnesses):
        raise _fail(f"quorum must be between 0 and {len(witnesses)}; got {quorum}")
    body, lines = _split(note)
    origin, size, root = _parse_body(body)
    signed, cosigners = False, {}
    for name, raw in lines:
        if name == log.name and hmac.compare_digest(raw[:4], log.key_id):
            try:
                log.key.verify(raw[4:], body.encode())
            except InvalidSignature:
                raise _fail(f"the log signature by {name!r} does not verify") from None
            signed = True
        for witness in witnesses:
            if name == witness.name and hmac.compare_digest(raw[:4], witness.key_id):
                cosigners[name] = _verify_cosignature(witness, body, raw, not_after)
    if not signed:
        raise _fail(f"checkpoint is not signed by the log key {log.name!r}")
    if len(cosigners) < need:
        raise _fail(f"checkpoint has {len(cosigners)} trusted cosignature(s); {need} required")
    return VerifiedCheckpoint(origin, size, root, cosigners)


def _verify_cosignature(witness: _Key, body: str, raw: bytes, not_after: int | None) -> int:
    if len(raw) != 76:
        raise _fail(f"cosignature of {witness.name!r} is {len(raw)} bytes, not 76 (truncated?)")
    timestamp = int.from_bytes(raw[4:12], "big")
    if not 0 < timestamp < 1 << 63:
        raise _fail(f"cosignature of {witness.name!r} has the timestamp {timestamp}")
    message = f"cosignature/v1\ntime {timestamp}\n{body}".encode()
    try:
        witness.key.verify(raw[12:], message)
    except InvalidSignature:
        raise _fail(f"cosignature of {witness.name!r} does not verify: forged or for another "
                    "checkpoint") from None
    if not_after is not None and timestamp > not_after:
        raise _fail(f"cosignature of {witness.name!r} is dated {timestamp}, in the future")
    return timestamp


# ------------------------------------------------------------------ files and command line


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _fail(f"{what} must be a readable file; got {str(path)!r} ({exc.strerror})") from None


def _hexes(values: object, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise _fail(f"{what} must be a list of hex hashes")
    try:
        return [bytes.fromhex(v) for v in values]
    except (TypeError, ValueError):
        raise _fail(f"{what} must be a list of hex hashes") from None


def _json(path: str | Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(_read(path, what))
    except ValueError:
        raise _fail(f"{what} {str(path)!r} is not JSON") from None
    if not isinstance(data, dict):
        raise _fail(f"{what} {str(path)!r} must be a JSON object")
    return data


def _inclusion(head: VerifiedCheckpoint, proof: dict[str, Any], leaf: bytes | None,
               entry: dict[str, Any] | None) -> dict[str, Any]:
    try:
        index, size = int(proof["index"]), int(proof["size"])
        claimed = bytes.fromhex(proof["leaf_hash"]) if "leaf_hash" in proof else None
    except (KeyError, TypeError, ValueError):
        raise _fail("inclusion proof needs index, size (and leaf_hash as hex)") from None
    if entry is not None:
        try:
            leaf, entry_index = base64.b64decode(entry["leaf"], validate=True), int(entry["index"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise _fail("entry must be `rowtrail ledger entry --json` output") from None
        if entry_index != index:
            raise _fail(f"entry is index {entry_index}, the proof is for index {index}")
    computed = leaf_hash(leaf) if leaf is not None else claimed
    if computed is None:
        raise _fail("give the entry (or leaf) or a proof with leaf_hash")
    if claimed is not None and not hmac.compare_digest(claimed, computed):
        raise _fail("the entry's leaf hash is not the one the proof is for")
    if size != head.size or ("root" in proof and proof["root"] != head.root.hex()):
        raise _fail(f"proof is for a tree of size {size}; the checkpoint has size {head.size}")
    verify_inclusion_path(index, size, computed, _hexes(proof.get("path"), "path"), head.root)
    return {"index": index, "leaf_hash": computed.hex(), "entry_checked": leaf is not None}


def _consistency(head: VerifiedCheckpoint, proof: dict[str, Any],
                 old: VerifiedCheckpoint | None) -> dict[str, Any]:
    try:
        old_size, new_size = int(proof["old_size"]), int(proof["new_size"])
        old_root = old.root if old is not None else bytes.fromhex(proof["old_root"])
    except (KeyError, TypeError, ValueError):
        raise _fail("consistency proof needs old_size, new_size and old_root") from None
    if old is not None and old.size != old_size:
        raise _fail(f"proof starts at size {old_size}; the old checkpoint has {old.size}")
    if new_size != head.size:
        raise _fail(f"proof ends at size {new_size}; the checkpoint has size {head.size}")
    verify_consistency_path(old_size, new_size, old_root, head.root,
                            _hexes(proof.get("path"), "path"))
    return {"old_size": old_size, "old_root": old_root.hex(), "old_signed": old is not None}


def verify_files(
    *,
    checkpoint: str | Path,
    vkey: str | Path,
    witness_vkeys: Sequence[str | Path] = (),
    quorum: int | None = None,
    proof: str | Path | None = None,
    leaf: str | Path | None = None,
    entry: str | Path | None = None,
    old_checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Verify files a third party holds; return a summary or raise.

    ``proof`` is an inclusion proof (``rowtrail ledger prove --json``: index, size,
    leaf_hash, path) or a consistency proof (``rowtrail ledger consistency --json``: old_size,
    new_size, old_root, path). ``leaf`` is the exact leaf bytes, ``entry`` the output of
    ``rowtrail ledger entry --json``; ``old_checkpoint`` an older signed checkpoint the
    consistency proof must start from (its root replaces the proof's ``old_root``).
    """
    log_vkey = _read(vkey, "--vkey").decode().strip()
    witnesses = [_read(v, "--witness-vkey").decode().strip() for v in witness_vkeys]
    note = _read(checkpoint, "--checkpoint").decode("utf-8")
    head = verify_checkpoint(note, log_vkey, witness_vkeys=witnesses, quorum=quorum)
    result: dict[str, Any] = {"ok": True, **head.to_json(), "inclusion": None,
                              "consistency": None}
    old = None
    if old_checkpoint is not None:
        old = verify_checkpoint(_read(old_checkpoint, "--old-checkpoint").decode(), log_vkey)
        if old.origin != head.origin:
            raise _fail(f"old checkpoint is of {old.origin!r}, not {head.origin!r}")
    if proof is None:
        if leaf is not None or entry is not None or old is not None:
            raise _fail("--leaf, --entry and --old-checkpoint need --proof")
        return result
    data = _json(proof, "--proof")
    if "old_size" in data:
        result["consistency"] = _consistency(head, data, old)
    else:
        raw = _read(leaf, "--leaf") if leaf is not None else None
        result["inclusion"] = _inclusion(
            head, data, raw, _json(entry, "--entry") if entry is not None else None
        )
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="verify_offline", description=__doc__.split("\n")[0] if __doc__ else None
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint note file")
    parser.add_argument("--vkey", required=True, help="the log's verifier key file")
    parser.add_argument("--witness-vkey", action="append", default=[],
                        help="a trusted witness's cosignature vkey file (repeatable)")
    parser.add_argument("--quorum", type=int, default=None,
                        help="how many witnesses must have cosigned (default: all given)")
    parser.add_argument("--proof", help="inclusion or consistency proof (JSON)")
    parser.add_argument("--leaf", help="the entry's exact leaf bytes")
    parser.add_argument("--entry", help="`rowtrail ledger entry --json` output")
    parser.add_argument("--old-checkpoint", help="older signed checkpoint (consistency)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; print a JSON summary; return 0 if everything verified, else 1."""
    args = _parser().parse_args(argv)
    try:
        result = verify_files(
            checkpoint=args.checkpoint, vkey=args.vkey, witness_vkeys=args.witness_vkey,
            quorum=args.quorum, proof=args.proof, leaf=args.leaf, entry=args.entry,
            old_checkpoint=args.old_checkpoint,
        )
    except OfflineVerificationError as exc:
        sys.stdout.write(json.dumps({"ok": False, "error": str(exc)}, indent=2) + "\n")
        return 1
    sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
