"""Tests of the learner's memories in the run store (memory/learner_memory.py): round trip, bounded size,
crash safety under SIGKILL, refusal of corrupt and newer stores, sharing a store with episodes, inspection."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from conftest import one_line_store_error, run_here
from memory import (
    ArraySpec,
    LearnerMemory,
    MemoryBlock,
    StoreError,
    create_store,
    load_learner_memory,
    open_store,
    save_learner_memory,
)

SPECS = {"obs": ArraySpec((4,), "float32"), "reward": ArraySpec((), "float32")}


def make_memory(step: int, columns: int = 3, cache: bool = True, entries: int = 300) -> LearnerMemory:
    """The learner memory of `step`: every array and attr is a function of step, so any process can check it."""
    rng = np.random.default_rng(step)
    block = None
    if cache:
        keys = rng.standard_normal((entries, 24)).astype(np.float32)
        keys[0, :3] = [-0.0, np.nan, np.inf]  # bit-exact: the sign of zero and NaN must survive
        block = MemoryBlock(
            arrays={
                "keys": keys,
                "values": rng.standard_normal((entries, 8)).astype(np.float32),
                "labels": rng.integers(0, 10, entries),
                "logits": rng.standard_normal((entries, 10)).astype(np.float32),
                "task": rng.integers(0, 5, entries).astype(np.int32),
                "age": rng.integers(0, 10**12, entries),
            },
            attrs={"capacity": entries + step % 7, "size": entries, "writes": 1000 + step, "evictions": step,
                   "policy": "reservoir"},
        )
    spectral = []
    for m in range(columns):
        dim, rank = 40 + m, 1 + (step + m) % 6
        spectral.append(MemoryBlock(
            arrays={
                "basis": rng.standard_normal((dim, rank)).astype(np.float32),
                "singular_values": np.sort(rng.random(rank).astype(np.float32))[::-1].copy(),
                "sketch": rng.standard_normal((2 * rank, dim)).astype(np.float32),
            },
            attrs={"rank": rank, "dim": dim, "energy_captured": float(rng.random()),
                   "consolidation": 0.25 * m, "updates": step * 3 + m},
        ))
    return LearnerMemory(cache=block, spectral=spectral, step=step)


def save(run_dir: Path, memory: LearnerMemory) -> None:
    save_learner_memory(run_dir, memory.cache, memory.spectral, memory.step)


def assert_same_block(got: MemoryBlock, expected: MemoryBlock) -> None:
    assert sorted(got.arrays) == sorted(expected.arrays)
    for name, value in expected.arrays.items():
        assert got.arrays[name].dtype == value.dtype, name
        assert got.arrays[name].shape == value.shape, name
        assert got.arrays[name].tobytes() == value.tobytes(), name  # bit-identical, NaN and -0.0 included
    assert got.attrs == expected.attrs


def assert_same(got: LearnerMemory | None, expected: LearnerMemory) -> None:
    assert got is not None
    assert got.step == expected.step
    assert (got.cache is None) == (expected.cache is None)
    if expected.cache is not None:
        assert_same_block(got.cache, expected.cache)
    assert len(got.spectral) == len(expected.spectral)
    for g, e in zip(got.spectral, expected.spectral):
        assert_same_block(g, e)


def save_dirs(run_dir: Path) -> dict[str, list[str]]:
    """The save directories on disk: under cache/, and under each spectral/column_<m>/."""
    store = run_dir / "store.zarr"
    parents = [store / "cache", *sorted((store / "spectral").glob("column_*"))]
    return {p.relative_to(store).as_posix(): sorted(d.name for d in p.iterdir() if d.is_dir())
            for p in parents if p.is_dir()}


# ---------------------------------------------------------------- round trip


def test_round_trip_is_bit_identical(tmp_path: Path) -> None:
    assert load_learner_memory(tmp_path / "nothing") is None  # never saved: no run dir
    expected = make_memory(7, columns=4)
    save(tmp_path, expected)
    assert_same(load_learner_memory(tmp_path), expected)
    assert_same(load_learner_memory(tmp_path / "store.zarr"), expected)  # the store path works too

    # Plain zarr reads it: the commit record names the save, and the store keeps its root attrs.
    g = zarr.open_group(tmp_path / "store.zarr", mode="r")
    assert dict(g.attrs) == {"format": "thalamus-store", "version": 1}
    save_name = g["learner"].attrs["save"]
    assert save_name.startswith("0000000007-") and g["learner"].attrs["step"] == 7
    np.testing.assert_array_equal(g[f"cache/{save_name}/labels"][:], expected.cache.arrays["labels"])
    np.testing.assert_array_equal(g[f"spectral/column_3/{save_name}/basis"][:], expected.spectral[3].arrays["basis"])
    assert dict(g[f"spectral/column_1/{save_name}"].attrs) == expected.spectral[1].attrs


def test_round_trip_without_cache_or_columns_and_with_odd_shapes(tmp_path: Path) -> None:
    no_cache = make_memory(3, columns=2, cache=False)
    save(tmp_path / "a", no_cache)
    assert_same(load_learner_memory(tmp_path / "a"), no_cache)

    only_cache = make_memory(4, columns=0)
    save(tmp_path / "b", only_cache)
    assert_same(load_learner_memory(tmp_path / "b"), only_cache)

    odd = LearnerMemory(
        cache=MemoryBlock({"keys": np.zeros((0, 5), np.float16), "flags": np.zeros((0,), bool)},
                          {"capacity": 0, "nested": {"a": [1, 2.5, None, "x"], "big": 2**62}, "nan": float("nan")}),
        spectral=[MemoryBlock({"basis": np.ones((3, 0), np.float64), "count": np.array(12, np.int64),
                               "z": np.array([1 + 2j], np.complex64)})],
        step=0,
    )
    save(tmp_path / "c", odd)
    got = load_learner_memory(tmp_path / "c")
    assert np.isnan(got.cache.attrs.pop("nan")) and np.isnan(odd.cache.attrs["nan"])
    assert got.cache.attrs == {k: v for k, v in odd.cache.attrs.items() if k != "nan"}
    for name, value in odd.cache.arrays.items():
        assert got.cache.arrays[name].dtype == value.dtype and got.cache.arrays[name].shape == value.shape
    assert_same_block(got.spectral[0], odd.spectral[0])

    # numpy scalars and tuples in attrs come back as JSON gives them
    save_learner_memory(tmp_path / "d", None, [MemoryBlock({}, {"rank": np.int64(3), "pair": (1, 2),
                                                                 "e": np.float32(0.5)})], 1)
    attrs = load_learner_memory(tmp_path / "d").spectral[0].attrs
    assert attrs == {"rank": 3, "pair": [1, 2], "e": 0.5} and type(attrs["rank"]) is int


def test_bad_input_is_refused_and_writes_nothing(tmp_path: Path) -> None:
    good = make_memory(1)
    cache = good.cache
    arrays = dict(cache.arrays)
    cases = [
        (MemoryBlock({**arrays, "task": arrays["task"][:-1]}, cache.attrs), "'task' has 299 rows, expected 300"),
        (MemoryBlock(arrays, {**cache.attrs, "capacity": 299}), "300 entries, more than its capacity 299"),
        (MemoryBlock(arrays, {"size": 300}), "need an integer 'capacity'"),
        (MemoryBlock({**arrays, "name": np.array(["a"] * 300)}, cache.attrs), "'name' has dtype <U1"),
        (MemoryBlock({**arrays, "../up": arrays["age"]}, cache.attrs), "'../up' is not a plain name"),
        (MemoryBlock({**arrays, "one": np.array(1)}, cache.attrs), "'one' is a scalar"),
        (MemoryBlock({}, {"capacity": 4}), "cache has no arrays"),
        (MemoryBlock(arrays, {**cache.attrs, "when": {1, 2}}), "cache attrs['when'] is a set"),
        ({"keys": arrays["keys"]}, "cache is a dict, expected a MemoryBlock"),
    ]
    for bad, expect in cases:
        assert expect in one_line_store_error(save_learner_memory, tmp_path, bad, good.spectral, 1), expect
    assert "step must be an integer >= 0" in one_line_store_error(save_learner_memory, tmp_path, cache, [], -1)
    assert "spectral column 1 attrs" in one_line_store_error(
        save_learner_memory, tmp_path, None, [good.spectral[0], MemoryBlock({}, {"x": object()})], 1)
    assert not (tmp_path / "store.zarr").exists()  # refused before anything was written
    assert load_learner_memory(tmp_path) is None


# ---------------------------------------------------------------- bounded size


def test_repeated_saves_keep_only_the_latest(tmp_path: Path) -> None:
    save(tmp_path, make_memory(0))
    first_bytes = _bytes(tmp_path)
    for step in range(1, 12):
        save(tmp_path, make_memory(step))
        dirs = save_dirs(tmp_path)
        assert set(dirs) == {"cache", "spectral/column_0", "spectral/column_1", "spectral/column_2"}
        assert all(len(names) == 1 and names[0].startswith(f"{step:010d}-") for names in dirs.values()), dirs
    assert_same(load_learner_memory(tmp_path), make_memory(11))
    assert _bytes(tmp_path) < 1.1 * first_bytes  # one save's worth, not twelve

    fewer = make_memory(12, columns=1, cache=False)  # columns and the cache can also go away
    save(tmp_path, fewer)
    assert save_dirs(tmp_path) == {"cache": [], "spectral/column_0": [f"{save_name(tmp_path)}"]}
    assert_same(load_learner_memory(tmp_path), fewer)
    leftovers = [p.name for p in (tmp_path / "store.zarr").rglob("*.partial")]
    assert leftovers == []


def _bytes(run_dir: Path) -> int:
    return sum(p.stat().st_size for p in (run_dir / "store.zarr").rglob("*") if p.is_file())


def save_name(run_dir: Path) -> str:
    return json.loads((run_dir / "store.zarr/learner/zarr.json").read_text())["attributes"]["save"]


# ---------------------------------------------------------------- crash safety


def _child_save(run_dir: str) -> None:
    """Run in a child process: resume after the last committed save, then save step after step forever."""
    last = load_learner_memory(run_dir)
    step = 0 if last is None else last.step + 1
    while True:
        save(Path(run_dir), make_memory(step, columns=4, entries=3000))
        step += 1


def test_sigkill_while_saving_leaves_the_last_complete_save(tmp_path: Path) -> None:
    rng = random.Random(5)
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "import test_learner_memory as t; t._child_save(sys.argv[1])")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    last_step, reads, interrupted = -1, 0, 0
    for _ in range(5):  # kill, restart (which resumes after the committed save), kill again
        child = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 60
            while True:  # read while the child saves: every read is one complete save
                assert child.poll() is None, child.stderr.read().decode()
                assert time.monotonic() < deadline, "no new save within 60 s"
                got = load_learner_memory(tmp_path)
                if got is not None:
                    assert_same(got, make_memory(got.step, columns=4, entries=3000))
                    reads += 1
                    if got.step > last_step + 1:
                        break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
            child.send_signal(signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        got = load_learner_memory(tmp_path)
        assert got is not None and got.step > last_step
        assert_same(got, make_memory(got.step, columns=4, entries=3000))
        last_step = got.step
        # the committed save, plus at most the remains of the save the kill interrupted
        dirs = save_dirs(tmp_path)
        assert all(1 <= len(names) <= 2 for names in dirs.values()), dirs
        interrupted += any(len(names) == 2 for names in dirs.values())
    assert reads >= 5
    assert interrupted >= 1  # saves take most of the child's time: some kill landed inside one
    save(tmp_path, make_memory(last_step + 1))  # the next save clears what the kills left
    assert all(len(names) == 1 for names in save_dirs(tmp_path).values())
    assert not list((tmp_path / "store.zarr").rglob("*.partial"))
    assert_same(load_learner_memory(tmp_path), make_memory(last_step + 1))


# ---------------------------------------------------------------- refused stores


def test_corrupt_commit_record_or_save_is_refused(tmp_path: Path) -> None:
    save(tmp_path, make_memory(2))
    record = tmp_path / "store.zarr/learner/zarr.json"
    good = record.read_text()
    corrupt = f"'{tmp_path / 'store.zarr'}' is corrupt: the learner memory's commit record learner/zarr.json "

    record.write_text("{not json")
    assert one_line_store_error(load_learner_memory, tmp_path).startswith(corrupt + "is not JSON")
    meta = json.loads(good)
    for field, value, expect in [("save", "../../etc", "names the save '../../etc'"),
                                 ("step", "3", "has step '3'"),
                                 ("cache", {"keys": "crc"}, "has a 'cache'"),
                                 ("spectral", None, "has a 'spectral'")]:
        record.write_text(json.dumps({**meta, "attributes": {**meta["attributes"], field: value}}))
        assert one_line_store_error(load_learner_memory, tmp_path).startswith(corrupt + expect)
    record.write_text(json.dumps([1]))
    assert "not the metadata of a zarr group" in one_line_store_error(load_learner_memory, tmp_path)

    crcs = meta["attributes"]["cache"]
    record.write_text(json.dumps({**meta, "attributes": {**meta["attributes"], "cache": {**crcs, "keys": 1}}}))
    assert "cache/" in (msg := one_line_store_error(load_learner_memory, tmp_path)) and "does not match its CRC-32" in msg
    record.write_text(json.dumps({**meta, "attributes": {**meta["attributes"], "cache": {**crcs, "gone": 1}}}))
    assert "is damaged" in one_line_store_error(load_learner_memory, tmp_path)
    record.write_text(good)
    chunk = next((tmp_path / "store.zarr/spectral/column_1").glob("*/basis/c.0.0"))
    chunk.write_bytes(b"garbage")
    assert "is damaged: spectral/column_1/" in one_line_store_error(load_learner_memory, tmp_path)

    save(tmp_path, make_memory(3))  # a new save replaces the damaged one
    assert_same(load_learner_memory(tmp_path), make_memory(3))


def test_newer_store_is_refused_untouched(tmp_path: Path) -> None:
    save(tmp_path, make_memory(1))
    root = tmp_path / "store.zarr/zarr.json"
    meta = json.loads(root.read_text())
    meta["attributes"]["version"] = 2
    root.write_text(json.dumps(meta))
    before = sorted((p.as_posix(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    newer = (f"'{tmp_path / 'store.zarr'}' was written by a newer thalamus (store version 2, this one reads up to 1): "
             "upgrade thalamus to read it")
    assert one_line_store_error(load_learner_memory, tmp_path) == newer
    assert one_line_store_error(save, tmp_path, make_memory(2)) == newer
    assert sorted((p.as_posix(), p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


# ---------------------------------------------------------------- one store, episodes and memory


def _episode(i: int) -> dict[str, np.ndarray]:
    length = 1 + i % 5
    return {"obs": np.full((length, 4), i, np.float32), "reward": np.arange(length, dtype=np.float32)}


def test_episodes_and_learner_memory_share_a_store(tmp_path: Path) -> None:
    first = tmp_path / "episodes_first"
    with create_store(first, SPECS, flush_rows=1) as writer:
        writer.add_episode(_episode(0))
        save(first, make_memory(1))  # while the episode writer holds its lock
        writer.add_episode(_episode(1))
        save(first, make_memory(2))
    store = open_store(first)
    assert store.n_episodes == 2 and store.dropped_rows == 0
    np.testing.assert_array_equal(store.get_episode(1)["obs"], _episode(1)["obs"])
    assert_same(load_learner_memory(first), make_memory(2))
    with open_store(first, mode="a") as writer:  # resume repairs only episodes/
        writer.add_episode(_episode(2))
    assert open_store(first).n_episodes == 3
    assert_same(load_learner_memory(first), make_memory(2))
    assert dict(zarr.open_group(first / "store.zarr", mode="r").attrs) == {"format": "thalamus-store", "version": 1}

    memory_first = tmp_path / "memory_first"  # the learner saved before the recorder made the store
    save(memory_first, make_memory(5))
    store = open_store(memory_first)
    assert (store.n_episodes, store.n_steps, store.keys, store.arrays()) == (0, 0, [], [])
    assert "holds no episodes yet" in one_line_store_error(open_store, memory_first, mode="a")
    with create_store(memory_first, SPECS) as writer:  # adds episodes/ to the store
        writer.add_episode(_episode(3))
    assert "already exists" in one_line_store_error(create_store, memory_first, SPECS)
    store = open_store(memory_first)
    assert store.n_episodes == 1
    np.testing.assert_array_equal(store.get_episode(0)["reward"], _episode(3)["reward"])
    assert_same(load_learner_memory(memory_first), make_memory(5))
    assert load_learner_memory(first.parent / "no_memory") is None
    with create_store(tmp_path / "no_memory", SPECS) as writer:
        writer.add_episode(_episode(0))
    assert load_learner_memory(tmp_path / "no_memory") is None  # a run whose learner never saved


def test_inspect_shows_cache_and_spectral_memory(tmp_path: Path) -> None:
    from conftest import run_cli  # here, not at the top: the SIGKILL test's child imports this module

    run = tmp_path / "run"
    with create_store(run, SPECS) as writer:
        writer.add_episode(_episode(4))
    plain = json.loads(run_here("memory", "inspect", str(run), "--json").stdout)
    assert not {"memory_step", "cache", "spectral"} & set(plain)  # no learner memory: the report is unchanged

    memory = make_memory(12)
    save(run, memory)
    proc = run_here("memory", "inspect", str(run), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["episodes"] == 1 and report["memory_step"] == 12
    cache = report["cache"]
    assert {k: cache[k] for k in ("entries", "capacity", "writes", "evictions", "policy")} == {
        "entries": 300, "capacity": 305, "writes": 1012, "evictions": 12, "policy": "reservoir"}
    assert cache["arrays"]["keys"] == {"shape": [300, 24], "dtype": "float32"}
    assert [c["column"] for c in report["spectral"]] == [0, 1, 2]
    for col, block in zip(report["spectral"], memory.spectral):
        for key in ("rank", "dim", "energy_captured", "consolidation", "updates"):
            assert col[key] == block.attrs[key], key
    human = run_here("memory", "inspect", str(run))
    assert human.returncode == 0, human.stderr
    assert "learner memory saved at step 12" in human.stdout
    assert "300 / 305 entries" in human.stdout and "reservoir" in human.stdout
    assert "energy captured" in human.stdout and "episodes/data/obs" in human.stdout
