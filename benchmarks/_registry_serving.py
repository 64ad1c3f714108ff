"""Prediction-logging overhead for ``bench_registry.py``: the logged call beside the unlogged one.

One request = one input row scored by a fitted scikit-learn model (``model.predict(x[None])``,
what a per-request serving endpoint does). For every request the script times the model call
and, right after it, ``logger.log(x, y)``: the added latency of logging is the ``log`` call's
own time (it returns once the record is spooled; the ledger append happens on the background
thread). Throughput is measured over whole rounds, alternating an unlogged round with a logged
one, so a noisy moment hits both; one logger serves every logged round (as one serving process
keeps one), its background flushes competing with the requests inside the rounds' clocks, and
the final flush of what is still pending is timed separately (every prediction is then checked
in the ledger).
"""

# ruff: noqa: N806 - X: the scikit-learn naming

from __future__ import annotations

import statistics
import time
from typing import Any

import numpy as np

from rowtrail.registry._prediction_logger import PredictionLogger
from rowtrail.registry._predictions import (
    PREDICTION_BATCH_KIND,
    find_prediction,
    load_prediction_input,
)

__all__ = ["bench_logging", "fit_model"]


def fit_model(n_features: int, seed: int) -> tuple[Any, np.ndarray]:
    """Return a fitted logistic regression and a pool of request rows."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(2000, n_features))
    y = (X @ rng.normal(size=n_features) > 0).astype(int)
    model = LogisticRegression(max_iter=200).fit(X, y)
    return model, rng.normal(size=(4096, n_features))


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = np.asarray(values) * 1e6
    return {
        "p50_us": float(np.percentile(ordered, 50)),
        "p99_us": float(np.percentile(ordered, 99)),
        "iqr_us": float(np.percentile(ordered, 75) - np.percentile(ordered, 25)),
    }


def _round_unlogged(model: Any, rows: np.ndarray, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        model.predict(rows[i % len(rows)][np.newaxis, :])
    return time.perf_counter() - start


def _round_logged(
    logger: PredictionLogger, model: Any, rows: np.ndarray, n: int
) -> tuple[float, list[float], list[float], list[str]]:
    model_us: list[float] = []
    log_us: list[float] = []
    ids: list[str] = []
    clock = time.perf_counter
    start = clock()
    for i in range(n):
        x = rows[i % len(rows)]
        t0 = clock()
        y = model.predict(x[np.newaxis, :])[0]
        t1 = clock()
        ids.append(logger.log(x, y))
        t2 = clock()
        model_us.append(t1 - t0)
        log_us.append(t2 - t1)
    return clock() - start, model_us, log_us, ids


def _check(ws: Any, model: Any, rows: np.ndarray, ids: list[str], per_round: int) -> None:
    """Every prediction is in the ledger; sampled ones re-read with their input and output."""
    logged = sum(
        e.event.payload["n_predictions"] for e in ws.ledger.entries_of_kind(PREDICTION_BATCH_KIND)
    )
    if logged < len(ids):
        raise SystemExit(f"FAIL: {logged} predictions in the ledger, {len(ids)} logged")
    for k in (0, len(ids) // 2, len(ids) - 1):
        record = find_prediction(ws, ids[k])
        x = load_prediction_input(ws, record)
        if not np.array_equal(x, rows[k % per_round % len(rows)]):
            raise SystemExit(f"FAIL: prediction {ids[k]} has another input")
        if record.output != int(model.predict(x[np.newaxis, :])[0]):
            raise SystemExit(f"FAIL: prediction {ids[k]} has another output")


def bench_logging(
    ws: Any, deployment: str, model: Any, rows: np.ndarray, n: int, *, rounds: int = 5
) -> dict[str, Any]:
    """Measure logged against unlogged serving on ``ws``; check every round's records."""
    per_round = max(1, n // rounds)
    unlogged: list[float] = []
    logged: list[float] = []
    model_us: list[float] = []
    log_us: list[float] = []
    ids: list[str] = []
    # One logger for all logged rounds, as a serving process keeps one: its background thread
    # flushes while requests are served, and the rounds' clocks include that contention.
    logger = PredictionLogger(ws, deployment)
    for _ in range(rounds):
        unlogged.append(per_round / _round_unlogged(model, rows, per_round))
        seconds, m_us, l_us, round_ids = _round_logged(logger, model, rows, per_round)
        logged.append(per_round / seconds)
        model_us += m_us
        log_us += l_us
        ids += round_ids
    start = time.perf_counter()
    logger.close()  # the predictions still pending are appended here
    close_s = time.perf_counter() - start
    _check(ws, model, rows, ids, per_round)
    n_fsync = max(50, per_round // 10)
    with PredictionLogger(ws, deployment, fsync=True) as durable:
        _, _, fsync_us, fsync_ids = _round_logged(durable, model, rows, n_fsync)
    _check(ws, model, rows, fsync_ids, n_fsync)
    return {
        "n_requests": per_round * rounds,
        "rounds": rounds,
        "unlogged_per_s": statistics.median(unlogged),
        "logged_per_s": statistics.median(logged),
        "logged_per_s_range": [min(logged), max(logged)],
        "unlogged_per_s_range": [min(unlogged), max(unlogged)],
        "throughput_ratio": statistics.median(logged) / statistics.median(unlogged),
        "final_flush_ms": close_s * 1e3,
        "model_call": _percentiles(model_us),
        "added_by_log": _percentiles(log_us),
        "added_by_log_fsync": _percentiles(fsync_us),
    }
