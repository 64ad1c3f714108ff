"""``rowtrail demo`` section: the 3-table credit pipeline through ``rt.pandas``.

Generates the synthetic Home-Credit-shaped tables (application, bureau,
previous_application), runs application ⨝ agg(bureau) ⨝ agg(previous_application) on traced
pandas frames and scikit-learn's ``train_test_split`` (80/20), as a user writes them, then
shows one training row's source rows in all three tables and a forward query (a bureau row
-> the training rows it reached). The training and held-out frames, a numeric training
matrix, one row id per training row and the multi-table lineage go to
``ctx.state["credit_train"]`` for the training and attribution sections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from rowtrail._optional import require
from rowtrail.datasets import credit
from rowtrail.errors import MissingDependencyError

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]

_SIZES = {"small": 2_000, "large": 20_000}
CATEGORIES = ["CODE_GENDER", "NAME_EDUCATION_TYPE"]
FEATURES = [
    "AMT_INCOME_TOTAL",
    "AMT_CREDIT",
    "AMT_ANNUITY",
    "EXT_SOURCE_2",
    "b_n",
    "b_debt",
    "b_overdue",
    "p_n",
    "p_refused",
    "p_credit",
]


def _pipeline(ctx: DemoContext, paths: dict[str, Any]) -> tuple[Any, Any]:
    """Run the pipeline as a user writes it: pandas reads, aggregates, joins; sklearn splits."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(build_table(ctx, paths), test_size=0.2, random_state=ctx.seed)
    return train, test


def build_table(ctx: DemoContext, paths: dict[str, Any]) -> Any:
    """Read, aggregate and join the three tables (traced pandas frames)."""
    import rowtrail as rt

    rt_pandas = rt.pandas
    app = rt_pandas.read_csv(
        paths["application"], source="application", subject="applicant_id", workspace=ctx.ws
    )
    bureau = rt_pandas.read_csv(paths["bureau"], source="bureau", workspace=ctx.ws)
    prev = rt_pandas.read_csv(
        paths["previous_application"], source="previous_application", workspace=ctx.ws
    )
    b = (
        bureau.groupby("SK_ID_CURR")
        .agg(
            b_n=("SK_ID_BUREAU", "size"),
            b_debt=("AMT_CREDIT_SUM_DEBT", "sum"),
            b_overdue=("CREDIT_DAY_OVERDUE", "max"),
        )
        .reset_index()
    )
    prev = prev.assign(refused=(prev["NAME_CONTRACT_STATUS"] == "Refused").astype(float))
    p = (
        prev.groupby("SK_ID_CURR")
        .agg(
            p_n=("SK_ID_PREV", "size"),
            p_refused=("refused", "sum"),
            p_credit=("AMT_CREDIT", "mean"),
        )
        .reset_index()
    )
    table = app.merge(b, on="SK_ID_CURR", how="left").merge(p, on="SK_ID_CURR", how="left")
    # No bureau or previous rows: counts and sums are 0 (the scorecard imputes the rest).
    return table.fillna(dict.fromkeys(["b_n", "b_debt", "b_overdue", "p_n", "p_refused"], 0.0))


def _show(ctx: DemoContext, train: Any, view: Any) -> tuple[int, Any, int, list[int]]:
    row = int(np.argmax(np.asarray(train["b_n"])))
    rows = view.rows_of(row)
    ctx.say(
        f"training row {row} (SK_ID_CURR {int(train['SK_ID_CURR'].iloc[row])}) came from: "
        + "; ".join(
            f"{table} rows {numbers[:6]}{'…' if len(numbers) > 6 else ''}"
            for table, numbers in rows.items()
        )
    )
    bureau_row = rows["bureau"][0]
    reached = view.derived_from("bureau", bureau_row).tolist()
    ctx.say(f"forward: bureau row {bureau_row} reached training rows {reached}")
    ctx.say("ops: " + " → ".join(op.name for op in view.ops()))
    return row, rows, bureau_row, reached


def section(ctx: DemoContext) -> None:
    """Run the 3-table pipeline on traced pandas frames and show per-table lineage."""
    ctx.heading("Lineage: 3-table credit pipeline (pandas)")
    try:
        require("pandas", extra="pandas", feature="the demo's frames section")
        require("sklearn", extra="sklearn", feature="the demo's frames section")
    except MissingDependencyError as exc:
        ctx.say(f"skipped: {exc}")
        ctx.record("frames", {"skipped": str(exc)})
        return
    import rowtrail as rt

    lineage, to_numpy, primary_ids = rt.lineage, rt.to_numpy, rt.torch.primary_ids

    n_applicants = _SIZES.get(ctx.size, _SIZES["small"])
    data = credit(n_applicants=n_applicants, seed=ctx.seed, out_dir=ctx.workdir / "credit")
    ctx.say(
        f"generated application ({data.n_applicants:,}), bureau ({data.n_bureau:,}) and "
        f"previous_application ({data.n_previous_application:,}) rows"
    )
    train, test = _pipeline(ctx, data.paths)
    columns = FEATURES
    features = to_numpy(train, columns, dtype=np.float64)
    view = lineage(train)
    ctx.say(
        f"training frame: {len(train):,} rows x {len(columns)} features; hidden id "
        f"columns are not among its {len(train.columns)} columns"
    )
    row, rows, bureau_row, reached = _show(ctx, train, view)
    matrix = np.asarray(features)
    matrix = np.where(np.isfinite(matrix), matrix, np.nanmean(matrix, axis=0))
    spread = matrix.std(axis=0)
    offsets, ids = view.lineage.csr()
    ctx.state["credit_train"] = {
        # What the training section reads: a plain standardized design matrix, labels, one
        # row id per sample (the applicant's application row) and each row's raw subject.
        "X": (matrix - matrix.mean(axis=0)) / np.where(spread > 0, spread, 1.0),
        "y": np.asarray(train["TARGET"], dtype=np.float64),
        "row_ids": primary_ids(offsets, ids),
        "subjects": [str(s) for s in train["applicant_id"]],
        # The multi-table lineage behind each row, for sections that want it.
        "X_traced": features,
        "lineage_offsets": offsets,
        "lineage_ids": ids,
        "columns": columns,
        "frame": train,
        "test_frame": test,
        "lineage": view,
        "paths": data.paths,
    }
    ctx.record(
        "frames",
        {
            "n_train": len(train),
            "n_test": len(test),
            "n_features": len(columns),
            "example_row": row,
            "example_rows_of": rows.to_json(),
            "forward_bureau_row": bureau_row,
            "forward_training_rows": reached,
            "sources": sorted(view.sources()),
        },
    )
