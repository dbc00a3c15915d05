"""Process set-up: helper processes that end with the process that started them, and an allocator
that keeps the memory it frees.

A command stopped by SIGKILL, SIGTERM or a closed terminal dies without unwinding its ``with`` blocks,
and its workers would go on (training, or waiting forever on a semaphore), holding cores and memory
with nobody to read their results.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt(3)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # free heap kept before any is given back to the OS


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent exits (Linux; elsewhere nothing). Call
    it first thing in a worker process."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def keep_freed_memory() -> None:
    """glibc: reuse freed blocks of up to 32 MB instead of handing them back to the OS and faulting
    them in again. A captioner's per-call tensors (MBs, a different size as calls cover more or
    fewer steps) otherwise cost ~100,000 page faults a second, a sixth of a core (BENCHMARKS.md).
    This process from now on, and (through the environment) the processes it starts, such as a
    local Ray cluster's workers; a setting already in the environment is left as the user chose it;
    elsewhere than Linux with glibc, nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None) if sys.platform == "linux" else None  # not in musl
    for key, option, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                               ("MALLOC_TRIM_THRESHOLD_", M_TRIM_THRESHOLD, TRIM_THRESHOLD)):
        if key in os.environ:  # glibc read it when this process started
            continue
        os.environ[key] = str(value)
        if mallopt is not None:
            mallopt(option, value)
