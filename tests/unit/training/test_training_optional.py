from __future__ import annotations

import subprocess
import sys

import rowtrail.training


def test_importing_the_training_layer_does_not_import_torch() -> None:
    code = "import sys, rowtrail, rowtrail.training; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_training_all_is_complete() -> None:
    public = sorted(
        name for name, value in vars(rowtrail.training).items()
        if not name.startswith("_") and not isinstance(value, type(sys))
        and name != "annotations"
    )
    assert rowtrail.training.__all__ == public
