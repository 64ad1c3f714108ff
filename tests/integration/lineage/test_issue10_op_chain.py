"""Issue 10: the frame op chain survives ``rt.to_numpy`` and ``rt.torch.dataset``.

A model input converted from a traced frame must list every step from each source file to the
model input (each with its parameters), live and after ``rt.flush`` / ``ws.pipeline``; its
rows are checked against keys read from the raw files with the ``csv`` module.
"""

# ruff: noqa: N806 - X: the NumPy naming of a feature matrix

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.datasets import credit

pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

FEATURES = ["AMT_CREDIT", "b_n", "b_debt", "p_n"]
# The frame ops of `pandas_pipeline` in the order `rt.lineage(frame).ops()` lists them (oldest
# first, depth first along the inputs), each read op preceded by the registered source it read.
# (``fillna`` with constants is not recorded by the pandas adapter, so it is not listed.)
PANDAS_OPS = [
    ("source", "source", {"name": "application"}),
    ("read_csv", "source", {"source": "application"}),
    ("source", "source", {"name": "bureau"}),
    ("read_csv", "source", {"source": "bureau"}),
    ("groupby.agg", "aggregation", {"by": "'SK_ID_CURR'", "method": "agg"}),
    ("merge", "join", {"how": "left", "on": "'SK_ID_CURR'"}),
    ("source", "source", {"name": "previous_application"}),
    ("read_csv", "source", {"source": "previous_application"}),
    ("getitem", "filter", {}),
    ("groupby.agg", "aggregation", {"by": "'SK_ID_CURR'", "method": "agg"}),
    ("merge", "join", {"how": "left", "on": "'SK_ID_CURR'"}),
    ("sort_values", "sort", {"by": "'SK_ID_CURR'"}),
]


@pytest.fixture
def ws(tmp_path: Path) -> Any:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def data(tmp_path: Path) -> Any:
    return credit(n_applicants=300, seed=1, out_dir=tmp_path / "credit")


def _raw(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _truth(data: Any) -> dict[int, dict[str, list[int]]]:
    """``SK_ID_CURR`` -> the rows of each table a sample of that applicant is built from."""
    truth: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for row, record in enumerate(_raw(data.paths["application"])):
        truth[int(record["SK_ID_CURR"])]["application"] = [row]
    for table, keep in (("bureau", None), ("previous_application", "AMT_CREDIT")):
        for row, record in enumerate(_raw(data.paths[table])):
            if keep is None or float(record[keep] or "nan") > 0:
                truth[int(record["SK_ID_CURR"])].setdefault(table, []).append(row)
    return truth


def pandas_pipeline(ws: Any, data: Any) -> Any:
    def read(table: str) -> Any:
        return rt.pandas.read_csv(data.paths[table], source=table, workspace=ws)

    app, bureau, prev = read("application"), read("bureau"), read("previous_application")
    b = bureau.groupby("SK_ID_CURR").agg(
        b_n=("SK_ID_BUREAU", "size"), b_debt=("AMT_CREDIT_SUM_DEBT", "sum")
    )
    p = prev[prev.AMT_CREDIT > 0].groupby("SK_ID_CURR").agg(p_n=("SK_ID_PREV", "size"))
    table = app.merge(b, on="SK_ID_CURR", how="left").merge(p, on="SK_ID_CURR", how="left")
    table = table.fillna({"b_n": 0, "b_debt": 0.0, "p_n": 0})
    return table.sort_values("SK_ID_CURR")


def _check_rows(view: Any, keys: np.ndarray, truth: dict[int, dict[str, list[int]]]) -> None:
    for i, key in enumerate(keys.tolist()):
        assert dict(view.rows_of(i)) == truth[int(key)], f"row {i} (SK_ID_CURR {key})"


def _shape(ops: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """Name, kind and the checked parameters of each op (sources: name; reads: source)."""
    out = []
    for op in ops:
        params = dict(op.params)
        if op.name == "source":
            params = {"name": params["name"]}
        elif op.kind == "source":
            params = {"source": params["source"]}
        out.append((op.name, op.kind, params))
    return out


def test_issue10_to_numpy_lists_every_frame_op_with_its_parameters(ws: Any, data: Any) -> None:
    table = pandas_pipeline(ws, data)
    X = rt.to_numpy(table, FEATURES)
    frame_ops, ops = rt.lineage(table).ops(), rt.lineage(X).ops()
    assert _shape(ops) == [*PANDAS_OPS, ("frame.to_numpy", "transformation", ops[-1].params)]
    assert ops[-1].params == {"frame_op": "sort_values", "frame_node": frame_ops[-1].node}
    # Every frame op is carried as recorded: parameters, code location, time, fallback flag.
    carried = [op for op in ops if op.name not in ("source", "frame.to_numpy")]
    assert [
        (o.name, o.kind, dict(o.params), o.location, o.created_at, o.fallback) for o in carried
    ] == [(o.name, o.kind, dict(o.params), o.location, o.created_at, o.fallback) for o in frame_ops]
    assert all(op.location.startswith(__file__) for op in carried)
    # Each read op reads its registered source: the source node is its input.
    by_node = {op.node: op for op in ops}
    for op in ops:
        if op.name == "read_csv":
            [parent] = op.inputs
            assert by_node[parent].params["name"] == op.params["source"]
            assert by_node[parent].params["digest"] == op.params["digest"]
    _check_rows(rt.lineage(X), table["SK_ID_CURR"].to_numpy(), _truth(data))


def test_issue10_ops_after_conversion_extend_the_chain(ws: Any, data: Any) -> None:
    table = pandas_pipeline(ws, data)
    X = rt.to_numpy(table, FEATURES)
    keys = table["SK_ID_CURR"].to_numpy()
    picked = np.asarray(X)[:, 1] > 0
    Z = X[picked] * 2.0
    names = [op.name for op in rt.lineage(Z).ops()]
    assert names == [n for n, _, _ in PANDAS_OPS] + ["frame.to_numpy", "getitem[mask]", "multiply"]
    nearest = [(op.name, op.depth) for op in rt.lineage(Z).ancestors(depth=3)]
    assert nearest == [("getitem[mask]", 1), ("frame.to_numpy", 2), ("sort_values", 3)]
    _check_rows(rt.lineage(Z), keys[picked], _truth(data))


def test_issue10_arrays_of_one_frame_share_its_op_nodes(ws: Any, data: Any) -> None:
    table = pandas_pipeline(ws, data)
    X, y = rt.to_numpy(table, FEATURES), rt.to_numpy(table, ["TARGET"])
    x_ops, y_ops = rt.lineage(X).ops(), rt.lineage(y).ops()
    assert [op.node for op in x_ops[:-1]] == [op.node for op in y_ops[:-1]]
    assert x_ops[-1].node != y_ops[-1].node
    with ws.pipeline("model-inputs") as run:
        run.add("features", X)
        run.add("target", y)
    persisted = rt.load_lineage(ws, "model-inputs", output="target")
    assert _shape(persisted.ops()) == _shape(y_ops)
    event = ws.ledger.entry(ws.ledger.size - 1).event
    # One node per frame op and source, plus the two conversions: the chain is written once.
    assert event.payload["n_nodes"] == len(PANDAS_OPS) + 2
    assert [s["name"] for s in event.payload["sources"]] == [
        "application",
        "bureau",
        "previous_application",
    ]


def test_issue10_flushed_lineage_keeps_the_chain(ws: Any, data: Any, tmp_path: Path) -> None:
    table = pandas_pipeline(ws, data)
    X = rt.to_numpy(table, FEATURES)
    live = rt.lineage(X)
    digest = rt.flush(X, name="features")
    ws.close()
    with rt.init(tmp_path / "ws") as reopened:
        view = rt.load_lineage(reopened, "features")
        for loaded in (view, rt.load_lineage(reopened, digest)):
            assert [op.to_json() | {"node": "", "inputs": []} for op in loaded.ops()] == [
                op.to_json() | {"node": "", "inputs": []} for op in live.ops()
            ]
            assert [len(op.inputs) for op in loaded.ops()] == [len(op.inputs) for op in live.ops()]
        _check_rows(view, table["SK_ID_CURR"].to_numpy(), _truth(data))
        row = _truth(data)[int(table["SK_ID_CURR"].iloc[4])]["bureau"][0]
        assert view.derived_from("bureau", row).tolist() == [4]
        reopened.verify()


def test_issue10_polars_lazy_chain_reaches_its_sources(ws: Any, data: Any) -> None:
    def scan(table: str) -> Any:
        return rt.polars.scan_csv(data.paths[table], source=table, workspace=ws)

    app, bureau = scan("application"), scan("bureau")
    b = bureau.group_by("SK_ID_CURR").agg(pl.len().alias("b_n"))
    table = app.join(b, on="SK_ID_CURR", how="left").sort("SK_ID_CURR").collect()
    X = rt.to_numpy(table, ["AMT_CREDIT", "b_n"])
    frame_ops = [op for op in rt.lineage(table).ops() if op.name != "optimized_plan"]
    ops = rt.lineage(X).ops()
    carried = [op for op in ops if op.name not in ("source", "frame.to_numpy")]
    assert [(o.name, o.kind, dict(o.params)) for o in carried] == [
        (o.name, o.kind, dict(o.params)) for o in frame_ops
    ]
    by_node = {op.node: op for op in ops}
    reads = [op for op in ops if op.name == "polars.scan_csv"]
    assert [by_node[op.inputs[0]].params["name"] for op in reads] == ["application", "bureau"]
    assert [op.name for op in ops].count("source") == 2
    truth = _truth(data)
    keys = table["SK_ID_CURR"].to_numpy()
    for i, key in enumerate(keys.tolist()):
        expected = {k: v for k, v in truth[int(key)].items() if k != "previous_application"}
        assert dict(rt.lineage(X).rows_of(i)) == expected


def test_issue10_torch_dataset_carries_the_chain(ws: Any, data: Any) -> None:
    pytest.importorskip("torch")
    table = pandas_pipeline(ws, data)
    ds = rt.torch.dataset(table, target="TARGET", features=FEATURES)
    ops = ds.lineage.ops()
    assert _shape(ops)[:-1] == PANDAS_OPS
    assert ops[-1].name == "frame.to_numpy"
    keys = table["SK_ID_CURR"].to_numpy()
    truth = _truth(data)
    _check_rows(ds.lineage, keys, truth)
    application = {int(r["SK_ID_CURR"]): i for i, r in enumerate(_raw(data.paths["application"]))}
    assert (ds.row_ids & ((1 << 40) - 1)).tolist() == [application[int(k)] for k in keys]
    from_array = rt.torch.dataset(rt.to_numpy(table, [*FEATURES, "TARGET"]), target=4)
    assert [op.name for op in from_array.lineage.ops()] == [
        *(n for n, _, _ in PANDAS_OPS),
        "frame.to_numpy",
        "getitem[slice]",
    ]
    digest = rt.flush(ds.lineage, name="dataset")
    assert _shape(rt.load_lineage(ws, digest).ops()) == _shape(ops)


def test_issue10_chain_with_a_parameter_json_cannot_hold_still_persists(ws: Any) -> None:
    from rowtrail.lineage.frames._convert import frame_op_node, traced_array
    from rowtrail.lineage.frames._core import record_op

    frame = rt.pandas.track(pd.DataFrame({"a": [1.0, 2.0, 3.0]}), source="t", workspace=ws)
    lineage, state = frame._rt_lineage, frame._rt_state
    # An op recorded with a NaN and a non-string key (canonical JSON holds neither).
    params: dict[Any, Any] = {"fill": float("nan"), 1: "x"}
    odd = record_op("custom", "transformation", [state.node], params)
    X = traced_array(np.asarray(frame), lineage, state.derive(odd))
    assert frame_op_node(state.derive(odd)).params == {"fill": "nan", "1": "x"}
    assert [op.name for op in rt.lineage(X).ops()] == [
        "source", "track", "custom", "frame.to_numpy"
    ]
    loaded = rt.load_lineage(ws, rt.flush(X, name="odd"))
    assert [dict(op.params) for op in loaded.ops()][2] == {"fill": "nan", "1": "x"}
