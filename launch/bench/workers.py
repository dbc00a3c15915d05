"""Worker processes for the benchmarks that run many seeds at once: spawned, and gone with their parent
(`agent/processes.py`), so a stopped benchmark leaves no run training on."""

from __future__ import annotations

import multiprocessing as mp
from multiprocessing.managers import SyncManager
from multiprocessing.pool import Pool

from agent.processes import die_with_parent


def worker_pool(workers: int) -> Pool:
    """``workers`` spawned processes that end with this one."""
    return mp.get_context("spawn").Pool(workers, initializer=die_with_parent)


def worker_manager() -> SyncManager:
    """A started manager (for queues shared with pool workers) whose server ends with this process."""
    manager = SyncManager(ctx=mp.get_context("spawn"))
    manager.start(die_with_parent)
    return manager
