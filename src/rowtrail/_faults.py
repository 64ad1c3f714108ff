"""Named crash points, so tests can kill the process at every internal step of a write.

``crashpoint(name)`` does nothing unless ``$ROWTRAIL_TEST_CRASH_AT`` equals ``name``; then it
ends the process at once with ``os._exit(137)`` (no cleanup, no flush: what SIGKILL does).
Every multi-step write names its steps, and the crash tests run each in a child process.
"""

from __future__ import annotations

import os

__all__ = ["CRASH_ENV", "crashpoint"]

CRASH_ENV = "ROWTRAIL_TEST_CRASH_AT"


def crashpoint(name: str) -> None:
    """End the process here when ``$ROWTRAIL_TEST_CRASH_AT`` names this point."""
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)
