"""Tests of the run store (memory/): round trip, plain-zarr layout, crash safety, repair, errors, manifest."""

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr
import zarr.storage._local as zarr_local

import memory.writer
from conftest import one_line_store_error
from memory import (
    STORE_FORMAT,
    STORE_VERSION,
    ArraySpec,
    EpisodeStore,
    StoreBusy,
    StoreError,
    check_free_space,
    create_store,
    free_bytes,
    open_store,
    read_manifest,
    save_learner_memory,
    update_manifest,
    write_manifest,
)

SPECS = {
    "obs": ArraySpec((4,), "float32"),
    "frame": ArraySpec((8, 8, 3), "uint8"),
    "action": ArraySpec((), "int64"),
    "reward": ArraySpec((), "float32"),
    "terminated": ArraySpec((), "bool"),
}


def make_episode(i: int) -> dict[str, np.ndarray]:
    """Episode i: its length and every value are a function of i, so any process can check it."""
    length = 1 + (i * 7) % 19
    t = np.arange(length)
    return {
        "obs": (i * 100 + t[:, None] + np.arange(4) * 0.25).astype(np.float32),
        "frame": ((i * 31 + t[:, None, None, None] + np.arange(8 * 8 * 3).reshape(8, 8, 3)) % 256).astype(np.uint8),
        "action": i * 10 + t,
        "reward": (i + (t % 3) * 0.5).astype(np.float32),
        "terminated": t == length - 1,
    }


def task_of(i: int) -> int:
    return i % 3


def assert_episodes(store: EpisodeStore, first: int = 0) -> None:
    """Every committed episode of store equals make_episode(first + index) and has its task."""
    for i in range(store.n_episodes):
        expected = make_episode(first + i)
        got = store.get_episode(i)
        assert sorted(got) == sorted(expected)
        for key, value in expected.items():
            assert got[key].dtype == np.dtype(SPECS[key].dtype), key
            np.testing.assert_array_equal(got[key], value, err_msg=f"episode {i} key {key}")
    assert list(store.episode_tasks) == [task_of(first + i) for i in range(store.n_episodes)]


def write_episodes(run_dir: Path, count: int, **kwargs: float) -> None:
    with create_store(run_dir, SPECS, **kwargs) as writer:
        for i in range(count):
            writer.add_episode(make_episode(i), task=task_of(i))


# ---------------------------------------------------------------- round trip


def test_round_trip_and_returns(tmp_path: Path) -> None:
    with create_store(tmp_path, SPECS, flush_rows=25, flush_seconds=60) as writer:
        for i in range(10):
            writer.add_episode(make_episode(i), task=task_of(i))
        assert 0 < writer.n_episodes < 10  # flush_rows triggered some commits, the rest is buffered
        assert writer.n_steps < sum(len(make_episode(i)["action"]) for i in range(10))
    assert writer.n_episodes == 10  # close flushed the rest

    store = open_store(tmp_path)
    assert store.version == STORE_VERSION
    assert store.n_episodes == 10
    assert store.keys == sorted(SPECS)
    lengths = [len(make_episode(i)["action"]) for i in range(10)]
    assert lengths[0] == 1  # the shortest possible episode is covered
    assert list(store.episode_lengths) == lengths
    assert list(store.episode_ends) == list(np.cumsum(lengths))
    assert store.n_steps == sum(lengths)
    assert store.dropped_rows == 0
    assert_episodes(store)
    np.testing.assert_allclose(
        store.episode_returns(), [make_episode(i)["reward"].sum(dtype=np.float64) for i in range(10)]
    )
    np.testing.assert_array_equal(store.episode_returns("action"), [make_episode(i)["action"].sum() for i in range(10)])
    with pytest.raises(KeyError, match="nope"):
        store.episode_returns("nope")
    with pytest.raises(IndexError):
        store.get_episode(10)
    np.testing.assert_array_equal(store.get_episode(-1)["action"], make_episode(9)["action"])

    infos = {info.path: info for info in store.arrays()}
    assert set(infos) == {f"episodes/data/{k}" for k in SPECS} | {
        "episodes/meta/episode_ends",
        "episodes/meta/episode_task",
    }
    frame = infos["episodes/data/frame"]
    assert frame.shape == (sum(lengths), 8, 8, 3) and frame.dtype == "uint8"
    assert frame.chunks[1:] == (8, 8, 3)  # chunked along time only
    assert frame.chunks[0] == 2**20 // (8 * 8 * 3)  # about 1 MiB per chunk
    assert infos["episodes/data/reward"].chunks == (65536,)  # capped
    assert "zstd" in frame.compressors
    assert all(info.bytes_on_disk > 0 for info in infos.values())
    assert store.bytes_on_disk > sum(info.bytes_on_disk for info in infos.values())  # plus group metadata


def test_auto_flush_by_time_commits_each_episode(tmp_path: Path) -> None:
    with create_store(tmp_path, SPECS, flush_rows=10**6, flush_seconds=0.0) as writer:
        for i in range(3):
            time.sleep(0.001)
            writer.add_episode(make_episode(i), task=task_of(i))
            assert writer.n_episodes == i + 1
            assert open_store(tmp_path).n_episodes == i + 1  # visible to a reader at once
        assert writer.bytes_on_disk > 0


def test_plain_zarr_can_read_the_store(tmp_path: Path) -> None:
    write_episodes(tmp_path, 5, flush_rows=10)
    root = zarr.open_group(tmp_path / "store.zarr", mode="r")
    assert dict(root.attrs) == {"format": "thalamus-store", "version": 1}
    assert (STORE_FORMAT, STORE_VERSION) == ("thalamus-store", 1)
    ends = root["episodes/meta/episode_ends"][:]
    assert ends.dtype == np.int64 and root["episodes/meta/episode_task"].dtype == np.int32
    assert np.diff(ends, prepend=0).sum() == ends[-1]
    data = root["episodes/data"]
    assert sorted(data.array_keys()) == sorted(SPECS)
    for key, arr in data.arrays():
        assert arr.shape[0] >= ends[-1], key
    np.testing.assert_array_equal(data["action"][ends[1] : ends[2]], make_episode(2)["action"])


# ---------------------------------------------------------------- crash safety


def _child_write(run_dir: str) -> None:
    """Run in a child process: write episodes forever, committing every few episodes."""
    with create_store(run_dir, SPECS, flush_rows=30, flush_seconds=60) as writer:
        i = 0
        while True:
            writer.add_episode(make_episode(i), task=task_of(i))
            i += 1


def _wait_for_commit(run_dir: Path, child: subprocess.Popen, deadline: float) -> None:
    while time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read().decode()
        try:
            if open_store(run_dir).n_episodes >= 1:
                return
        except StoreError:  # store.zarr not created yet
            pass
        time.sleep(0.01)
    raise AssertionError(f"no commit in {run_dir} in time")


def test_sigkill_at_random_moments_keeps_committed_episodes(tmp_path: Path) -> None:
    rng = random.Random(1234)
    code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_store; test_store._child_write(sys.argv[1])"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    runs = [tmp_path / f"run{k}" for k in range(3)]
    children = [subprocess.Popen([sys.executable, "-c", code, str(run)], env=env, stderr=subprocess.PIPE) for run in runs]
    try:
        deadline = time.monotonic() + 60
        for run, child in zip(runs, children):
            _wait_for_commit(run, child, deadline)
        for child in children:
            time.sleep(rng.uniform(0.0, 0.25))
            child.send_signal(signal.SIGKILL)
    finally:
        for child in children:
            child.kill()
            child.wait()
            child.stderr.close()
    for run, child in zip(runs, children):
        assert child.returncode == -signal.SIGKILL
        store = open_store(run)
        n = store.n_episodes
        assert n >= 1
        assert_episodes(store)

        with open_store(run, mode="a") as writer:  # resume: repair, then append after the commit
            assert writer.n_episodes == n
            for i in range(n, n + 3):
                writer.add_episode(make_episode(i), task=task_of(i))
        store = open_store(run)
        assert store.n_episodes == n + 3
        assert store.dropped_rows == 0
        assert_episodes(store)


class InjectedCrash(Exception):
    """Stands for the death of the process just before a file write."""


def _count_puts(monkeypatch: pytest.MonkeyPatch, fail_from: int | None) -> list[int]:
    """Patch zarr's LocalStore file writes: count them, and fail every write from number fail_from on."""
    calls = [0]
    real_put = zarr_local._put

    def put(*args: object, **kwargs: object) -> int:
        calls[0] += 1
        if fail_from is not None and calls[0] >= fail_from:
            raise InjectedCrash(calls[0])
        return real_put(*args, **kwargs)

    monkeypatch.setattr(zarr_local, "_put", put)
    return calls


def test_crash_before_each_file_write_of_a_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stop a flush before each of its file writes in turn: the store keeps the earlier commit whole."""
    keys = {"obs": SPECS["obs"], "reward": SPECS["reward"]}

    def start(run: Path):
        writer = create_store(run, keys, flush_rows=10**6, flush_seconds=60)
        for i in range(2):
            writer.add_episode({k: make_episode(i)[k] for k in keys}, task=task_of(i))
        writer.flush()
        for i in range(2, 5):
            writer.add_episode({k: make_episode(i)[k] for k in keys}, task=task_of(i))
        return writer

    writer = start(tmp_path / "count")
    calls = _count_puts(monkeypatch, None)
    writer.close()
    writes = calls[0]
    monkeypatch.undo()
    assert writes >= 8, writes  # 2 data arrays and 2 meta arrays, each a zarr.json and a chunk

    for crash_at in range(1, writes + 1):
        run = tmp_path / f"crash{crash_at}"
        writer = start(run)
        _count_puts(monkeypatch, crash_at)
        with pytest.raises(InjectedCrash):
            writer.flush()
        retry = crash_at % 2 == 0
        if not retry:
            with pytest.raises(InjectedCrash):
                writer.close()  # still failing: nothing more is written, the lock is released
        monkeypatch.undo()

        store = open_store(run)
        assert store.n_episodes == 2, crash_at
        for i in range(2):
            np.testing.assert_array_equal(store.get_episode(i)["obs"], make_episode(i)["obs"])
        if retry:
            writer.close()  # the buffer survived the failed flush: the retry commits it once
        else:
            with open_store(run, mode="a") as resumed:
                assert resumed.n_episodes == 2
                for i in range(2, 5):
                    resumed.add_episode({k: make_episode(i)[k] for k in keys}, task=task_of(i))
        store = open_store(run)
        assert store.n_episodes == 5 and store.dropped_rows == 0, crash_at
        for i in range(5):
            np.testing.assert_array_equal(store.get_episode(i)["obs"], make_episode(i)["obs"])
        assert list(store.episode_tasks) == [task_of(i) for i in range(5)]


# ---------------------------------------------------------------- injected damage


def _root(run: Path) -> zarr.Group:
    return zarr.open_group(run / "store.zarr", mode="r+")


def test_resized_ends_without_chunk_reads_as_uncommitted(tmp_path: Path) -> None:
    write_episodes(tmp_path, 4)
    root = _root(tmp_path)
    ends = root["episodes/meta/episode_ends"]
    expected = ends[:]
    ends.resize((6,))  # the commit was killed after resize, before its chunk was written
    root["episodes/meta/episode_task"].resize((6,))
    assert list(ends[:]) == list(expected) + [0, 0]
    store = open_store(tmp_path)
    assert store.n_episodes == 4
    assert list(store.episode_ends) == list(expected)
    assert_episodes(store)


def test_data_longer_than_commit_is_dropped_and_repaired(tmp_path: Path) -> None:
    write_episodes(tmp_path, 4)
    root = _root(tmp_path)
    n_steps = int(root["episodes/meta/episode_ends"][-1])
    for _, arr in root["episodes/data"].arrays():
        arr.resize((n_steps + 7, *arr.shape[1:]))
        arr[n_steps:] = 1  # rows of an episode whose commit never happened
    store = open_store(tmp_path)
    assert (store.n_episodes, store.n_steps, store.dropped_rows) == (4, n_steps, 7)
    assert_episodes(store)

    with open_store(tmp_path, mode="a") as writer:
        assert all(arr.shape[0] == n_steps for _, arr in _root(tmp_path)["episodes/data"].arrays())
        writer.add_episode(make_episode(4), task=task_of(4))
    store = open_store(tmp_path)
    assert (store.n_episodes, store.dropped_rows) == (5, 0)
    assert_episodes(store)


def test_invalid_ends_cut_the_prefix(tmp_path: Path) -> None:
    write_episodes(tmp_path, 5)
    root = _root(tmp_path)
    ends = root["episodes/meta/episode_ends"]
    good = ends[:]
    ends[4] = good[3]  # not increasing
    assert open_store(tmp_path).n_episodes == 4
    ends[4] = good[4]
    root["episodes/data/obs"].resize((good[3] + 1, 4))  # one data array too short for episode 4
    assert open_store(tmp_path).n_episodes == 4
    root["episodes/meta/episode_task"].resize((2,))  # task ids are part of a commit
    store = open_store(tmp_path)
    assert store.n_episodes == 2
    assert_episodes(store)


def test_damaged_ends_chunk_falls_back_to_earlier_chunks(tmp_path: Path) -> None:
    count = 1100  # episode_ends spans two chunks of 1024
    with create_store(tmp_path, {"reward": SPECS["reward"]}, flush_rows=10**6) as writer:
        for i in range(count):
            writer.add_episode({"reward": np.full(1 + i % 2, i, np.float32)})
    chunk0 = tmp_path / "store.zarr/episodes/meta/episode_ends/c/0"
    chunk1 = tmp_path / "store.zarr/episodes/meta/episode_ends/c/1"
    good1 = chunk1.read_bytes()

    chunk1.write_bytes(good1[: len(good1) // 2])  # torn
    store = open_store(tmp_path)
    assert store.n_episodes == 1024
    np.testing.assert_array_equal(store.get_episode(1023)["reward"], np.full(2, 1023, np.float32))

    chunk1.write_bytes(b"garbage")
    assert open_store(tmp_path).n_episodes == 1024
    good0 = chunk0.read_bytes()
    chunk0.write_bytes(b"")
    assert open_store(tmp_path).n_episodes == 0  # nothing trusted, but the store still opens
    chunk0.write_bytes(good0)

    with open_store(tmp_path, mode="a") as writer:  # repair drops the damaged chunk
        assert writer.n_episodes == 1024
        writer.add_episode({"reward": np.full(3, -1, np.float32)})
    store = open_store(tmp_path)
    assert store.n_episodes == 1025 and store.dropped_rows == 0
    np.testing.assert_array_equal(store.get_episode(1024)["reward"], np.full(3, -1, np.float32))
    np.testing.assert_array_equal(store.get_episode(1023)["reward"], np.full(2, 1023, np.float32))

    (tmp_path / "store.zarr/episodes/data/reward/c/0").write_bytes(b"garbage")  # inside the commit
    assert "is damaged" in one_line_store_error(open_store(tmp_path).get_episode, 0)


def test_resume_clears_stale_ends_beyond_the_commit(tmp_path: Path) -> None:
    """After repair, a later commit killed between resize and write must read 0s, not old ends."""
    write_episodes(tmp_path, 5)
    root = _root(tmp_path)
    full_rows = int(root["episodes/meta/episode_ends"][-1])
    root["episodes/meta/episode_task"].resize((3,))  # damage: only 3 episodes are trusted
    open_store(tmp_path, mode="a").close()  # repair to 3 episodes

    root = _root(tmp_path)
    assert root["episodes/meta/episode_ends"].shape == (3,)
    for _, arr in root["episodes/data"].arrays():  # an interrupted commit: data grown ...
        arr.resize((full_rows, *arr.shape[1:]))
    root["episodes/meta/episode_task"].resize((5,))
    root["episodes/meta/episode_ends"].resize((5,))  # ... and ends resized, never written
    assert list(root["episodes/meta/episode_ends"][3:]) == [0, 0]
    assert open_store(tmp_path).n_episodes == 3


# ---------------------------------------------------------------- errors


def test_open_errors_say_what_is_wrong(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    assert one_line_store_error(open_store, missing) == (
        f"no run at '{missing}': the directory does not exist (run `thalamus run --run-dir {missing}` to create one)"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert one_line_store_error(open_store, empty) == f"'{empty}' is not a thalamus run: store.zarr is missing"

    run = tmp_path / "run"
    write_episodes(run, 2)
    assert open_store(run / "store.zarr").n_episodes == 2  # the store path itself works too
    root_json = run / "store.zarr" / "zarr.json"
    good = root_json.read_text()

    meta = json.loads(good)
    meta["attributes"]["version"] = 2
    root_json.write_text(json.dumps(meta))
    newer = (
        f"'{run / 'store.zarr'}' was written by a newer thalamus (store version 2, this one reads up to 1): "
        "upgrade thalamus to read it"
    )
    assert one_line_store_error(open_store, run) == newer
    assert one_line_store_error(open_store, run, mode="a") == newer

    corrupt = f"'{run / 'store.zarr'}' is corrupt or not a thalamus store: "
    root_json.write_text("{not json")
    assert one_line_store_error(open_store, run).startswith(corrupt + "cannot read zarr.json")
    assert one_line_store_error(open_store, run, mode="a").startswith(corrupt)
    del meta["attributes"]["format"]
    root_json.write_text(json.dumps(meta))
    assert "format=None" in one_line_store_error(open_store, run)
    root_json.unlink()
    assert one_line_store_error(open_store, run) == corrupt + "zarr.json is missing"
    root_json.write_text(good)

    ends_json = run / "store.zarr/episodes/meta/episode_ends/zarr.json"
    ends_json.rename(ends_json.with_suffix(".bak"))
    assert one_line_store_error(open_store, run) == corrupt + "episodes/meta/episode_ends is missing"
    ends_json.with_suffix(".bak").rename(ends_json)

    with pytest.raises(ValueError, match="mode"):
        open_store(run, mode="w")
    assert open_store(run).n_episodes == 2


def test_writer_errors_name_the_key_and_buffer_nothing(tmp_path: Path) -> None:
    writer = create_store(tmp_path, SPECS)
    episode = make_episode(3)
    message = one_line_store_error(writer.add_episode, {k: v for k, v in episode.items() if k != "reward"})
    assert "'reward'" in message and "missing" in message
    assert "'extra'" in one_line_store_error(writer.add_episode, {**episode, "extra": episode["action"]})
    length = len(episode["action"])
    message = one_line_store_error(writer.add_episode, {**episode, "terminated": episode["terminated"][:-1]})
    assert "'terminated'" in message and str(length - 1) in message and str(length) in message
    message = one_line_store_error(writer.add_episode, {**episode, "obs": episode["obs"][:, :3]})
    assert "'obs'" in message and str((length, 3)) in message and "(L, 4)" in message
    assert "'frame'" in one_line_store_error(writer.add_episode, {**episode, "frame": episode["frame"][:0]})
    assert "'action'" in one_line_store_error(writer.add_episode, {**episode, "action": episode["action"] + 0.5})
    assert "int32" in one_line_store_error(writer.add_episode, episode, task=2**31)

    writer.add_episode(episode)
    assert "already open for writing" in one_line_store_error(open_store, tmp_path, mode="a")
    assert "already exists" in one_line_store_error(create_store, tmp_path, SPECS)
    writer.close()
    assert "closed" in one_line_store_error(writer.add_episode, episode)
    store = open_store(tmp_path)
    assert store.n_episodes == 1  # the rejected episodes left nothing behind
    np.testing.assert_array_equal(store.get_episode(0)["obs"], episode["obs"])
    open_store(tmp_path, mode="a").close()  # the lock was released


# ---------------------------------------------------------------- manifest


def test_manifest_write_read_update(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_manifest(run, {"status": "running", "config": {"lr": 0.001}})
    assert read_manifest(run) == {"status": "running", "config": {"lr": 0.001}}
    assert update_manifest(run, status="done", end=12.5) == {"status": "done", "config": {"lr": 0.001}, "end": 12.5}
    assert read_manifest(run)["status"] == "done"

    message = one_line_store_error(write_manifest, run, {"bad": object()})
    assert "not plain JSON" in message
    assert read_manifest(run)["status"] == "done"  # a failed write leaves the old manifest
    assert sorted(p.name for p in run.iterdir()) == [".run.json.reserve", "run.json"]  # and no temporary files

    (run / "run.json").write_text('{"status": "runn')
    assert one_line_store_error(read_manifest, run).startswith(f"'{run / 'run.json'}' is corrupt")
    (run / "run.json").write_text("[1, 2]")
    assert "expected a JSON object" in one_line_store_error(update_manifest, run, status="x")
    assert one_line_store_error(read_manifest, tmp_path).startswith(f"no manifest at '{tmp_path / 'run.json'}'")


def _fake_disk(monkeypatch: pytest.MonkeyPatch, run: Path, capacity: int) -> None:
    """Make os.write fail with ENOSPC once the files in run would pass capacity bytes (a disk that small)."""
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        used = sum(p.stat().st_size for p in run.iterdir() if p.is_file())
        if used + len(data) > capacity:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)


def test_manifest_records_the_final_status_on_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """run.json keeps a reserve file beside it; a write that hits ENOSPC deletes it and tries again."""
    run = tmp_path / "run"
    write_manifest(run, {"status": "running", "config": {"lr": 0.001}})
    reserve = run / ".run.json.reserve"
    assert reserve.stat().st_size >= 64 * 2**10
    used = sum(p.stat().st_size for p in run.iterdir())
    _fake_disk(monkeypatch, run, capacity=used + 10)  # the disk is full: not room for a second run.json

    summary = {"episodes": 12, "note": "x" * 2000}
    update_manifest(run, status="failed", ended="2026-01-01T00:00:00", summary=summary)
    assert read_manifest(run) == {"status": "failed", "config": {"lr": 0.001}, "ended": "2026-01-01T00:00:00",
                                  "summary": summary}
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]  # the reserve was spent, no temporary file left

    # The store took the room the reserve freed: no reserve left, the write fails with one line, and the
    # last run.json stays whole.
    _fake_disk(monkeypatch, run, capacity=(run / "run.json").stat().st_size + 10)
    message = one_line_store_error(update_manifest, run, status="completed", summary=summary)
    assert "disk is full" in message and "run.json" in message
    assert read_manifest(run)["status"] == "failed"
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]

    monkeypatch.undo()  # space again: the next write puts the reserve back
    update_manifest(run, status="completed")
    assert reserve.stat().st_size >= 64 * 2**10 and read_manifest(run)["status"] == "completed"


def test_manifest_write_that_fails_midway_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    write_manifest(run, {"status": "running"})

    def broken(fd: int, data: bytes) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "write", broken)
    message = one_line_store_error(update_manifest, run, status="completed")
    assert "run.json" in message and os.strerror(errno.EIO) in message
    monkeypatch.undo()
    assert read_manifest(run) == {"status": "running"}
    assert sorted(p.name for p in run.iterdir()) == [".run.json.reserve", "run.json"]


def test_free_space_check(tmp_path: Path) -> None:
    free = free_bytes(tmp_path)
    assert free == shutil.disk_usage(tmp_path).free
    assert free_bytes(tmp_path / "not" / "made" / "yet") == free  # the disk the run dir will be on
    assert check_free_space(tmp_path / "run", 1) is None
    message = check_free_space(tmp_path / "run", free * 4)
    assert message is not None and "\n" not in message
    assert str(tmp_path / "run") in message and "free" in message and "GiB" in message


# ---------------------------------------------------------------- checksums


def _random_frames(rows: int, seed: int) -> dict[str, np.ndarray]:
    """Incompressible frames: zstd stores them as they are, so a flipped byte decodes to a wrong pixel."""
    rng = np.random.default_rng(seed)
    return {"frame": rng.integers(0, 256, (rows, 8, 8, 3), dtype=np.uint8), "reward": np.ones(rows, np.float32)}


FRAME_SPECS = {"frame": SPECS["frame"], "reward": SPECS["reward"]}


def test_a_flipped_byte_in_a_chunk_is_caught(tmp_path: Path) -> None:
    episode = _random_frames(200, seed=5)
    with create_store(tmp_path, FRAME_SPECS) as writer:
        writer.add_episode(episode)
    infos = {info.path: info for info in open_store(tmp_path).arrays()}
    assert all("crc32c" in info.compressors for info in infos.values())
    chunk = tmp_path / "store.zarr/episodes/data/frame/c/0/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x01
    chunk.write_bytes(bytes(data))
    message = one_line_store_error(open_store(tmp_path).get_episode, 0)
    assert "is damaged" in message and "episodes/data/frame" in message


def test_stores_written_without_checksums_still_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory.writer, "COMPRESSORS", "auto")  # what create_store wrote before checksums
    write_episodes(tmp_path, 4)
    monkeypatch.undo()
    store = open_store(tmp_path)
    assert not any("crc32c" in info.compressors for info in store.arrays())
    assert_episodes(store)
    with open_store(tmp_path, mode="a") as writer:  # appending goes on in the store's own codecs
        writer.add_episode(make_episode(4), task=task_of(4))
    store = open_store(tmp_path)
    assert store.n_episodes == 5
    assert_episodes(store)


# ---------------------------------------------------------------- writer locking


def test_every_way_of_opening_a_writer_releases_the_lock_when_it_fails(tmp_path: Path) -> None:
    """create_store, create_store into a learner-only store, and resume: a refused open leaves no lock behind."""
    run = tmp_path / "run"
    write_episodes(run, 2)
    ends = run / "store.zarr/episodes/meta/episode_ends/zarr.json"
    good = ends.read_text()
    ends.write_text("{not json")
    assert "corrupt" in one_line_store_error(open_store, run, mode="a")
    ends.write_text(good)
    open_store(run, mode="a").close()  # the failed resume released its lock

    memory_only = tmp_path / "memory_only"
    save_learner_memory(memory_only, None, [], 1)
    root = memory_only / "store.zarr/zarr.json"
    body = json.loads(root.read_text())
    root.write_text(json.dumps({**body, "attributes": {**body["attributes"], "version": 99}}))
    assert "newer thalamus" in one_line_store_error(create_store, memory_only, SPECS)
    root.write_text(json.dumps(body))
    create_store(memory_only, SPECS).close()  # the failed create released its lock

    with open_store(run, mode="a"):
        with pytest.raises(StoreBusy):
            open_store(run, mode="a")


def test_the_writer_has_no_repeated_code() -> None:
    """`duplicates` (a dev tool, where installed) finds no pair of places in memory/ sharing 6+ lines."""
    tool = shutil.which("duplicates")
    if tool is None:
        pytest.skip("the duplicates tool is not installed")
    out = subprocess.run([tool, "--repo", str(Path(__file__).parents[1] / "memory")], capture_output=True,
                         text=True, timeout=60).stdout
    assert out.lower().startswith("no duplicates"), out
