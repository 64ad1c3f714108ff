"""Fast per-sample gradients for parameters of ``nn.Linear`` layers (an exact shortcut).

For a linear layer ``z = W a + b`` the gradient of sample i's loss is ``δ_i a_iᵀ`` for ``W``
and ``δ_i`` for ``b``, where ``a_i`` is the layer's input and ``δ_i = ∂l_i/∂z_i``. One batched
forward pass (hooks keep ``a``) and one backward pass of the *summed* loss (hooks keep ``δ``)
give every sample's gradient without vmapping the model: about 4x faster than
``vmap(grad(...))`` on CPU for an MLP, and equal to it to float32 rounding (tested).

The shortcut applies when every differentiated parameter is the weight or bias of an
``nn.Linear`` called once per forward on 2-d inputs, and the loss is rowtrail's default
(mean-reduced, so the summed loss is ``n`` times it). Otherwise callers use ``vmap``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rowtrail._optional import require

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["LinearGradients"]


class LinearGradients:
    """Per-sample gradients of Linear-layer parameters from one forward and one backward."""

    def __init__(self, model: Any, param_names: list[str]) -> None:
        torch = require("torch", extra="torch", feature="per-sample gradients")
        modules = dict(model.named_modules())
        self.model = model
        self.columns: list[tuple[Any, str]] = []
        for name in param_names:
            owner, _, attribute = name.rpartition(".")
            module = modules.get(owner)
            if not isinstance(module, torch.nn.Linear) or attribute not in ("weight", "bias"):
                raise ValueError(f"parameter {name} is not a Linear weight or bias")
            self.columns.append((module, attribute))

    @classmethod
    def plan(cls, model: Any, param_names: list[str]) -> LinearGradients | None:
        """Return a planner when the shortcut applies to these parameters, else ``None``."""
        try:
            return cls(model, param_names)
        except ValueError:
            return None

    def compute(self, inputs: Tensor, targets: Tensor, loss_fn: Any) -> Tensor | None:
        """Return the (n, p) per-sample gradients, or ``None`` if the shortcut did not apply."""
        torch = require("torch", extra="torch", feature="per-sample gradients")
        layers = list(dict.fromkeys(module for module, _ in self.columns))
        seen_in: dict[Any, list[Tensor]] = {m: [] for m in layers}
        seen_out: dict[Any, Tensor] = {}

        def keep(module: Any, args: tuple[Tensor, ...], output: Any) -> None:
            seen_in[module].append(args[0].detach())
            output.register_hook(lambda grad: seen_out.__setitem__(module, grad.detach()))

        handles = [module.register_forward_hook(keep) for module in layers]
        try:
            with torch.enable_grad():
                output = self.model(inputs)
                loss = loss_fn(output, targets) * inputs.shape[0]
                weights = [getattr(module, attribute) for module, attribute in self.columns]
                torch.autograd.grad(loss, weights, allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        if any(len(seen_in[m]) != 1 or seen_in[m][0].dim() != 2 or m not in seen_out
               for m in layers):
            return None
        n = inputs.shape[0]
        parts = []
        for module, attribute in self.columns:
            delta = seen_out[module]
            if attribute == "bias":
                parts.append(delta)
            else:
                parts.append(torch.einsum("no,ni->noi", delta, seen_in[module][0]).reshape(n, -1))
        flat: Tensor = torch.cat(parts, dim=1).to(torch.float32)
        return flat
