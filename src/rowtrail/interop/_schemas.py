"""Offline validation of OpenLineage events against the vendored JSON schemas.

The OpenLineage spec (``OpenLineage.json``, 2-0-2) and the facet schemas rowtrail emits are
vendored in ``schemas/`` (see its README for source, commit and licence); every ``$ref`` is
resolved from those files, so validation never touches the network. An event is checked
against ``#/$defs/RunEvent`` and each facet against the schema its ``_schemaURL`` names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from rowtrail._optional import require
from rowtrail.errors import InvalidInputError

__all__ = ["validate_openlineage_event"]

_SCHEMAS = Path(__file__).with_name("schemas")
_RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


@cache
def _resources() -> dict[str, dict[str, Any]]:
    """Return the vendored schemas keyed by their ``$id``."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(_SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[schema["$id"]] = schema
    return found


@cache
def _registry() -> Any:
    referencing = require("referencing", extra="interop", feature="OpenLineage validation")
    resources = [
        (uri, referencing.Resource.from_contents(schema))
        for uri, schema in _resources().items()
    ]
    return referencing.Registry().with_resources(resources)


def _validator(schema_url: str) -> Any:
    jsonschema = require("jsonschema", extra="interop", feature="OpenLineage validation")
    base, _, fragment = schema_url.partition("#")
    if base not in _resources():
        raise InvalidInputError(
            f"_schemaURL of an OpenLineage facet must name a vendored schema; got "
            f"{schema_url!r}. Known: {sorted(_resources())}"
        )
    return jsonschema.Draft202012Validator(
        {"$ref": schema_url if fragment else base},
        registry=_registry(),
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def _facets(event: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Yield ``(where, facet)`` for every facet of a run event."""
    places: list[tuple[str, Any]] = [
        ("run", event.get("run")), ("job", event.get("job"))
    ]
    for side in ("inputs", "outputs"):
        for position, dataset in enumerate(event.get(side) or []):
            places.append((f"{side}[{position}]", dataset))
            for extra in ("inputFacets", "outputFacets"):
                if isinstance(dataset, Mapping) and dataset.get(extra):
                    places.append((f"{side}[{position}].{extra}", {"facets": dataset[extra]}))
    for where, owner in places:
        facets = owner.get("facets") if isinstance(owner, Mapping) else None
        for name, facet in (facets or {}).items():
            if isinstance(facet, Mapping):  # any other value fails the RunEvent schema
                yield f"{where}.facets.{name}", facet


def validate_openlineage_event(event: Mapping[str, Any]) -> None:
    """Raise unless ``event`` (a JSON object) is a valid OpenLineage RunEvent.

    Checks the event against the vendored ``OpenLineage.json`` (with ``date-time`` and
    ``uuid`` formats) and each facet against the vendored schema its ``_schemaURL`` names.

    Raises
    ------
    InvalidInputError
        The event or a facet does not validate, or names a schema that is not vendored; the
        message gives the JSON path and the reason.
    MissingDependencyError
        ``jsonschema`` is not installed (``pip install 'rowtrail[interop]'``).

    Examples
    --------
    >>> validate_openlineage_event({"eventTime": "2026-01-01T00:00:00Z"})
    Traceback (most recent call last):
    ...
    rowtrail.errors.InvalidInputError: event of validate_openlineage_event must be an ...
    """
    _check("event", _RUN_EVENT, event)
    for where, facet in _facets(event):
        url = facet.get("_schemaURL")
        if not isinstance(url, str):
            raise InvalidInputError(
                f"event of validate_openlineage_event must be an OpenLineage RunEvent; "
                f"{where} has no _schemaURL"
            )
        _check(where, url, facet)


def _check(where: str, url: str, value: object) -> None:
    errors = sorted(_validator(url).iter_errors(value), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        path = "/".join(str(part) for part in first.absolute_path) or "(root)"
        raise InvalidInputError(
            f"event of validate_openlineage_event must be an OpenLineage RunEvent valid "
            f"against {url}; {where} at {path}: {first.message}"
        )
