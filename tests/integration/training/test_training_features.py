from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import TensorDataset  # noqa: E402

import rowtrail as rt  # noqa: E402
from rowtrail.errors import (  # noqa: E402
    FileIntegrityError,
    InvalidInputError,
    RowtrailWarning,
    StateError,
)
from rowtrail.hashing import file_digest  # noqa: E402
from rowtrail.training import (  # noqa: E402
    PerSampleGradients,
    featurize,
    list_feature_sets,
    model_digest,
    open_feature_set,
    verify_feature_stores,
)

torch.set_num_threads(1)


def setup(n: int = 96) -> tuple[torch.nn.Module, TensorDataset]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    inputs = torch.randn(n, 6)
    return model, TensorDataset(inputs, (inputs[:, 0] + inputs[:, 1] > 0).long())


def jl_epsilon(k: int, m: int, delta: float = 1e-3) -> float:
    return math.sqrt(8 * math.log(4 * m * m / delta) / k)


def test_per_sample_gradients_match_autograd_one_by_one() -> None:
    model, dataset = setup(8)
    grads = PerSampleGradients(model).compute(*dataset.tensors)
    for i in (0, 5):
        model.zero_grad()
        x, y = dataset[i]
        torch.nn.functional.cross_entropy(model(x[None]), y[None]).backward()
        expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
        assert torch.allclose(grads[i], expected, atol=1e-6)


def test_linear_shortcut_equals_vmap_and_falls_back_for_other_layers() -> None:
    model, dataset = setup(16)
    fast = PerSampleGradients(model)
    assert fast._linear is not None
    slow = PerSampleGradients(model, loss_fn=lambda out, y: torch.nn.functional.cross_entropy(
        out, y.reshape(-1)))
    assert slow._linear is None
    assert torch.allclose(fast.compute(*dataset.tensors), slow.compute(*dataset.tensors),
                          atol=1e-6)
    conv = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 6)), torch.nn.Conv1d(1, 2, 3),
                               torch.nn.Flatten(), torch.nn.Linear(8, 2))
    assert PerSampleGradients(conv)._linear is None  # Conv1d: vmap path
    assert PerSampleGradients(conv).compute(*dataset.tensors).shape == (16, 2 * 3 + 2 + 18)


def test_shortcut_warns_and_falls_back_when_a_linear_sees_3d_inputs() -> None:
    _, dataset = setup(8)
    model = torch.nn.Sequential(torch.nn.Unflatten(1, (2, 3)), torch.nn.Linear(3, 4),
                                torch.nn.Flatten(), torch.nn.Linear(8, 2))
    grads = PerSampleGradients(model)
    with pytest.warns(RowtrailWarning, match="shortcut does not apply"):
        result = grads.compute(*dataset.tensors)
    model.zero_grad()
    inputs, targets = dataset.tensors
    torch.nn.functional.cross_entropy(model(inputs[:1]), targets[:1]).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert torch.allclose(result[0], expected, atol=1e-6)


@pytest.mark.parametrize("projector", ["srht", "rademacher"])
def test_features_shape_ids_and_jl_bound(ws: rt.Workspace, projector: str) -> None:
    model, dataset = setup()
    k = 512
    features = featurize(ws, model, dataset, proj_dim=k, seed=1, projector=projector,
                         batch_size=40, checkpoint="run:0")
    assert features.complete
    assert features.features.shape == (96, k)
    assert features.features.dtype == np.float16
    assert features.row_ids.shape == (96,)
    assert features.meta["model_digest"] == model_digest(model)
    exact = PerSampleGradients(model).compute(*dataset.tensors).double().numpy()
    approx = features.as_float32().astype(np.float64)
    norms = np.linalg.norm(exact, axis=1)
    error = np.abs(approx @ approx.T - exact @ exact.T) / np.outer(norms, norms)
    assert error.max() <= jl_epsilon(k, 96)
    [(entry, _)] = ws.ledger.proven_entries(kind="features.computed")
    assert entry.event.payload["features_digest"] == file_digest(features.path / "features.f16")
    assert list_feature_sets(ws) == [features.key]


def test_last_layer_only(ws: rt.Workspace) -> None:
    model, dataset = setup()
    features = featurize(ws, model, dataset, proj_dim=64, last_layer=True)
    assert features.meta["params"] == ["2.weight", "2.bias"]
    assert features.meta["param_dim"] == 32 * 2 + 2


def test_killed_featurization_resumes_where_it_stopped(ws: rt.Workspace, tmp_path: Path) -> None:
    model, dataset = setup()
    calls: list[int] = []

    def die_after_two(done: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        featurize(ws, model, dataset, proj_dim=128, batch_size=20, on_chunk=die_after_two)
    [key] = list_feature_sets(ws)
    with pytest.raises(StateError, match=r"no features\.computed event"):
        open_feature_set(ws, key)  # unbound: never read as evidence
    partial = open_feature_set(ws, key, partial=True)
    assert partial.n_done == 40
    assert not partial.complete
    resumed_calls: list[int] = []
    resumed = featurize(ws, model, dataset, proj_dim=128, batch_size=20,
                        on_chunk=resumed_calls.append)
    assert resumed_calls == [60, 80, 96]  # nothing before row 40 was recomputed
    with rt.init(tmp_path / "other") as other:
        whole = featurize(other, model, dataset, proj_dim=128, batch_size=20)
    assert whole.key == resumed.key
    assert np.array_equal(np.asarray(whole.features), np.asarray(resumed.features))
    assert len(ws.ledger.proven_entries(kind="features.computed")) == 1


def test_feature_store_bytes_per_sample_at_4096(ws: rt.Workspace) -> None:
    model, dataset = setup(64)
    features = featurize(ws, model, dataset, proj_dim=4096)
    per_sample = (features.path / "features.f16").stat().st_size + features.row_ids.nbytes
    assert per_sample / 64 == 4096 * 2 + 8


SCRIPT = """
import sys, time, torch
from torch.utils.data import TensorDataset
import rowtrail as rt
from rowtrail.training import featurize
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
inputs = torch.randn(96, 6)
dataset = TensorDataset(inputs, (inputs[:, 0] + inputs[:, 1] > 0).long())
def slow(done):
    print(done, flush=True)
    time.sleep(0.2 if sys.argv[2] == "slow" else 0)
featurize(rt.init(sys.argv[1]), model, dataset, proj_dim=128, batch_size=16, on_chunk=slow)
"""


@pytest.mark.slow
def test_sigkilled_featurization_resumes_in_a_new_process(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    script = tmp_path / "featurize.py"
    script.write_text(SCRIPT)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path / "ws"), "slow"],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for _ in range(2):  # two chunks are done and recorded as done
        child.stdout.readline()
    child.send_signal(signal.SIGKILL)
    child.wait()
    child.stdout.close()
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "ws"), "fast"],
                          capture_output=True, text=True, check=True)
    resumed = [int(line) for line in done.stdout.split()]
    assert resumed[0] > 16  # it did not start over
    assert resumed[-1] == 96
    with rt.init(tmp_path / "ws") as ws:
        [key] = list_feature_sets(ws)
        killed = open_feature_set(ws, key)
        with rt.init(tmp_path / "fresh") as fresh:
            subprocess.run([sys.executable, str(script), str(tmp_path / "fresh"), "fast"],
                           capture_output=True, check=True)
            whole = open_feature_set(fresh, key)
            assert np.array_equal(np.asarray(killed.features), np.asarray(whole.features))


# ---------------------------------------------------------------- issue 9, findings 3 and 7
# p_correct.f64: p(label) under the model, recorded with the default loss (issue 12).
FEATURE_FILES = ["features.f16", "meta.json", "p_correct.f64", "row_ids.npy"]


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-1])


def _extend(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\x00")


def _delete(path: Path) -> None:
    path.unlink()


def test_issue9_every_feature_file_is_bound(ws: rt.Workspace) -> None:
    model, dataset = setup(32)
    features = featurize(ws, model, dataset, proj_dim=64)
    [(entry, _)] = ws.ledger.proven_entries(kind="features.computed")
    files = entry.event.payload["files"]
    assert sorted(files) == FEATURE_FILES
    for name, spec in files.items():
        path = features.path / name
        assert spec == {"digest": file_digest(path), "size": path.stat().st_size}
    assert features.meta["ledger_index"] == entry.index
    assert verify_feature_stores(ws) == len(FEATURE_FILES)
    ws.verify()
    _flip(features.path / "row_ids.npy")
    with pytest.raises(FileIntegrityError, match=r"row_ids\.npy"):
        ws.verify()


@pytest.mark.parametrize("name", FEATURE_FILES)
def test_issue9_damaged_feature_file_is_refused(ws: rt.Workspace, name: str) -> None:
    model, dataset = setup(32)
    features = featurize(ws, model, dataset, proj_dim=64)
    path = features.path / name
    original = path.read_bytes()
    for damage in (_flip, _truncate, _extend, _delete):
        damage(path)
        with pytest.raises(FileIntegrityError, match=name) as caught:
            open_feature_set(ws, features.key)
        assert caught.value.path == str(path), damage.__name__
        with pytest.raises(FileIntegrityError, match=name) as caught:
            verify_feature_stores(ws)
        assert caught.value.path == str(path), damage.__name__
        if (name, damage) == ("meta.json", _delete):
            # No meta.json: featurize starts the set over and recomputes every file itself.
            assert featurize(ws, model, dataset, proj_dim=64).complete
        else:
            with pytest.raises(FileIntegrityError, match=name):  # never re-recorded as is
                featurize(ws, model, dataset, proj_dim=64)
        path.write_bytes(original)
    assert verify_feature_stores(ws) == len(FEATURE_FILES)
    assert open_feature_set(ws, features.key).complete
    assert len(ws.ledger.indices(kind="features.computed")) == 1


def test_issue9_truncated_feature_file_raises_file_integrity_error(ws: rt.Workspace) -> None:
    model, dataset = setup(32)
    features = featurize(ws, model, dataset, proj_dim=64)
    _truncate(features.path / "features.f16")
    with pytest.raises(FileIntegrityError, match="truncated"):
        open_feature_set(ws, features.key)

    def stop(done: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # an unbound, partial set
        featurize(ws, model, dataset, proj_dim=32, batch_size=8, on_chunk=stop)
    [key] = [k for k in list_feature_sets(ws) if k != features.key]
    path = ws.path / "features" / key
    _truncate(path / "features.f16")
    with pytest.raises(FileIntegrityError, match=r"features\.f16"):
        open_feature_set(ws, key, partial=True)
    (path / "meta.json").write_text('{"n_samples": 32}')
    with pytest.raises(FileIntegrityError, match=r"meta\.json"):
        open_feature_set(ws, key, partial=True)
    (path / "meta.json").write_text("{trunc")
    with pytest.raises(FileIntegrityError, match=r"meta\.json"):
        open_feature_set(ws, key, partial=True)
    with pytest.raises(FileIntegrityError, match=r"no features\.computed event binds"):
        verify_feature_stores(ws)
    with pytest.raises(InvalidInputError, match="key of open_feature_set"):
        open_feature_set(ws, "../attribution")


def test_issue9_deleted_feature_store_is_refused_then_recomputed(ws: rt.Workspace) -> None:
    import shutil

    model, dataset = setup(32)
    features = featurize(ws, model, dataset, proj_dim=64)
    shutil.rmtree(features.path)
    with pytest.raises(FileIntegrityError, match="is missing"):
        verify_feature_stores(ws)
    again = featurize(ws, model, dataset, proj_dim=64)
    assert np.array_equal(np.asarray(again.features), np.asarray(features.features))
    assert verify_feature_stores(ws) == len(FEATURE_FILES)
    assert len(ws.ledger.indices(kind="features.computed")) == 1  # same digests: no new event


def test_issue9_featurize_resume_after_event_does_not_duplicate(
    ws: rt.Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, dataset = setup(32)
    real_append = ws.ledger.append

    def append_then_crash(kind: str, payload: object, **fields: object) -> int:
        index = real_append(kind, payload, **fields)  # type: ignore[arg-type]
        if kind == "features.computed":
            raise SystemExit("crash right after the event was appended")
        return index

    monkeypatch.setattr(ws.ledger, "append", append_then_crash)
    with pytest.raises(SystemExit):
        featurize(ws, model, dataset, proj_dim=64)
    monkeypatch.undo()
    assert len(ws.ledger.indices(kind="features.computed")) == 1
    resumed = featurize(ws, model, dataset, proj_dim=64)
    assert resumed.complete
    assert len(ws.ledger.indices(kind="features.computed")) == 1
    assert resumed.meta["ledger_index"] == ws.ledger.indices(kind="features.computed")[0]
    assert verify_feature_stores(ws) == len(FEATURE_FILES)


CRASH_SCRIPT = """
import sys, torch
from torch.utils.data import TensorDataset
import rowtrail as rt
from rowtrail.training import featurize
torch.set_num_threads(1)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
inputs = torch.randn(32, 6)
dataset = TensorDataset(inputs, (inputs[:, 0] + inputs[:, 1] > 0).long())
ws = rt.open(sys.argv[1], create=True)
featurize(ws, model, dataset, proj_dim=64, batch_size=8)
ws.close()
"""


@pytest.mark.slow
def test_issue9_featurize_killed_after_event_resumes_without_duplicate(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    script = tmp_path / "featurize.py"
    script.write_text(CRASH_SCRIPT)
    env = {**os.environ, "ROWTRAIL_TEST_CRASH_AT": "featurize.after_event"}
    killed = subprocess.run([sys.executable, str(script), str(tmp_path / "ws")], env=env,
                            capture_output=True, text=True)
    assert killed.returncode == 137, killed.stderr
    subprocess.run([sys.executable, str(script), str(tmp_path / "ws")], check=True,
                   capture_output=True)
    with rt.open(tmp_path / "ws") as ws:
        assert len(ws.ledger.indices(kind="features.computed")) == 1
        assert verify_feature_stores(ws) == len(FEATURE_FILES)
