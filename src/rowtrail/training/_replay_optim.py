"""Optimizer updates as pure functions of (params, state, grads, hyper-parameters).

``torch.optim`` updates parameters in place, which autograd cannot differentiate through;
the metagradient (:mod:`rowtrail.attribution._metagradient`) needs each update as a function
whose outputs are new tensors. :func:`functional_step` mirrors the arithmetic of
``torch.optim.SGD`` (momentum, dampening, Nesterov, weight decay, maximize), ``Adam`` and
``AdamW`` (L2 or decoupled weight decay, bias correction; no AMSGrad) from their
documentation; the trajectory it produces agrees with torch's to float rounding (torch fuses
some operations, e.g. ``lerp``), which the metagradient reports as ``trajectory_error_``.

State per parameter: SGD ``{"momentum_buffer": tensor or None}``; Adam ``{"exp_avg",
"exp_avg_sq"}`` (the step count is a Python int shared by the group, not differentiated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError

__all__ = ["SUPPORTED", "check_supported", "functional_step", "initial_state"]

SUPPORTED = ("SGD", "Adam", "AdamW")


def check_supported(name: str, hyper: Mapping[str, Any]) -> None:
    """Raise unless ``functional_step`` reproduces optimizer ``name`` with ``hyper``."""
    if name not in SUPPORTED:
        raise InvalidInputError(
            f"optimizer of the metagradient must be one of {list(SUPPORTED)}; the run used "
            f"{name!r}. Train the replayable run with one of them."
        )
    if hyper.get("amsgrad"):
        raise InvalidInputError(
            "optimizer of the metagradient must not use amsgrad (its max is not smooth); the "
            "run used Adam(amsgrad=True)."
        )


def initial_state(name: str, params: list[Any]) -> list[dict[str, Any]]:
    """Return the state of each parameter before the first step."""
    torch = require("torch", extra="torch", feature="the metagradient")
    if name == "SGD":
        return [{"momentum_buffer": None} for _ in params]
    return [{"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)} for p in params]


def _safe_sqrt(value: Any) -> Any:
    """``sqrt`` whose derivative at 0 is 0 instead of inf (so 0 * inf never makes a NaN)."""
    torch = require("torch", extra="torch", feature="the metagradient")
    positive = value > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, value, 1.0)), 0.0)


def _sgd(p: Any, g: Any, state: dict[str, Any], h: Mapping[str, Any]) -> tuple[Any, Any]:
    if h.get("maximize"):
        g = -g
    if h.get("weight_decay", 0.0):
        g = g + h["weight_decay"] * p
    momentum = h.get("momentum", 0.0)
    new_state: dict[str, Any] = {"momentum_buffer": None}
    if momentum:
        buf = state["momentum_buffer"]
        buf = g if buf is None else momentum * buf + (1.0 - h.get("dampening", 0.0)) * g
        new_state["momentum_buffer"] = buf
        g = g + momentum * buf if h.get("nesterov") else buf
    return p - h["lr"] * g, new_state


def _adam(
    p: Any, g: Any, state: dict[str, Any], h: Mapping[str, Any], step: int, decoupled: bool
) -> tuple[Any, Any]:
    beta1, beta2 = h["betas"]
    if h.get("maximize"):
        g = -g
    lr, wd = h["lr"], h.get("weight_decay", 0.0)
    if wd and decoupled:
        p = p * (1.0 - lr * wd)
    elif wd:
        g = g + wd * p
    m = beta1 * state["exp_avg"] + (1.0 - beta1) * g
    v = beta2 * state["exp_avg_sq"] + (1.0 - beta2) * g * g
    correction1 = 1.0 - beta1**step
    correction2 = 1.0 - beta2**step
    denom = _safe_sqrt(v) / (correction2**0.5) + h["eps"]
    return p - (lr / correction1) * m / denom, {"exp_avg": m, "exp_avg_sq": v}


def functional_step(
    name: str,
    params: list[Any],
    states: list[dict[str, Any]],
    grads: list[Any],
    hypers: Sequence[Mapping[str, Any]],
    step: int,
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Return ``(new params, new states)`` after one update (``step`` counts from 1).

    ``hypers[j]`` are the hyper-parameters of parameter ``j``'s group at this step.
    """
    new_params, new_states = [], []
    for p, g, state, h in zip(params, grads, states, hypers, strict=True):
        if name == "SGD":
            q, s = _sgd(p, g, state, h)
        else:
            decoupled = name == "AdamW" or bool(h.get("decoupled_weight_decay"))
            q, s = _adam(p, g, state, h, step, decoupled)
        new_params.append(q)
        new_states.append(s)
    return new_params, new_states
