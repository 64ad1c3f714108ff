"""Issue 11: sharded (SISA) training, and exact unlearning by retraining only affected shards.

A tiny MLP on generated data whose rows belong to subjects (registered with a subject column,
so each sample's pseudonym comes from the workspace). Checked: one subject's rows land in one
shard; unlearning a subject retrains only that shard; the result is bit-identical (every
parameter, ``torch.equal``) to an independent from-scratch training without the subject; the
other shards' predictions do not change; the ledger records it and ``ws.verify()`` passes; bad
requests raise typed errors and record nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import rowtrail as rt
from rowtrail.errors import (
    InvalidInputError,
    StateError,
    UnknownSourceError,
    VerificationError,
)
from rowtrail.hashing import sha256_digest
from rowtrail.ids import ROW_BITS
from rowtrail.lineage import register_source, rows_of_subject
from rowtrail.unlearning._sisa import (
    METHOD_FULL_RETRAIN,
    METHOD_SHARD_RETRAIN,
    METHOD_WARM_START,
    ShardedModel,
    train_sharded,
)
from rowtrail.unlearning._sisa_load import load_sharded, verify_sharded
from rowtrail.unlearning._sisa_shards import shard_seed

torch = pytest.importorskip("torch")

N_SUBJECTS, ROWS_EACH, N_FEATURES, N_SHARDS, SEED = 40, 4, 6, 3, 7


class Data:
    """Generated rows of ``N_SUBJECTS`` subjects, registered as one source."""

    def __init__(self, ws: Any) -> None:
        rng = np.random.default_rng(0)
        n = N_SUBJECTS * ROWS_EACH
        x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
        y = (x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.normal(size=n) > 0).astype(np.float32)
        self.subject_ids = [f"person-{i % N_SUBJECTS}" for i in range(n)]
        info = register_source(
            ws, name="people.csv", digest=sha256_digest(x.tobytes()), format="csv",
            schema={f"f{j}": "float" for j in range(N_FEATURES)}, n_rows=n,
            subject_column="person", subject_ids=self.subject_ids,
        )
        self.info = info
        self.row_ids = info.row_ids()
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.dataset = torch.utils.data.TensorDataset(self.x, self.y)


def make_model() -> Any:
    return torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, 12), torch.nn.ReLU(), torch.nn.Dropout(0.1),
        torch.nn.Linear(12, 1),
    )


def train_shard(model: Any, loader: Any, run: Any) -> None:
    """An ordinary PyTorch loop (with dropout: its randomness must be reproduced too)."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(3):
        for x, y in run.track(loader):
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x).squeeze(1), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.log_loss(loss)


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Any]:
    with rt.init(tmp_path / "ws") as workspace:
        yield workspace


@pytest.fixture
def data(ws: Any) -> Data:
    return Data(ws)


@pytest.fixture
def sharded(ws: Any, data: Data) -> ShardedModel:
    return train_sharded(
        ws, "mlp", make_model=make_model, train_shard=train_shard, dataset=data.dataset,
        row_ids=data.row_ids, n_shards=N_SHARDS, seed=SEED, batch_size=16,
    )


def params_equal(a: Any, b: Any) -> bool:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def test_one_subject_touches_exactly_one_shard(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    sizes = [s.row_ids.size for s in sharded.shards]
    assert sum(sizes) == data.row_ids.size
    assert min(sizes) > 0
    assert np.array_equal(np.sort(sharded.row_ids), data.row_ids)  # disjoint and complete
    used = set()
    for i in range(N_SUBJECTS):
        rows = rows_of_subject(ws, f"person-{i}")
        assert rows.size == ROWS_EACH
        shards = {k for r in sharded.shard_of_rows(rows).values() for k in r}
        assert len(shards) == 1, f"person-{i} is in shards {shards}"
        used |= shards
    assert used == set(range(N_SHARDS))


def test_unlearn_retrains_only_the_subjects_shard_bit_identical_to_retraining(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    forget = rows_of_subject(ws, "person-3")
    (k,) = {s for r in sharded.shard_of_rows(forget).values() for s in r}
    before = sharded.shard_proba(data.x)

    done = sharded.unlearn(forget)

    assert done.method == METHOD_SHARD_RETRAIN
    assert done.exact
    assert done.affected_shards == done.retrained_shards == (k,)
    assert done.resumed_from_stage == {k: 0}
    assert done.n_removed_samples == ROWS_EACH
    assert done.model_digest_before == sharded.digest != done.model_digest_after
    after = done.model
    assert not np.isin(forget, after.row_ids).any()
    assert after.row_ids.size == data.row_ids.size - ROWS_EACH
    for old, new in zip(sharded.shards, after.shards, strict=True):
        if old.index == k:
            assert old.run_id != new.run_id
            assert not params_equal(old.model, new.model)
        else:  # untouched: same run, same weights, same predictions
            assert new.run_id == old.run_id
            assert new.model is old.model
    now = after.shard_proba(data.x)
    others = [j for j in range(N_SHARDS) if j != k]
    assert np.array_equal(now[others], before[others])
    assert not np.array_equal(now[k], before[k])
    assert np.array_equal(after.predict_proba(data.x), now.mean(axis=0))

    # Independent from-scratch sharded training on the dataset without the subject's rows.
    keep = np.flatnonzero(~np.isin(data.row_ids, forget))
    scratch = train_sharded(
        ws, "mlp-scratch", make_model=make_model, train_shard=train_shard,
        dataset=torch.utils.data.Subset(data.dataset, keep.tolist()),
        row_ids=data.row_ids[keep], n_shards=N_SHARDS, seed=SEED, batch_size=16,
    )
    for ours, theirs in zip(after.shards, scratch.shards, strict=True):
        assert np.array_equal(ours.row_ids, theirs.row_ids)
        assert params_equal(ours.model, theirs.model)
        assert ours.model_digest == theirs.model_digest
    assert after.digest == scratch.digest


def test_shard_retrain_equals_the_documented_from_scratch_recipe(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    """Retrain shard k by hand as the module documents it, without train_sharded."""
    forget = rows_of_subject(ws, "person-11")
    done = sharded.unlearn(forget)
    (k,) = done.affected_shards
    old = sharded.shards[k]
    kept = old.positions[~np.isin(old.row_ids, forget)]
    seed = shard_seed(SEED, k)
    assert old.seed == seed
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = make_model()
            torch.manual_seed(seed)  # stage 0's seed is the shard seed
            subset = torch.utils.data.Subset(data.dataset, kept.tolist())
            loader = torch.utils.data.DataLoader(
                subset, batch_size=16, shuffle=True,
                generator=torch.Generator().manual_seed(seed),
            )
            with ws.training_run("by-hand", model=model) as run:
                train_shard(model, loader, run)
    finally:
        torch.use_deterministic_algorithms(deterministic)
    assert params_equal(model, done.model.shards[k].model)


def test_ledger_records_training_and_unlearning_and_verifies(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    forget = rows_of_subject(ws, "person-5")
    done = sharded.unlearn(forget)
    trained = ws.ledger.entry(sharded.ledger_index).event
    assert trained.kind == "sharded.trained"
    p = trained.payload
    assert p["n_shards"] == N_SHARDS
    assert p["seed"] == SEED
    assert p["aggregation"] == "mean-probability"
    assert p["model_digest"] == sharded.digest
    assert [s["model_digest"] for s in p["shards"]] == [s.model_digest for s in sharded.shards]
    assert p["assignment_blob"] in trained.blobs
    blob = np.frombuffer(ws.ledger.blobs.get(p["assignment_blob"]), dtype="<i8")
    ids, which, stage = blob.reshape(3, -1)
    assert not stage.any()  # one slice
    assert np.array_equal(ids, sharded.row_ids)
    for s in sharded.shards:
        assert set(which[np.isin(ids, s.row_ids)].tolist()) == {s.index}
    # every shard's run is sealed with the digest the sharded event names
    seals = {e.event.payload["run"]: e.event.payload
             for e in ws.ledger.entries_of_kind("training.completed")}
    for s in sharded.shards:
        assert seals[s.run_id]["model"]["digest"] == s.model_digest
    unlearned = ws.ledger.entry(done.ledger_index).event
    assert unlearned.kind == "sharded.unlearned"
    q = unlearned.payload
    assert q["follows"] == sharded.ledger_index
    assert q["method"] == METHOD_SHARD_RETRAIN
    assert q["exact"] is True
    assert q["affected_shards"] == list(done.affected_shards)
    assert q["model_digest_before"] == sharded.digest
    assert q["model_digest"] == done.model_digest_after == done.model.digest
    removed = np.frombuffer(ws.ledger.blobs.get(q["removed"]["row_ids_blob"]), dtype="<i8")
    assert np.array_equal(removed, np.sort(forget))
    (k,) = done.affected_shards
    new_run = seals[done.model.shards[k].run_id]
    assert new_run["model"]["digest"] == done.model.shards[k].model_digest
    ws.verify()


def test_full_retrain_is_exact_and_warm_start_is_labelled_approximate(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    forget = rows_of_subject(ws, "person-8")
    shard = sharded.unlearn(forget)
    full = sharded.full_retrain(forget)
    assert full.method == METHOD_FULL_RETRAIN
    assert full.exact
    assert full.retrained_shards == tuple(range(N_SHARDS))
    assert full.affected_shards == shard.affected_shards
    assert full.model_digest_after == shard.model_digest_after  # the same exact answer
    warm = sharded.full_retrain(forget, warm_start=True)
    assert warm.method == METHOD_WARM_START
    assert not warm.exact
    assert ws.ledger.entry(warm.ledger_index).event.payload["exact"] is False
    assert warm.model_digest_after != shard.model_digest_after
    ws.verify()


def test_unlearning_twice_chains_and_stays_exact(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    first = rows_of_subject(ws, "person-1")
    second = rows_of_subject(ws, "person-2")
    middle = sharded.unlearn(first)
    step = middle.model.unlearn(second)
    assert ws.ledger.entry(step.ledger_index).event.payload["follows"] == middle.ledger_index
    assert step.model.sharded_id == sharded.sharded_id
    both = sharded.unlearn(np.concatenate([first, second]))
    assert step.model.digest == both.model.digest
    with pytest.raises(InvalidInputError, match="already removed"):
        step.model.unlearn(first)


def test_bad_requests_raise_typed_errors_and_record_nothing(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    other = register_source(
        ws, name="other.csv", digest=sha256_digest(b"other"), format="csv",
        schema={"a": "int"}, n_rows=3,
    )
    size = ws.ledger.size
    with pytest.raises(UnknownSourceError, match="does not know"):
        sharded.unlearn(np.array([(999 << ROW_BITS) | 1], dtype=np.int64))
    with pytest.raises(UnknownSourceError, match="has 160 rows"):
        sharded.unlearn(np.array([int(data.row_ids[0]) + 10_000], dtype=np.int64))
    with pytest.raises(InvalidInputError, match="never trained on"):
        sharded.unlearn(other.row_ids()[:1])
    with pytest.raises(InvalidInputError, match="non-empty 1-d array"):
        sharded.unlearn(np.zeros(0, dtype=np.int64))
    with pytest.raises(InvalidInputError, match="non-empty 1-d array"):
        sharded.unlearn(["person-1"])
    assert ws.ledger.size == size


def test_bad_training_arguments_raise(ws: Any, data: Data) -> None:
    common: dict[str, Any] = {
        "make_model": make_model, "dataset": data.dataset, "row_ids": data.row_ids,
    }
    with pytest.raises(InvalidInputError, match="n_shards of train_sharded"):
        train_sharded(ws, "x", train_shard=train_shard, n_shards=0, **common)
    with pytest.raises(InvalidInputError, match="pseudonyms"):
        train_sharded(ws, "x", train_shard=train_shard, n_shards=2,
                      subjects=data.subject_ids, **common)

    def untracked(model: Any, loader: Any, run: Any) -> None:
        for _ in loader:
            pass

    with pytest.raises(StateError, match=r"run\.track\(loader\)"):
        train_sharded(ws, "x", train_shard=untracked, n_shards=2, **common)


def test_sliced_shards_resume_from_the_checkpoint_before_the_removed_slice(
    ws: Any, data: Data
) -> None:
    """With slices, retraining starts at the removed subject's slice and is still exact."""
    calls: list[int] = []

    def counting(model: Any, loader: Any, run: Any) -> None:
        calls.append(len(loader.dataset))
        train_shard(model, loader, run)

    common: dict[str, Any] = {
        "make_model": make_model, "train_shard": counting, "n_shards": 2, "seed": SEED,
        "batch_size": 16, "slices": 3,
    }
    sliced = train_sharded(ws, "sliced", dataset=data.dataset, row_ids=data.row_ids, **common)
    assert len(calls) == 2 * 3
    for shard in sliced.shards:
        assert len(shard.stage_digests) == 3
        assert set(shard.slices.tolist()) == {0, 1, 2}
    # a subject whose slice is the last one: only the last stage is retrained
    late = next(
        i for i in range(N_SUBJECTS)
        if {int(s.slices[np.isin(s.row_ids, rows_of_subject(ws, f"person-{i}"))].max(initial=-1))
            for s in sliced.shards} - {-1} == {2}
    )
    forget = rows_of_subject(ws, f"person-{late}")
    calls.clear()
    done = sliced.unlearn(forget)
    (k,) = done.affected_shards
    assert done.resumed_from_stage == {k: 2}
    assert len(calls) == 1
    payload = ws.ledger.entry(done.ledger_index).event.payload
    assert payload["resumed_from_stage"] == {str(k): 2}
    new = done.model.shards[k]
    assert new.stage_digests[:2] == sliced.shards[k].stage_digests[:2]
    assert new.stage_digests[2] != sliced.shards[k].stage_digests[2]
    keep = np.flatnonzero(~np.isin(data.row_ids, forget))
    scratch = train_sharded(
        ws, "sliced-scratch", dataset=torch.utils.data.Subset(data.dataset, keep.tolist()),
        row_ids=data.row_ids[keep], **common,
    )
    for ours, theirs in zip(done.model.shards, scratch.shards, strict=True):
        assert params_equal(ours.model, theirs.model)
        assert ours.stage_digests == theirs.stage_digests
    assert done.model.digest == scratch.digest
    ws.verify()


def test_removing_a_whole_shard_is_refused(ws: Any, data: Data) -> None:
    sharded = train_sharded(
        ws, "two", make_model=make_model, train_shard=train_shard, dataset=data.dataset,
        row_ids=data.row_ids, n_shards=2, seed=SEED, batch_size=16,
    )
    size = ws.ledger.size
    with pytest.raises(InvalidInputError, match="at least one sample"):
        sharded.unlearn(sharded.shards[0].row_ids)
    assert ws.ledger.size == size


def test_load_sharded_rebuilds_the_recorded_model_and_unlearns_exactly(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    first = sharded.unlearn(rows_of_subject(ws, "person-4"))
    common: dict[str, Any] = {
        "make_model": make_model, "train_shard": train_shard, "dataset": data.dataset,
        "row_ids": data.row_ids,
    }
    loaded = load_sharded(ws, first.ledger_index, **common)
    assert loaded.digest == first.model.digest
    assert loaded.sharded_id == sharded.sharded_id
    assert np.array_equal(loaded.predict_proba(data.x), first.model.predict_proba(data.x))
    assert load_sharded(ws, sharded.ledger_index, **common).digest == sharded.digest
    forget = rows_of_subject(ws, "person-9")
    assert loaded.unlearn(forget).model.digest == first.model.unlearn(forget).model.digest


def test_verify_sharded_refuses_altered_models_and_bad_loads(
    ws: Any, data: Data, sharded: ShardedModel
) -> None:
    verify_sharded(ws, sharded)
    common: dict[str, Any] = {"make_model": make_model, "train_shard": train_shard}
    with pytest.raises(InvalidInputError, match="sharded"):
        load_sharded(ws, 0, dataset=data.dataset, row_ids=data.row_ids, **common)
    with pytest.raises(InvalidInputError, match="recorded samples"):
        load_sharded(ws, sharded.ledger_index, **common,
                     dataset=torch.utils.data.Subset(data.dataset, list(range(100))),
                     row_ids=data.row_ids[:100])
    with torch.no_grad():
        next(sharded.shards[1].model.parameters()).add_(1e-3)
    with pytest.raises(VerificationError, match="shard 1's weights"):
        verify_sharded(ws, sharded)
