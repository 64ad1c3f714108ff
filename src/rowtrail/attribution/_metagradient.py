"""Metagradient attribution: d output / d w_i through this model's recorded training.

MAGIC (Ilyas & Engstrom 2025, "MAGIC: Near-Optimal Data Attribution for Deep Learning",
§3) scores training sample ``i`` for a prediction by the *metagradient*
``tau_i = d f(theta_T(w)) / d w_i`` at ``w = 1``, where ``theta_T(w)`` is the result of the
run's own, deterministic training with per-sample data weights ``w`` (same initialisation,
batch order, schedule and RNG states: single-model attribution). rowtrail's replayable runs
record exactly that training (:mod:`rowtrail.training._replay`), so the derivative is of *this*
model, not of a learning algorithm averaged over seeds.

**What is differentiated.** Each batch's loss is the weighted mean
``sum_j w_j l_j / sum_j w_j`` (divided by the accumulation count), the optimizer update is
the pure function of :mod:`rowtrail.training._replay_optim` (SGD with momentum/Nesterov,
Adam, AdamW), and ``f`` is the decision margin of the final model in eval mode: the logit of
the predicted class for one output, ``z_c - logsumexp_{j != c} z_j`` otherwise (``c`` the
predicted class). BatchNorm is differentiated exactly: its *batch* statistics are part of the
differentiated forward pass (the weights do not enter them), and its *running* statistics,
which torch updates outside autograd, are recomputed here as differentiable state
(``(1 - m) r + m * batch mean / unbiased variance`` of each train batch's input) and used by a
differentiable eval-mode normalisation for the output, so their dependence on ``w`` through
the trajectory is part of the metagradient.

**Smoothness.** The metagradient is the derivative of the training that actually ran; where
that training is not smooth, it is faithful to the float computation but says little about
finite changes. One case seen in practice: Adam on a parameter whose gradient is zero in exact
arithmetic (a bias right before BatchNorm) normalises rounding noise into full-size steps; drop
such parameters (``bias=False``) or use SGD.

**Sign.** ``score = +tau_i``: positive means raising the sample's weight raises the margin,
so removing it lowers it (supports the prediction), the convention of every rowtrail scorer;
``-sum_{i in S} tau_i`` is the first-order prediction of the margin change when ``S`` is
dropped (exact replay: :func:`rowtrail.training.counterfactual`).

**Memory (REPLAY-style checkpointing, Engstrom et al. 2025, simplified to two levels).** A
forward sweep keeps the state (parameters, optimizer state, buffers, RNG state) after every
``K = ceil(sqrt(T))``-th of the ``T`` steps; the reverse sweep walks segments from the last,
recomputes the ``<= K`` states of a segment from its saved start, and back-propagates step by
step through the recomputed states. At most ``ceil(T / K) + K <= 2 ceil(sqrt(T)) + 1`` states
are held at once, plus one step's double-backward graph and the adjoints of the ``m``
predictions (``m`` copies of parameters and optimizer state): memory ``O(sqrt(T) + m)``
states, compute about two forward training sweeps plus ``T`` steps of double backward with
``m`` vector-Jacobian products each (batched with ``is_grads_batched`` when the model's ops
allow it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.attribution._features import GradientFeatures
from rowtrail.errors import InvalidInputError, StateError
from rowtrail.training._replay import Replayer, _replay_environment
from rowtrail.training._replay_optim import check_supported, functional_step, initial_state
from rowtrail.training._replay_record import decode_hyper
from rowtrail.training._torchio import deserialize_state

if TYPE_CHECKING:
    from rowtrail.attribution._attributor import Attributor

__all__ = ["METAGRADIENT_METHOD", "METAGRADIENT_UNIT", "MetagradientScorer"]

METAGRADIENT_METHOD = "metagradient (exact, this model)"
METAGRADIENT_UNIT = (
    "derivative of the decision margin (log-odds of the explained class) of this model with "
    "respect to the training row's loss weight, through the run's recorded training (MAGIC); "
    "to first order, margin with the row minus margin when this run is replayed without it"
)


_IDENTITY_CHUNK = 1024


class _IdentityRows:
    """The ``n x n`` float32 identity, made a block of rows at a time (``rows[a:b]``)."""

    def __init__(self, n: int) -> None:
        self.shape = (n, n)
        self.ndim = 2
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: slice) -> NDArray[np.float32]:
        start, stop, _ = rows.indices(self.shape[0])
        block = np.zeros((max(stop - start, 0), self.shape[1]), dtype=np.float32)
        block[np.arange(block.shape[0]), start + np.arange(block.shape[0])] = 1.0
        return block

    def __array__(self, dtype: Any = None, copy: Any = None) -> NDArray[Any]:
        return np.eye(self.shape[0], dtype=dtype or np.float32)


@dataclass
class _State:
    """Training state at the start of a step: what a segment recomputation starts from."""

    params: list[Any]
    opt: list[dict[str, Any]]
    buffers: dict[str, Any]
    rng: Any


def _clone(state: _State) -> _State:
    return _State(
        [p.detach().clone() for p in state.params],
        [{k: (None if v is None else v.detach().clone()) for k, v in s.items()}
         for s in state.opt],
        {k: v.detach().clone() for k, v in state.buffers.items()},
        state.rng.clone(),
    )


def _opt_tensors(opt: list[dict[str, Any]]) -> list[Any]:
    return [s[k] for s in opt for k in sorted(s) if s[k] is not None]


class MetagradientScorer:
    """Exact metagradient scores of a replayable run (MAGIC); see the module docstring.

    Parameters
    ----------
    run : TrainingRun or Replayer
        A sealed run recorded with ``replayable=True`` (or its replayer, e.g. from
        :func:`rowtrail.training.load_replayer` in a new process).
    segment : int, optional
        Steps per recomputation segment (default ``ceil(sqrt(T))``).

    Examples
    --------
    ``scorer = MetagradientScorer(run)``; ``scorer.metagradients(x)`` is the ``(m, n)`` matrix
    of ``d margin_j / d w_i``; ``ws.explain(row, attributor=scorer.attributor())`` explains one
    decision with ``method="metagradient (exact, this model)"``.
    """

    name = "metagradient"

    def __init__(self, run: Any, *, segment: int | None = None) -> None:
        self.torch = require("torch", extra="torch", feature="MetagradientScorer")
        self.replayer: Replayer = run if isinstance(run, Replayer) else run.replayer()
        plan = self.replayer.plan
        for group in plan.groups:
            check_supported(plan.optimizer_class, group["hyper"])
        if segment is not None and segment < 1:
            raise InvalidInputError(
                f"segment of MetagradientScorer must be an int >= 1; got {segment!r}."
            )
        self.segment = segment or max(1, math.ceil(math.sqrt(max(plan.n_steps, 1))))
        self.keys = sorted(plan.row_ids)
        sizes = [plan.row_ids[k].size for k in self.keys]
        self.offsets = dict(zip(self.keys, np.cumsum([0, *sizes])[:-1].tolist(), strict=True))
        self._row_ids = np.concatenate([plan.row_ids[k] for k in self.keys]).astype(np.int64)
        self.trajectory_error_: float | None = None
        self._batched = True
        self._fitted = False

    # ------------------------------------------------------------------ Scorer role
    def fit(self, train: Sequence[GradientFeatures] = ()) -> MetagradientScorer:
        """Nothing to fit (scores come from the recorded training); return ``self``."""
        self._fitted = True
        return self

    @property
    def n_samples(self) -> int:
        """Number of training samples scored (every train dataset of the run, key order)."""
        return int(self._row_ids.size)

    @property
    def row_ids(self) -> NDArray[np.int64]:
        """Packed row id of each training sample."""
        return self._row_ids

    @property
    def model_ids(self) -> list[str]:
        """The final model digest of the run (the model the scores explain)."""
        return [self.replayer.plan.final_digest or self.replayer.plan.run_id]

    def train_matrix(self) -> NDArray[np.float32]:
        """Return the identity: a query vector *is* the metagradient of one decision.

        The ``n x n`` identity is not materialised: rows are made per chunk when a
        :class:`~rowtrail.attribution.ScoreIndex` reads them (see :meth:`attributor`, which
        reads ``_IDENTITY_CHUNK`` rows at a time).
        """
        return cast("NDArray[np.float32]", _IdentityRows(self.n_samples))

    def query_matrix(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the metagradient rows carried by ``queries`` (from :meth:`featurize`)."""
        items = [queries] if isinstance(queries, GradientFeatures) else list(queries)
        if len(items) != 1 or items[0].dim != self.n_samples:
            raise InvalidInputError(
                f"queries of MetagradientScorer.query_matrix must be one GradientFeatures of "
                f"dim {self.n_samples} made by MetagradientScorer.featurize; got {len(items)} "
                "feature set(s)."
            )
        return np.asarray(items[0].grads, dtype=np.float32)

    def scores(self, queries: Sequence[GradientFeatures]) -> NDArray[np.float32]:
        """Return the ``(m, n)`` scores (the metagradients); positive supports."""
        return self.query_matrix(queries)

    def featurize(self, rows: Any) -> list[GradientFeatures]:
        """Return the query features of raw input rows: their metagradients, ``p_correct``."""
        torch = self.torch
        dtype = next(iter(self.replayer.plan.initial_state.values())).dtype
        inputs = torch.as_tensor(np.asarray(rows), dtype=dtype)
        scores, margins = self._compute(inputs)
        p = 1.0 / (1.0 + np.exp(-margins))
        return [GradientFeatures(scores.astype(np.float32), p_correct=p,
                                 model_id=self.model_ids[0])]

    def attributor(self, **options: Any) -> Attributor:
        """Return an :class:`~rowtrail.attribution.Attributor` explaining raw input rows."""
        from rowtrail.attribution._attributor import Attributor

        options.setdefault("model", self.model_ids[0])
        attributor = Attributor(self.fit(), featurize=self.featurize,
                                method=METAGRADIENT_METHOD, score_unit=METAGRADIENT_UNIT,
                                **options)
        attributor.index.chunk_rows = _IDENTITY_CHUNK  # identity rows are made per chunk
        return attributor

    # ------------------------------------------------------------------ metagradients
    def metagradients(self, inputs: Any) -> NDArray[np.float64]:
        """Return ``d margin_j / d w_i``, shape ``(m, n)``, for input tensor rows ``inputs``."""
        scores, _ = self._compute(inputs)
        return scores

    def _hypers(self) -> list[list[dict[str, Any]]]:
        """Hyper-parameters of each group in effect at each step."""
        plan = self.replayer.plan
        current = [{k: decode_hyper(v) for k, v in g["hyper"].items()} for g in plan.groups]
        out = []
        for step in range(plan.n_steps):
            for group, key, value in plan.hyper_changes.get(step, ()):
                current[group] = {**current[group], key: value}
            out.append(list(current))
        return out

    def _setup(self) -> None:
        plan = self.replayer.plan
        self.model = self.replayer.fresh_model()
        names = [name for name, _ in self.model.named_parameters()]
        group_of = {name: g for g, group in enumerate(plan.groups) for name in group["params"]}
        self.names = [n for n in names if n in group_of]
        self.group_of = [group_of[n] for n in self.names]
        self.const = {n: plan.initial_state[n] for n in names if n not in group_of}
        self.hypers = self._hypers()
        self.steps = plan.step_starts()
        batchnorm = self.torch.nn.modules.batchnorm._BatchNorm
        self.norms = {name: module for name, module in self.model.named_modules()
                      if isinstance(module, batchnorm) and module.track_running_stats}
        self.stat_names = [f"{name}.{kind}".lstrip(".") for name in self.norms
                           for kind in ("running_mean", "running_var")]
        self._captured: dict[str, Any] = {}
        self._eval_stats: dict[str, Any] = {}
        for name, module in self.norms.items():
            module.register_forward_hook(self._norm_hook(name))

    def _norm_hook(self, name: str) -> Any:
        """Capture a BatchNorm input in train mode; normalise differentiably in eval mode."""

        def hook(module: Any, args: Any, output: Any) -> Any:
            x = args[0]
            if module.training:
                self._captured[name] = x
                return None
            shape = [1, -1] + [1] * (x.dim() - 2)
            prefix = f"{name}." if name else ""
            mean = self._eval_stats[f"{prefix}running_mean"].reshape(shape)
            var = self._eval_stats[f"{prefix}running_var"].reshape(shape)
            y = (x - mean) / self.torch.sqrt(var + module.eps)
            if module.affine:
                y = y * module.weight.reshape(shape) + module.bias.reshape(shape)
            return y

        return hook

    def _update_stats(self, current: dict[str, Any], plain: dict[str, Any]) -> dict[str, Any]:
        """Return the running statistics after a train batch, differentiable in its inputs."""
        out = dict(current)
        for name, module in self.norms.items():
            x = self._captured.pop(name, None)
            if x is None:
                continue
            prefix = f"{name}." if name else ""
            factor = module.momentum
            if factor is None:  # cumulative average over the batches seen so far
                factor = 1.0 / float(plain[f"{prefix}num_batches_tracked"])
            dims = [0, *range(2, x.dim())]
            mean_key, var_key = f"{prefix}running_mean", f"{prefix}running_var"
            out[mean_key] = (1 - factor) * current[mean_key] + factor * x.mean(dims)
            out[var_key] = (1 - factor) * current[var_key] + factor * x.var(dims, correction=1)
        return out

    def _step(self, t: int, state: _State, *, graph: bool) -> tuple[_State, list[Any], list[Any]]:
        """Run step ``t`` functionally; return the new state, its inputs and batch weights."""
        torch, rp, plan = self.torch, self.replayer, self.replayer.plan
        torch.set_rng_state(state.rng)
        params = [p.detach().requires_grad_() for p in state.params]
        opt = [{k: (None if v is None else v.detach().requires_grad_(graph))
                for k, v in s.items()} for s in state.opt]
        stats = [state.buffers[n].detach().requires_grad_(graph) for n in self.stat_names]
        current = dict(zip(self.stat_names, stats, strict=True))
        plain = {k: v.clone() for k, v in state.buffers.items() if k not in current}
        grads: list[Any] | None = None
        weights = []
        with torch.enable_grad():
            for number in range(self.steps[t], self.steps[t + 1]):
                batch = plan.batches[number]
                rp.set_rng(number)
                data = rp.fetch(batch)
                w = torch.ones(batch.positions.size, dtype=params[0].dtype, requires_grad=graph)
                weights.append(w)
                self.model.train(batch.training)
                # torch updates running statistics in place, outside autograd, on copies here;
                # _update_stats recomputes them differentiably.
                mapping = {**dict(zip(self.names, params, strict=True)), **self.const, **plain,
                           **{k: v.detach().clone() for k, v in current.items()}}
                output = torch.func.functional_call(self.model, mapping, (data[0],))
                if batch.training:
                    current = self._update_stats(current, plain)
                loss = (w * rp.loss_fn(output, data[1])).sum() / w.sum()
                if plan.accumulation > 1:
                    loss = loss / plan.accumulation
                g = torch.autograd.grad(loss, params, create_graph=graph, allow_unused=True,
                                        materialize_grads=True)
                grads = list(g) if grads is None else [a + b for a, b in zip(grads, g, strict=True)]
            if grads is None:  # pragma: no cover - a recorded step always has a batch
                raise StateError(f"step {t} of the run has no recorded batch")
            hypers = [self.hypers[t][g] for g in self.group_of]
            with torch.set_grad_enabled(graph):
                new_params, new_opt = functional_step(
                    plan.optimizer_class, params, opt, grads, hypers, t + 1
                )
        if not graph:
            new_params = [p.detach() for p in new_params]
            new_opt = [{k: (None if v is None else v.detach()) for k, v in s.items()}
                       for s in new_opt]
            current = {k: v.detach() for k, v in current.items()}
        new = _State(new_params, new_opt, {**plain, **current}, torch.get_rng_state())
        return new, [*params, *_opt_tensors(opt), *stats], weights

    def _initial(self) -> _State:
        plan, torch = self.replayer.plan, self.torch
        params = [plan.initial_state[n].clone() for n in self.names]
        buffers = {n: b.clone() for n, b in plan.initial_state.items()
                   if n not in self.names and n not in self.const}
        opt = initial_state(plan.optimizer_class, params)
        return _State(params, opt, buffers, torch.get_rng_state())

    def _margins(self, state: _State, inputs: Any) -> tuple[Any, list[Any]]:
        torch = self.torch
        params = [p.detach().requires_grad_() for p in state.params]
        stats = [state.buffers[n].detach().requires_grad_() for n in self.stat_names]
        self.model.eval()
        # the kernel gets plain copies; the hook normalises with the differentiable statistics
        self._eval_stats = dict(zip(self.stat_names, stats, strict=True))
        mapping = {**dict(zip(self.names, params, strict=True)), **self.const,
                   **{k: v.detach().clone() for k, v in state.buffers.items()}}
        with torch.enable_grad():
            z = torch.func.functional_call(self.model, mapping, (inputs,))
            if z.dim() == 1 or z.shape[-1] == 1:
                z = z.reshape(-1)
                margin = torch.where(z.detach() > 0, z, -z)
            else:
                chosen = torch.nn.functional.one_hot(z.detach().argmax(-1), z.shape[-1]).bool()
                others = z.masked_fill(chosen, float("-inf")).logsumexp(-1)
                margin = (z * chosen).sum(-1) - others
        return margin, [*params, *stats]

    def _vjp(self, outputs: list[Any], inputs: list[Any], cotangents: list[Any]) -> list[Any]:
        """``sum_j cotangent_j . d outputs / d inputs`` per prediction (leading dim m)."""
        torch = self.torch
        if self._batched:
            try:
                found = torch.autograd.grad(outputs, inputs, cotangents, retain_graph=True,
                                            allow_unused=True, materialize_grads=True,
                                            is_grads_batched=True)
                return list(found)
            except RuntimeError:
                self._batched = False  # an op without a batching rule: loop instead
        m = cotangents[0].shape[0]
        rows = [torch.autograd.grad(outputs, inputs, [c[j] for c in cotangents],
                                    retain_graph=True, allow_unused=True,
                                    materialize_grads=True) for j in range(m)]
        return [torch.stack([row[k] for row in rows]) for k in range(len(inputs))]

    def _forward_sweep(self) -> tuple[dict[int, _State], _State]:
        plan = self.replayer.plan
        saved = {0: _clone(self._initial())}
        state = saved[0]
        for t in range(plan.n_steps):
            state, _, _ = self._step(t, state, graph=False)
            if (t + 1) % self.segment == 0 and t + 1 < plan.n_steps:
                saved[t + 1] = _clone(state)
        final = deserialize_state(plan.blob(plan.final_digest)) if plan.final_digest else {}
        if final:
            errors = [float((p - final[n]).abs().max()) for n, p in zip(self.names, state.params,
                                                                         strict=True)]
            self.trajectory_error_ = max(errors, default=0.0)
        return saved, state

    def _state_tensors(self, state: _State) -> list[Any]:
        return [*state.params, *_opt_tensors(state.opt),
                *(state.buffers[n] for n in self.stat_names)]

    def _compute(self, inputs: Any) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        torch, plan = self.torch, self.replayer.plan
        self._setup()
        scores = np.zeros((int(inputs.shape[0]), self.n_samples))
        n_params = len(self.names)
        with _replay_environment(torch, plan.threads):
            saved, final = self._forward_sweep()
            margin, wrt = self._margins(final, inputs)
            m = int(margin.shape[0])
            eye = torch.eye(m, dtype=margin.dtype)
            found = self._vjp([margin], wrt, [eye])
            adj_p, adj_b = found[:n_params], found[n_params:]
            adj_s = [torch.zeros((m, *t.shape), dtype=t.dtype) for t in _opt_tensors(final.opt)]
            for start in sorted(saved, reverse=True):
                stop = min(start + self.segment, plan.n_steps)
                states = [saved[start]]
                for t in range(start, stop - 1):
                    states.append(self._step(t, states[-1], graph=False)[0])
                for t in range(stop - 1, start - 1, -1):
                    new, inputs_t, weights = self._step(t, states[t - start], graph=True)
                    found = self._vjp(self._state_tensors(new), [*inputs_t, *weights],
                                      [*adj_p, *adj_s, *adj_b])
                    n_opt = len(inputs_t) - n_params - len(self.stat_names)
                    adj_p = found[:n_params]
                    adj_s = found[n_params : n_params + n_opt]
                    adj_b = found[n_params + n_opt : len(inputs_t)]
                    for batch_number, w_grad in zip(range(self.steps[t], self.steps[t + 1]),
                                                    found[len(inputs_t):], strict=True):
                        batch = plan.batches[batch_number]
                        columns = self.offsets[batch.dataset] + batch.positions
                        scores[:, columns] += w_grad.detach().double().numpy()
        return scores, margin.detach().double().numpy()
