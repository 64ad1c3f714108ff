"""Helpers shared by the serving tests: workspaces closed when the test ends, a deployment.

On PostgreSQL an unclosed workspace leaves an open connection, which warns when collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

import rowtrail as rt

Keep = Callable[[rt.Workspace], rt.Workspace]


@pytest.fixture(name="opened")
def opened_fixture() -> Iterator[Keep]:
    """Return ``keep(ws) -> ws``; every workspace kept is closed after the test."""
    handles: list[rt.Workspace] = []

    def keep(ws: rt.Workspace) -> rt.Workspace:
        handles.append(ws)
        return ws

    yield keep
    for ws in handles:
        ws.close()


def deployment_of(ws: rt.Workspace, name: str = "scorer") -> str:
    """Register a bytes model and deploy it; return the deployment id."""
    version = ws.registry.register_model(name, b"weights of " + name.encode(), flavor="bytes")
    return str(ws.registry.deploy(name, version.version, environment="test").deployment_id)
