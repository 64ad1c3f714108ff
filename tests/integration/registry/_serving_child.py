"""Child process for the crash test: logs predictions until killed, reporting each id.

Usage: python _serving_child.py WORKSPACE REPORT [N]

After ``log`` returns (the prediction is acknowledged) the child appends its id to REPORT and
fsyncs it, so every id in REPORT was acknowledged before the child was killed. With N, the
logger never flushes on its own and the child SIGKILLs itself after N predictions (all of them
then only in the spool).
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np

import rowtrail as rt
from rowtrail.registry._prediction_logger import PredictionLogger


def main() -> None:
    workspace, report = sys.argv[1], sys.argv[2]
    stop = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    ws = rt.open(workspace, actor="serving-child")
    (deployment,) = ws.registry.deployments()
    if stop:
        logger = PredictionLogger(ws, deployment, batch_size=10_000, flush_interval=3600)
    else:
        logger = PredictionLogger(ws, deployment, batch_size=50, flush_interval=0.01)
    subject = ws.pseudonymize("applicant-7")
    with open(report, "a", encoding="utf-8") as out:
        for n in range(1_000_000):
            row = np.array([n, n / 2.0])
            pid = logger.log(row, float(n), subject=subject if n % 3 == 0 else None)
            out.write(pid + "\n")
            out.flush()
            os.fsync(out.fileno())
            if n + 1 == stop:
                os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    main()
