"""Persisted lineage survives the process: flush, pipeline, reload in a reopened workspace."""

# ruff: noqa: N806 - X, A, Z: the NumPy / scikit-learn naming of the seed example

from __future__ import annotations

import gc
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import LineageError


def _seed_pipeline(ws: rt.Workspace) -> Any:
    rng = np.random.default_rng(0)
    A = rt.track(rng.normal(size=(200, 4)), source="a", workspace=ws)
    B = rt.track(rng.normal(size=(50, 4)), source="b", workspace=ws)
    A_norm = (A - A.mean(axis=0)) / A.std(axis=0)
    kept = A_norm[A_norm[:, 3] > 0]
    reordered = B[np.argsort(B[:, 0])]
    return np.concatenate([kept @ np.eye(4), reordered * 2.0])


def test_flush_then_reload_in_a_reopened_workspace_answers_the_same(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    Y = _seed_pipeline(ws)
    live = rt.lineage(Y)
    expected = [live.rows_of(i).pairs() for i in range(len(Y))]
    digest = rt.flush(Y, name="features")
    event = ws.ledger.entry(ws.ledger.size - 1).event
    assert event.kind == "lineage.persisted"
    assert event.payload["dag_digest"] == digest
    ws.close()

    reopened = rt.init(tmp_path / "ws")
    for key in ("features", digest):
        view = rt.lineage(rt.load_lineage(reopened, key))
        assert view.sources() == live.sources()
        assert [view.rows_of(i).pairs() for i in range(view.n_rows)] == expected
        assert view.derived_from("b", 7).tolist() == live.derived_from("b", 7).tolist()
        assert [op.name for op in view.ops()] == [op.name for op in live.ops()]
        assert [op.location for op in view.ops()] == [op.location for op in live.ops()]
        assert [s.fitted_on.pairs() for s in view.statistics()] == [
            s.fitted_on.pairs() for s in live.statistics()
        ]
    reopened.verify()
    traced = rt.load_lineage(reopened, "features").attach(np.asarray(Y))
    assert rt.lineage(traced[:3]).rows_of(2).pairs() == expected[2]


def test_pipeline_block_persists_on_clean_exit_only(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    X = rt.track(np.arange(20.0).reshape(10, 2), source="x", workspace=ws)
    with ws.pipeline("prep") as p:
        train = X[::2] * 2
        p.add("train", train)
        test = X[1::2] + 1
    assert p.digest is not None
    assert rt.load_lineage(ws, "prep", output="train").sources() == {"x": [0, 2, 4, 6, 8]}
    assert rt.load_lineage(ws, "prep").sources() == {"x": [1, 3, 5, 7, 9]}
    del test
    size = ws.ledger.size

    def broken() -> None:
        with ws.pipeline("broken"):
            _ = X + 1
            _ = 1 / 0

    with pytest.raises(ZeroDivisionError):
        broken()
    assert ws.ledger.size == size
    with pytest.raises(LineageError, match="'broken' is neither"):
        rt.load_lineage(ws, "broken")


def test_flush_rejects_untraced_objects(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    with pytest.raises(LineageError, match="traced array"):
        rt.flush(np.ones(3), workspace=ws)
    assert ws.ledger.size == 0


def test_discarded_ops_do_not_grow_memory(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    X = rt.track(np.ones((8, 3)), source="x", workspace=ws)
    for _ in range(2_000):  # warm caches (frame-file cache, NumPy internals)
        _ = (X + 1)[1:]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(50_000):
        _ = (X + 1)[1:]
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept after 10^5 discarded ops"


def test_import_rowtrail_loads_no_optional_library() -> None:
    code = (
        "import sys, rowtrail; bad = [m for m in ('sklearn', 'pandas', 'torch', 'scipy') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_row_map_kind_survives_persistence(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    X = rt.track(np.arange(24.0).reshape(12, 2) % 5, source="x", workspace=ws)
    groups = np.unique(X[:, :1], axis=0)  # CSR: each value row unites its duplicates
    spread = X[:4].reshape(-1)  # each input row spreads over two output rows
    paired = X.reshape(6, 4)  # each output row unites two input rows
    strided = X[::-3]  # a negative-step slice
    parts = [groups, spread, paired, strided]
    live = [[rt.lineage(p).rows_of(i).pairs() for i in range(len(p))] for p in parts]
    with ws.pipeline("kinds") as run:
        for k, part in enumerate(parts):
            run.add(f"p{k}", part)
    ws.close()
    reopened = rt.init(tmp_path / "ws")
    for k in range(len(parts)):
        view = rt.load_lineage(reopened, "kinds", output=f"p{k}")
        assert [view.rows_of(i).pairs() for i in range(view.n_rows)] == live[k]


def test_ids_pinned_on_a_node_survive_persistence(tmp_path: Path) -> None:
    """Adapters (frames turned into arrays) may set a node's row ids directly."""
    from rowtrail.lineage._array import wrap
    from rowtrail.lineage._node import Node
    from rowtrail.lineage._rowmap import INDIRECT, Ids

    ws = rt.init(tmp_path / "ws")
    X = rt.track(np.arange(10.0), source="a", workspace=ws)
    node = Node("frame.to_numpy", "transformation", (X._n,), (INDIRECT,), 3)
    node.cache = Ids(3, X._n.source.row_ids()[[4, 2, 2, 7]], np.array([0, 1, 3, 4]))
    reversed_ = wrap(np.zeros((3, 2)), node)[::-1] * 2
    assert rt.lineage(reversed_).rows_of(1).pairs() == [("a", 2)]
    rt.flush(reversed_, name="pinned")
    ws.close()
    view = rt.load_lineage(rt.init(tmp_path / "ws"), "pinned")
    assert [view.rows_of(i).pairs() for i in range(3)] == [[("a", 7)], [("a", 2)], [("a", 4)]]


def test_issue9_flush_retry_after_commit_records_once(tmp_path: Path) -> None:
    ws = rt.init(tmp_path / "ws")
    x = rt.track(np.arange(12.0).reshape(6, 2), source="grid", workspace=ws)
    filtered = x[x[:, 0] > 2]
    first = rt.flush(filtered, name="filtered")
    size = ws.ledger.size
    again = rt.flush(filtered, name="filtered")  # the same DAG again: no second record
    assert again == first
    assert ws.ledger.size == size


def test_issue9_load_lineage_refuses_an_edited_record(tmp_path: Path) -> None:
    from _rawdb import raw_connection
    from rowtrail.errors import VerificationError

    ws = rt.init(tmp_path / "ws")
    x = rt.track(np.arange(12.0).reshape(6, 2), source="grid", workspace=ws)
    rt.flush(x[x[:, 0] > 2], name="filtered")
    index = ws.ledger.indices(kind="lineage.persisted")[-1]
    with raw_connection(tmp_path / "ws") as conn:
        leaf = bytes(conn.execute("SELECT leaf FROM events WHERE idx = ?", (index,)).fetchone()[0])
        conn.execute("UPDATE events SET leaf = ? WHERE idx = ?",
                     (leaf.replace(b'"filtered"', b'"filterex"'), index))
    with pytest.raises(VerificationError):
        rt.load_lineage(rt.open(tmp_path / "ws"), "filterex")
