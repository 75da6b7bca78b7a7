"""Process-wide allocator tuning for long inputs (opt-in; ``ccnn-train`` and the benchmarks call it).

glibc hands every freed block above its mmap threshold (32 MB at most by default) straight back
to the operating system, so a network whose activations are tens of megabytes (L = 65 536
samples x 140 channels is 73 MB) maps, zero-fills and unmaps them again on every call: millions
of page faults per forward pass, which grow faster than the work itself. Raising the threshold
and the trim limit keeps such blocks in the heap for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["keep_large_allocations"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_large_allocations(mmap_threshold: int = 1 << 30, trim_threshold: int = 1 << 34) -> bool:
    """Let glibc reuse large freed blocks instead of returning them to the OS (Linux only).

    Returns True when both settings were applied. Equivalent to starting Python with
    ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` set.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
        )
    except (OSError, AttributeError):
        return False
