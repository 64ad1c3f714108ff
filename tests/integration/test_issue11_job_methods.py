"""Issue 11: the erasure job end to end by model class, each with its signed certificate.

- a convex fit (``fit_logistic``) of an applicant table: Newton removal of one subject,
  verified against retraining without it, and the certificate checked with the exported key
  on a machine view with no workspace (the CLI, run from an empty directory);
- a subject whose rows were *aggregated into other applicants' features* (a referee table
  summed per applicant): the applicant samples are recomputed from the rebuilt pipeline
  (``job.excluding()``) and replaced by Newton, matching exact retraining on the rebuilt data;
- a sharded network (SISA): only the subject's shard is retrained, exact.
"""

# ruff: noqa: N803, N806 - X, y: scikit-learn's naming

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import rowtrail as rt
from rowtrail.cli import app
from rowtrail.errors import CertificateError
from rowtrail.training import fit_logistic, solve_logistic
from rowtrail.training._convex import _penalty
from rowtrail.unlearning import ModelInput, verify_certificate

pd = pytest.importorskip("pandas")

N = 120


def write_tables(path: Path) -> dict[str, Path]:
    """An applicant table (subject ``app_id``) and a referee table (subject ``referee_id``).

    Each applicant names two referees; referee ``r`` vouches for several applicants, so a
    referee's rows are summed into other people's features.
    """
    rng = np.random.default_rng(5)
    x = rng.normal(size=(N, 3))
    y = (x @ [1.0, -0.5, 0.3] + 0.5 * rng.normal(size=N) > 0).astype(int)
    apps = pd.DataFrame({"app_id": [f"A{i:03d}" for i in range(N)], "x0": x[:, 0],
                         "x1": x[:, 1], "x2": x[:, 2], "y": y})
    refs = pd.DataFrame({
        "referee_id": [f"R{int(r):02d}" for r in rng.integers(0, 30, size=2 * N)],
        "app_id": [f"A{i:03d}" for i in np.repeat(np.arange(N), 2)],
        "score": rng.normal(size=2 * N),
    })
    paths = {"applications": path / "applications.csv", "referees": path / "referees.csv"}
    apps.to_csv(paths["applications"], index=False)
    refs.to_csv(paths["referees"], index=False)
    return paths


def design(ws: Any, paths: dict[str, Path]) -> tuple[Any, Any, Any]:
    """The user's pipeline: read, aggregate referees per applicant, join; traced X, y."""
    apps = rt.pandas.read_csv(paths["applications"], source="applications", workspace=ws,
                              subject="app_id")
    refs = rt.pandas.read_csv(paths["referees"], source="referees", workspace=ws,
                              subject="referee_id")
    vouch = refs.groupby("app_id").agg(ref_score=("score", "sum")).reset_index()
    table = apps.merge(vouch, on="app_id", how="left").fillna({"ref_score": 0.0})
    X = rt.to_numpy(table[["x0", "x1", "x2", "ref_score"]])
    return X, np.asarray(table["y"], dtype=np.float64), table


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    paths = write_tables(tmp_path)
    ws = rt.init(tmp_path / "ws")
    X, y, table = design(ws, paths)
    train = np.arange(N) < 90
    with ws.training_run("scorecard") as run:
        fit = fit_logistic(X[train], y[train], l2=1.0, run=run)
    return {"ws": ws, "paths": paths, "X": X, "y": y, "train": train, "fit": fit,
            "table": table, "tmp": tmp_path}


def retrained(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    design_ = np.c_[X, np.ones(len(y))]
    theta, _ = solve_logistic(design_, y, _penalty(design_.shape[1], 1.0, True))
    return np.asarray(theta)


def export_key(ws: Any, out: Path) -> Path:
    result = CliRunner().invoke(app, ["ledger", "export-trust", str(out), "--workspace",
                                      str(ws.path)])
    assert result.exit_code == 0, result.output
    return out / "vkey"


def test_issue11_newton_removal_of_a_subject_is_verified_and_certified(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, fit, X, y, train = setup["ws"], setup["fit"], setup["X"], setup["y"], setup["train"]
    job = ws.erase(subject="A007", reason="GDPR Art. 17 request")
    (work,) = job.models.values()
    assert work.removed_ids.size == 1
    assert work.recomputed_ids.size == 0
    result = job.run(ModelInput(fit, X=X[train], y=y[train], test=(X[~train], y[~train])))
    (update,) = result.updates
    assert update.method == "newton"
    assert update.exact
    assert update.verification["status"] == "passed", update.verification
    keep = train.copy()
    keep[7] = False
    reference = retrained(np.asarray(X)[keep], y[keep])
    distance = float(np.linalg.norm(update.theta - reference))
    assert distance <= update.bound
    assert distance < 1e-4
    ws.verify()

    data = job.certificate()
    vkey = export_key(ws, setup["tmp"] / "trust")
    content = verify_certificate(data, vkey.read_text())
    assert content.request.subjects == (ws.pseudonymize("A007"),)
    assert content.counts.n_removed_samples == 1
    (method,) = content.methods
    assert (method.name, method.exact) == ("newton", True)
    assert method.bound == pytest.approx(update.bound)
    assert {f.name.split(": ")[1] for f in content.figures} >= {
        "gap_closed_pct", "prediction_agreement", "mia_auc_difference"
    }
    assert all(f.passed for f in content.figures)
    assert "A007" not in data.decode()
    # Anyone holding the file and the key checks it, with no workspace in sight.
    cert = setup["tmp"] / "elsewhere" / "certificate.json"
    cert.parent.mkdir()
    cert.write_bytes(data)
    monkeypatch.chdir(cert.parent)
    monkeypatch.delenv("ROWTRAIL_WORKSPACE", raising=False)
    ok = CliRunner().invoke(app, ["certificate", "verify", str(cert), "--vkey", str(vkey),
                                  "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["job_id"] == job.job_id
    envelope = json.loads(data)
    statement = base64.b64decode(envelope["payload"])
    envelope["payload"] = base64.b64encode(statement.replace(b"newton", b"retrain")).decode()
    tampered = json.dumps(envelope).encode()
    with pytest.raises(CertificateError):
        verify_certificate(tampered, vkey.read_text())


def test_issue11_a_referee_summed_into_others_is_recomputed_and_replaced(
    setup: dict[str, Any],
) -> None:
    ws, fit, X, y, train = setup["ws"], setup["fit"], setup["X"], setup["y"], setup["train"]
    refs = pd.read_csv(setup["paths"]["referees"])
    referee = refs["referee_id"].value_counts().index[0]  # vouches for several applicants
    vouched = sorted({int(a[1:]) for a in refs.loc[refs["referee_id"] == referee, "app_id"]})
    job = ws.erase(subject=referee, reason="GDPR Art. 17 request")
    (work,) = job.models.values()
    assert work.removed_ids.size == 0  # a referee is no training sample...
    trained = [i for i in vouched if train[i]]
    assert work.recomputed_ids.size == len(trained)  # ...but is in these samples' features
    with job.excluding():  # the user's own pipeline, re-run without the referee's rows
        X_new, y_new, _ = design(ws, setup["paths"])
    X_rebuilt, y_rebuilt = np.asarray(X_new)[train], y_new[train]
    result = job.run(
        ModelInput(fit, X=X[train], y=y[train], X_rebuilt=X_new[train], y_rebuilt=y_rebuilt,
                   test=(X[~train], y[~train]))
    )
    (update,) = result.updates
    assert update.method == "newton"
    changed = np.flatnonzero(np.any(np.asarray(X)[train] != X_rebuilt, axis=1))
    assert sorted(changed.tolist()) == trained
    reference = retrained(X_rebuilt, y_rebuilt)
    assert np.linalg.norm(update.theta - reference) <= update.bound
    content = verify_certificate(job.certificate(), ws.ledger.verifier.vkey)
    assert content.counts.n_recomputed_samples == len(trained)
    assert content.counts.n_removed_samples == 0
    ws.verify()


def test_issue11_a_sharded_network_retrains_only_the_subjects_shard(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from rowtrail.lineage import register_source
    from rowtrail.unlearning import train_sharded

    ws = rt.init(tmp_path / "ws")
    rng = np.random.default_rng(0)
    # 48 subjects over 3 shards: a shard left empty, or holding only P05, is vanishingly
    # unlikely whatever the workspace's pseudonym key (which places subjects in shards).
    n, people = 96, [f"P{i % 48:02d}" for i in range(96)]
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 1] > 0).astype(np.float32)
    info = register_source(ws, name="people.csv", digest="sha256:" + "ab" * 32, format="csv",
                           schema={"f": "float"}, n_rows=n, subject_column="person",
                           subject_ids=people)
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    def make_model() -> Any:
        return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))

    def train_shard(model: Any, loader: Any, run: Any) -> None:
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(2):
            for xb, yb in run.track(loader):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    model(xb).squeeze(1), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()

    model = train_sharded(ws, "mlp", make_model=make_model, train_shard=train_shard,
                          dataset=dataset, row_ids=info.row_ids(), n_shards=3, seed=1,
                          batch_size=16)
    job = ws.erase(subject="P05", reason="GDPR Art. 17 request")
    result = job.run(ModelInput(model))
    (update,) = result.updates
    assert update.method.startswith("sisa-shard-retrain")
    assert update.exact
    assert len(update.verification["affected_shards"]) == 1
    content = verify_certificate(job.certificate(), ws.ledger.verifier.vkey)
    assert content.methods[0].exact
    assert content.counts.n_removed_samples == 2
    ws.verify()


def test_issue11_job_excluding_drops_the_rows_from_polars_readers_too(tmp_path: Path) -> None:
    pl = pytest.importorskip("polars")
    paths = write_tables(tmp_path)
    ws = rt.init(tmp_path / "ws")
    before = rt.polars.read_csv(paths["referees"], source="referees", workspace=ws,
                                subject="referee_id")
    referee = str(before["referee_id"][0])
    job = ws.erase(subject=referee, reason="GDPR Art. 17 request")
    with job.excluding():
        eager = rt.polars.read_csv(paths["referees"], source="referees", workspace=ws,
                                   subject="referee_id")
        lazy = rt.polars.scan_csv(paths["referees"], source="referees", workspace=ws,
                                  subject="referee_id").filter(pl.col("score") > -10).collect()
    kept = [i for i, r in enumerate(before["referee_id"].to_list()) if r != referee]
    for frame in (eager, lazy):
        assert referee not in frame["referee_id"].to_list()
        view = rt.lineage(frame)
        # Every other row keeps its own row number (hence its row id).
        assert [dict(view.rows_of(i))["referees"] for i in range(frame.height)] == [
            [k] for k in kept
        ]


def test_issue11_a_replayable_network_unlearns_by_replay_exactly(tmp_path: Path) -> None:
    """Issue 12 offers the job replay: the run re-executed without the rows, bit for bit."""
    torch = pytest.importorskip("torch")
    from rowtrail.lineage import register_source
    from rowtrail.training import counterfactual

    torch.set_num_threads(1)
    ws = rt.init(tmp_path / "ws")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = (x[:, 0] > x[:, 1]).long()
    people = [f"P{i % 16:02d}" for i in range(64)]
    info = register_source(ws, name="people.csv", digest="sha256:" + "cd" * 32, format="csv",
                           schema={"f": "float"}, n_rows=64, subject_column="person",
                           subject_ids=people)

    class Rows(torch.utils.data.Dataset):  # type: ignore[type-arg]
        row_ids = info.row_ids()

        def __len__(self) -> int:
            return 64

        def __getitem__(self, i: int) -> Any:
            return x[i], y[i]

    def per_sample(output: Any, target: Any) -> Any:
        return torch.nn.functional.cross_entropy(output, target, reduction="none")

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    loader = torch.utils.data.DataLoader(Rows(), batch_size=16, shuffle=True,
                                         generator=torch.Generator().manual_seed(1))
    with ws.training_run("mlp", model=model, optimizer=optimizer, replayable=True,
                         loss_fn=per_sample, checkpoint_every=1) as run:
        for _ in range(3):
            for xb, yb in run.track(loader):
                loss = per_sample(model(xb), yb).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    job = ws.erase(subject="P05", reason="GDPR Art. 17 request")
    result = job.run(ModelInput(model, replay=run))
    (update,) = result.updates
    assert (update.method, update.exact) == ("replay", True)
    expected = counterfactual(run, job.row_ids)
    assert update.digest_after == expected.digest
    for name, tensor in update.model.state_dict().items():
        assert torch.equal(tensor, expected.state_dict[name])
    content = verify_certificate(job.certificate(), ws.ledger.verifier.vkey)
    assert content.methods[0].name == "replay"
    assert content.counts.n_removed_samples == 4
    ws.verify()
