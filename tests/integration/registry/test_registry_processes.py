"""Writers in several processes number model versions without gaps or duplicates."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import rowtrail as rt
from rowtrail.registry import verify_registry

CHILD = textwrap.dedent(
    """
    import os, sys, time
    import rowtrail as rt
    path, tag, go = sys.argv[1], sys.argv[2], sys.argv[3]
    with rt.open(path, actor=f"writer-{tag}") as ws:
        while not os.path.exists(go):
            time.sleep(0.005)
        for i in range(5):
            ws.registry.register_model("shared", f"{tag}-{i}".encode())
    """
)


def test_concurrent_writers_number_versions_once_each(tmp_path: Path) -> None:
    path = tmp_path / "ws"
    rt.init(path).close()
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(tag), str(go)], env=env)
        for tag in range(4)
    ]
    go.touch()
    assert [child.wait(timeout=120) for child in children] == [0, 0, 0, 0]
    with rt.open(path) as ws:
        versions = [m.version for m in ws.registry.model_versions("shared")]
        assert versions == list(range(1, 21))
        assert len({m.actor for m in ws.registry.model_versions("shared")}) == 4
        assert verify_registry(ws) == 20
        ws.verify()
