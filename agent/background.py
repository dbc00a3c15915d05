"""Work off the hot path (learning, recording) yields the CPU and the GIL to the calls that step the envs.

On a 2-core machine a PPO update, a learner step or a store flush competing at equal priority with
env → perception → policy puts scheduler delays of several ms into the hops' tail. Linux gives each
thread its own nice value, so the calling thread alone is lowered; Ray's own threads are untouched.
Within one process, a hot-path call that needs the GIL while a background thread runs Python waits
for the interpreter's switch interval (5 ms by default), so such processes shorten it.
"""

from __future__ import annotations

import os
import sys
import threading

BACKGROUND_NICE = 10  # CFS weight 110 vs 1024 at nice 0: the hot path wins a contended core
GIL_SWITCH_S = 0.0005  # how long a background thread may keep the GIL from a waiting hot-path call


def hand_over_gil_quickly() -> None:
    """For a process whose hot-path calls share the GIL with a background thread (the PolicyActor's
    PPO update): offer the GIL every ``GIL_SWITCH_S`` instead of every 5 ms."""
    sys.setswitchinterval(GIL_SWITCH_S)


def run_in_background_priority() -> None:
    """Lower the calling thread's CPU priority to ``BACKGROUND_NICE`` (no-op where unsupported)."""
    if not hasattr(os, "setpriority"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        if current < BACKGROUND_NICE:
            os.setpriority(os.PRIO_PROCESS, tid, BACKGROUND_NICE)
    except OSError:  # e.g. a sandbox that forbids it: run at normal priority
        pass
