"""Lazy import of optional dependencies with an actionable install hint."""

from __future__ import annotations

import importlib
import types

from rowtrail.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, *, extra: str, feature: str) -> types.ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"pandas"``.
    extra : str
        The rowtrail extra that installs it, e.g. ``"pandas"``.
    feature : str
        What needs it, shown in the message, e.g. ``"rt.pandas.read_csv()"``.

    Examples
    --------
    >>> require("json", extra="core", feature="doctest").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = (
            "Install it with: pip install torch==2.13.0 && pip install 'rowtrail[torch]'"
            if extra == "torch"
            else f"Install it with: pip install 'rowtrail[{extra}]'"
        )
        raise MissingDependencyError(
            f"{feature} needs {module!r}, which is not installed. {hint}"
        ) from exc
