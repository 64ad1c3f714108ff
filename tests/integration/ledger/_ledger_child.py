"""Child process for the crash and concurrency tests: appends batches, reports each commit.

Usage: python _ledger_child.py WORKSPACE REPORT TAG BATCHES BATCH_SIZE [CHECKPOINT_EVERY [GO]]

After each batch is committed (the ``with`` block has exited, so the transaction is durable) the
child appends ``"<first> <last> <tag> <batch>\\n"`` to REPORT and flushes it. A batch that was
committed but not yet reported when the child is killed is allowed; a reported one must exist.
BATCHES = 0 appends until killed. With GO, the child waits for that file to exist before its
first append, so that several children start together.
"""

from __future__ import annotations

import itertools
import os
import sys
import time

import rowtrail as rt


def main() -> None:
    workspace, report, tag = sys.argv[1], sys.argv[2], sys.argv[3]
    n_batches, batch_size = int(sys.argv[4]), int(sys.argv[5])
    checkpoint_every = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    go = sys.argv[7] if len(sys.argv) > 7 else ""
    ws = rt.init(workspace, actor=f"child-{tag}")
    while go and not os.path.exists(go):
        time.sleep(0.005)
    counter = itertools.count() if n_batches == 0 else range(n_batches)
    with open(report, "a", encoding="utf-8") as out:
        for number in counter:
            with ws.ledger.batch(max_events=batch_size) as batch:
                for seq in range(batch_size):
                    batch.append(
                        "test.appended", {"tag": tag, "batch": number, "seq": seq, "pad": "x" * 100}
                    )
            first, last = batch.indices[0], batch.indices[-1]
            out.write(f"{first} {last} {tag} {number}\n")
            out.flush()
            os.fsync(out.fileno())
            if checkpoint_every and number % checkpoint_every == 0:
                ws.ledger.checkpoint()
    ws.close()


if __name__ == "__main__":
    main()
