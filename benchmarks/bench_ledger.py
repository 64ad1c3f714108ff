"""Ledger benchmark: durable appends, proofs and storage, each as a ratio measured in one run.

Usage::

    python benchmarks/bench_ledger.py --size small   # 10^5 events, proofs at 10^4 and 10^5
    python benchmarks/bench_ledger.py --size large   # 10^6 events, proofs up to 10^6

Figures (all from the same process, same data, fixed seed):

* durable appends/s of ~200-byte events through ``Ledger.batch(max_events=1000)`` (WAL,
  ``synchronous=FULL``, one transaction per 1,000 events), against
  - the floor: raw SQLite inserts of the same rows (same PRAGMAs and table, executemany,
    one commit per 1,000, nothing computed), and
  - the ceiling: ``hashlib.sha256`` calls/s on the same leaf bytes;
* inclusion and consistency proof generation and verification at 10^4, 10^5 (and 10^6)
  leaves, verification also as a multiple of the SHA-256 calls it must make;
* bytes stored per event (database file after a WAL checkpoint, divided by events).

The script checks its own results (every proof verifies, a full ``verify()`` passes, the
stored size is right) and exits non-zero otherwise. Timings on a shared machine are noisy:
compare the ratios, which are measured side by side.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rowtrail as rt
from rowtrail.ledger import Event, verify_consistency, verify_inclusion

BATCH = 1000
SIZES = {"small": (100_000, [10_000, 100_000]), "large": (1_000_000, [10_000, 100_000, 1_000_000])}
GOAL_APPENDS = 100_000
GOAL_VERIFY_US = 25.0


def make_payloads(n: int, seed: int) -> list[dict[str, Any]]:
    """Training-batch-like payloads whose leaves come to about 200 bytes."""
    rng = random.Random(seed)
    return [
        {
            "step": i,
            "epoch": i // 5000,
            "loss": round(rng.random(), 6),
            "ids": "sha256:" + rng.randbytes(32).hex()[:24],
        }
        for i in range(n)
    ]


def check_log(ledger: Any, leaves: list[bytes], payloads: list[dict[str, Any]]) -> None:
    """The benchmark's own results: every event stored in order, hashed per RFC 9162."""
    rng = random.Random(1)
    for index in [0, len(leaves) - 1, *rng.sample(range(len(leaves)), 20)]:
        entry = ledger.entry(index)
        if entry.event.payload != payloads[index] or entry.leaf != leaves[index]:
            raise SystemExit(f"FAIL: entry {index} is not the event appended at that index")
        if entry.leaf_hash != hashlib.sha256(b"\x00" + entry.leaf).digest():
            raise SystemExit(f"FAIL: entry {index}: stored leaf hash is not SHA-256(0x00 || leaf)")
    if ledger.checkpoint().size != len(leaves):
        raise SystemExit("FAIL: checkpoint does not cover every event")


RAW_SCHEMAS = {
    # The same rows in rowtrail's own table layout, with nothing computed: the floor.
    "raw": (
        ["CREATE TABLE events (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL, hashes BLOB NOT NULL)"],
        "INSERT INTO events VALUES (?, ?, ?)",
    ),
    # A naive ledger table: a kind column with a per-row index (what the kind runs replace).
    "naive": (
        [
            "CREATE TABLE events (idx INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
            "leaf BLOB NOT NULL, hashes BLOB NOT NULL)",
            "CREATE INDEX events_kind ON events (kind, idx)",
        ],
        "INSERT INTO events VALUES (?, ?, ?, ?)",
    ),
}


def open_raw(root: Path, layout: str) -> sqlite3.Connection:
    conn = sqlite3.connect(str(root / f"{layout}.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    for statement in RAW_SCHEMAS[layout][0]:
        conn.execute(statement)
    return conn


def insert_raw(conn: sqlite3.Connection, layout: str, rows: list[tuple[Any, ...]]) -> float:
    """Insert precomputed rows with the ledger's PRAGMAs, one commit per 1,000 rows."""
    insert = RAW_SCHEMAS[layout][1]
    start = time.perf_counter()
    for offset in range(0, len(rows), BATCH):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert, rows[offset : offset + BATCH])
        conn.execute("COMMIT")
    return time.perf_counter() - start


def append_ledger(ws: Any, payloads: list[dict[str, Any]]) -> float:
    start = time.perf_counter()
    with ws.ledger.batch(max_events=BATCH) as batch:
        for payload in payloads:
            batch.append("train.batch", payload)
    return time.perf_counter() - start


def hash_leaves(leaves: list[bytes]) -> float:
    sha256 = hashlib.sha256
    start = time.perf_counter()
    for leaf in leaves:
        sha256(b"\x00" + leaf).digest()
    return time.perf_counter() - start


def bench_appends(root: Path, payloads: list[dict[str, Any]]) -> tuple[dict[str, float], Any]:
    """Appends/s of the ledger, raw and naive SQLite and sha256, interleaved segment by segment.

    The machine is shared, so the four are measured in turns over ten segments of the data and
    each rate is total events / total time: a noisy moment hits all of them alike.
    """
    ws = rt.init(root / "ws")  # the default clock, as users get it
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    leaves = [Event("train.batch", p, time=moment).leaf() for p in payloads]  # same size
    rows = [(i, leaf, hashlib.sha256(b"\x00" + leaf).digest()) for i, leaf in enumerate(leaves)]
    conns = {layout: open_raw(root, layout) for layout in RAW_SCHEMAS}
    spent = dict.fromkeys(["ledger", "raw", "naive", "sha256"], 0.0)
    step = max(BATCH, len(payloads) // 10 // BATCH * BATCH)
    for offset in range(0, len(payloads), step):
        part = slice(offset, offset + step)
        spent["ledger"] += append_ledger(ws, payloads[part])
        spent["raw"] += insert_raw(conns["raw"], "raw", rows[part])
        naive = [(i, "train.batch", leaf, digest) for i, leaf, digest in rows[part]]
        spent["naive"] += insert_raw(conns["naive"], "naive", naive)
        spent["sha256"] += hash_leaves(leaves[part])
    for conn in conns.values():
        conn.close()
    if ws.ledger.size != len(payloads):
        raise SystemExit(f"FAIL: ledger holds {ws.ledger.size} events, expected {len(payloads)}")
    return {name: len(payloads) / seconds for name, seconds in spent.items()}, ws


def per_call_us(func: Any, items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        func(item)
    return (time.perf_counter() - start) / len(items) * 1e6


def bench_proofs(ledger: Any, size: int, rng: random.Random, n: int) -> dict[str, float]:
    indices = [rng.randrange(size) for _ in range(n)]
    proofs = [ledger.prove(i, size) for i in indices[:10]]  # warm caches
    gen_us = per_call_us(lambda i: ledger.prove(i, size), indices)
    proofs = [ledger.prove(i, size) for i in indices]
    ver_us = per_call_us(
        lambda p: verify_inclusion(p.index, p.size, p.leaf_hash, p.path, p.root), proofs
    )
    sha_calls = statistics.mean(len(p.path) for p in proofs)
    olds = [rng.randrange(1, size) for _ in range(n)]
    cons_gen_us = per_call_us(lambda old: ledger.consistency(old, size), olds)
    cons = [ledger.consistency(old, size) for old in olds]
    cons_ver_us = per_call_us(
        lambda c: verify_consistency(c.old_size, c.new_size, c.old_root, c.new_root, c.path), cons
    )
    for proof in proofs:
        proof.verify()
    for proof in cons:
        proof.verify()
    return {
        "size": size,
        "inclusion_generate_us": gen_us,
        "inclusion_verify_us": ver_us,
        "inclusion_path_len": sha_calls,
        "consistency_generate_us": cons_gen_us,
        "consistency_verify_us": cons_ver_us,
        "consistency_path_len": statistics.mean(len(c.path) for c in cons),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--proofs", type=int, default=2000, help="proofs timed per tree size")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    n_events, proof_sizes = SIZES[args.size]
    payloads = make_payloads(n_events, args.seed)
    result: dict[str, Any] = {"size": args.size, "n_events": n_events, "batch": BATCH}
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
        root = Path(tmp)
        rates, ws = bench_appends(root, payloads)
        ledger = ws.ledger
        leaves = [entry.leaf for entry in ledger.entries(list(range(n_events)))]
        check_log(ledger, leaves, payloads)
        rate = rates["ledger"]
        result["event_leaf_bytes"] = statistics.mean(len(leaf) for leaf in leaves)
        result["ledger_appends_per_s"] = rate
        result["raw_sqlite_rows_per_s"] = rates["raw"]
        result["naive_sqlite_rows_per_s"] = rates["naive"]
        result["sha256_calls_per_s"] = rates["sha256"]
        result["ratio_ledger_to_raw_sqlite"] = rate / rates["raw"]
        result["ratio_ledger_to_naive_sqlite"] = rate / rates["naive"]
        result["ratio_ledger_to_sha256"] = rate / rates["sha256"]
        ws.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db_bytes = sum(
            os.path.getsize(p) for p in root.joinpath("ws").glob("rowtrail.db*") if p.is_file()
        )
        result["bytes_per_event"] = db_bytes / n_events
        result["leaf_bytes_share"] = result["event_leaf_bytes"] / result["bytes_per_event"]
        rng = random.Random(args.seed)
        result["proofs"] = [bench_proofs(ledger, s, rng, args.proofs) for s in proof_sizes]
        start = time.perf_counter()
        report = ws.verify()
        result["full_verify_events_per_s"] = n_events / (time.perf_counter() - start)
        if report.size != n_events:
            raise SystemExit("FAIL: verify covered the wrong size")
        ws.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


def print_report(result: dict[str, Any]) -> None:
    print(
        f"rowtrail ledger benchmark --size {result['size']}: {result['n_events']:,} events "
        f"of {result['event_leaf_bytes']:.0f} leaf bytes, batches of {result['batch']:,}"
    )
    print(
        f"  durable appends   {result['ledger_appends_per_s']:>12,.0f} /s   "
        f"(goal {GOAL_APPENDS:,}/s: {result['ledger_appends_per_s'] / GOAL_APPENDS:.2f}x)"
    )
    print(
        f"  raw SQLite rows   {result['raw_sqlite_rows_per_s']:>12,.0f} /s   "
        f"ledger/raw = {result['ratio_ledger_to_raw_sqlite']:.2f}  (same rows, same table, "
        "nothing computed)"
    )
    print(
        f"  naive SQLite rows {result['naive_sqlite_rows_per_s']:>12,.0f} /s   "
        f"ledger/naive = {result['ratio_ledger_to_naive_sqlite']:.2f}  (plus a per-row kind "
        "index)"
    )
    print(
        f"  sha256 calls      {result['sha256_calls_per_s']:>12,.0f} /s   "
        f"ledger/sha256 = {result['ratio_ledger_to_sha256']:.3f}"
    )
    print(
        f"  bytes per event   {result['bytes_per_event']:>12.1f}      "
        f"(leaf bytes are {result['leaf_bytes_share']:.0%} of it)"
    )
    print(f"  full verify       {result['full_verify_events_per_s']:>12,.0f} events/s")
    sha_us = 1e6 / result["sha256_calls_per_s"]
    for p in result["proofs"]:
        print(
            f"  at {p['size']:>9,} leaves: inclusion generate "
            f"{p['inclusion_generate_us']:7.1f} us, "
            f"verify {p['inclusion_verify_us']:5.1f} us "
            f"(goal {GOAL_VERIFY_US:.0f}: {p['inclusion_verify_us'] / GOAL_VERIFY_US:.2f}x; "
            f"{p['inclusion_verify_us'] / (sha_us * (p['inclusion_path_len'] + 1)):.1f}x its "
            f"{p['inclusion_path_len']:.1f}+1 sha256 calls)"
        )
        print(
            f"  {'':>20} consistency generate {p['consistency_generate_us']:7.1f} us, "
            f"verify {p['consistency_verify_us']:5.1f} us "
            f"(path {p['consistency_path_len']:.1f} hashes)"
        )


if __name__ == "__main__":
    sys.exit(main())
