"""Seeded random projections of per-sample gradients that never materialise a pxk matrix.

Both projectors are Johnson-Lindenstrauss maps ``P: R^p → R^k`` with ``E⟨Pa, Pb⟩ = ⟨a, b⟩``
(TRAK, Park et al. 2023, §3.2 uses the dense Rademacher form; Ailon & Chazelle 2009 the
structured one), and are a pure function of ``(seed, p, k)``, so features computed in
different processes, chunks or resumed runs are consistent:

- :class:`RademacherProjector`: ``P = Rᵀ/√k`` with ``R`` in ``{±1}^{pxk}``, generated in row
  blocks of ``block_size x k`` from a generator seeded by ``(seed, block)``. Cost ``O(n·p·k)``.
- :class:`SRHTProjector`: subsampled randomised Hadamard transform
  ``P a = √(1/k) · S H D a`` (``D`` random signs, ``H`` the unnormalised Walsh-Hadamard
  transform of size ``d = 2^⌈log2 max(p, k)⌉``, ``S`` picks k of d coordinates without
  replacement). Cost ``O(n·d·log d)``: far cheaper than dense at k = 4096, the default.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["Projector", "RademacherProjector", "SRHTProjector", "make_projector"]


class Projector(Protocol):
    """Maps per-sample gradients of shape (n, p) to features of shape (n, proj_dim)."""

    kind: str
    proj_dim: int
    seed: int

    def project(self, grads: Tensor) -> Tensor:
        """Return the projected float32 features of ``grads`` (n, p)."""
        ...

    def spec(self) -> dict[str, Any]:
        """Return the JSON description that identifies this projection."""
        ...


def _check(proj_dim: object, seed: object, caller: str) -> None:
    if not isinstance(proj_dim, int) or isinstance(proj_dim, bool) or proj_dim < 1:
        raise InvalidInputError(f"proj_dim of {caller} must be an int >= 1; got {proj_dim!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InvalidInputError(f"seed of {caller} must be an int >= 0; got {seed!r}")


def _sub_seed(seed: int, *stream: int) -> int:
    state = np.random.SeedSequence([seed, *stream]).generate_state(1, np.uint64)[0]
    return int(state) & ((1 << 63) - 1)


class RademacherProjector:
    """Dense ±1/√k projection generated blockwise from a seeded generator.

    Examples
    --------
    >>> import torch
    >>> proj = RademacherProjector(64, seed=0)
    >>> proj.project(torch.ones(2, 1000)).shape
    torch.Size([2, 64])
    """

    kind = "rademacher"

    def __init__(self, proj_dim: int, *, seed: int = 0, block_size: int = 1024) -> None:
        _check(proj_dim, seed, "RademacherProjector")
        self.proj_dim = proj_dim
        self.seed = seed
        self.block_size = block_size

    def spec(self) -> dict[str, Any]:
        """Return ``{"kind", "proj_dim", "seed", "block_size"}``."""
        return {"kind": self.kind, "proj_dim": self.proj_dim, "seed": self.seed,
                "block_size": self.block_size}

    def _block(self, torch: Any, index: int, rows: int) -> Tensor:
        generator = torch.Generator().manual_seed(_sub_seed(self.seed, index))
        bits = torch.randint(0, 2, (rows, self.proj_dim), generator=generator, dtype=torch.int8)
        block: Tensor = bits.to(torch.float32).mul_(2.0).sub_(1.0)
        return block

    def project(self, grads: Tensor) -> Tensor:
        """Return ``grads @ R / √k`` without holding more than one block of ``R``."""
        torch = require("torch", extra="torch", feature="RademacherProjector.project()")
        grads = grads.to(torch.float32)
        out = torch.zeros(grads.shape[0], self.proj_dim, dtype=torch.float32)
        for index, start in enumerate(range(0, grads.shape[1], self.block_size)):
            stop = min(start + self.block_size, grads.shape[1])
            out.addmm_(grads[:, start:stop], self._block(torch, index, stop - start))
        projected: Tensor = out.mul_(1.0 / math.sqrt(self.proj_dim))
        return projected


_BASE_BITS = 6  # the first 6 butterfly stages as one matmul with H_64 (BLAS beats strides)
_ROWS = 16  # rows transformed together: keeps a (16, d) float32 buffer in cache


_HADAMARD: dict[int, Tensor] = {}


def _hadamard(torch: Any, bits: int) -> Tensor:
    matrix = _HADAMARD.get(bits)
    if matrix is None:
        matrix = torch.ones(1, 1)
        for _ in range(bits):
            matrix = torch.cat([torch.cat([matrix, matrix], 1), torch.cat([matrix, -matrix], 1)])
        _HADAMARD[bits] = matrix
    return matrix


def fwht(x: Tensor) -> Tensor:
    """Unnormalised Walsh-Hadamard transform along the last axis, in place where possible.

    ``x`` has shape (n, d) with d a power of two; the Sylvester matrix is a Kronecker power,
    so the low ``log2 64`` stages are one batched matmul with ``H_64`` and the rest are
    in-place butterflies ``(a, b) -> (a + b, a - b)``.
    """
    torch = require("torch", extra="torch", feature="fwht()")
    n, d = x.shape
    base = min(d, 1 << _BASE_BITS)
    small = _hadamard(torch, base.bit_length() - 1).to(x.dtype)
    x = (x.reshape(n, d // base, base) @ small).reshape(n, d)
    h = base
    while h < d:
        view = x.view(n, d // (2 * h), 2, h)
        left, right = view[:, :, 0, :], view[:, :, 1, :]
        left.add_(right)
        right.mul_(-2.0).add_(left)
        h *= 2
    return x


class SRHTProjector:
    """Subsampled randomised Hadamard transform to ``proj_dim`` dimensions.

    Examples
    --------
    >>> import torch
    >>> g = torch.randn(3, 500)
    >>> f = SRHTProjector(256, seed=1).project(g)
    >>> f.shape
    torch.Size([3, 256])
    """

    kind = "srht"

    def __init__(self, proj_dim: int, *, seed: int = 0) -> None:
        _check(proj_dim, seed, "SRHTProjector")
        self.proj_dim = proj_dim
        self.seed = seed
        self._plans: dict[int, tuple[Tensor, Tensor, int]] = {}

    def spec(self) -> dict[str, Any]:
        """Return ``{"kind", "proj_dim", "seed"}``."""
        return {"kind": self.kind, "proj_dim": self.proj_dim, "seed": self.seed}

    def padded_dim(self, p: int) -> int:
        """Return the transform size ``d`` used for gradients of dimension ``p``."""
        return 1 << max(0, math.ceil(math.log2(max(p, self.proj_dim))))

    def _plan(self, torch: Any, p: int) -> tuple[Tensor, Tensor, int]:
        plan = self._plans.get(p)
        if plan is None:
            d = self.padded_dim(p)
            generator = torch.Generator().manual_seed(_sub_seed(self.seed, p, 1))
            signs = torch.randint(0, 2, (p,), generator=generator).to(torch.float32) * 2 - 1
            pick = torch.randperm(d, generator=generator)[: self.proj_dim]
            plan = (signs, pick, d)
            self._plans[p] = plan
        return plan

    def project(self, grads: Tensor) -> Tensor:
        """Return ``√(1/k) · S H D grads``, computed in O(n·d·log d)."""
        torch = require("torch", extra="torch", feature="SRHTProjector.project()")
        n, p = grads.shape
        signs, pick, d = self._plan(torch, p)
        out = torch.empty(n, self.proj_dim, dtype=torch.float32)
        buffer = torch.zeros(min(n, _ROWS), d, dtype=torch.float32)
        for start in range(0, n, _ROWS):
            stop = min(start + _ROWS, n)
            rows = buffer[: stop - start]
            torch.mul(grads[start:stop].to(torch.float32), signs, out=rows[:, :p])
            rows[:, p:] = 0.0
            torch.index_select(fwht(rows), 1, pick, out=out[start:stop])
        projected: Tensor = out.mul_(1.0 / math.sqrt(self.proj_dim))
        return projected


def make_projector(projector: str | Projector, *, proj_dim: int, seed: int) -> Projector:
    """Return a projector from a name (``"srht"``, ``"rademacher"``) or pass one through."""
    if isinstance(projector, str):
        if projector == "srht":
            return SRHTProjector(proj_dim, seed=seed)
        if projector == "rademacher":
            return RademacherProjector(proj_dim, seed=seed)
        raise InvalidInputError(
            f"projector of featurize must be 'srht', 'rademacher' or a Projector; got {projector!r}"
        )
    return projector
