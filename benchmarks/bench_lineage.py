"""Lineage benchmark: capture overhead and query cost, as ratios measured side by side.

Usage::

    python benchmarks/bench_lineage.py --size small   # pipeline at 10^3, 10^4, 10^5 elements
    python benchmarks/bench_lineage.py --size large   # pipeline at 10^3, 10^4, 10^6, 10^7

Figures (one process, fixed seed; the traceprop figures come from a subprocess running in
``benchmarks/.venv-traceprop``, created on first use with ``pip install traceprop==0.7.0``):

* the seed pipeline (standardize, filter, elementwise ops, matmul, reorder, concat of two
  sources) on traced arrays vs the same code on plain NumPy arrays, rounds interleaved;
  goals: <= 2x at 10^3 elements, <= 1.3x at 10^4, <= 1.03x at 10^6;
* fixed cost per traced op (``X + 1`` on a 10x4 array, minus the plain op); goal <= 3 us;
* ``ancestors()`` on a depth-1000 chain; goal <= 0.05 ms;
* all times are CPU time of the process (``time.process_time``), not wall time, so other
  tenants of a shared machine do not count while it waits for a core;
* ``rows_of`` (first call materialises the row map, then cached) and ``derived_from`` at
  10^6 rows; persisted bytes per output row (``rt.flush``); memory kept after 10^5
  discarded ops.

The script checks its own results (traced and plain outputs equal; lineage of sampled rows
equals the ground truth carried in column 0) and exits non-zero otherwise.
"""

# ruff: noqa: N803, N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

import argparse
import gc
import inspect
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
import tracemalloc
from typing import Any

import numpy as np
from _peers import ensure_traceprop

import rowtrail as rt

SIZES = {"small": [10**3, 10**4, 10**5], "large": [10**3, 10**4, 10**6, 10**7]}
N_COLS = 10

PIPELINE = """
def seed_pipeline(A, B, W, np):
    A_norm = (A - A.mean(axis=0)) / A.std(axis=0)
    kept = A_norm[A_norm[:, 3] > 0]
    Z = np.tanh(kept) * 0.5 + kept
    Z = (Z @ W) * 2.0 - 1.0
    Z = Z[np.argsort(Z[:, 1])]
    return np.concatenate([Z, B @ W])
"""
_namespace: dict[str, Any] = {}
exec(PIPELINE, _namespace)  # the same source text runs in the traceprop subprocess
seed_pipeline = _namespace["seed_pipeline"]


def make_inputs(elements: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n = max(elements // N_COLS, 4)
    A = rng.normal(size=(n, N_COLS))
    A[:, 0] = np.arange(n)  # ground-truth row number travels in column 0 until the matmul
    B = rng.normal(size=(max(n // 2, 2), N_COLS))
    W = np.eye(N_COLS)[:, :N_COLS]
    return A, B, W


def interleaved(
    funcs: dict[str, Any], budget_s: float, after_each: Any = None
) -> dict[str, float]:
    """Median CPU seconds per call of each function, rounds alternating between them.

    CPU time of this process (``time.process_time``) rather than wall time, so that other
    tenants of a shared machine do not count while this process waits for a core.

    With ``plain`` and ``traced`` keys, also ``ratio``: the median over rounds of the ratio
    of adjacent measurements, which cancels slow drifts in the load of a shared machine.
    """
    for f in funcs.values():
        f()
    start = time.process_time()
    for f in funcs.values():
        f()
    once = max((time.process_time() - start) / len(funcs), 1e-7)
    inner = max(1, int(0.02 / once))
    rounds = max(9, min(61, int(budget_s / (once * inner * len(funcs)))))
    samples: dict[str, list[float]] = {k: [] for k in funcs}
    order = list(funcs.items())
    for r in range(rounds):
        # ABBA: alternate which function runs first, so order effects cancel in the ratio.
        for key, f in order if r % 2 == 0 else order[::-1]:
            t0 = time.process_time()
            for _ in range(inner):
                f()
            samples[key].append((time.process_time() - t0) / inner)
            if after_each is not None:
                after_each()
    out = {k: statistics.median(v) for k, v in samples.items()}
    if "plain" in samples and "traced" in samples:
        pairs = zip(samples["traced"], samples["plain"], strict=True)
        out["ratio"] = statistics.median(t / p for t, p in pairs)
    return out


def bench_pipeline(ws: rt.Workspace, elements: int) -> dict[str, Any]:
    A, B, W = make_inputs(elements)
    At = rt.track(A, source=f"a{elements}", workspace=ws)
    Bt = rt.track(B, source=f"b{elements}", workspace=ws)
    plain = seed_pipeline(A, B, W, np)
    traced = seed_pipeline(At, Bt, W, np)
    if not np.array_equal(np.asarray(traced), plain):
        raise SystemExit(f"traced output differs from plain NumPy at {elements} elements")
    check_rows(traced, A)
    budget = 4.0 if elements < 10**6 else (15.0 if elements < 10**7 else 40.0)
    times = interleaved(
        {
            "plain": lambda: seed_pipeline(A, B, W, np),
            "traced": lambda: seed_pipeline(At, Bt, W, np),
        },
        budget,
    )
    return {
        "elements": elements,
        "plain_ms": times["plain"] * 1e3,
        "traced_ms": times["traced"] * 1e3,
        "ratio": times["ratio"],
    }


def check_rows(traced: Any, A: np.ndarray) -> None:
    """Recompute the kept/sorted rows with plain NumPy and compare with rows_of."""
    A_norm = (A - A.mean(axis=0)) / A.std(axis=0)
    kept_rows = np.flatnonzero(A_norm[:, 3] > 0)
    kept = A_norm[kept_rows]
    Z = ((np.tanh(kept) * 0.5 + kept) @ np.eye(N_COLS)) * 2.0 - 1.0
    order = kept_rows[np.argsort(Z[:, 1])]
    view = rt.lineage(traced)
    for i in np.linspace(0, len(order) - 1, num=min(25, len(order))).astype(int):
        got = view.rows_of(int(i)).pairs()
        if len(got) != 1 or got[0][1] != int(order[i]):
            raise SystemExit(f"rows_of({i}) = {got}, expected row {order[i]}")


def per_op_cost() -> dict[str, float]:
    ws = rt.init(tempfile.mkdtemp())
    data = np.ones((10, 4))
    X = rt.track(data, source="tiny", workspace=ws)
    times = interleaved({"plain": lambda: data + 1, "traced": lambda: X + 1}, 2.0)
    getitem = interleaved({"plain": lambda: data[2:8], "traced": lambda: X[2:8]}, 1.0)
    return {
        "plain_us": times["plain"] * 1e6,
        "traced_us": times["traced"] * 1e6,
        "overhead_us": (times["traced"] - times["plain"]) * 1e6,
        "slice_overhead_us": (getitem["traced"] - getitem["plain"]) * 1e6,
    }


def ancestors_cost() -> float:
    ws = rt.init(tempfile.mkdtemp())
    Y = rt.track(np.ones((4, 2)), source="chain", workspace=ws)
    for _ in range(1000):
        Y = Y + 1
    view = rt.lineage(Y)
    if len(view.ancestors()) != 1000:
        raise SystemExit("ancestors() of a depth-1000 chain is not 1000 nodes")
    return interleaved({"a": view.ancestors}, 1.0)["a"] * 1e3


def query_costs(n_rows: int) -> dict[str, float]:
    """rows_of / derived_from on a filtered, reordered 10^6-row array; bytes persisted."""
    ws = rt.init(tempfile.mkdtemp())
    rng = np.random.default_rng(1)
    X = rt.track(
        np.column_stack([np.arange(n_rows, dtype=float), rng.normal(size=n_rows)]),
        source="big",
        workspace=ws,
    )
    Y = X[X[:, 1] > -0.5]
    Y = Y[np.argsort(Y[:, 1])] * 2.0
    view = rt.lineage(Y)
    t0 = time.process_time()
    first = view.rows_of(0).pairs()
    cold_ms = (time.process_time() - t0) * 1e3
    if first != [("big", int(np.asarray(Y)[0, 0] / 2))]:
        raise SystemExit(f"rows_of(0) at 10^6 rows is wrong: {first}")
    picks = rng.integers(0, len(Y), 2000)
    t0 = time.process_time()
    for i in picks:
        view.row_ids(int(i))
    warm_us = (time.process_time() - t0) / len(picks) * 1e6
    t0 = time.process_time()
    for i in picks:
        view.rows_of(int(i))
    rows_of_us = (time.process_time() - t0) / len(picks) * 1e6
    target = int(np.asarray(Y)[12345, 0] / 2)
    t0 = time.process_time()
    reached = view.derived_from("big", target)
    derived_ms = (time.process_time() - t0) * 1e3
    if reached.tolist() != [12345]:
        raise SystemExit(f"derived_from at 10^6 rows is wrong: {reached[:5]}")
    before = ws.ledger.size
    digest = rt.flush(Y, name="big")
    event = ws.ledger.entry(before).event
    persisted = sum(ws.ledger.blobs.path_of(d).stat().st_size for d in event.blobs)
    reloaded = rt.load_lineage(ws, digest)
    if reloaded.rows_of(7).pairs() != view.rows_of(7).pairs():
        raise SystemExit("persisted lineage differs after reload")
    return {
        "rows": len(Y),
        "rows_of_cold_ms": cold_ms,
        "row_ids_warm_us": warm_us,
        "rows_of_warm_us": rows_of_us,
        "derived_from_ms": derived_ms,
        "persisted_bytes_per_row": persisted / len(Y),
    }


def discarded_ops_memory(n_ops: int = 100_000) -> float:
    ws = rt.init(tempfile.mkdtemp())
    X = rt.track(np.ones((8, 3)), source="mem", workspace=ws)
    for _ in range(1000):
        _ = X + 1
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for _ in range(n_ops):
        _ = X + 1
    del _
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    return grown / 1024


TRACEPROP_SCRIPT = (
    PIPELINE
    + """
import json, statistics, sys, time
from typing import Any
import numpy as np
import traceprop as tp
from traceprop.graph import reset_graph

""" + inspect.getsource(interleaved) + """
out = {"version": tp.__version__ if hasattr(tp, "__version__") else "0.7.0", "pipeline": []}
for elements in json.loads(sys.argv[1]):
    rng = np.random.default_rng(0)
    n = max(elements // 10, 4)
    A = rng.normal(size=(n, 10)); A[:, 0] = np.arange(n)
    B = rng.normal(size=(max(n // 2, 2), 10)); W = np.eye(10)
    At, Bt = tp.from_numpy(A, source_id="a"), tp.from_numpy(B, source_id="b")
    res = seed_pipeline(At, Bt, W, np)
    rows = getattr(tp.provenance(res).node, "shape", None)  # what it reports after the filter
    ok = np.array_equal(np.asarray(res), seed_pipeline(A, B, W, np))
    # its graph is global and never shrinks: reset it after each sample to keep memory flat
    t = interleaved({"plain": lambda: seed_pipeline(A, B, W, np),
                     "traced": lambda: seed_pipeline(At, Bt, W, np)},
                    4.0 if elements < 10**6 else (15.0 if elements < 10**7 else 40.0),
                    reset_graph)
    out["pipeline"].append({"elements": elements, "ratio": t["ratio"], "ok": ok,
                            "reported_shape_after_filter": list(rows) if rows else None})
data = np.ones((10, 4)); X = tp.from_numpy(data, source_id="tiny")
t = interleaved({"plain": lambda: data + 1, "traced": lambda: X + 1}, 2.0, reset_graph)
out["overhead_us"] = (t["traced"] - t["plain"]) * 1e6
reset_graph()
Y = tp.from_numpy(np.ones((4, 2)), source_id="chain")
for _ in range(1000):
    Y = Y + 1
view = tp.provenance(Y)
n_anc = len(view.ancestors())
t0 = time.process_time()
for _ in range(200):
    view.ancestors()
out["ancestors_ms"] = (time.process_time() - t0) / 200 * 1e3
out["ancestors_n"] = n_anc
print(json.dumps(out))
"""
)


def run_traceprop(sizes: list[int]) -> dict[str, Any] | None:
    python = ensure_traceprop()
    if python is None:
        return None
    result = subprocess.run(
        [str(python), "-c", TRACEPROP_SCRIPT, json.dumps(sizes)],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode != 0:
        print(f"traceprop: run failed ({result.stderr.strip()[-500:]})")
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def _fmt_goal(value: float, goal: float) -> str:
    return f"(goal <= {goal:g}: {'met' if value <= goal else 'MISSED'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--no-traceprop", action="store_true", help="skip the traceprop run")
    args = parser.parse_args()
    sizes = SIZES[args.size]
    print(
        f"# bench_lineage --size {args.size}  "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cpus)"
    )
    other = None if args.no_traceprop else run_traceprop(sizes)
    goals = {10**3: 2.0, 10**4: 1.3, 10**6: 1.03}
    ws = rt.init(tempfile.mkdtemp())
    print("\nseed pipeline, traced / plain NumPy (CPU time; median ratio of ABBA rounds)")
    print(
        f"{'elements':>10} {'plain ms':>10} {'rowtrail ms':>12} {'rowtrail x':>11} "
        f"{'traceprop x':>12}"
    )
    for k, elements in enumerate(sizes):
        r = bench_pipeline(ws, elements)
        tp_ratio = f"{other['pipeline'][k]['ratio']:.2f}" if other else "n/a"
        goal = _fmt_goal(r["ratio"], goals[elements]) if elements in goals else ""
        print(
            f"{elements:>10} {r['plain_ms']:>10.3f} {r['traced_ms']:>12.3f} "
            f"{r['ratio']:>11.2f} {tp_ratio:>12} {goal}"
        )
    op = per_op_cost()
    tp_op = f"{other['overhead_us']:.1f} us" if other else "n/a"
    print(
        f"\nfixed cost per traced op (X + 1 on 10x4): {op['overhead_us']:.2f} us "
        f"{_fmt_goal(op['overhead_us'], 3.0)}; plain op {op['plain_us']:.2f} us; "
        f"slice {op['slice_overhead_us']:.2f} us; traceprop {tp_op}"
    )
    anc = ancestors_cost()
    tp_anc = f"{other['ancestors_ms']:.3f} ms" if other else "n/a"
    print(
        f"ancestors() on a depth-1000 chain: {anc:.4f} ms {_fmt_goal(anc, 0.05)}; "
        f"traceprop {tp_anc}"
    )
    q = query_costs(10**6)
    print(
        f"queries on {q['rows']:,} rows (of 10^6 source rows, filtered + reordered): "
        f"rows_of first call {q['rows_of_cold_ms']:.1f} ms (materialises the row map), then "
        f"row_ids {q['row_ids_warm_us']:.2f} us / rows_of {q['rows_of_warm_us']:.2f} us; "
        f"derived_from {q['derived_from_ms']:.2f} ms"
    )
    print(f"persisted bytes per row (flush of that array): {q['persisted_bytes_per_row']:.3f} B")
    print(f"memory kept after 10^5 discarded ops: {discarded_ops_memory():.1f} KiB")
    if other:
        shapes = [p["reported_shape_after_filter"] for p in other["pipeline"]]
        print(
            f"traceprop {other['version']}: outputs equal plain NumPy: "
            f"{all(p['ok'] for p in other['pipeline'])}; rows it can report: none "
            f"(node shape only, e.g. {shapes[0]})"
        )


if __name__ == "__main__":
    main()
