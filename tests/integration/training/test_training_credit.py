from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader, Dataset  # noqa: E402

from rowtrail.training import fit_logistic, read_batches, sample_usage  # noqa: E402

torch.set_num_threads(1)


class RowDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """A map-style dataset whose samples carry row ids (what rt.torch.dataset provides)."""

    def __init__(self, xs: np.ndarray, y: np.ndarray, row_ids: np.ndarray) -> None:
        self.xs = torch.as_tensor(xs, dtype=torch.float32)
        self.y = torch.as_tensor(y, dtype=torch.float32)
        self.row_ids = row_ids

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.xs[i], self.y[i]


def test_mlp_on_credit_answers_when_a_subject_was_used(credit_data) -> None:  # type: ignore[no-untyped-def]
    ws, c = credit_data.ws, credit_data
    train, valid = np.arange(300), np.arange(300, 400)
    train_ds = RowDataset(c.xs[train], c.y[train], c.row_ids[train])
    valid_ds = RowDataset(c.xs[valid], c.y[valid], c.row_ids[valid])
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loader = DataLoader(train_ds, batch_size=32, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    with ws.training_run("credit-mlp", model=model, optimizer=optimizer,
                         checkpoint_every=1) as run:
        for _ in range(2):
            for x, y in run.track(loader):
                loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                run.log_loss(loss)
            with torch.no_grad():
                for x, y in run.track(DataLoader(valid_ds, batch_size=50), role="validation"):
                    val = torch.nn.functional.binary_cross_entropy_with_logits(model(x)[:, 0], y)
                    run.log_loss(val)
    subject = c.applicant_ids[7]  # row 7: in the training split
    uses = sample_usage(ws, subject=subject)
    batches = [u for u in uses if u.kind == "batch"]
    assert {u.epoch for u in batches} == {0, 1}
    assert all(u.role == "train" for u in batches)
    assert all(u.row_id == int(c.row_ids[7]) for u in uses)
    for use in uses:
        use.proof.verify()
    drawn = [r for r in read_batches(ws, run.run_id) if int(c.row_ids[7]) in r.row_ids]
    assert [u.ledger_index for u in batches] == [r.ledger_index for r in drawn]
    held_out = sample_usage(ws, subject=ws.pseudonymize(c.applicant_ids[350]))
    assert {u.role for u in held_out} == {"validation"}
    assert sample_usage(ws, source="application.csv", rows=[7])[0].row_id == int(c.row_ids[7])


def test_logistic_fit_on_credit_is_recorded_with_its_hessian(credit_data) -> None:  # type: ignore[no-untyped-def]
    ws, c = credit_data.ws, credit_data
    with ws.training_run("credit-lr", params={"l2": 1.0}) as run:
        fit = fit_logistic(c.xs, c.y, l2=1.0, run=run, row_ids=c.row_ids)
    assert fit.converged
    [(entry, _)] = ws.ledger.proven_entries(kind="training.fit")
    hessian = np.frombuffer(ws.ledger.blobs.get(entry.event.payload["blobs"]["hessian"]))
    assert np.array_equal(hessian.reshape(fit.hessian.shape), fit.hessian)
    theta = np.frombuffer(ws.ledger.blobs.get(entry.event.payload["blobs"]["theta"]))
    assert np.array_equal(theta, fit.theta)
    [(sealed, _)] = ws.ledger.proven_entries(kind="training.completed")
    assert sealed.event.payload["model"]["digest"] == entry.event.payload["blobs"]["theta"]
    uses = sample_usage(ws, subject=c.applicant_ids[3])
    assert [u.kind for u in uses] == ["split", "fit"]


def test_frames_dataset_row_ids_flow_into_the_trail(ws, tmp_path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pandas")
    import rowtrail as rt
    from rowtrail.datasets import credit

    data = credit(n_applicants=120, seed=1, out_dir=tmp_path / "credit")
    frame = rt.pandas.read_csv(data.application_path, subject="applicant_id", workspace=ws)
    applicant = str(frame["applicant_id"].iloc[5])
    columns = ["CNT_CHILDREN", "DAYS_BIRTH", "AMT_CREDIT", "EXT_SOURCE_2"]
    frame = frame[[*columns, "TARGET"]].fillna(0.0)
    dataset = rt.torch.dataset(frame, target="TARGET")
    model = torch.nn.Linear(4, 1)
    with ws.training_run("frames", model=model) as run:
        for _ in run.track(DataLoader(dataset, batch_size=16, shuffle=True)):
            pass
    recorded = read_batches(ws, run.run_id)
    assert np.array_equal(np.sort(np.concatenate([r.row_ids for r in recorded])),
                          np.sort(dataset.row_ids))
    uses = sample_usage(ws, subject=applicant)
    assert [u.kind for u in uses] == ["split", "batch"]
    assert uses[1].row_id == int(dataset.row_ids[5])
