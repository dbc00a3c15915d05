"""`thalamus run --resume`: a killed run goes on from its store and newest checkpoint, losing no
committed step; bad resumes are one clear line."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
from conftest import one_clear_line, run_here, run_main

from agent.checkpoints import load_tensors, newest_checkpoint
from memory import open_store, read_manifest


def _episodes(run_dir, n):
    store = open_store(run_dir)
    return [store.get_episode(i) for i in range(n)]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.5)


def test_bad_resumes_are_one_clear_line(tmp_path, capsys):
    one_clear_line(run_main(capsys, "run", "--resume", str(tmp_path / "nowhere")), "does not exist")
    one_clear_line(run_main(capsys, "run", "--resume", str(tmp_path), "--env", "Acrobot-v1"), "leave out --env")
    one_clear_line(run_main(capsys, "run", "--resume", str(tmp_path), "--num-envs", "2"), "leave out --num-envs")
    (tmp_path / "run.json").write_text("{not json")
    one_clear_line(run_main(capsys, "run", "--resume", str(tmp_path)), "corrupt")
    (tmp_path / "run.json").write_text(json.dumps({"config": {"env_id": "CartPole-v1", "warp": 9},
                                                   "started": "2026-11-28T00:00:00+00:00"}))
    one_clear_line(run_main(capsys, "run", "--resume", str(tmp_path)), "newer thalamus")


def test_a_killed_task_sequence_resumes_in_the_task_it_stopped_in_keeping_every_committed_step(ray_address,
                                                                                                  tmp_path, capsys):
    """SIGKILL mid-run (no summary, no final checkpoint), then --resume: the store and the newest
    checkpoint go on, in the task the run stopped in; a finished run cannot be resumed again."""
    run_dir, per_task = tmp_path / "tasks", 600
    cmd = [sys.executable, "-m", "launch.cli", "run", "--address", ray_address, "--tasks", "cartpole-physics",
           "--steps-per-task", str(per_task), "--num-envs", "4", "--captioner", "off", "--checkpoint-every", "1",
           "--run-dir", str(run_dir), "--json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        _wait_for(lambda: (run_dir / "store.zarr" / "episodes").exists()
                  and (open_store(run_dir).episode_tasks >= 1).any(), 240, "a committed episode of task 1")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    stopped_in = int(open_store(run_dir).episode_tasks.max())
    assert read_manifest(run_dir)["status"] == "running" and 1 <= stopped_in <= 2
    report = run_here("memory", "inspect", str(run_dir), "--json")  # the killed run's store reads back whole
    assert report.returncode == 0, report.stderr
    inspected = json.loads(report.stdout)
    assert sum(inspected["episode_lengths"]) == inspected["steps"] > 0
    before = open_store(run_dir)
    steps_before, n_before = before.n_steps, before.n_episodes
    kept = _episodes(run_dir, n_before)
    newest = newest_checkpoint(run_dir)  # latest.pt, or a task's end if the kill came right after one
    updates_before = load_tensors(newest)["policy"]["updates"]

    res = run_here("run", "--resume", str(run_dir), "--address", ray_address, "--json")
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout)
    assert summary["resumed_from"]["task"] == stopped_in
    assert summary["resumed_from"]["steps"] == steps_before
    assert summary["resumed_from"]["checkpoint"] == newest.name
    assert summary["steps_recorded"] == summary["steps"]
    assert summary["policy"]["updates"] > updates_before  # PPO went on counting from the checkpoint
    for old, new in zip(kept, _episodes(run_dir, n_before)):  # what was committed is untouched
        assert old.keys() == new.keys()
        for key in old:
            np.testing.assert_array_equal(old[key], new[key])
    assert open_store(run_dir).get_episode(n_before)["time"][0] >= kept[-1]["time"][-1]  # the clock counts on
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "completed" and len(manifest["resumes"]) == 1
    assert [c for c in summary["checkpoints"] if c.startswith("task_")] == [f"task_{t}.pt" for t in range(4)]
    assert "final.pt" in summary["checkpoints"]
    assert summary["task_returns"][:stopped_in] == [None] * stopped_in  # tasks it did not see again
    store = open_store(run_dir)
    tasks = store.episode_tasks
    assert np.all(np.diff(tasks) >= 0)  # task ids in order: no task was stepped twice
    for t in range(4):  # each task got its budget (the resumed one rounded up to whole batches of 4)
        assert per_task <= store.episode_lengths[tasks == t].sum() < per_task + 4

    done = run_main(capsys, "run", "--resume", str(run_dir))
    one_clear_line(done, "has finished all 4 tasks")
