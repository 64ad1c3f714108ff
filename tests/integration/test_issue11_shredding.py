"""Issue 11: erasure on the NumPy path — a convex fit retrained, gradient features redacted.

A logistic regression is fitted (rowtrail's own solver) on rows of a registered source with
a subject column; gradient features of a small network are stored for the same rows. Erasing
one subject must retrain the fit exactly (it equals a fit on the retained rows), overwrite the
subject's feature row in place and bind the rewritten file with ``erasure.redacted``, so that
``ws.verify()`` accepts the redacted file and still rejects any other change.
"""

# ruff: noqa: N806 - X, y: scikit-learn's naming

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import FileIntegrityError, InvalidInputError
from rowtrail.hashing import sha256_digest
from rowtrail.lineage import register_source
from rowtrail.training import fit_logistic, open_feature_set
from rowtrail.unlearning._methods import ModelInput

torch = pytest.importorskip("torch")

from torch.utils.data import TensorDataset  # noqa: E402

N = 60


@pytest.fixture
def setting(tmp_path: Path) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N, 4))
    y = (X[:, 0] - X[:, 1] + 0.5 * rng.normal(size=N) > 0).astype(np.float64)
    ws = rt.init(tmp_path / "ws")
    subjects = [f"A{i // 2}" for i in range(N)]  # two rows per subject
    info = register_source(
        ws,
        name="loans.csv",
        digest=sha256_digest(X.tobytes()),
        format="csv",
        schema={"x": "float"},
        n_rows=N,
        subject_column="applicant",
        subject_ids=subjects,
    )
    ids = info.row_ids()
    with ws.training_run("lr") as run:
        fit = fit_logistic(X, y, l2=1.0, row_ids=ids, run=run)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    dataset = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y).long())
    features = rt.training.featurize(ws, model, dataset, proj_dim=16, row_ids=ids)
    return {"ws": ws, "X": X, "y": y, "ids": ids, "fit": fit, "features": features}


def test_issue11_convex_retraining_is_exact_and_feature_rows_are_redacted(
    setting: dict[str, Any],
) -> None:
    ws, X, y, ids, fit = (setting[k] for k in ("ws", "X", "y", "ids", "fit"))
    key = setting["features"].key
    before = np.asarray(open_feature_set(ws, key).features, dtype=np.float32).copy()
    job = ws.erase(subject="A3", reason="GDPR Art. 17")
    (work,) = job.plan.models
    assert work.removed_ids.tolist() == ids[6:8].tolist()
    assert job.plan.feature_sets == (key,)
    keep = np.setdiff1d(np.arange(N), [6, 7])
    result = job.run(
        ModelInput(fit, X_rebuilt=X[keep], y_rebuilt=y[keep], row_ids=ids[keep]), method="retrain"
    )
    (update,) = result.updates
    reference = fit_logistic(X[keep], y[keep], l2=1.0)
    np.testing.assert_allclose(update.theta, reference.theta, atol=1e-8)
    assert update.exact
    assert update.residual is not None
    assert update.residual < 1e-6
    after = np.asarray(open_feature_set(ws, key).features, dtype=np.float32)
    assert not after[6:8].any()  # the subject's rows are zeros
    np.testing.assert_array_equal(after[keep], before[keep])  # nobody else's changed
    (redacted,) = result.events["erasure.redacted"]
    payload = ws.ledger.entry(redacted).event.payload
    assert payload["job"] == job.job_id
    assert payload["n_redacted"] == 2
    ws.verify()  # the redacted file, bound by erasure.redacted, verifies
    path = setting["features"].path / "features.f16"
    data = bytearray(path.read_bytes())
    data[0] ^= 1  # any other change is still caught
    path.write_bytes(bytes(data))
    with pytest.raises(FileIntegrityError):
        ws.verify()


def test_issue11_a_rebuild_that_keeps_a_removed_sample_is_refused(
    setting: dict[str, Any],
) -> None:
    ws, X, y, ids, fit = (setting[k] for k in ("ws", "X", "y", "ids", "fit"))
    job = ws.erase(source="loans.csv", rows=[10], reason="rectification")
    size = ws.ledger.size
    with pytest.raises(InvalidInputError, match="must leave out the erased samples"):
        job.run(ModelInput(fit, X_rebuilt=X, y_rebuilt=y, row_ids=ids), method="retrain")
    with pytest.raises(InvalidInputError, match="method of erase must be one of"):
        job.run(ModelInput(fit, X_rebuilt=X, y_rebuilt=y, row_ids=ids), method="gradient-ascent")
    assert ws.ledger.size == size


def test_issue11_source_row_request_records_no_raw_rows(setting: dict[str, Any]) -> None:
    ws, X, y, ids, fit = (setting[k] for k in ("ws", "X", "y", "ids", "fit"))
    job = ws.erase(source="loans.csv", rows=[10, 11], reason="rectification")
    keep = np.setdiff1d(np.arange(N), [10, 11])
    result = job.run(ModelInput(fit, X_rebuilt=X[keep], y_rebuilt=y[keep], row_ids=ids[keep]))
    (update,) = result.updates
    assert update.method == "retrain"  # auto: only rebuilt data given, so exact retraining
    event = ws.ledger.entry(result.events["erasure.requested"][0]).event
    (request,) = event.payload["requests"]
    assert request["source"] == "loans.csv"
    assert request["rows"]["scheme"] == "hmac-sha256/row/v1"
    assert set(request) == {  # counts and a commitment; the row numbers are not recorded
        "source",
        "reason",
        "requested_at",
        "received_at",
        "n_rows",
        "rows",
        "n_models",
        "n_predictions",
        "unknown_runs",
    }
    assert set(request["rows"]) == {"scheme", "n", "blob"}
    assert len(ws.ledger.blobs.get(request["rows"]["blob"])) == 2 * 32
    from rowtrail.training._erased import find_erasures

    assert [e.row_ids for e in find_erasures(ws, ids[9:13])] == [tuple(ids[10:12].tolist())]
    ws.verify()


def test_issue11_load_csv_excluding_keeps_every_other_row_id(tmp_path: Path) -> None:
    path = tmp_path / "apps.csv"
    path.write_text(
        "applicant,income,debt\n" + "".join(f"A{i // 2},{i}.5,{i * 2}.0\n" for i in range(10))
    )
    ws = rt.init(tmp_path / "ws")
    full = rt.load_csv(path, workspace=ws, subject="applicant", columns=["income", "debt"])
    job = ws.erase(subject="A1", reason="GDPR Art. 17")
    with job.excluding():
        rebuilt = rt.load_csv(path, workspace=ws, subject="applicant", columns=["income", "debt"])
    assert np.asarray(rebuilt)[:, 0].tolist() == [0.5, 1.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]
    ids = rt.lineage(full).sources()
    kept = rt.lineage(rebuilt).sources()
    (name,) = ids
    assert sorted(set(ids[name]) - set(kept[name])) == [2, 3]


def _network_with_signals(setting: dict[str, Any]) -> tuple[Any, Any, Any]:
    """A network run over the setting's rows that logs one per-sample signal per batch."""
    from torch.utils.data import DataLoader

    ws, X, y, ids = (setting[k] for k in ("ws", "X", "y", "ids"))
    dataset = TensorDataset(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(y).long())
    dataset.row_ids = ids  # type: ignore[attr-defined]
    model = torch.nn.Sequential(torch.nn.Linear(4, 2))
    with ws.training_run("net", model=model) as run:
        for inputs, _ in run.track(DataLoader(dataset, batch_size=20)):
            run.log_signal("first", inputs[:, 0])
    return dataset, model, run


def test_issue11_the_plan_names_per_sample_signal_blobs_of_a_network_run(
    setting: dict[str, Any],
) -> None:

    ws, ids = setting["ws"], setting["ids"]
    _, _, run = _network_with_signals(setting)
    job = ws.erase(subject="A3", reason="GDPR Art. 17")
    signals = [e.index for e in ws.ledger.entries_of_kind("training.signals")]
    assert signals
    assert job.plan.signals == tuple(signals)  # the chunk that drew rows 6 and 7
    assert len(job.models) == 2  # the convex fit and the network
    net = job.models[run.run_id]
    assert net.removed_ids.tolist() == ids[6:8].tolist()
    assert net.fit_indices == ()  # a network trained batch by batch: no convex fit


def test_issue11_signal_values_of_erased_samples_are_removed_and_the_log_verifies(
    setting: dict[str, Any],
) -> None:
    from torch.utils.data import DataLoader

    from rowtrail.errors import LogIntegrityError
    from rowtrail.training._signals import decode_signal
    from rowtrail.unlearning import ModelInput

    ws, X, y, ids = (setting[k] for k in ("ws", "X", "y", "ids"))
    dataset, model, run = _network_with_signals(setting)
    (signals,) = ws.ledger.entries_of_kind("training.signals")
    old = signals.event.blobs[0]
    before = decode_signal(ws.ledger.blobs.get(old))
    job = ws.erase(subject="A3", reason="GDPR Art. 17")  # the subject of samples 6 and 7
    keep = np.setdiff1d(np.arange(len(ids)), [6, 7])

    def retrain() -> Any:  # the same (gradient-free) loop on the rows that remain
        fresh = torch.nn.Sequential(torch.nn.Linear(4, 2))
        for inputs, _ in DataLoader(torch.utils.data.Subset(dataset, keep), batch_size=20):
            fresh(inputs)
        return fresh

    models = [
        ModelInput(setting["fit"], X=X, y=y),
        ModelInput(model, run_id=run.run_id, retrain=retrain),
    ]
    result = job.run(models)
    redacted = [ws.ledger.entry(i).event for i in result.events["erasure.redacted"]]
    (event,) = [e for e in redacted if e.payload.get("kind") == "signals"]
    assert event.payload["replaces"] == old
    after = decode_signal(ws.ledger.blobs.get(event.payload["blob"]))
    assert np.isnan(after[[6, 7]]).all()
    kept = np.setdiff1d(np.arange(before.size), [6, 7])
    np.testing.assert_array_equal(after[kept], before[kept])
    assert not ws.ledger.blobs.has(old)  # the erased values are gone from the disk
    ws.verify()  # the chain and every proof still hold
    # A blob deleted without a recorded redaction is still an integrity failure.
    (other,) = [e for e in ws.ledger.entries_of_kind("training.chunk") if e.event.blobs]
    ws.ledger.blobs.path_of(other.event.blobs[0]).unlink()
    with pytest.raises(LogIntegrityError, match="missing"):
        ws.verify()
