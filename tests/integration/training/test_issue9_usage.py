"""Issue 9, finding 8: "when was row R used?" never answers a silent "not used".

One regression test per way the old answer was an empty list: a row that does not exist, a run
trained without row ids, rows of joined / aggregated tables and fitted statistics, an earlier
version of a re-registered source, an integer subject read as floats, a killed run.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import InvalidInputError, UnknownSourceError
from rowtrail.hashing import sha256_digest
from rowtrail.lineage import get_source, register_source, rows_of_subject
from rowtrail.training import (
    fit_logistic,
    list_runs,
    read_batches,
    run_status,
    sample_usage,
)


def _source(ws: rt.Workspace, name: str, n: int, salt: bytes = b"") -> Any:
    return register_source(
        ws, name=name, digest=sha256_digest(name.encode() + salt), format="csv",
        schema={"x": "float"}, n_rows=n,
    )


def _xy(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = rng.normal(size=(n, 3))
    return xs, (xs[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(float)


def _verified(uses: list[Any]) -> None:
    for use in uses:
        use.proof.verify()
        if use.chunk_proof is not None:
            use.chunk_proof.verify()


# ---------------------------------------------------------------------- (a)
def test_issue9_usage_out_of_range_row_raises(ws: rt.Workspace) -> None:
    info = _source(ws, "people.csv", 10)
    xs, y = _xy(10)
    with ws.training_run("lr") as run:
        fit_logistic(xs, y, l2=1.0, run=run, row_ids=info.row_ids())
    with pytest.raises(InvalidInputError, match=r"people.csv@1 \(index \d+\): \[0, 10\)"):
        sample_usage(ws, source="people.csv", rows=[10**6])
    with pytest.raises(InvalidInputError, match=r"\[0, 10\)"):
        sample_usage(ws, source="people.csv", rows=[-1])
    with pytest.raises(InvalidInputError, match="row numbers"):
        sample_usage(ws, source="people.csv", rows=[1.5])
    with pytest.raises(InvalidInputError, match=r"row 10 of people.csv@1"):
        sample_usage(ws, row_ids=[info.row_id(9) + 1])
    with pytest.raises(UnknownSourceError, match="not registered"):
        sample_usage(ws, row_ids=[(999 << 40) | 3])
    with pytest.raises(UnknownSourceError, match=r"people\.csv@1"):
        sample_usage(ws, source="nobody.csv", rows=[0])
    assert [u.kind for u in sample_usage(ws, source="people.csv", rows=[9])] == ["split", "fit"]


# ---------------------------------------------------------------------- (b)
def _train_plain_torch(ws: rt.Workspace, xs: np.ndarray, y: np.ndarray) -> str:
    torch = pytest.importorskip("torch")
    dataset = torch.utils.data.TensorDataset(
        torch.as_tensor(xs, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)
    )
    model = torch.nn.Linear(xs.shape[1], 1)
    with ws.training_run("plain-torch", model=model) as run:
        for _ in run.track(torch.utils.data.DataLoader(dataset, batch_size=8)):
            pass
    return run.run_id


def _train_sklearn(ws: rt.Workspace, xs: np.ndarray, y: np.ndarray) -> str:
    linear_model = pytest.importorskip("sklearn.linear_model")
    from rowtrail.training import record_sklearn_fit

    estimator = linear_model.LogisticRegression(C=1.0).fit(xs, y)
    with ws.training_run("sklearn-fit") as run:
        record_sklearn_fit(estimator, xs, y, run=run)
    return run.run_id


@pytest.mark.parametrize("train", [_train_plain_torch, _train_sklearn], ids=["torch", "sklearn"])
def test_issue9_usage_unknown_for_run_without_row_ids(ws: rt.Workspace, train: Any) -> None:
    info = _source(ws, "application.csv", 40)
    xs, y = _xy(40)
    run_id = train(ws, xs, y)
    with ws.training_run("with-ids") as known:  # a run that has row ids, and not row 3
        fit_logistic(xs[4:], y[4:], l2=1.0, run=known, row_ids=info.row_ids()[4:])

    uses = sample_usage(ws, source="application.csv", rows=[3])
    [use] = uses
    assert (use.kind, use.role, use.row_id, use.via, use.run_id) == (
        "unknown", "unknown", None, None, run_id
    )
    assert use.reason is not None
    assert f"run {run_id} trained without row ids" in use.reason
    assert use.run_status == "completed"
    split = ws.ledger.entry(use.ledger_index)
    assert split.event.kind == "training.split"
    assert split.event.payload["row_ids"] is False
    _verified(uses)
    # The run with ids answers exactly; the run without still says "unknown".
    assert sorted(u.kind for u in sample_usage(ws, source="application.csv", rows=[5])) == [
        "fit", "split", "unknown"
    ]
    assert sample_usage(ws, source="application.csv", rows=[5], run=known.run_id)[0].via == "row"
    # Asked about the stand-in's own rows (the dataset positions), the answer is exact.
    stand_in = ws.ledger.entry(use.ledger_index).event.payload["sources"][0]["source_index"]
    exact = sample_usage(ws, source=stand_in, rows=[3])
    assert exact
    assert {u.kind for u in exact} <= {"split", "batch", "fit"}


# ---------------------------------------------------------------------- (c)
@pytest.fixture
def bureau_run(ws: rt.Workspace, tmp_path: Path) -> dict[str, Any]:
    pd = pytest.importorskip("pandas")
    torch = pytest.importorskip("torch")
    preprocessing = pytest.importorskip("sklearn.preprocessing")
    from rowtrail.datasets import credit

    data = credit(n_applicants=40, seed=3, out_dir=tmp_path / "credit")
    app = rt.pandas.read_csv(
        data.application_path, source="application", subject="applicant_id", workspace=ws
    )
    bureau = rt.pandas.read_csv(data.bureau_path, source="bureau", workspace=ws)
    keys = np.asarray(app["SK_ID_CURR"])
    region = rt.pandas.track(
        pd.DataFrame({"SK_ID_CURR": keys, "REGION_RATE": np.arange(keys.size) / 10.0}),
        source="region", workspace=ws,
    )
    grouped = bureau.groupby("SK_ID_CURR").agg(
        b_n=("SK_ID_BUREAU", "size"), b_debt=("AMT_CREDIT_SUM_DEBT", "sum")
    ).reset_index()
    table = app.merge(grouped, on="SK_ID_CURR", how="left").merge(
        region, on="SK_ID_CURR", how="left"
    )
    table = table.fillna({"b_n": 0, "b_debt": 0.0})
    median = float(table["AMT_CREDIT"].median())
    table = table[table["AMT_CREDIT"] > median]  # half the applicants
    features = rt.to_numpy(table, ["b_n", "b_debt", "AMT_CREDIT", "REGION_RATE"],
                           dtype=np.float64)
    scaled = rt.sklearn.wrap(preprocessing.StandardScaler()).fit_transform(features)
    dataset = rt.torch.dataset(scaled, target=np.asarray(table["TARGET"], dtype=np.float64))
    model = torch.nn.Linear(4, 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=6, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    with ws.training_run("credit-frames", model=model) as run:
        for _ in range(2):
            for _ in run.track(loader):
                pass
    with open(data.bureau_path, newline="") as handle:
        bureau_keys = np.array([int(r["SK_ID_CURR"]) for r in csv.DictReader(handle)])
    return {"run": run, "dataset": dataset, "keys": np.asarray(table["SK_ID_CURR"]),
            "all_keys": keys, "bureau_keys": bureau_keys, "table": table}


def _expected_batches(ws: rt.Workspace, run_id: str, position: int) -> list[tuple[int, int]]:
    return [(b.epoch, b.batch) for b in read_batches(ws, run_id)
            if position in b.positions.tolist()]


def test_issue9_usage_reports_aggregated_bureau_rows(
    ws: rt.Workspace, bureau_run: dict[str, Any]
) -> None:
    run, dataset, keys = bureau_run["run"], bureau_run["dataset"], bureau_run["keys"]
    bureau_keys = bureau_run["bureau_keys"]
    used = np.flatnonzero(np.isin(bureau_keys, keys))
    unused = np.flatnonzero(~np.isin(bureau_keys, keys))
    assert used.size
    assert unused.size
    row = int(used[0])
    position = int(np.flatnonzero(keys == bureau_keys[row])[0])
    uses = sample_usage(ws, source="bureau", rows=[row])
    _verified(uses)
    bureau_id = get_source(ws, "bureau").row_id(row)
    aggregated = [u for u in uses if u.via == "aggregated"]
    assert [(u.kind, u.row_id, u.sample_row_id) for u in aggregated if u.kind == "split"] == [
        ("split", bureau_id, int(dataset.row_ids[position]))
    ]
    assert [(u.epoch, u.batch) for u in aggregated if u.kind == "batch"] == _expected_batches(
        ws, run.run_id, position
    )
    assert {u.role for u in aggregated} == {"train"}
    # The bureau row's values also entered the scaler fitted on every training sample.
    [statistic] = [u for u in uses if u.via == "statistic"]
    assert (statistic.kind, statistic.row_id, statistic.sample_row_id) == (
        "split", bureau_id, None
    )
    assert {u.via for u in uses} == {"aggregated", "statistic"}
    assert all(u.run_status == "completed" for u in uses)
    # A bureau row of an applicant left out of the training table was not used: exactly [].
    assert sample_usage(ws, source="bureau", rows=[int(unused[0])]) == []


def test_issue9_usage_reports_joined_and_own_rows(
    ws: rt.Workspace, bureau_run: dict[str, Any]
) -> None:
    run, dataset, keys = bureau_run["run"], bureau_run["dataset"], bureau_run["keys"]
    region_row = int(np.flatnonzero(bureau_run["all_keys"] == keys[2])[0])
    joined = sample_usage(ws, source="region", rows=[region_row])
    assert {(u.kind, u.via) for u in joined} == {
        ("split", "joined"), ("batch", "joined"), ("split", "statistic")
    }
    assert {u.sample_row_id for u in joined if u.via == "joined"} == {int(dataset.row_ids[2])}
    own = [u for u in sample_usage(ws, row_ids=[int(dataset.row_ids[2])]) if u.via == "row"]
    assert [(u.epoch, u.batch) for u in own if u.kind == "batch"] == _expected_batches(
        ws, run.run_id, 2
    )
    split = ws.ledger.entry(own[0].ledger_index)
    lineage = split.event.payload["lineage"]
    assert lineage["n_links"] == int(dataset.sample_offsets[-1])
    assert set(lineage) >= {"sample_counts", "sample_rows", "aggregated_rows", "statistic_rows"}
    sealed = ws.ledger.entries(ws.ledger.indices(kind="training.completed"))[-1]
    assert {s["name"] for s in sealed.event.payload["data"]["sources"]} == {
        "application", "bureau", "region"
    }


# ---------------------------------------------------------------------- (d)
def test_issue9_usage_covers_every_source_version(ws: rt.Workspace) -> None:
    first = _source(ws, "app.csv", 8)
    second = _source(ws, "app.csv", 5, salt=b"edited")  # the file changed: a new version
    assert (first.version, second.version) == (1, 2)
    assert get_source(ws, "app.csv").index == second.index  # the latest version shadows...
    xs, y = _xy(8)
    with ws.training_run("v1") as run1:
        fit_logistic(xs, y, l2=1.0, run=run1, row_ids=first.row_ids())
    with ws.training_run("v2") as run2:
        fit_logistic(xs[:5], y[:5], l2=1.0, run=run2, row_ids=second.row_ids())
    uses = sample_usage(ws, source="app.csv", rows=[2])  # ...but not the earlier uses
    assert {(u.run_id, u.row_id) for u in uses} == {
        (run1.run_id, first.row_id(2)), (run2.run_id, second.row_id(2))
    }
    assert {u.run_id for u in sample_usage(ws, source=("app.csv", 1), rows=[2])} == {
        run1.run_id
    }
    assert {u.run_id for u in sample_usage(ws, source=first.index, rows=[2])} == {run1.run_id}
    # Row 6 exists only in the first version: it is answered from that version alone.
    assert {u.run_id for u in sample_usage(ws, source="app.csv", rows=[6])} == {run1.run_id}
    with pytest.raises(InvalidInputError, match=r"app.csv@1 .*\[0, 8\), app.csv@2 .*\[0, 5\)"):
        sample_usage(ws, source="app.csv", rows=[8])
    with pytest.raises(UnknownSourceError):
        sample_usage(ws, source=("app.csv", 3), rows=[0])


# ---------------------------------------------------------------------- (e)
def test_issue9_integer_subject_with_blank_cell_is_found(
    ws: rt.Workspace, tmp_path: Path
) -> None:
    pytest.importorskip("pandas")
    path = tmp_path / "people.csv"
    path.write_text("person_id,x1,x2,y\n41,0.5,1.0,1\n,0.1,-1.0,0\n42,-0.3,0.2,0\n43,1.2,0.4,1\n")
    frame = rt.pandas.read_csv(path, source="people", subject="person_id", workspace=ws)
    assert frame["person_id"].dtype == np.float64  # the blank cell made the column floats
    info = get_source(ws, "people")
    assert rows_of_subject(ws, ws.pseudonymize(42)).tolist() == [info.row_id(2)]
    xs = np.asarray(frame[["x1", "x2"]], dtype=np.float64)
    with ws.training_run("people-lr") as run:
        fit_logistic(xs, np.asarray(frame["y"], dtype=np.float64), l2=1.0, run=run,
                     row_ids=info.row_ids())
    for spelling in (42, "42", " 42 ", "42.0", 42.0, np.int64(42)):
        uses = sample_usage(ws, subject=spelling)
        assert [(u.kind, u.row_id) for u in uses] == [
            ("split", info.row_id(2)), ("fit", info.row_id(2))
        ], spelling
    assert rows_of_subject(ws, ws.pseudonymize("41")).tolist() == [info.row_id(0)]


# ---------------------------------------------------------------------- (f)
def test_issue9_killed_run_is_aborted(ws: rt.Workspace) -> None:
    info = _source(ws, "rows.csv", 6)
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        import rowtrail as rt
        ws = rt.open({str(ws.path)!r})
        run = ws.training_run("doomed", run_id="doomed0000000001")
        run.log_split("train", np.asarray({info.row_ids().tolist()!r}, dtype=np.int64))
        print("ready", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            env=dict(os.environ), text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        assert run_status(ws, "doomed0000000001") == "running"
        proc.send_signal(signal.SIGKILL)  # writes nothing more: no seal
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert run_status(ws, "doomed0000000001") == "aborted"
    [use] = sample_usage(ws, source="rows.csv", rows=[1])
    assert (use.kind, use.run_status) == ("split", "aborted")
    assert use.reason is not None
    assert "never sealed" in use.reason
    with ws.training_run("fine") as fine:
        pass
    statuses = {r.run_id: r.status for r in list_runs(ws)}
    assert statuses == {"doomed0000000001": "aborted", fine.run_id: "completed"}
    for record in list_runs(ws):
        record.proof.verify()


def test_issue9_failed_and_interrupted_runs_are_not_completed(ws: rt.Workspace) -> None:
    with pytest.raises(RuntimeError), ws.training_run("boom") as failed:
        raise RuntimeError("diverged")
    with pytest.raises(SystemExit), ws.training_run("stopped") as stopped:
        raise SystemExit(1)
    live = ws.training_run("live")
    try:
        assert run_status(ws, failed.run_id) == "failed"
        assert run_status(ws, stopped.run_id) == "aborted"
        assert run_status(ws, live.run_id) == "running"
    finally:
        live.finish()
    assert run_status(ws, live.run_id) == "completed"
    with pytest.raises(InvalidInputError, match="must name a recorded run"):
        run_status(ws, "no-such-run")


def test_issue9_run_on_another_host_is_incomplete(ws: rt.Workspace) -> None:
    from rowtrail.training._status import status_of

    started = {"process": {"host": "elsewhere.invalid", "pid": 1, "boot_id": None,
                           "start_ticks": None}}
    assert status_of(started, None) == "incomplete"
    assert status_of({}, None) == "incomplete"
    assert status_of(started, {"status": "completed"}) == "completed"
    assert status_of(started, {"status": "failed:ValueError"}) == "failed"
