from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from rowtrail.errors import InvalidInputError  # noqa: E402
from rowtrail.training import RademacherProjector, SRHTProjector, make_projector  # noqa: E402
from rowtrail.training._projection import fwht  # noqa: E402


def jl_epsilon(k: int, m: int, delta: float = 1e-3) -> float:
    """Inner-product JL bound: |<Pa,Pb> - <a,b>| <= eps |a||b| for all m^2 pairs w.p. 1-delta."""
    return math.sqrt(8 * math.log(4 * m * m / delta) / k)


def hadamard(d: int) -> np.ndarray:
    h = np.array([[1.0]])
    while h.shape[0] < d:
        h = np.block([[h, h], [h, -h]])
    return h


def test_fwht_matches_hadamard_matrix() -> None:
    x = torch.randn(3, 32, dtype=torch.float64)
    assert np.allclose(fwht(x.clone()).numpy(), x.numpy() @ hadamard(32).T)


@pytest.mark.parametrize("cls", [SRHTProjector, RademacherProjector])
def test_inner_products_within_jl_bound(cls: type) -> None:
    torch.manual_seed(0)
    grads = torch.randn(40, 3000) * torch.linspace(0.1, 3.0, 3000)  # uneven coordinates
    grads[:5, :10] += 50.0  # some spiky vectors
    k = 1024
    features = cls(k, seed=3).project(grads)
    assert features.shape == (40, k)
    exact = grads.double() @ grads.double().T
    approx = features.double() @ features.double().T
    norms = grads.double().norm(dim=1)
    error = ((approx - exact) / (norms[:, None] * norms[None, :])).abs().max().item()
    assert error <= jl_epsilon(k, 40)


@pytest.mark.parametrize("cls", [SRHTProjector, RademacherProjector])
def test_projection_is_a_pure_function_of_seed(cls: type) -> None:
    grads = torch.randn(6, 700)
    first = cls(128, seed=5).project(grads)
    assert torch.equal(first, cls(128, seed=5).project(grads))
    # rows are projected independently: chunking cannot change a row's features
    assert torch.allclose(first[2:4], cls(128, seed=5).project(grads[2:4]), atol=1e-5)
    assert not torch.allclose(first, cls(128, seed=6).project(grads))


def test_rademacher_blocks_do_not_depend_on_block_count() -> None:
    grads = torch.randn(4, 2500)
    small = RademacherProjector(64, seed=1, block_size=1024).project(grads)
    assert small.shape == (4, 64)


def test_bad_parameters() -> None:
    with pytest.raises(InvalidInputError, match="proj_dim of SRHTProjector"):
        SRHTProjector(0)
    with pytest.raises(InvalidInputError, match="seed of RademacherProjector"):
        RademacherProjector(8, seed=-1)
    with pytest.raises(InvalidInputError, match="projector of featurize"):
        make_projector("gaussian", proj_dim=8, seed=0)
