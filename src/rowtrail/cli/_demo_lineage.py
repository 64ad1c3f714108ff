"""Demo section: a traced NumPy preprocessing pipeline and its lineage queries.

Writes a small applications CSV with a subject column, loads it with ``rt.load_csv`` under a
declared schema (one row breaks it and is recorded), runs the seed pipeline (standardize,
filter, elementwise ops, a projection, a reorder, a concatenation with a second source) inside
``ws.pipeline(...)``, and shows what lineage answers: sources, ``rows_of``, ``derived_from``,
the op chain with code locations, the statistics dependencies, and the same answers reloaded
from the persisted DAG.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import numpy as np
from rich.markup import escape

from rowtrail.lineage import (
    ArrayLineage,
    TracedArray,
    ValidationReport,
    lineage,
    load_csv,
    load_lineage,
    track,
)

if TYPE_CHECKING:
    from rowtrail.cli._demo import DemoContext

__all__ = ["section"]

_N_ROWS = 40


def _write_csv(ctx: DemoContext) -> str:
    rng = np.random.default_rng(ctx.seed)
    lines = ["applicant_id,age,income,debt_ratio,years_employed,region"]
    for i in range(_N_ROWS):
        age = int(rng.integers(19, 75)) if i != 7 else 17  # row 7 breaks the declared schema
        lines.append(
            f"applicant-{i:06d},{age},{rng.normal(52_000, 12_000):.0f},"
            f"{rng.uniform(0.05, 0.9):.3f},{int(rng.integers(0, 30))},"
            f"{rng.choice(['north', 'south', 'east'])}"
        )
    path = ctx.workdir / "applications.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _run_pipeline(ctx: DemoContext, x: TracedArray) -> TracedArray:
    rng = np.random.default_rng(ctx.seed + 1)
    extra = track(rng.normal(size=(5, 4)), source="manual_reviews", workspace=ctx.ws)
    projection = rng.normal(size=(4, 4))
    with ctx.ws.pipeline("demo-preprocessing") as run:
        x_norm = (x - x.mean(axis=0)) / x.std(axis=0)
        x_filt = x_norm[x_norm[:, 3] > 0]
        z = np.tanh(x_filt) * 0.5 + x_filt
        z = z @ projection
        z = z[np.argsort(z[:, 0])]
        features = cast(TracedArray, np.concatenate([z, extra @ projection]))
        run.add("features", features)
    ctx.state["lineage_dag_digest"] = run.digest
    return features


def _load(ctx: DemoContext) -> tuple[TracedArray, ValidationReport]:
    schema = {"age": {"dtype": "int", "min": 18, "max": 100}, "debt_ratio": {"min": 0, "max": 1}}
    x = load_csv(_write_csv(ctx), workspace=ctx.ws, subject="applicant_id", schema=schema)
    (report,) = lineage(x).validation()
    ctx.say(
        f"loaded applications.csv: {x.shape[0]} rows x {x.shape[1]} numeric columns "
        f"(subject column pseudonymized, text column 'region' left out)"
    )
    ctx.say(
        f"schema check: {len(report.invalid_rows())} row(s) failed "
        f"{[(v.column, v.rule, list(v.row_numbers)) for v in report.violations]} — "
        f"recorded as rows.validation_failed events"
    )
    return x, report


def _show_ops(ctx: DemoContext, view: ArrayLineage) -> list[str]:
    for op in view.ops():
        flag = " [fallback]" if op.fallback else ""
        where = op.location.rsplit("/", 1)[-1]
        ctx.say(escape(f"  {op.name:<22} {op.kind:<15} {where}{flag}"))
    stats = view.statistics()
    ctx.say(
        "statistics dependencies (every output row also depends on these rows): "
        + "; ".join(f"{s.op} fitted on {s.fitted_on.n_rows} rows" for s in stats)
    )
    return [s.op for s in stats]


def section(ctx: DemoContext) -> None:
    """Load, transform, persist, and query row lineage."""
    ctx.heading("Lineage: which source rows, through which steps")
    x, report = _load(ctx)
    features = _run_pipeline(ctx, x)
    view = lineage(features)
    sources = view.sources()
    ctx.say(
        f"features: {features.shape[0]} rows; source rows used: "
        + ", ".join(f"{name}: {len(rows)}" for name, rows in sources.items())
    )
    first, last = view.rows_of(0), view.rows_of(len(features) - 1)
    ctx.say(
        escape(f"rows_of(0) -> {first.pairs()}; rows_of({len(features) - 1}) -> {last.pairs()}")
    )
    row = first.pairs()[0][1]
    reached = view.derived_from("applications.csv", row).tolist()
    ctx.say(f"derived_from('applications.csv', {row}) -> feature rows {reached}")
    stats = _show_ops(ctx, view)
    reloaded = load_lineage(ctx.ws, "demo-preprocessing", output="features")
    same = reloaded.sources() == sources and reloaded.rows_of(0).pairs() == first.pairs()
    ctx.say(f"persisted as {ctx.state['lineage_dag_digest'][:23]}…; reloaded view agrees: {same}")
    ctx.record(
        "lineage",
        {
            "n_rows": int(features.shape[0]),
            "sources": {k: len(v) for k, v in sources.items()},
            "rows_of_0": first.pairs(),
            "derived_from": {"row": row, "reached": reached},
            "ops": [op.name for op in view.ops()],
            "statistics": stats,
            "invalid_rows": report.invalid_rows().tolist(),
            "reloaded_agrees": same,
            "dag_digest": ctx.state["lineage_dag_digest"],
        },
    )
