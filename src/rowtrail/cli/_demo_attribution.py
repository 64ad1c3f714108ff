"""Demo section: explain a declined credit application down to rows of the three tables.

Builds (or reuses) the three-table credit data, registers the tables as sources with their
subjects, assembles a training matrix from application rows plus per-applicant bureau and
previous-application aggregates (each sample's lineage lists all the rows it used), fits an
L2 logistic scorecard in a recorded training run, and explains the most clearly declined test
application with exact influence: supporting and opposing applicants, the table rows behind
them, totals per table, the fitted statistics, and verified ledger proofs.
:func:`build_credit_example` is reused by ``benchmarks/bench_attribution.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail import attribution
from rowtrail.datasets import credit
from rowtrail.errors import RowtrailError
from rowtrail.hashing import file_digest
from rowtrail.ids import make_row_ids
from rowtrail.lineage import SourceInfo, get_source, register_source
from rowtrail.training import ConvexFit, fit_logistic

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["CreditExample", "build_credit_example", "section"]

_LOCATION = "rowtrail/cli/_demo_attribution.py"
_THRESHOLD = 0.2  # decline when P(default) is above this (defaults are ~8% of applications)


@dataclass
class CreditExample:
    """The fitted scorecard, its attributor and the held-out applications."""

    attributor: attribution.Attributor
    fit: ConvexFit
    X_train: NDArray[np.float64]
    y_train: NDArray[np.float64]
    X_test: NDArray[np.float64]
    test_rows: NDArray[np.int64]
    sources: dict[str, SourceInfo]
    subjects: NDArray[np.object_]  # pseudonym of each test application (None if unknown)


def _register(
    ws: Any, data: Any, tables: dict[str, dict[str, NDArray[Any]]]
) -> dict[str, SourceInfo]:
    app = tables["application"]
    owner_subject = dict(zip(app["SK_ID_CURR"].tolist(), app["applicant_id"].tolist(), strict=True))
    out = {}
    for name, path in data.paths.items():
        table = tables[name]
        subjects = [owner_subject[k] for k in table["SK_ID_CURR"].tolist()]
        out[name] = register_source(
            ws,
            name=name,
            digest=file_digest(path),
            format="csv",
            schema={c: str(v.dtype) for c, v in table.items()},
            n_rows=len(table["SK_ID_CURR"]),
            path=str(path),
            subject_column="applicant_id",
            subject_ids=subjects,
        )
    return out


def _children(
    keys: NDArray[np.int64], owners: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Owner position of each child row, child rows sorted by owner, and CSR offsets."""
    owner = np.searchsorted(keys, owners)
    order = np.argsort(owner, kind="stable")
    offsets = np.concatenate(([0], np.cumsum(np.bincount(owner, minlength=keys.size))))
    return owner, order.astype(np.int64), offsets.astype(np.int64)


def _mean_by(owner: NDArray[np.int64], values: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    ok = np.isfinite(values)
    total = np.bincount(owner[ok], values[ok], minlength=n)
    count = np.bincount(owner[ok], minlength=n)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _features(
    tables: dict[str, dict[str, NDArray[Any]]],
) -> tuple[NDArray[np.float64], list[tuple[NDArray[np.int64], NDArray[np.int64]]]]:
    app, bur, prev = tables["application"], tables["bureau"], tables["previous_application"]
    keys = app["SK_ID_CURR"]
    n = keys.size
    employed = app["DAYS_EMPLOYED"].astype(np.float64)
    cols = [
        np.log1p(app[c].astype(np.float64))
        for c in ("AMT_INCOME_TOTAL", "AMT_CREDIT", "AMT_ANNUITY")
    ]
    cols += [
        app[c].astype(np.float64)
        for c in (
            "EXT_SOURCE_1",
            "EXT_SOURCE_2",
            "EXT_SOURCE_3",
            "DAYS_BIRTH",
            "CNT_CHILDREN",
            "REGION_RATING_CLIENT",
        )
    ]
    cols += [np.where(employed == 365243, np.nan, employed), (app["CODE_GENDER"] == "F") * 1.0]
    b_owner, b_order, b_off = _children(keys, bur["SK_ID_CURR"])
    p_owner, p_order, p_off = _children(keys, prev["SK_ID_CURR"])
    cols += [
        np.diff(b_off).astype(np.float64),
        np.bincount(b_owner, bur["CREDIT_DAY_OVERDUE"] > 0, minlength=n),
        np.bincount(b_owner, bur["CREDIT_ACTIVE"] == "Active", minlength=n),
        _mean_by(b_owner, np.log1p(bur["AMT_CREDIT_SUM_DEBT"].astype(np.float64)), n),
        np.diff(p_off).astype(np.float64),
        np.bincount(p_owner, prev["NAME_CONTRACT_STATUS"] == "Refused", minlength=n),
        _mean_by(p_owner, np.log1p(prev["AMT_APPLICATION"].astype(np.float64)), n),
    ]
    return np.column_stack(cols), [(b_order, b_off), (p_order, p_off)]


def _lineage(
    sources: dict[str, SourceInfo],
    children: list[tuple[NDArray[np.int64], NDArray[np.int64]]],
    train: NDArray[np.int64],
) -> attribution.RowMapLineage:
    """CSR of source row ids per training sample: its application row + its child rows."""
    app_ids = make_row_ids(sources["application"].index, sources["application"].n_rows)
    child_ids = [
        make_row_ids(sources[name].index, sources[name].n_rows)[order]
        for name, (order, _) in zip(("bureau", "previous_application"), children, strict=True)
    ]
    counts = 1 + sum(np.diff(off)[train] for _, off in children)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    ids = np.empty(int(offsets[-1]), np.int64)
    ids[offsets[:-1]] = app_ids[train]
    cursor = offsets[:-1] + 1
    for (_, off), flat in zip(children, child_ids, strict=True):
        n_each = np.diff(off)[train]
        starts = np.repeat(off[:-1][train] - np.cumsum(np.r_[0, n_each[:-1]]), n_each)
        dest = np.repeat(cursor - np.cumsum(np.r_[0, n_each[:-1]]), n_each)
        ramp = np.arange(int(n_each.sum()))
        ids[dest + ramp] = flat[starts + ramp]
        cursor = cursor + n_each
    ops = [
        {
            "name": "read_csv(application, bureau, previous_application)",
            "kind": "source",
            "location": _LOCATION,
            "fallback": False,
        },
        {
            "name": "group_by(SK_ID_CURR).agg(bureau)",
            "kind": "aggregation",
            "location": _LOCATION,
            "fallback": False,
        },
        {
            "name": "group_by(SK_ID_CURR).agg(previous_application)",
            "kind": "aggregation",
            "location": _LOCATION,
            "fallback": False,
        },
        {
            "name": "left_join(application, aggregates)",
            "kind": "join",
            "location": _LOCATION,
            "fallback": False,
        },
        {"name": "split(train 80%)", "kind": "filter", "location": _LOCATION, "fallback": False},
        {
            "name": "impute_mean+standardize",
            "kind": "transformation",
            "location": _LOCATION,
            "fallback": False,
        },
    ]
    stats = [
        {
            "op": "impute_mean+standardize (mean, std)",
            "location": _LOCATION,
            "fitted_on_rows": {"application": int(train.size)},
        }
    ]
    return attribution.RowMapLineage(offsets, ids, ops=ops, statistics=stats)


def build_credit_example(
    ws: Any, workdir: Path, *, n_applicants: int = 2000, seed: int = 0, l2: float = 10.0
) -> CreditExample:
    """Write, register, featurise and fit the credit data; return the attributor and test set."""
    from rowtrail.datasets._credit import generate_credit_tables

    data = credit(n_applicants=n_applicants, seed=seed, out_dir=workdir / "credit")
    tables = generate_credit_tables(n_applicants, seed)  # the same rows the files hold
    sources = _register(ws, data, tables)
    raw, children = _features(tables)
    order = np.random.default_rng(seed).permutation(n_applicants)
    train, test = (
        np.sort(order[: int(0.8 * n_applicants)]),
        np.sort(order[int(0.8 * n_applicants) :]),
    )
    mean = np.nanmean(raw[train], axis=0)  # fitted statistics: train rows only
    filled = np.where(np.isfinite(raw), raw, mean)
    std = filled[train].std(axis=0) + 1e-9
    x = (filled - mean) / std
    y = tables["application"]["TARGET"].astype(np.float64)
    app_ids = sources["application"].row_ids()
    with ws.training_run("credit-scorecard", params={"l2": l2, "seed": seed}) as run:
        fit = fit_logistic(x[train], y[train], l2=l2, run=run, row_ids=app_ids[train])
    scorer = attribution.ExactInfluenceScorer.from_convex_fit(fit, x[train], y[train])
    records = [fit.ledger_index] if fit.ledger_index is not None else []
    att = attribution.Attributor(
        scorer,
        lineage=_lineage(sources, children, train),
        model="credit-scorecard",
        featurize=lambda rows: [attribution.convex_fit_query(fit, rows, target=1)],
        checkpoints=["final"],
        record_indices=records,
    )
    return CreditExample(
        att,
        fit,
        x[train],
        y[train],
        x[test],
        test.astype(np.int64),
        sources,
        tables["application"]["applicant_id"],
    )


def _scorecard(l2: float) -> Any:
    """Return the scorecard as scikit-learn's documentation writes it (impute, scale, one-hot)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from rowtrail.cli._demo_frames import CATEGORIES, FEATURES

    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), FEATURES),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORIES),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=1.0 / l2, max_iter=2000))])


def _from_sklearn(
    ws: Any, shared: dict[str, Any], *, seed: int, l2: float = 10.0
) -> CreditExample | None:
    """Fit the scorecard with ``rt.sklearn.trace`` on the frames section's traced split."""
    import rowtrail as rt
    from rowtrail.cli._demo_frames import CATEGORIES, FEATURES

    try:
        train, test = shared["frame"], shared["test_frame"]
        columns = FEATURES + CATEGORIES
        model = rt.sklearn.trace(_scorecard(l2))
        with ws.training_run("credit-scorecard", params={"l2": l2, "seed": seed}):
            model.fit(train[columns], train["TARGET"])  # recorded: rows, statistics, fit
        fit: ConvexFit | None = model.training_fit_
        if fit is None:
            return None
        shared["model"], shared["model_columns"] = model, columns  # for the erasure section
        z_train = model[:-1].transform(train[columns])  # traced: each row's source rows
        z_test = model[:-1].transform(test[columns])
    except (KeyError, TypeError, ValueError, RowtrailError):
        return None
    y = np.asarray(train["TARGET"], dtype=np.float64)
    scorer = attribution.ExactInfluenceScorer.from_convex_fit(fit, np.asarray(z_train), y)
    att = attribution.Attributor(
        scorer,
        lineage=attribution.RowMapLineage.from_view(rt.lineage(z_train), len(y)),
        model="credit-scorecard",
        checkpoints=["final"],
        featurize=lambda rows: [attribution.convex_fit_query(fit, rows, target=1)],
        record_indices=[fit.ledger_index] if fit.ledger_index is not None else [],
    )
    view = rt.lineage(z_test)
    rows = np.array([view.rows_of(i)["application"][0] for i in range(len(test))], np.int64)
    names = np.array([ws.pseudonymize(s) for s in test["applicant_id"]], dtype=object)
    sources = {"application": get_source(ws, "application")}
    return CreditExample(att, fit, np.asarray(z_train), y, z_test, rows, sources, names)


def section(ctx: DemoContext) -> None:
    """Explain the most clearly declined held-out application down to table rows."""
    ctx.heading("Attribution: why was this application declined?")
    shared = ctx.state.get("credit_train")
    example = _from_sklearn(ctx.ws, shared, seed=ctx.seed) if isinstance(shared, dict) else None
    if example is None:
        size = 20_000 if ctx.size == "large" else 2_000
        example = build_credit_example(ctx.ws, ctx.workdir, n_applicants=size, seed=ctx.seed)
    else:
        ctx.say(
            "scorecard: rt.sklearn.trace(Pipeline(ColumnTransformer(impute+scale, one-hot), "
            "LogisticRegression)) fitted on the frames section's training split"
        )
    p_default = example.fit.predict_proba(example.X_test)
    worst = int(np.argmax(p_default))
    row = int(example.test_rows[worst])
    subject = example.subjects[worst]
    attribution.save_attributor(ctx.ws, example.attributor)  # `rowtrail explain` reads it
    index = attribution.log_prediction(
        ctx.ws,
        example.attributor,
        example.X_test[worst],
        subject=subject,
        payload={
            "decision": "declined" if p_default[worst] > _THRESHOLD else "approved",
            "explained_class": "default",
            "p_default": round(float(p_default[worst]), 6),
            "application_row": row,
        },
    )
    exp = ctx.ws.explain(index, top_k=10)
    ctx.say(
        f"application row {row} (subject {str(subject)[:15]}…): P(default) = "
        f"{p_default[worst]:.3f}, the highest held out; the scorecard declines above "
        f"{_THRESHOLD}. Logged as ledger entry {index}; scores explain the default margin "
        "(positive rows pushed towards 'default')."
    )
    ctx.say(exp.to_text(max_rows=5))
    top = exp.supporting[0]
    ctx.record(
        "attribution",
        {
            "prediction_index": index,
            "application_row": row,
            "top_supporting": top.to_json(),
            "n_proofs": len(exp.proofs),
            "totals": [t.to_json() for t in exp.totals],
            "top_tables": exp.top_tables,
            "timings_ms": exp.timings_ms,
        },
    )
    ctx.state["attribution_prediction_index"] = index
    ctx.state["top_supporting"] = top
    ctx.say(f"explain it again with: rowtrail explain {index} --workspace {ctx.ws.path}")
