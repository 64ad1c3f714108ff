"""Unlearning benchmark: erasure side by side with retraining from scratch, in one run.

Usage::

    python benchmarks/bench_unlearning.py --size small   # < 60 s (CI smoke run)
    python benchmarks/bench_unlearning.py --size large   # Adult 24,000 train, credit 20,000

Figures (one process, fixed seeds; traceprop runs in ``benchmarks/.venv-traceprop``, created
on first use with ``pip install traceprop==0.7.0``, as ``bench_lineage.py`` does):

* **Convex** (L2 logistic regression, ``l2 = 1``, unpenalised intercept) on Adult and on the
  synthetic three-table credit data, forget sets: one subject; one subject whose bureau rows
  are aggregated into other applicants' features (credit; see ``credit_features``); random
  1% and 5%; the 1% and 5% with the highest self-influence ``g_iᵀ H⁻¹ g_i``. For each:
  ``unlearn_convex`` (Newton removal/replacement to the default tolerance) against
  ``solve_logistic`` retraining from its default init (the solver the fit itself used),
  both timed in alternating rounds (median and IQR), and ``compare_with_retraining``:
  gap closed (goal 100 ± 3%), parameter residual (< 1%), prediction agreement (>= 99.9%),
  membership AUC difference (within ±0.02), speed-up (>= 50x). The solver-only speed-up
  leaves the data-digest check out (``check_data=False``); the end-to-end one compares
  ``unlearn_convex(check_data=True)`` with ``fit_logistic`` on the retained data (both hash
  the data once).
* **The seed's setting**: binary classification, n = 1000, forget set = the 50 samples with
  the highest self-influence; rowtrail's gap closed next to traceprop's ``tp.unlearn``
  (its gap closed measured on its model, whose weights are compared bit for bit).
* **MLP / SISA**: an MLP on Adult trained as K shards by subject; erasing one subject
  retrains only its shard, side by side with retraining the unsharded model and all shards
  (cost ratio; the SISA literature reports 1.4-4.6x), the accuracy the sharding costs, and a
  bit-identity check against training from scratch on the retained rows (see
  ``_unlearning_sisa.py``).

The script checks its own results (every certified bound holds against the retrained model,
every verification passes, rowtrail's gap closed is within 100 ± 3%) and exits 1 otherwise;
speed goals are reported as met / MISSED. BLAS runs on one thread.
"""

# ruff: noqa: N803, N806 - X: the NumPy / scikit-learn naming

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # must precede the NumPy import below

import numpy as np  # noqa: E402
from _peers import ensure_traceprop  # noqa: E402

from rowtrail.datasets._adult import load_adult  # noqa: E402
from rowtrail.datasets._credit import generate_credit_tables  # noqa: E402
from rowtrail.errors import InvalidInputError  # noqa: E402
from rowtrail.training import ConvexFit, fit_logistic, solve_logistic  # noqa: E402
from rowtrail.training._convex import _penalty  # noqa: E402
from rowtrail.unlearning._convex import ConvexUnlearning, unlearn_convex  # noqa: E402
from rowtrail.unlearning._verify import ModelView, compare_with_retraining  # noqa: E402

PROTOCOL = {
    "small": {"adult_train": 6000, "credit_applicants": 6000, "repeats": 5},
    "large": {"adult_train": 24000, "credit_applicants": 20000, "repeats": 9},
}
L2 = 1.0
GOALS = {"gap": 3.0, "residual": 0.01, "agreement": 0.999, "mia": 0.02, "speedup": 50.0}


# ----------------------------------------------------------------------------- data
def adult_data(n_train: int, seed: int) -> dict[str, Any]:
    data = load_adult()
    order = np.random.default_rng(seed).permutation(data.y.size)
    tr, te = order[:n_train], order[n_train:]
    return {
        "name": "Adult",
        "X": np.ascontiguousarray(data.X[tr]),
        "y": data.y[tr].astype(np.float64),
        "Xt": data.X[te],
        "yt": data.y[te].astype(np.float64),
    }


def _log_scaled(values: np.ndarray, centre: float) -> np.ndarray:
    return np.log1p(np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)) - centre


def _bureau_aggregates(bureau: dict[str, np.ndarray], index: dict[int, int], n: int,
                       drop: np.ndarray | None = None) -> np.ndarray:
    """Per-applicant bureau features: count, active, any overdue, log debt (fixed scales)."""
    owner = np.array([index[k] for k in bureau["SK_ID_CURR"].tolist()])
    keep = np.ones(owner.size, bool) if drop is None else ~np.isin(owner, drop)
    owner = owner[keep]
    active = (bureau["CREDIT_ACTIVE"][keep] == "Active").astype(float)
    overdue = (bureau["CREDIT_DAY_OVERDUE"][keep] > 0).astype(float)
    debt = np.nan_to_num(bureau["AMT_CREDIT_SUM_DEBT"][keep].astype(float), nan=0.0)
    count = np.bincount(owner, minlength=n)
    return np.column_stack([
        np.minimum(count, 10) / 5.0,
        np.minimum(np.bincount(owner, active, n), 10) / 5.0,
        (np.bincount(owner, overdue, n) > 0).astype(float),
        np.log1p(np.bincount(owner, debt, n)) / 10.0,
    ])


def _application_features(app: dict[str, np.ndarray]) -> np.ndarray:
    def onehot(column: str) -> np.ndarray:
        values = np.asarray(app[column]).astype(str)
        cats = sorted(set(values.tolist()))[1:]  # drop one level: the intercept covers it
        return np.column_stack([(values == c).astype(float) for c in cats])

    employed = np.asarray(app["DAYS_EMPLOYED"], dtype=float)
    ext = [np.asarray(app[f"EXT_SOURCE_{k}"], dtype=float) for k in (1, 2, 3)]
    cols = [
        (app["CODE_GENDER"] == "M").astype(float),
        (app["FLAG_OWN_CAR"] == "Y").astype(float),
        (app["FLAG_OWN_REALTY"] == "Y").astype(float),
        np.minimum(np.asarray(app["CNT_CHILDREN"], dtype=float), 4) / 2.0,
        _log_scaled(app["AMT_INCOME_TOTAL"], 12.0),
        _log_scaled(app["AMT_CREDIT"], 13.0),
        _log_scaled(app["AMT_ANNUITY"], 10.0),
        -np.asarray(app["DAYS_BIRTH"], dtype=float) / 3652.5 - 4.3,
        np.where(employed > 0, 0.0, -employed / 3652.5),
        (employed > 0).astype(float),
        np.asarray(app["REGION_RATING_CLIENT"], dtype=float) - 2.0,
        *[np.nan_to_num(e, nan=0.5) * 4 - 2 for e in ext],
        *[np.isnan(e).astype(float) for e in ext],
    ]
    return np.column_stack([*cols, onehot("NAME_INCOME_TYPE"), onehot("NAME_EDUCATION_TYPE"),
                            onehot("NAME_FAMILY_STATUS")])


def credit_features(n_applicants: int, seed: int) -> dict[str, Any]:
    """Applicant features from the 3 credit tables, with a declared guarantor link.

    The synthetic tables give each bureau row to one applicant, so no bureau row reaches
    another applicant's features on its own. To measure the case "a subject whose bureau rows
    are aggregated into others' features" honestly we add, from a fixed seed, a guarantor link
    (10% of applicants name another applicant as guarantor) and four features of the
    guarantor's bureau record (the same aggregates as the applicant's own). Erasing a
    guarantor then removes its own sample and *replaces* the samples of the applicants it
    guarantees with features recomputed without its bureau rows. All transforms use fixed
    scales (no fitted statistics), so nothing else changes.
    """
    tables = generate_credit_tables(n_applicants, seed)
    app, bureau = tables["application"], tables["bureau"]
    index = {k: i for i, k in enumerate(app["SK_ID_CURR"].tolist())}
    n = len(index)
    rng = np.random.default_rng(seed + 17)
    guarantor = np.where(rng.random(n) < 0.10, rng.integers(0, n, n), -1)
    guarantor[guarantor == np.arange(n)] = -1
    own = _bureau_aggregates(bureau, index, n)

    def features(drop: np.ndarray | None = None) -> np.ndarray:
        agg = own if drop is None else _bureau_aggregates(bureau, index, n, drop)
        g = np.where(guarantor >= 0, guarantor, 0)
        guaranteed = (guarantor >= 0).astype(float)[:, None]
        return np.column_stack([_application_features(app), agg, guaranteed,
                                agg[g] * guaranteed])

    X = features()
    y = np.asarray(app["TARGET"], dtype=np.float64)
    n_train = int(0.8 * n)
    return {
        "name": "credit",
        "X": np.ascontiguousarray(X[:n_train]), "y": y[:n_train],
        "Xt": X[n_train:], "yt": y[n_train:],
        "guarantor": guarantor[:n_train], "n_bureau": np.rint(own[:n_train, 0] * 5),
        "features_without": lambda s: features(np.array([s]))[:n_train],
    }


# ----------------------------------------------------------------------------- timing
def interleaved(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, list[float]]:
    """CPU seconds of each function over ``repeats`` alternating rounds (ABAB...).

    CPU time of the process (``time.process_time``; BLAS on one thread) leaves out the time
    it waited for a core, which on a shared machine is most of the noise in wall time.
    """
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for key, fn in fns.items():
            start = time.process_time()
            fn()
            times[key].append(time.process_time() - start)
    return times


def med_iqr(values: list[float]) -> tuple[float, float]:
    q1, q2, q3 = np.percentile(values, [25, 50, 75])
    return float(q2), float(q3 - q1)


def self_influence(fit: ConvexFit, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    grads = fit.sample_gradients(X, y)
    return np.einsum("ij,ij->i", grads, np.linalg.solve(fit.hessian, grads.T).T)


# ----------------------------------------------------------------------------- convex
def forget_sets(d: dict[str, Any], fit: ConvexFit, seed: int) -> dict[str, dict[str, Any]]:
    n = d["y"].size
    rng = np.random.default_rng(seed + 5)
    top = np.argsort(-self_influence(fit, d["X"], d["y"]))
    sets: dict[str, dict[str, Any]] = {"one subject": {"remove": rng.choice(n, 1)}}
    if "guarantor" in d:
        counts = np.bincount(d["guarantor"][d["guarantor"] >= 0], minlength=n)[:n]
        candidates = np.flatnonzero((counts >= 2) & (d["n_bureau"] > 0))
        subject = int(candidates[np.argmax(counts[candidates])])
        rows = np.flatnonzero(d["guarantor"] == subject)
        new_x = d["features_without"](subject)[rows]
        sets["one subject, bureau rows in others' features"] = {
            "remove": np.array([subject]), "replace": (rows, new_x),
        }
    for share in (0.01, 0.05):
        k = max(1, round(share * n))
        sets[f"random {share:.0%}"] = {"remove": np.sort(rng.choice(n, k, replace=False))}
        sets[f"top {share:.0%} self-influence"] = {"remove": np.sort(top[:k])}
    return sets


def retained(d: dict[str, Any], case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    X, y = d["X"].copy(), d["y"].copy()
    if "replace" in case:
        X[case["replace"][0]] = case["replace"][1]
    keep = np.ones(y.size, bool)
    keep[case["remove"]] = False
    return X[keep], y[keep]


def run_case(d: dict[str, Any], fit: ConvexFit, case: dict[str, Any],
             repeats: int) -> dict[str, Any]:
    X_r, y_r = retained(d, case)
    design = np.c_[X_r, np.ones(y_r.size)]
    pen = _penalty(design.shape[1], L2, True)
    kwargs = {"remove": case["remove"], "replace": case.get("replace")}
    out: list[ConvexUnlearning] = []
    ref: list[tuple[np.ndarray, int]] = []
    times = interleaved({
        "unlearn": lambda: out.append(
            unlearn_convex(fit, d["X"], d["y"], check_data=False, **kwargs)),
        "retrain": lambda: ref.append(solve_logistic(design, y_r, pen)),
        "unlearn_checked": lambda: unlearn_convex(fit, d["X"], d["y"], **kwargs),
        "fit_logistic": lambda: fit_logistic(X_r, y_r, l2=L2),
        "sklearn": lambda: sklearn_retrain(X_r, y_r),
    }, repeats)
    u, (theta_r, retrain_iters) = out[-1], ref[-1]
    forget = (d["X"][case["remove"]], d["y"][case["remove"]])
    v = compare_with_retraining(
        ModelView.from_linear(fit.theta), ModelView.from_linear(u.theta),
        ModelView.from_linear(theta_r), forget=forget, test=(d["Xt"], d["yt"]),
    )
    t_u, t_r = med_iqr(times["unlearn"]), med_iqr(times["retrain"])
    t_uc, t_f = med_iqr(times["unlearn_checked"]), med_iqr(times["fit_logistic"])
    t_sk = med_iqr(times["sklearn"])
    return {
        "n_forget": int(np.size(case["remove"])), "n_replaced": u.n_replaced,
        "method": u.method, "steps": u.steps, "refreshes": u.hessian_refreshes,
        "retrain_iterations": int(retrain_iters),
        "residual": u.residual, "tolerance": u.tolerance, "bound": u.bound,
        "distance": float(np.linalg.norm(u.theta - theta_r)),
        "verification": v.as_dict(), "passed": v.passed,
        "unlearn_ms": [1e3 * x for x in t_u], "retrain_ms": [1e3 * x for x in t_r],
        "speedup": t_r[0] / t_u[0],
        "unlearn_checked_ms": [1e3 * x for x in t_uc], "fit_ms": [1e3 * x for x in t_f],
        "speedup_end_to_end": t_f[0] / t_uc[0],
        "sklearn_ms": [1e3 * x for x in t_sk], "speedup_sklearn": t_sk[0] / t_u[0],
    }


def sklearn_retrain(X: np.ndarray, y: np.ndarray) -> Any:
    """Retraining as a scikit-learn user does it: ``LogisticRegression(C=1/l2).fit``.

    Its defaults (lbfgs, ``tol=1e-4``) stop earlier than ``solve_logistic``; raised
    ``max_iter`` so it converges rather than warns.
    """
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0 / L2, max_iter=5000).fit(X, y)


def bench_convex(d: dict[str, Any], seed: int, repeats: int) -> list[dict[str, Any]]:
    fit = fit_logistic(d["X"], d["y"], l2=L2)
    rows = []
    for name, case in forget_sets(d, fit, seed).items():
        row = run_case(d, fit, case, repeats)
        rows.append({"data": d["name"], "n_train": int(d["y"].size),
                     "dim": int(fit.theta.size), "forget set": name, **row})
    return rows


# ----------------------------------------------------------------------------- MLP / SISA
def bench_mlp_sisa(size: str) -> list[str]:
    """MLP: exact removal by retraining the affected shard vs full retraining, side by side.

    Sharded (SISA) training by subject (``rowtrail.unlearning._sisa``), run by
    ``_unlearning_sisa.run_sisa_section``, which checks bit-identity with a from-scratch
    training on the retained rows and raises if it does not hold.
    """
    from _unlearning_sisa import run_sisa_section

    return run_sisa_section(size)


# ----------------------------------------------------------------------------- seed setting
def seed_setting(seed: int) -> dict[str, Any]:
    """Binary classification, n = 1000, forget set = the 50 highest self-influence samples."""
    rng = np.random.default_rng(seed + 100)
    d = 20
    w = rng.normal(size=d) * (rng.random(d) < 0.5)
    X = rng.normal(size=(2000, d))
    y = (rng.random(2000) < 1 / (1 + np.exp(-(X @ w + 0.3)))).astype(np.float64)
    data = {"name": "synthetic", "X": X[:1000], "y": y[:1000], "Xt": X[1000:], "yt": y[1000:]}
    fit = fit_logistic(data["X"], data["y"], l2=L2)
    forget = np.sort(np.argsort(-self_influence(fit, data["X"], data["y"]))[:50])
    row = run_case(data, fit, {"remove": forget}, repeats=5)
    keep = np.setdiff1d(np.arange(1000), forget)
    theta_r = solve_logistic(np.c_[data["X"][keep], np.ones(keep.size)], data["y"][keep],
                             _penalty(d + 1, L2, True))[0]
    return {"data": data, "fit": fit, "forget": forget, "theta_r": theta_r, "row": row}


TRACEPROP_SCRIPT = r"""
import json, sys
import numpy as np
import traceprop as tp
from traceprop.attribution.gradient_store import GradientStore

z = np.load(sys.argv[1])
X, y, theta, theta_r, forget = z["X"], z["y"], z["theta"], z["theta_r"], z["forget"]
design = np.c_[X, np.ones(len(y))]
grads = design * (1 / (1 + np.exp(-design @ theta)) - y)[:, None]
is_forget = np.zeros(len(y), bool); is_forget[forget] = True

def forget_loss(t):
    m = design[forget] @ t
    return float(np.mean(np.logaddexp(0, m) - y[forget] * m))

def run(source_id):
    store = GradientStore(proj_dim=512, seed=0)
    for i in range(len(y)):
        store.log_gradient(grads[i], source_id="forget" if is_forget[i] else "retain",
                           sample_index=i)
    model = theta.copy()
    before = model.tobytes()
    res = tp.unlearn(model=model, gradient_store=store, source_id=source_id)
    lo, lu, lr = forget_loss(theta), forget_loss(model), forget_loss(theta_r)
    return {"verified": bool(res.verified), "n_targeted": int(res.n_samples_targeted),
            "influence_before": float(res.influence_before),
            "influence_after": float(res.influence_after),
            "weights_identical": model.tobytes() == before,
            "gap_closed": 100.0 * (lu - lo) / (lr - lo)}

out = {"version": getattr(tp, "__version__", "0.7.0"), "forget": run("forget"),
       "misspelt": run("froget")}
print(json.dumps(out))
"""


def run_traceprop(setting: dict[str, Any]) -> dict[str, Any] | None:
    python = ensure_traceprop()
    if python is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.npz"
        np.savez(path, X=setting["data"]["X"], y=setting["data"]["y"],
                 theta=setting["fit"].theta, theta_r=setting["theta_r"],
                 forget=setting["forget"])
        result = subprocess.run([str(python), "-c", TRACEPROP_SCRIPT, str(path)],
                                capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        print(f"traceprop: run failed ({result.stderr.strip()[-500:]})")
        return None
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


# ----------------------------------------------------------------------------- report
def _goal(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_convex(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'data':<9}{'forget set':<46}{'n':>6}{'repl':>5} {'method':<12}{'steps':>5}"
        f"{'H':>3}{'gap %':>9}{'resid':>10}{'agree':>8}{'AUC u':>7}{'AUC r':>7}{'dAUC':>8}"
        f"{'acc o/u/r':>19}{'unlearn ms':>16}{'retrain ms':>16}{'it':>4}{'x':>7}{'x e2e':>7}"
        f"{'sklearn ms':>12}{'x sk':>7}"
    )
    for r in rows:
        v = r["verification"]
        gap = "undef" if v["gap_closed"] is None else f"{v['gap_closed']:.3f}"
        resid = "n/a" if v["parameter_residual"] is None else f"{v['parameter_residual']:.2e}"
        acc = (f"{v['test_accuracy_original']:.4f}/{v['test_accuracy_unlearned']:.4f}/"
               f"{v['test_accuracy_retrained']:.4f}")
        print(
            f"{r['data']:<9}{r['forget set']:<46}{r['n_forget']:>6}{r['n_replaced']:>5} "
            f"{r['method']:<12}{r['steps']:>5}{r['refreshes']:>3}{gap:>9}{resid:>10}"
            f"{v['prediction_agreement']:>8.4f}{v['mia_auc_unlearned']:>7.3f}"
            f"{v['mia_auc_retrained']:>7.3f}{v['mia_auc_difference']:>+8.4f} {acc:>18}"
            f"{r['unlearn_ms'][0]:>9.2f}±{r['unlearn_ms'][1]:<6.2f}"
            f"{r['retrain_ms'][0]:>9.1f}±{r['retrain_ms'][1]:<6.1f}{r['retrain_iterations']:>4}"
            f"{r['speedup']:>7.1f}{r['speedup_end_to_end']:>7.1f}"
            f"{r['sklearn_ms'][0]:>12.1f}{r['speedup_sklearn']:>7.1f}"
        )
    print("(CPU ms, median ± IQR over alternating rounds; H = exact Hessians recomputed; "
          "it = Newton iterations of the retraining;\n x = retraining / unlearning with the "
          "solver alone; x e2e = fit_logistic / unlearn_convex, both hashing the data;\n"
          " x sk = scikit-learn LogisticRegression(lbfgs).fit on the retained rows / unlearning)")


def summarise(rows: list[dict[str, Any]]) -> list[str]:
    """Print the goals and return the self-check failures (results that are wrong)."""
    errors = []
    for r in rows:
        v, label = r["verification"], f"{r['data']} / {r['forget set']}"
        if not r["distance"] <= r["bound"]:
            errors.append(f"{label}: certified bound {r['bound']:.3g} < distance "
                          f"{r['distance']:.3g}")
        if not r["passed"]:
            errors.append(f"{label}: verification failed: {'; '.join(v['failures'])}")
    fast = [r for r in rows if r["speedup"] >= GOALS["speedup"]]
    fast_sk = [r for r in rows if r["speedup_sklearn"] >= GOALS["speedup"]]
    passed = sum(r["passed"] for r in rows)
    print(f"\ngoals: verification (gap 100 ± 3%, residual < 1%, agreement >= 99.9%, "
          f"|dAUC| <= 0.02) passed in {passed}/{len(rows)} cases: "
          f"{_goal(passed == len(rows))}; speed-up >= 50x reached in {len(fast)}/{len(rows)} "
          f"cases ({', '.join(sorted({r['forget set'] for r in fast})) or 'none'}): "
          f"{_goal(len(fast) == len(rows))} against solve_logistic; against scikit-learn's "
          f"LogisticRegression.fit in {len(fast_sk)}/{len(rows)} cases: "
          f"{_goal(len(fast_sk) == len(rows))}")
    slack = max(r["bound"] / max(r["distance"], 1e-300) for r in rows)
    print("certified bound >= distance to the retrained model: "
          f"{_goal(all(r['distance'] <= r['bound'] for r in rows))} in all cases "
          f"(largest bound / distance {slack:.3g})")
    return errors


def print_seed(setting: dict[str, Any], other: dict[str, Any] | None) -> list[str]:
    v = setting["row"]["verification"]
    print("\nseed setting: binary classification, n = 1000, forget = 50 highest self-influence")
    print(f"  rowtrail unlearn_convex: gap closed {v['gap_closed']:.3f}% "
          f"({setting['row']['method']}, {setting['row']['steps']} steps), parameter residual "
          f"{v['parameter_residual']:.2e}, dAUC {v['mia_auc_difference']:+.4f}, "
          f"{setting['row']['speedup']:.1f}x faster than retraining")
    if other is None:
        print("  traceprop 0.7.0: not measured (see the message above)")
        return []
    f, m = other["forget"], other["misspelt"]
    print(f"  traceprop {other['version']} tp.unlearn: gap closed {f['gap_closed']:.3f}% "
          f"(weights bit-identical after unlearn: {f['weights_identical']}); it reports "
          f"verified={f['verified']} from its projected-gradient 'influence' "
          f"{f['influence_before']:.3f} -> {f['influence_after']:.3f}")
    print(f"  traceprop with a misspelt source id ('froget'): verified={m['verified']}, "
          f"{m['n_targeted']} samples targeted")
    try:
        unlearn_convex(setting["fit"], setting["data"]["X"], setting["data"]["y"], remove=[])
        return ["rowtrail accepted an empty removal"]
    except InvalidInputError as exc:
        print(f"  rowtrail with nothing to remove: {type(exc).__name__}: {str(exc)[:90]}...")
    return []


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(PROTOCOL), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-traceprop", action="store_true", help="skip the traceprop run")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    cfg = PROTOCOL[args.size]
    started = time.perf_counter()
    print(f"# bench_unlearning --size {args.size}  "
          f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} cpus, "
          f"load {os.getloadavg()[0]:.2f})")
    rows = bench_convex(adult_data(cfg["adult_train"], args.seed), args.seed, cfg["repeats"])
    rows += bench_convex(credit_features(cfg["credit_applicants"], args.seed), args.seed,
                         cfg["repeats"])
    print_convex(rows)
    errors = summarise(rows)
    print("\nMLP / SISA shard retraining (exact removal; the SISA literature reports "
          "1.4-4.6x faster than full retraining)")
    mlp = bench_mlp_sisa(args.size)
    for line in mlp:
        print(line)
    setting = seed_setting(args.seed)
    other = None if args.no_traceprop else run_traceprop(setting)
    errors += print_seed(setting, other)
    if setting["row"]["verification"]["gap_closed"] is None or abs(
            setting["row"]["verification"]["gap_closed"] - 100) > GOALS["gap"]:
        errors.append("seed setting: rowtrail's gap closed is outside 100 ± 3%")
    print(f"\n{time.perf_counter() - started:.1f} s in all; load {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"convex": rows, "mlp": mlp, "traceprop": other,
                                         "seed": setting["row"]}, indent=1, default=float))
    for error in errors:
        print(f"CHECK FAILED: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
