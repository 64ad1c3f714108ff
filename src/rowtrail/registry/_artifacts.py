"""Model artifacts: serialize a model to content-addressed bytes, and load them back.

Flavors: ``"sklearn"`` (a fitted estimator, pickled with protocol 5 exactly as a training
run's seal pickles it, so the digests agree), ``"torch"`` (a module's or a state dict's
tensors in rowtrail's canonical weights format, as a seal stores them: no pickle) and
``"bytes"`` (raw bytes or a file's bytes, returned as they are). Pickled bytes are only ever
unpickled after the caller has checked that a proven ``registry.model`` event names their
digest and that they hash to it.
"""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rowtrail.errors import InvalidInputError

__all__ = ["FLAVORS", "deserialize_artifact", "parameters_digest", "serialize_artifact"]

FLAVORS = ("bytes", "sklearn", "torch")


def _guess_flavor(model: object) -> str:
    if isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
        return "bytes"
    if callable(getattr(model, "state_dict", None)):
        return "torch"
    torch = sys.modules.get("torch")  # a state dict holds tensors only if torch is loaded
    if (isinstance(model, Mapping) and model and torch is not None
            and all(isinstance(v, torch.Tensor) for v in model.values())):
        return "torch"
    if callable(getattr(model, "get_params", None)):
        return "sklearn"
    raise InvalidInputError(
        "model of Registry.register_model must be a fitted scikit-learn estimator, a torch "
        f"module or state dict, bytes or a file path; got {type(model).__name__}. Pass "
        "flavor='sklearn', 'torch' or 'bytes' to say which."
    )


def _torch_bytes(model: object) -> bytes:
    from rowtrail.training._torchio import serialize_state

    method = getattr(model, "state_dict", None)
    state = method() if callable(method) else model
    if not isinstance(state, Mapping):
        raise InvalidInputError(
            "model of Registry.register_model with flavor='torch' must be a torch module or a "
            f"state dict; got {type(model).__name__}"
        )
    return serialize_state(state)


def serialize_artifact(model: object, flavor: str | None) -> tuple[bytes, str]:
    """Return the artifact bytes of ``model`` and its flavor (guessed when ``None``)."""
    if flavor is not None and flavor not in FLAVORS:
        raise InvalidInputError(
            f"flavor of Registry.register_model must be one of {FLAVORS}; got {flavor!r}"
        )
    chosen = _guess_flavor(model) if flavor is None else flavor
    if chosen == "bytes":
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            if not path.is_file():
                raise InvalidInputError(
                    f"model of Registry.register_model must be an existing file when given a "
                    f"path; got {str(model)!r}"
                )
            return path.read_bytes(), chosen
        if not isinstance(model, (bytes, bytearray, memoryview)):
            raise InvalidInputError(
                "model of Registry.register_model with flavor='bytes' must be bytes or a path; "
                f"got {type(model).__name__}"
            )
        return bytes(model), chosen
    if chosen == "torch":
        return _torch_bytes(model), chosen
    try:
        return pickle.dumps(model, protocol=5), chosen
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise InvalidInputError(
            f"model of Registry.register_model cannot be pickled ({exc}); register its bytes "
            "with flavor='bytes'"
        ) from exc


def parameters_digest(model: object) -> str | None:
    """Digest of a linear estimator's parameters as a convex fit records them, or ``None``.

    A training run that fitted a binary logistic regression or a ridge records its parameters
    ``theta`` (``coef_`` then ``intercept_``, little-endian float64) and its seal names their
    blob's digest; this recomputes it from the estimator, which binds the pickled artifact to
    that fit.
    """
    import numpy as np

    from rowtrail.hashing import sha256_digest

    coef = getattr(model, "coef_", None)
    if coef is None:
        return None
    theta = np.asarray(coef, dtype=np.float64).reshape(-1)
    if getattr(model, "fit_intercept", False):
        theta = np.append(theta, float(np.ravel(getattr(model, "intercept_", 0.0))[0]))
    return sha256_digest(np.ascontiguousarray(theta, dtype="<f8").tobytes())


def deserialize_artifact(data: bytes, flavor: str) -> Any:
    """Return the model held by checked artifact bytes (see the module docstring)."""
    if flavor == "bytes":
        return data
    if flavor == "torch":
        from rowtrail.training._torchio import deserialize_state

        return deserialize_state(data)
    if flavor == "sklearn":
        return pickle.loads(data)
    raise InvalidInputError(f"flavor of an artifact must be one of {FLAVORS}; got {flavor!r}")
