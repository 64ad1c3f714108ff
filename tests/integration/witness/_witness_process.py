"""Start ``rowtrail witness serve`` as a separate process on loopback, for the tests."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SRC = Path(__file__).resolve().parents[3] / "src"


@contextmanager
def witness_process(
    name: str, logs: list[str], state: Path, *extra: str
) -> Iterator[dict[str, Any]]:
    """Run a witness server; yield its startup line ({url, name, vkey, ...}); stop it."""
    args = [sys.executable, "-c", "from rowtrail.cli import main; main()", "witness", "serve",
            "--name", name, "--state", str(state), "--port", "0", *extra]
    for log in logs:
        args += ["--log", log]
    path = os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 60)
        line = process.stdout.readline() if ready else b""
        if not line:
            process.kill()
            _, err = process.communicate()
            raise RuntimeError(f"witness server did not start: {err.decode()}")
        info = json.loads(line)
        info["process"] = process
        yield info
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
