"""The peer library the benchmarks measure against, in its own virtual environment.

``traceprop==0.7.0`` is installed once into ``benchmarks/.venv-traceprop`` (it needs numpy and
scipy only; torch/jax are optional extras), so it never shares a process or a dependency
resolution with rowtrail.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

VENV = Path(__file__).resolve().parent / ".venv-traceprop"


def ensure_traceprop() -> Path | None:
    """Return the venv's Python with traceprop 0.7.0 importable, or None (says why)."""
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run([str(python), "-c", "import traceprop"], capture_output=True)
    if probe.returncode != 0:
        install = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "traceprop==0.7.0"],
            capture_output=True,
            text=True,
        )
        if install.returncode != 0:
            print(f"traceprop: could not install ({install.stderr.strip()[-300:]})")
            return None
    return python
