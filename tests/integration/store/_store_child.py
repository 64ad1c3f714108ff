"""Child process of the PostgreSQL writer tests.

Usage:
  python _store_child.py append WORKSPACE REPORT TAG BATCHES BATCH_SIZE GO
      Wait for GO to exist, append BATCHES batches of BATCH_SIZE events (one transaction
      each), writing ``"<index> <tag> <batch> <seq>\\n"`` per committed event to REPORT.
  python _store_child.py hold WORKSPACE READY N
      Append N events inside one transaction, create READY, and sleep inside the
      transaction until killed.
"""

from __future__ import annotations

import os
import sys
import time

import rowtrail as rt


def append(workspace: str, report: str, tag: str, batches: int, size: int, go: str) -> None:
    ws = rt.open(workspace, actor=f"writer-{tag}")
    while not os.path.exists(go):
        time.sleep(0.005)
    with open(report, "w", encoding="utf-8") as out:
        for number in range(batches):
            events = [
                ws.ledger.make_event("test.appended", {"tag": tag, "batch": number, "seq": seq})
                for seq in range(size)
            ]
            indices = ws.ledger.append_events(events)
            out.writelines(f"{i} {tag} {number} {seq}\n" for seq, i in enumerate(indices))
            out.flush()
    ws.close()


def hold(workspace: str, ready: str, n: int) -> None:
    ws = rt.open(workspace, actor="holder")
    with ws.ledger.transaction():
        ws.ledger.append_events(
            [ws.ledger.make_event("test.uncommitted", {"seq": seq}) for seq in range(n)]
        )
        with open(ready, "w", encoding="utf-8") as out:
            out.write("in transaction\n")
        time.sleep(600)


if __name__ == "__main__":
    if sys.argv[1] == "append":
        _, _, ws_path, report_path, tag_name, n_batches, batch_size, go_file = sys.argv
        append(ws_path, report_path, tag_name, int(n_batches), int(batch_size), go_file)
    else:
        hold(sys.argv[2], sys.argv[3], int(sys.argv[4]))
