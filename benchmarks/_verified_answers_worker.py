"""Worker of ``bench_verified_answers.py``: the same code runs against both versions.

The parent runs this file with ``PYTHONPATH`` pointing at one version's ``src`` and its own
``ROWTRAIL_STATE_DIR``; it only uses API present both before and after issue 9.

    python _verified_answers_worker.py build   WORKDIR SIZE EXPECTED_SRC
    python _verified_answers_worker.py measure WORKDIR SIZE EXPECTED_SRC [--profile]

``build`` writes a workspace under ``WORKDIR/ws`` (fixed seeds) and ``WORKDIR/info.json``;
``measure`` times the answer paths in this fresh process and prints one JSON line on stdout
with the timings and the answers (top-k rows, usage kinds, proven entry counts) that the parent
compares across versions. Any failed check exits non-zero.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

N_ROWS = {"small": 2_000, "large": 20_000}
N_EVENTS = 5_000
SUBJECT_EVERY = 250  # every 250th stream event names the probed subject (20 of 5,000)
TOP_K = 20
WARM_BUDGET_S = {"small": 0.25, "large": 0.6}  # per answer path per round
VERIFY_REPS = {"small": 3, "large": 2}  # fresh handles per round


def fail(message: str) -> NoReturn:
    print(f"worker check failed: {message}", file=sys.stderr)
    raise SystemExit(1)


def import_rowtrail(expected_src: str) -> Any:
    import rowtrail as rt

    where = Path(rt.__file__).resolve()
    if Path(expected_src).resolve() not in where.parents:
        fail(f"imported rowtrail from {where}, expected it under {expected_src}")
    # Import the lazy subpackages now so that no first call below pays for an import.
    import rowtrail.attribution
    import rowtrail.lineage
    import rowtrail.training

    return rt


def raw_id(i: int) -> str:
    return f"C{i:06d}"


def build(workdir: Path, size: str, rt: Any) -> dict[str, Any]:
    from rowtrail.attribution import (
        Attributor,
        ExactInfluenceScorer,
        convex_fit_query,
        log_prediction,
        save_attributor,
    )
    from rowtrail.lineage import get_source
    from rowtrail.training import fit_logistic

    n = N_ROWS[size]
    rng = np.random.default_rng(9)
    x = rng.normal(size=(n, 4))
    y = (x[:, 0] - 0.7 * x[:, 1] + 0.5 * rng.normal(size=n) > 0).astype(float)
    csv = workdir / "applicants.csv"
    with csv.open("w") as f:
        f.write("id,x0,x1,x2,x3,y\n")
        for i in range(n):
            f.write(raw_id(i) + "," + ",".join(f"{v:.6f}" for v in x[i]) + f",{y[i]:.0f}\n")
    probe = int(rng.integers(n))  # the subject whose answers are timed
    start = time.perf_counter()
    ws = getattr(rt, "init", rt.open)(workdir / "ws")  # rt.init after issue 9, rt.open before
    data = np.asarray(rt.load_csv(csv, workspace=ws, subject="id"))
    xs, ys = data[:, :4], data[:, 4]
    with ws.training_run("fit", params={"l2": 1.0}) as run:
        fit = fit_logistic(
            xs, ys, l2=1.0, run=run, row_ids=get_source(ws, "applicants.csv").row_ids()
        )
    scorer = ExactInfluenceScorer.from_convex_fit(fit, xs, ys)
    attributor = Attributor(
        scorer,
        model="fit",
        featurize=lambda rows: [convex_fit_query(fit, rows, target=1)],
        checkpoints=["final"],
        record_indices=[fit.ledger_index] if fit.ledger_index is not None else [],
    )
    save_attributor(ws, attributor)
    query = rng.normal(size=4)
    prediction = log_prediction(
        ws,
        attributor,
        query,
        subject=ws.pseudonymize(raw_id(probe)),
        payload={"decision": "declined", "p": round(float(fit.predict_proba(query[None])[0]), 6)},
    )
    pseudonyms = [ws.pseudonymize(raw_id(i)) for i in range(n)]
    picks = rng.integers(n, size=N_EVENTS)
    values = rng.random(N_EVENTS)
    with ws.ledger.batch() as batch:
        for i in range(N_EVENTS):
            who = probe if i % SUBJECT_EVERY == 0 else int(picks[i])
            batch.append(
                "app.decision",
                {"i": i, "score": round(float(values[i]), 6)},
                subjects=[pseudonyms[who]],
            )
    size_now = ws.ledger.size
    ws.close()
    info = {
        "n_rows": n,
        "prediction": prediction,
        "probe": raw_id(probe),
        "ledger_size": size_now,
        "build_s": time.perf_counter() - start,
    }
    (workdir / "info.json").write_text(json.dumps(info))
    return info


def _answers(ws: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Each answer path once, with what the parent compares across versions."""
    from rowtrail.training import sample_usage

    exp = ws.explain(info["prediction"], top_k=TOP_K)
    uses = sample_usage(ws, subject=info["probe"])
    proven = ws.ledger.proven_entries(subject=ws.pseudonymize(info["probe"]))
    return {
        "top_k": [[s.source, int(s.row_number)] for s in exp.supporting],
        "n_proofs": len(exp.proofs),
        "usage_kinds": sorted(u.kind for u in uses),
        "n_fit_uses": sum(u.kind == "fit" for u in uses),
        "proven_kinds": sorted(entry.event.kind for entry, _ in proven),
    }


def _paths(info: dict[str, Any]) -> dict[str, Any]:
    from rowtrail.training import sample_usage

    return {
        "explain": lambda ws: ws.explain(info["prediction"], top_k=TOP_K),
        "usage": lambda ws: sample_usage(ws, subject=info["probe"]),
        "proven": lambda ws: ws.ledger.proven_entries(subject=ws.pseudonymize(info["probe"])),
    }


def _first_calls(rt: Any, wsdir: Path, paths: dict[str, Any]) -> dict[str, float]:
    """Seconds of each path's first call on a new handle (one handle for all three)."""
    ws = rt.open(wsdir)
    out = {}
    for name, call in paths.items():
        t0 = time.perf_counter()
        call(ws)
        out[name] = time.perf_counter() - t0
    ws.close()
    return out


def _warm(ws: Any, call: Any, budget_s: float) -> float:
    """Median seconds per call after one untimed call, at least 5 calls."""
    call(ws)
    samples: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(samples) < 5 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        call(ws)
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def _top_functions(profile: cProfile.Profile, src: str, limit: int = 8) -> list[str]:
    """Rowtrail functions by cumulative time, then all functions by own time."""
    stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = []
    for (path, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.items():
        short = path.replace(src.rstrip("/") + "/", "") if src in path else Path(path).name
        rows.append((cumtime, tottime, ncalls, f"{short}:{line}({name})"))
    inside = [r for r in rows if r[3].startswith("rowtrail/")]
    by_cum = sorted(inside, key=lambda r: -r[0])[:limit]
    by_own = sorted(rows, key=lambda r: -r[1])[: limit // 2 + 1]

    def fmt(r: tuple[float, float, int, str]) -> str:
        return f"cum {r[0] * 1e3:8.2f} ms  own {r[1] * 1e3:7.2f} ms  {r[2]:6d}x  {r[3]}"

    return [fmt(r) for r in by_cum] + ["-- by own time --"] + [fmt(r) for r in by_own]


def measure(workdir: Path, size: str, rt: Any, src: str, profile: bool) -> dict[str, Any]:
    info = json.loads((workdir / "info.json").read_text())
    wsdir = workdir / "ws"
    paths = _paths(info)
    if profile:  # one profiled call per path: first call in this new process, then warm calls
        out: dict[str, Any] = {"profiles": {}}
        ws = rt.open(wsdir)
        for name, call in paths.items():
            prof = cProfile.Profile()
            prof.runcall(call, ws)
            out["profiles"][f"{name}_process"] = _top_functions(prof, src)
        for name, call in paths.items():
            prof = cProfile.Profile()
            for _ in range(20):
                prof.runcall(call, ws)
            out["profiles"][f"{name}_warm"] = _top_functions(prof, src)
        ws.close()
        fresh = rt.open(wsdir)
        prof = cProfile.Profile()
        prof.runcall(fresh.verify)
        fresh.close()
        out["profiles"]["verify"] = _top_functions(prof, src)
        return out

    timings: dict[str, float] = {}
    # 1. First call of each path in this new process on a new handle (what a CLI call pays).
    for name, seconds in _first_calls(rt, wsdir, paths).items():
        timings[f"{name}_process"] = seconds
    # 2. Full verify, each on a freshly opened handle.
    verify_s = []
    for _ in range(VERIFY_REPS[size]):
        fresh = rt.open(wsdir)
        t0 = time.perf_counter()
        report = fresh.verify()
        verify_s.append(time.perf_counter() - t0)
        if report.size != info["ledger_size"]:
            fail(f"verify covered {report.size} entries, the workspace holds {info['ledger_size']}")
        fresh.close()
    timings["verify"] = statistics.median(verify_s)
    # 3. First call on a new handle in this (now warm) process (a service opening per request).
    for name, seconds in _first_calls(rt, wsdir, paths).items():
        timings[f"{name}_handle"] = seconds
    # 4. Warm: the same handle, after one untimed call.
    ws = rt.open(wsdir)
    for name, call in paths.items():
        timings[f"{name}_warm"] = _warm(ws, call, WARM_BUDGET_S[size])
    answers = _answers(ws, info)
    ws.close()
    if len(answers["top_k"]) != TOP_K:
        fail(f"explain returned {len(answers['top_k'])} supporting rows, expected {TOP_K}")
    if answers["n_proofs"] == 0:
        fail("explain returned no proofs")
    if answers["n_fit_uses"] < 1:
        fail(f"sample_usage found no fit use of {info['probe']}: {answers['usage_kinds']}")
    n_stream = sum(1 for i in range(N_EVENTS) if i % SUBJECT_EVERY == 0)
    if answers["proven_kinds"].count("app.decision") < n_stream:
        fail(f"proven_entries found fewer than the {n_stream} stream events of the subject")
    if "prediction.made" not in answers["proven_kinds"]:
        fail("proven_entries did not return the subject's prediction")
    return {"timings_s": timings, "answers": answers, "info": info}


def main() -> None:
    mode, workdir, size, src = sys.argv[1:5]
    rt = import_rowtrail(src)
    if mode == "build":
        out = build(Path(workdir), size, rt)
    elif mode == "measure":
        out = measure(Path(workdir), size, rt, src, "--profile" in sys.argv[5:])
    else:
        fail(f"unknown mode {mode!r}")
    out["rowtrail"] = rt.__file__
    print(json.dumps(out))


if __name__ == "__main__":
    main()
