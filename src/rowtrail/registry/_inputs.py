"""Inputs of the registry: JSON values, sources of a dataset, artifact bindings.

Pure checks and resolutions used by :class:`~rowtrail.registry.Registry` before it writes:
bad input raises :class:`~rowtrail.errors.InvalidInputError` with nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rowtrail.errors import InvalidInputError, LineageError
from rowtrail.hashing import canonical_json, sha256_digest
from rowtrail.registry._artifacts import parameters_digest

__all__ = [
    "artifact_binding",
    "check_json",
    "lineage_digest",
    "registered_source",
    "resolve_sources",
    "source_entry",
    "source_info",
]


def check_json(value: object, what: str, caller: str) -> dict[str, Any]:
    """Return ``value`` as a JSON-ready dict (``None``: empty), or raise naming ``what``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise InvalidInputError(
            f"{what} of {caller} must be a mapping with str keys; got {type(value).__name__}"
        )
    try:
        canonical_json(dict(value))
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"{what} of {caller} must be JSON-ready (str, int, float, bool, None, lists, "
            f"mappings; no NaN); {exc}. Nothing was written."
        ) from exc
    return dict(value)


def source_entry(info: Any) -> dict[str, Any]:
    """Return how a dataset version names one source version (with its registration event)."""
    return {
        "name": info.name,
        "version": int(info.version),
        "source_index": int(info.index),
        "digest": info.digest,
        "ledger_index": info.ledger_index,
    }


def registered_source(sources: Sequence[Any], params: Mapping[str, Any]) -> Any:
    """Return the registered source a lineage source op names (by index, else by bytes)."""
    index = params.get("source_index")
    name = params.get("name", params.get("source"))
    for info in sources:
        same = info.index == index if index is not None else info.name == name
        if same and info.digest == params.get("digest"):
            return info
    return None


def lineage_digest(view: Any) -> str:
    """Digest of a lineage DAG: every op's name, kind, parameters, node and inputs."""
    ops = [
        {k: v for k, v in op.to_json().items() if k not in ("created_at", "depth", "location")}
        for op in view.ops()
    ]
    return sha256_digest(canonical_json(ops))


def artifact_binding(model: object, flavor: str, digest: str, weights: str) -> str | None:
    """How an artifact is bound to its run's sealed weights: ``"artifact"``, ``"parameters"``."""
    if digest == weights:
        return "artifact"  # the very bytes the seal names
    if flavor == "sklearn" and parameters_digest(model) == weights:
        return "parameters"  # the convex fit's parameters the seal names
    return None


def resolve_sources(workspace: Any, sources: object) -> tuple[list[Any], str | None]:
    """Return the registered source versions ``sources`` names and its lineage DAG digest.

    Traced data (or a lineage view): the sources its lineage reaches and the digest of its
    ops; a list of source names or ``(name, version)``: those versions and ``None``.
    """
    from rowtrail.lineage import LineageView, lineage

    store = workspace.lineage_store
    if isinstance(sources, (list, tuple)):
        if not sources:
            raise InvalidInputError(
                "sources of Registry.register_dataset must name at least one source; got []"
            )
        return [source_info(workspace, item) for item in sources], None
    try:
        view = sources if isinstance(sources, LineageView) else lineage(sources)
    except LineageError as exc:
        raise InvalidInputError(
            "sources of Registry.register_dataset must be traced data (rt.track, "
            "rt.load_csv, ...) or a list of source names / (name, version); got "
            f"{type(sources).__name__} ({exc})"
        ) from None
    registered = store.list_sources()
    infos = []
    for op in view.ops():
        if op.kind != "source":
            continue
        info = registered_source(registered, op.params)
        if info is None:
            name = op.params.get("name", op.params.get("source"))
            raise InvalidInputError(
                f"sources of Registry.register_dataset come from {name!r}, which is not "
                "registered in this workspace; trace it with workspace=ws"
            )
        if info not in infos:
            infos.append(info)
    if not infos:
        raise InvalidInputError(
            "sources of Registry.register_dataset must come from registered sources; the "
            "traced data names none"
        )
    infos.sort(key=lambda info: info.index)
    return infos, lineage_digest(view)


def source_info(workspace: Any, item: object) -> Any:
    """Return the registered source named ``item`` (a name: its latest version)."""
    name, version = (item if isinstance(item, tuple) and len(item) == 2 else (item, None))
    if not isinstance(name, str) or (version is not None and type(version) is not int):
        raise InvalidInputError(
            "sources of Registry.register_dataset must be source names or (name, version) "
            f"pairs; got {item!r}"
        )
    versions = [s for s in workspace.lineage_store.list_sources() if s.name == name]
    if version is not None:
        versions = [s for s in versions if s.version == version]
    if not versions:
        names = sorted({s.name for s in workspace.lineage_store.list_sources()})
        raise InvalidInputError(
            f"sources of Registry.register_dataset: no source {item!r} is registered; "
            f"known sources: {names}"
        )
    return max(versions, key=lambda s: s.version)

