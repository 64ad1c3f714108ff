"""What a run ran on: CPU model and count, memory, and accelerators (never guessed).

Read from ``/proc`` and ``os``; accelerators are reported only when torch is already
imported by the caller (importing it here would cost seconds and pull in an optional
dependency), as ``None`` when that cannot be told.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

__all__ = ["hardware_info"]


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "processor\t: ")):
                    value = line.split(":", 1)[1].strip()
                    if value and not value.isdigit():
                        return value
    except OSError:
        pass
    return platform.processor() or None


def _memory_bytes() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def _accelerators() -> list[dict[str, Any]] | None:
    torch = sys.modules.get("torch")
    if torch is None:
        return None  # unknown: torch was not loaded by this process
    try:
        if not torch.cuda.is_available():
            return []
        return [
            {"kind": "cuda", "name": str(torch.cuda.get_device_name(i))}
            for i in range(int(torch.cuda.device_count()))
        ]
    except Exception:
        return None


def hardware_info() -> dict[str, Any]:
    """Return ``{"machine", "cpu_model", "cpu_count", "memory_bytes", "accelerators"}``."""
    return {
        "machine": platform.machine() or None,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "accelerators": _accelerators(),
    }
