"""Registry benchmark: prediction logging, reproduce and reconcile, each beside its baseline.

Usage::

    python benchmarks/bench_registry.py --size small   # well under a minute (CI smoke run)
    python benchmarks/bench_registry.py --size large

Figures (one process, fixed seeds, each ratio measured side by side in the same run):

* **Prediction logging**, on SQLite and on PostgreSQL (a throwaway durable server started
  through ``scripts/pgserver.py``): per-request serving of a fitted scikit-learn logistic
  regression (``model.predict`` on one row) with and without ``PredictionLogger.log``; the
  added latency per prediction (p50/p99/IQR of the ``log`` call, and with ``fsync=True``) next
  to the model call's own, and predictions/s logged ÷ unlogged (median of alternating rounds,
  range given; one logger across the logged rounds, its background flushes inside their
  clocks, the final flush timed apart). See ``_registry_serving.py``.
* **Ledger appends/s on PostgreSQL ÷ raw COPY** of the same leaf rows into a plain table, on
  the same server (``benchmarks/_pg_appends.py``).
* **reproduce** latency (prediction -> deployment -> model -> run -> data -> code, every record
  proven, artifact re-hashed and loaded, input re-scored): median and p90 over random logged
  predictions, beside the bare ``model.predict`` of one row.
* **reconcile** MB/s over the workspace's blobs ÷ raw SHA-256 MB/s (``hashlib`` over the same
  bytes in memory: the ceiling).

The script checks its own results (every logged prediction is in the ledger and re-reads with
its input and output, every reproduce matches, reconcile finds no mismatch, ``verify()``
passes, the PostgreSQL append check) and exits 1 otherwise. The load average is printed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _registry_serving import bench_logging, fit_model  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail.registry._reconcile import reconcile  # noqa: E402

SIZES = {
    # requests logged per backend, reproduce calls, reconcile MB, PostgreSQL append events
    "small": {"requests": 2_000, "reproduce": 20, "reconcile_mb": 32, "pg_events": 5_000},
    "large": {"requests": 50_000, "reproduce": 200, "reconcile_mb": 512, "pg_events": 100_000},
}
N_FEATURES = 20


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"FAIL: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def deploy(ws: Any, model: Any) -> str:
    """Register a dataset, a run and the model, deploy it; return the deployment id."""
    from rowtrail.hashing import sha256_digest
    from rowtrail.lineage import register_source

    register_source(
        ws,
        name="applicants.csv",
        digest=sha256_digest(b"bench applicants"),
        format="csv",
        schema={"x": "float"},
        n_rows=2000,
    )
    reg = ws.registry
    dataset = reg.register_dataset("applicants", sources=["applicants.csv"])
    run = reg.log_run("scorecard", params={"C": 1.0}, metrics={"auc": 0.9}, datasets=[dataset])
    version = reg.register_model("scorecard", model, run=run, flavor="sklearn")
    return str(reg.deploy("scorecard", version.version, environment="bench").deployment_id)


def bench_reproduce(ws: Any, model: Any, rows: np.ndarray, n: int, seed: int) -> dict[str, Any]:
    """Time reproduce on random logged predictions beside the bare model call."""
    from rowtrail.registry._predictions import PREDICTION_BATCH_KIND
    from rowtrail.registry._reproduce import reproduce

    ids = [
        pid
        for e in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
        for pid in e.event.payload["ids"]
    ]
    rng = np.random.default_rng(seed)
    chosen = [ids[i] for i in rng.choice(len(ids), size=min(n, len(ids)), replace=False)]
    seconds = []
    for pid in chosen:
        start = time.perf_counter()
        result = reproduce(ws, pid)
        seconds.append(time.perf_counter() - start)
        if result.status != "match":
            raise SystemExit(f"FAIL: reproduce {pid}: {result.status} {result.reason}")
    bare = []
    for i in range(len(chosen)):
        start = time.perf_counter()
        model.predict(rows[i][np.newaxis, :])
        bare.append(time.perf_counter() - start)
    return {
        "n": len(chosen),
        "median_ms": statistics.median(seconds) * 1e3,
        "p90_ms": float(np.percentile(seconds, 90)) * 1e3,
        "model_call_median_ms": statistics.median(bare) * 1e3,
        "n_records_proven": len(result.records),
    }


def bench_reconcile(ws: Any, megabytes: int, seed: int, rounds: int = 5) -> dict[str, Any]:
    """Reconcile after adding ``megabytes`` of 1 MiB blobs, alternating with raw SHA-256.

    The first run records its events; every run is checked and timed between two passes of
    ``hashlib.sha256`` over the same bytes in memory (the ceiling); the ratio is the median of
    the per-round ratios.
    """
    rng = np.random.default_rng(seed)
    blobs = [rng.bytes(1 << 20) for _ in range(megabytes)]
    digests = [ws.ledger.put_blob(b) for b in blobs]
    ws.ledger.append("bench.artifacts", {"n": len(digests)}, blobs=digests)
    total = sum(len(b) for b in blobs)

    def raw_rate() -> float:
        start = time.perf_counter()
        for b in blobs:
            hashlib.sha256(b).hexdigest()
        return total / 1e6 / (time.perf_counter() - start)

    rates, raws, ratios = [], [], []
    for round_ in range(rounds):
        before = raw_rate()
        report = reconcile(ws, record=round_ == 0)
        after = raw_rate()
        if not report.ok or report.n_bytes < total:
            raise SystemExit(f"FAIL: reconcile found {len(report.mismatches)} mismatches")
        rates.append(report.mb_per_s)
        raws.append((before + after) / 2)
        ratios.append(report.mb_per_s / raws[-1])
    return {
        "n_files": report.n_files,
        "mb": report.n_bytes / 1e6,
        "reconcile_mb_per_s": statistics.median(rates),
        "reconcile_range": [min(rates), max(rates)],
        "sha256_mb_per_s": statistics.median(raws),
        "ratio": statistics.median(ratios),
        "ratio_range": [min(ratios), max(ratios)],
    }


def run_backend(root: Path, database: str | None, size: dict[str, int], seed: int) -> Any:
    """Log predictions on one backend; return (results, workspace, model, rows)."""
    ws = rt.init(root, database=database) if database else rt.init(root)
    model, rows = fit_model(N_FEATURES, seed)
    deployment = deploy(ws, model)
    result = bench_logging(ws, deployment, model, rows, size["requests"])
    return result, ws, model, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    os.environ.setdefault("ROWTRAIL_STATE_DIR", tempfile.mkdtemp(prefix="bench-registry-state-"))
    result: dict[str, Any] = {
        "size": args.size,
        "load_before": os.getloadavg(),
        "machine": f"{platform.machine()} x{os.cpu_count()}, Python {platform.python_version()}",
    }
    pgserver = _load(HERE.parent / "scripts" / "pgserver.py", "rowtrail_pgserver")
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        logging, ws, model, rows = run_backend(Path(tmp) / "sqlite", None, size, args.seed)
        result["logging_sqlite"] = logging
        result["reproduce"] = bench_reproduce(ws, model, rows, size["reproduce"], args.seed)
        result["reconcile"] = bench_reconcile(ws, size["reconcile_mb"], args.seed)
        ws.verify()
        ws.close()
        with pgserver.PgServer(durable=True) as server:
            logging, ws, model, rows = run_backend(Path(tmp) / "pg", server.url, size, args.seed)
            result["logging_postgresql"] = logging
            ws.verify()
            ws.close()
            appends = _load(HERE / "_pg_appends.py", "rowtrail_pg_appends")
            result["pg_appends"] = appends.measure_pg_appends(server.url, n=size["pg_events"])
    result["load_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print_report(result)
    return 0


def _logging_lines(name: str, r: dict[str, Any]) -> list[str]:
    m, a, f = r["model_call"], r["added_by_log"], r["added_by_log_fsync"]
    lo, hi = r["logged_per_s_range"]
    return [
        f"  {name}: {r['n_requests']:,} requests in {r['rounds']} alternating rounds",
        f"    model call (unlogged)   p50 {m['p50_us']:8.1f} us  p99 {m['p99_us']:8.1f} us",
        f"    added by log()          p50 {a['p50_us']:8.1f} us  p99 {a['p99_us']:8.1f} us  "
        f"IQR {a['iqr_us']:.1f} us  ({a['p50_us'] / m['p50_us']:.2f}x the model call at p50)",
        f"    added by log(fsync)     p50 {f['p50_us']:8.1f} us  p99 {f['p99_us']:8.1f} us",
        f"    predictions/s           unlogged {r['unlogged_per_s']:,.0f}, logged "
        f"{r['logged_per_s']:,.0f} (rounds {lo:,.0f}-{hi:,.0f}); logged/unlogged = "
        f"{r['throughput_ratio']:.2f}; final flush {r['final_flush_ms']:.1f} ms",
    ]


def print_report(result: dict[str, Any]) -> None:
    load = ", ".join(f"{x:.2f}" for x in result["load_before"])
    load_after = ", ".join(f"{x:.2f}" for x in result["load_after"])
    print(f"rowtrail registry benchmark --size {result['size']} ({result['machine']})")
    print(f"  load average before {load}; after {load_after}")
    lines = _logging_lines("SQLite", result["logging_sqlite"])
    lines += _logging_lines("PostgreSQL", result["logging_postgresql"])
    print("\n".join(lines))
    p = result["pg_appends"]
    print(
        f"  PostgreSQL ledger appends {p['ledger_per_s']:,.0f}/s vs raw COPY "
        f"{p['copy_per_s']:,.0f} rows/s: ledger/COPY = {p['ratio']:.3f}"
    )
    r = result["reproduce"]
    print(
        f"  reproduce               median {r['median_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms over "
        f"{r['n']} predictions ({r['n_records_proven']} records proven each; bare model call "
        f"{r['model_call_median_ms']:.3f} ms)"
    )
    c = result["reconcile"]
    print(
        f"  reconcile               {c['reconcile_mb_per_s']:,.0f} MB/s (median of 5, range "
        f"{c['reconcile_range'][0]:,.0f}-{c['reconcile_range'][1]:,.0f}) over {c['mb']:.0f} MB "
        f"in {c['n_files']} blobs; raw SHA-256 {c['sha256_mb_per_s']:,.0f} MB/s; "
        f"reconcile/sha256 = {c['ratio']:.2f} (rounds {c['ratio_range'][0]:.2f}-"
        f"{c['ratio_range'][1]:.2f})"
    )


if __name__ == "__main__":
    sys.exit(main())
