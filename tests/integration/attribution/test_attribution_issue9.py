"""Issue 9, finding 3: every file of a saved attributor is bound to its ledger event by digest.

Each damage (flip a byte, truncate, append a byte, delete) to each of the five files must make
both ``ws.explain`` (in a fresh process, i.e. a reopened workspace) and
``verify_attribution_files`` raise :class:`FileIntegrityError` naming that file.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail import attribution
from rowtrail.cli import app
from rowtrail.errors import FileIntegrityError, InvalidInputError, StateError
from rowtrail.hashing import file_digest, sha256_digest
from rowtrail.lineage import register_source
from rowtrail.training import _bound, fit_logistic

N = 40
FILES = ["lineage_ids.npy", "lineage_offsets.npy", "matrix.npy", "meta.json", "row_ids.npy"]


def flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def extend(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x00")


def delete(path: Path) -> None:
    path.unlink()


DAMAGES: list[Callable[[Path], None]] = [flip, truncate, extend, delete]


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, int, np.ndarray]:
    """A workspace with an attributor saved as 'default' and one logged prediction."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 3))
    y = (x @ [1.0, -1.0, 0.5] + 0.3 * rng.normal(size=N) > 0).astype(float)
    with rt.init(tmp_path / "ws") as ws:
        people = register_source(
            ws, name="people.csv", digest=sha256_digest(x.tobytes()), format="csv",
            schema={"a": "float", "b": "float", "c": "float"}, n_rows=N,
            subject_column="id", subject_ids=[f"p{i}" for i in range(N)],
        )
        own = people.row_ids()
        with ws.training_run("toy", params={"l2": 1.0}) as run:
            fit = fit_logistic(x, y, l2=1.0, run=run, row_ids=own)
        scorer = attribution.ExactInfluenceScorer.from_convex_fit(fit, x, y)
        att = attribution.Attributor(
            scorer, model="toy", record_indices=[fit.ledger_index or 0],
            featurize=lambda rows: [attribution.convex_fit_query(fit, rows)],
        )
        attribution.save_attributor(ws, att)
        index = attribution.log_prediction(ws, att, x[3])
    return tmp_path / "ws", index, x


def directory(ws_path: Path, name: str = "default") -> Path:
    return ws_path / "attribution" / name


def test_issue9_every_attributor_file_is_bound(saved: tuple[Path, int, np.ndarray]) -> None:
    ws_path, index, _x = saved
    with rt.open(ws_path) as ws:
        [event] = ws.ledger.indices(kind="attribution.index.saved")
        files = ws.ledger.entry(event).event.payload["files"]
        assert sorted(files) == FILES
        for name, spec in files.items():
            path = directory(ws_path) / name
            assert spec == {"digest": file_digest(path), "size": path.stat().st_size}
        assert attribution.verify_attribution_files(ws) == 5
        ws.verify()  # the workspace's verify checks them too, and passes when intact
        exp = ws.explain(index, top_k=3)
        # The binding event is one of the records the explanation proves.
        assert {p["index"]: p["role"] for p in exp.proofs}[event] == "record"


@pytest.mark.parametrize("name", FILES)
def test_issue9_damaged_attributor_file_is_refused(
    saved: tuple[Path, int, np.ndarray], name: str
) -> None:
    ws_path, index, _x = saved
    path = directory(ws_path) / name
    original = path.read_bytes()
    for damage in DAMAGES:
        damage(path)
        with rt.open(ws_path) as ws:
            with pytest.raises(FileIntegrityError, match=name) as caught:
                ws.explain(index, top_k=3)
            assert caught.value.path == str(path), damage.__name__
            with pytest.raises(FileIntegrityError, match=name) as caught:
                attribution.verify_attribution_files(ws)
            assert caught.value.path == str(path), damage.__name__
        path.write_bytes(original)
    with rt.open(ws_path) as ws:
        assert attribution.verify_attribution_files(ws) == 5
        assert len(ws.explain(index, top_k=3).supporting) == 3


def test_issue9_rotated_row_ids_file_is_refused_by_explain_and_verify(
    saved: tuple[Path, int, np.ndarray],
) -> None:
    ws_path, index, _x = saved
    path = directory(ws_path) / "row_ids.npy"
    np.save(path, np.roll(np.load(path), 1))  # same size, well-formed, names other rows
    runner = CliRunner()
    result = runner.invoke(app, ["explain", str(index), "--workspace", str(ws_path), "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    assert out["error"] == "FileIntegrityError"
    assert "row_ids.npy" in out["message"]
    with rt.open(ws_path) as ws, pytest.raises(FileIntegrityError, match=r"row_ids\.npy"):
        attribution.verify_attribution_files(ws)
    verified = runner.invoke(app, ["verify", "--workspace", str(ws_path)])
    assert verified.exit_code != 0, verified.output
    assert "row_ids.npy" in verified.output


def test_issue9_file_changed_after_load_is_refused_in_the_same_process(
    saved: tuple[Path, int, np.ndarray],
) -> None:
    ws_path, index, _x = saved
    with rt.open(ws_path) as ws:
        ws.explain(index, top_k=3)
        np.save(directory(ws_path) / "row_ids.npy",
                np.roll(np.load(directory(ws_path) / "row_ids.npy"), 1))
        with pytest.raises(FileIntegrityError, match=r"row_ids\.npy"):
            ws.explain(index, top_k=3)


def test_issue9_repeated_explains_do_not_rehash_but_verify_does(
    saved: tuple[Path, int, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws_path, index, _x = saved
    calls: list[int] = []
    real = _bound._hash_handle

    def counting(handle: Any) -> str:
        calls.append(1)
        return real(handle)

    monkeypatch.setattr(_bound, "_hash_handle", counting)
    _bound._VERIFIED.clear()
    with rt.open(ws_path) as ws:
        first = ws.explain(index, top_k=3)
        assert len(calls) == 5
        again = ws.explain(index, top_k=3)
        assert len(calls) == 5
        assert again.supporting == first.supporting
    with rt.open(ws_path) as ws:  # a new handle in the same process: checked, not re-hashed
        ws.explain(index, top_k=3)
        assert len(calls) == 5
        assert attribution.verify_attribution_files(ws) == 5
        assert len(calls) == 10


def test_issue9_directory_without_binding_event_is_refused(
    saved: tuple[Path, int, np.ndarray],
) -> None:
    ws_path, _index, x = saved
    shutil.copytree(directory(ws_path), directory(ws_path, "copied"))
    with rt.open(ws_path) as ws:
        with pytest.raises(FileIntegrityError, match=r"no attribution\.index\.saved event"):
            attribution.load_attributor(ws, "copied")
        with pytest.raises(FileIntegrityError, match="copied") as caught:
            attribution.verify_attribution_files(ws)
        assert caught.value.path == str(directory(ws_path, "copied"))
    shutil.rmtree(directory(ws_path, "copied"))
    with rt.open(ws_path) as ws:
        # A staging leftover (dot-prefixed: no attributor name can read it) is not an error.
        (ws_path / "attribution" / ".default.x.staging").mkdir()
        assert attribution.verify_attribution_files(ws) == 5
        # An event whose directory is gone is an error.
        shutil.rmtree(directory(ws_path))
        with pytest.raises(FileIntegrityError, match="is missing"):
            attribution.verify_attribution_files(ws)
        with pytest.raises(FileIntegrityError, match="is missing"):
            ws.explain(x[0])


def test_issue9_event_without_file_digests_is_refused(
    saved: tuple[Path, int, np.ndarray],
) -> None:
    ws_path, _index, _x = saved
    shutil.copytree(directory(ws_path), directory(ws_path, "legacy"))
    with rt.open(ws_path) as ws:
        # The form events had before every file was bound: three digests, two files unbound.
        ws.ledger.append("attribution.index.saved", {
            "name": "legacy",
            "matrix_digest": file_digest(directory(ws_path, "legacy") / "matrix.npy"),
        })
        with pytest.raises(FileIntegrityError, match="does not record the digest of every"):
            attribution.load_attributor(ws, "legacy")
        with pytest.raises(FileIntegrityError, match="does not record the digest of every"):
            attribution.verify_attribution_files(ws)


def test_issue9_resaving_binds_the_new_files(saved: tuple[Path, int, np.ndarray]) -> None:
    ws_path, index, _x = saved
    with rt.open(ws_path) as ws:
        att = attribution.load_attributor(ws)
        before = ws.explain(index, top_k=3)
        attribution.save_attributor(ws, att)
        assert len(ws.ledger.indices(kind="attribution.index.saved")) == 2
        assert attribution.verify_attribution_files(ws) == 5
    with rt.open(ws_path) as ws:
        assert ws.explain(index, top_k=3).supporting == before.supporting
    assert [p.name for p in (ws_path / "attribution").iterdir()] == ["default"]


def test_issue9_explain_rejects_float_prediction(saved: tuple[Path, int, np.ndarray]) -> None:
    ws_path, _index, x = saved
    with rt.open(ws_path) as ws:
        bads: list[object] = [1.5, np.float64(2.0), True, "3", None, {"a": 1}, [], np.array(4.0)]
        for bad in bads:
            with pytest.raises(InvalidInputError, match=r"ledger index \(int\)"):
                ws.explain(bad)
        # An input row passes the check and reaches the (loaded, featurize-less) attributor.
        with pytest.raises(InvalidInputError, match="featurize="):
            ws.explain(x[0])


def test_issue9_malformed_matrix_files_raise_typed_errors(tmp_path: Path) -> None:
    path = attribution.save_feature_matrix(tmp_path / "m", np.ones((4, 2)), np.arange(4))
    (path / "matrix.npy").write_bytes((path / "matrix.npy").read_bytes()[:-3])
    with pytest.raises(FileIntegrityError, match=r"matrix\.npy"):
        attribution.load_feature_matrix(path)
    path = attribution.save_feature_matrix(tmp_path / "r", np.ones((4, 2)), np.arange(4))
    (path / "row_ids.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FileIntegrityError, match=r"row_ids\.npy"):
        attribution.load_feature_matrix(path)
    np.save(path / "row_ids.npy", np.arange(3))
    with pytest.raises(FileIntegrityError, match=r"row_ids\.npy"):
        attribution.load_feature_matrix(path)
    np.save(path / "row_ids.npy", np.arange(4))
    (path / "meta.json").write_text("{not json")
    with pytest.raises(FileIntegrityError, match=r"meta\.json"):
        attribution.load_feature_matrix(path)
    (path / "meta.json").unlink()
    with pytest.raises(FileIntegrityError, match=r"meta\.json"):
        attribution.load_feature_matrix(path)


def test_issue9_missing_attributor_is_still_a_state_error(tmp_path: Path) -> None:
    with rt.init(tmp_path / "empty") as ws, pytest.raises(StateError, match="no attributor"):
        attribution.load_attributor(ws, "nothing")
