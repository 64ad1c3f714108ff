"""Per-sample gradients with ``torch.func`` and the digest of a model's weights.

``vmap(grad(loss_of_one))`` differentiates the loss of every sample of a batch in one
vectorised call (no per-sample Python loop, no Tensor subclass): the model is evaluated with
``functional_call`` on a batch of one for each vmapped sample. With ``last_layer=True`` only the
parameters of the last parameterised module are differentiated; the others are constants.
When every differentiated parameter belongs to an ``nn.Linear`` and the loss is the default,
the exact :mod:`Linear shortcut <rowtrail.training._linear_grads>` is used instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError, RowtrailWarning, StateError
from rowtrail.hashing import sha256_digest
from rowtrail.training._linear_grads import LinearGradients
from rowtrail.training._torchio import serialize_state

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["PerSampleGradients", "default_loss", "model_digest"]


def model_digest(model: torch.nn.Module) -> str:
    """Return the digest of the model's weights blob (see :func:`serialize_state`)."""
    return sha256_digest(serialize_state(model.state_dict()))


def default_loss(output: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy for several outputs; binary cross-entropy with logits for one."""
    functional = require("torch.nn.functional", extra="torch", feature="default_loss()")
    if output.shape[-1] == 1:
        loss: Tensor = functional.binary_cross_entropy_with_logits(
            output.reshape(-1), target.reshape(-1).to(output.dtype)
        )
    else:
        loss = functional.cross_entropy(output, target.reshape(-1).long())
    return loss


class PerSampleGradients:
    """Computes flattened per-sample gradients (n, p) of a model's loss."""

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        loss_fn: Callable[[Any, Any], Any] | None = None,
        last_layer: bool = False,
    ) -> None:
        torch = require("torch", extra="torch", feature="per-sample gradients")
        if not isinstance(model, torch.nn.Module):
            raise InvalidInputError(
                f"model of featurize must be a torch.nn.Module; got {type(model).__name__}"
            )
        self.model = model
        self.loss_fn = loss_fn or default_loss
        self.loss_name = getattr(self.loss_fn, "__qualname__", type(self.loss_fn).__name__)
        params = dict(model.named_parameters())
        if last_layer:
            owners = [name for name, module in model.named_modules()
                      if any(True for _ in module.parameters(recurse=False))]
            if not owners:
                raise InvalidInputError("model of featurize has no parameters to differentiate")
            prefix = owners[-1] + "." if owners[-1] else ""
            chosen = [name for name in params if name.startswith(prefix)
                      and "." not in name[len(prefix):]]
        else:
            chosen = [name for name, p in params.items() if p.requires_grad]
        self.param_names = chosen
        self.dim = sum(int(params[name].numel()) for name in chosen)
        # The Linear shortcut needs a loss known to be a batch mean: only the default one.
        self._linear = None if loss_fn is not None else LinearGradients.plan(model, chosen)

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Put the model in eval mode (dropout off) for the block; restore its mode after."""
        was_training = self.model.training
        self.model.eval()
        try:
            yield
        finally:
            self.model.train(was_training)

    def p_correct(self, inputs: Tensor, targets: Tensor) -> NDArray[np.float64]:
        """Return the probability the model gives each sample's label, in float64.

        Defined for the default loss only (:func:`default_loss`): ``sigmoid`` of the one logit
        for label 1 (its complement for label 0), else the softmax probability of the target
        class. With that loss the per-sample loss gradient is ``-(1 - p) * grad(margin)`` for
        the margin ``log p / (1 - p)`` (Park et al. 2023, §3.2), so ``1 - p`` is the residual and
        ``p (1 - p)`` the curvature the scorers need. Evaluated in the model's current mode.

        Raises
        ------
        StateError
            The gradients use a custom ``loss_fn``, whose probabilities are unknown.
        """
        torch = require("torch", extra="torch", feature="per-sample gradients")
        if self.loss_fn is not default_loss:
            raise StateError(
                "p_correct of PerSampleGradients is defined for the default loss only; got "
                f"loss_fn {self.loss_name!r}. Compute p(correct) with your own loss's link."
            )
        with torch.no_grad():
            logits = self.model(inputs).double()
        if logits.shape[-1] == 1:
            label = targets.reshape(-1).double()
            p_one = torch.sigmoid(logits.reshape(-1))
            p = label * p_one + (1.0 - label) * (1.0 - p_one)
        else:
            probs = torch.softmax(logits, dim=-1)
            p = probs.gather(1, targets.reshape(-1, 1).long()).reshape(-1)
        return np.asarray(p.numpy(), dtype=np.float64)

    def compute(self, inputs: Tensor, targets: Tensor) -> Tensor:
        """Return the (n, p) float32 matrix of per-sample loss gradients."""
        torch = require("torch", extra="torch", feature="per-sample gradients")
        if self._linear is not None:
            fast = self._linear.compute(inputs, targets, self.loss_fn)
            if fast is not None:
                return fast
            warnings.warn(
                "the nn.Linear per-sample gradient shortcut does not apply to this model "
                "(a layer saw non-2-d inputs or ran more than once); using torch.func.vmap",
                RowtrailWarning,
                stacklevel=2,
            )
            self._linear = None
        func = torch.func
        model = self.model
        params = {n: p.detach() for n, p in model.named_parameters()}
        buffers = {n: b.detach() for n, b in model.named_buffers()}
        chosen = {n: params.pop(n) for n in self.param_names}
        loss_fn = self.loss_fn

        def loss_one(selected: dict[str, Any], x: Any, y: Any) -> Any:
            output = func.functional_call(
                model, {**params, **buffers, **selected}, (x.unsqueeze(0),)
            )
            return loss_fn(output, y.unsqueeze(0))

        per_sample = func.vmap(func.grad(loss_one), in_dims=(None, 0, 0))(chosen, inputs, targets)
        n = inputs.shape[0]
        flat: Tensor = torch.cat(
            [per_sample[name].reshape(n, -1) for name in self.param_names], dim=1
        ).to(torch.float32)
        return flat
