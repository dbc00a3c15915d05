"""Tests of `thalamus memory inspect`: damaged stores (what still reads, --verify), runs that never
started, captions decoded to words, and a task sequence broken down by task."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import one_clear_line, run_here, tree_digest
from memory import ArraySpec, create_store, write_manifest
from test_store import make_episode, write_episodes


def inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `thalamus memory inspect ARGV` in this process; returns (exit code, stdout, stderr)."""
    from launch.cli import main

    code = main(["memory", "inspect", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- damaged stores


def test_truncated_episode_ends_is_reported_as_damage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_episodes(tmp_path, 5)
    rows = sum(len(make_episode(i)["action"]) for i in range(5))
    chunk = tmp_path / "store.zarr/episodes/meta/episode_ends/c/0"
    chunk.write_bytes(chunk.read_bytes()[:10])  # torn
    before = tree_digest(tmp_path)

    code, out, err = inspect(capsys, str(tmp_path), "--json")
    assert code == 1
    line = one_line(err)
    assert "damaged" in line and "episodes/meta/episode_ends" in line
    r = json.loads(out)
    assert r["status"] == "damaged" and r["episodes"] == 0 and r["uncommitted_rows"] == rows
    assert [(d["array"], d["chunk"], d["rows"]) for d in r["damaged"]] == [("episodes/meta/episode_ends", [0], [0, 5])]
    arrays = {a["path"]: a for a in r["arrays"]}
    assert arrays["episodes/meta/episode_ends"]["damaged_chunks"] == 1
    assert arrays["episodes/meta/episode_task"]["chunks_read"] == 1  # what still reads
    assert arrays["episodes/meta/episode_task"]["damaged_chunks"] == 0
    assert arrays["episodes/data/reward"]["chunks_read"] == 1 and arrays["episodes/data/reward"]["damaged_chunks"] == 0
    assert arrays["episodes/data/frame"]["chunks_read"] is None  # not read without --verify

    code, out, err = inspect(capsys, str(tmp_path))
    assert code == 1 and "damaged" in one_line(err)
    assert "episodes/meta/episode_ends chunk 0" in out
    assert f"{rows} rows" in out  # the data kept past the last trusted episode end
    assert "--verify" in out
    assert tree_digest(tmp_path) == before  # inspect changes nothing


BIG = {"frame": ArraySpec((64, 64, 3), "uint8"), "reward": ArraySpec((), "float32"), "task": ArraySpec((), "int32")}


def _write_frames(run: Path, episodes: int = 30, length: int = 10) -> None:
    """Episodes of `length` random 64x64 frames: the frame array's chunks hold 85 rows each."""
    rng = np.random.default_rng(0)
    with create_store(run, BIG) as writer:
        for i in range(episodes):
            writer.add_episode({"frame": rng.integers(0, 256, (length, 64, 64, 3), dtype=np.uint8),
                                "reward": np.full(length, i, np.float32), "task": np.zeros(length, np.int32)})


def test_verify_reads_every_chunk_and_finds_a_truncated_frame_chunk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_frames(tmp_path)
    chunk = tmp_path / "store.zarr/episodes/data/frame/c/1/0/0/0"  # rows 85..170: episodes 8 to 16
    chunk.write_bytes(chunk.read_bytes()[:1000])

    code, out, err = inspect(capsys, str(tmp_path), "--json")
    assert code == 0, err  # frames are not read without --verify
    r = json.loads(out)
    assert r["status"] == "ok" and r["verified"] is False and r["damaged"] == []

    code, out, err = inspect(capsys, str(tmp_path), "--verify", "--json")
    assert code == 1
    assert "episodes/data/frame" in one_line(err)
    r = json.loads(out)
    assert r["verified"] is True and r["status"] == "damaged"
    damaged = [(d["array"], d["chunk"], d["rows"]) for d in r["damaged"]]
    assert damaged == [("episodes/data/frame", [1, 0, 0, 0], [85, 170])]
    assert r["episodes"] == 30 and r["episodes_intact"] == 21 and r["damaged_episodes"] == [[8, 17]]
    arrays = {a["path"]: a for a in r["arrays"]}
    assert arrays["episodes/data/frame"]["chunks_read"] == 4 and arrays["episodes/data/frame"]["damaged_chunks"] == 1
    for path, a in arrays.items():
        assert a["chunks_read"] >= 1 and a["checksums"] is True, path
        if path != "episodes/data/frame":
            assert a["damaged_chunks"] == 0, path
    assert r["episode_returns"][8:11] == [80.0, 90.0, 100.0]  # their rewards read: only their frames are lost

    code, out, err = inspect(capsys, str(tmp_path), "--verify")
    assert code == 1
    assert "episodes/data/frame chunk 1" in out and "rows 85 to 169" in out
    assert "21 of 30 episodes" in out and "8 to 16" in out


def test_verify_finds_a_flipped_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_frames(tmp_path, episodes=5)
    chunk = tmp_path / "store.zarr/episodes/data/frame/c/0/0/0/0"
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0x10  # the chunk keeps its length; zstd alone would decode it to a wrong pixel
    chunk.write_bytes(bytes(data))
    code, out, err = inspect(capsys, str(tmp_path), "--verify", "--json")
    assert code == 1, out
    r = json.loads(out)
    assert [(d["array"], d["chunk"]) for d in r["damaged"]] == [("episodes/data/frame", [0, 0, 0, 0])]
    assert "checksum" in r["damaged"][0]["error"].lower()


def test_verify_of_a_store_without_checksums_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import memory.writer

    monkeypatch.setattr(memory.writer, "COMPRESSORS", "auto")  # a store written before checksums
    write_episodes(tmp_path, 3)
    monkeypatch.undo()
    code, out, err = inspect(capsys, str(tmp_path), "--verify", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["status"] == "ok" and r["episodes_intact"] == 3
    assert not any(a["checksums"] for a in r["arrays"])
    code, out, err = inspect(capsys, str(tmp_path), "--verify")
    assert code == 0 and "without checksums" in out


def test_damaged_learner_memory_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from memory import MemoryBlock, save_learner_memory

    write_episodes(tmp_path, 2)
    basis = np.arange(40 * 3, dtype=np.float32).reshape(40, 3)
    save_learner_memory(tmp_path, None, [MemoryBlock({"basis": basis}, {"rank": 3})], 7)
    chunk = next((tmp_path / "store.zarr/spectral/column_0").glob("*/basis/c.0.0"))
    chunk.write_bytes(chunk.read_bytes()[:-3])
    code, out, err = inspect(capsys, str(tmp_path), "--json")
    assert code == 1 and "learner memory" in one_line(err)
    r = json.loads(out)
    assert r["episodes"] == 2 and r["damaged"][0]["array"] == "learner memory"


# ---------------------------------------------------------------- runs that never started


def test_a_run_that_never_started_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    write_manifest(run, {"status": "running", "started": "2026-03-01T10:00:00", "ended": None})
    proc = run_here("memory", "inspect", str(run))
    one_clear_line(proc, "never started")
    assert "status running" in proc.stderr and "not a thalamus run" not in proc.stderr

    write_manifest(run, {"status": "failed", "started": "2026-03-01T10:00:00", "ended": "2026-03-01T10:00:25",
                         "error": "cannot reach a Ray cluster at 127.0.0.1:9"})
    code, out, err = inspect(capsys, str(run))
    line = one_line(err)
    assert code != 0 and out == ""
    assert "never started" in line and "status failed" in line and "2026-03-01T10:00:25" in line
    assert "cannot reach a Ray cluster at 127.0.0.1:9" in line
    code, out, err = inspect(capsys, str(run), "--json")
    assert code != 0 and "never started" in one_line(err)
    assert json.loads(out) == {"run_dir": str(run), "started": False, "status": "failed",
                               "ended": "2026-03-01T10:00:25", "error": "cannot reach a Ray cluster at 127.0.0.1:9"}

    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = inspect(capsys, str(empty))
    assert code != 0 and "not a thalamus run" in one_line(err)


# ---------------------------------------------------------------- captions and tasks


WORDS = ["<pad>", "<bos>", "<eos>", "a", "and", "the", "pole", "cart", "leans", "left", "stays", "upright",
         "moves", "right"]


def _tokens(texts: list[str], width: int = 6) -> np.ndarray:
    """Token ids as the captioner stores them: the words, <eos>, then <pad> (0) to width."""
    rows = []
    for text in texts:
        ids = [WORDS.index(w) for w in text.split()] + [2]
        rows.append(ids + [0] * (width - len(ids)))
    return np.array(rows, np.int16)


def test_captions_are_decoded_to_words(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    up, left, cart = "the pole stays upright", "the pole leans left", "the cart moves right"
    episodes = [[up] * 3 + [left] * 2, [cart] * 4, [up] * 2 + [left] * 5]
    specs = {"reward": ArraySpec((), "float32"), "caption": ArraySpec((6,), "int16")}
    with create_store(tmp_path, specs) as writer:
        for texts in episodes:
            writer.add_episode({"reward": np.ones(len(texts), np.float32), "caption": _tokens(texts)})
    write_manifest(tmp_path, {"status": "completed", "caption_vocab": WORDS})

    code, out, err = inspect(capsys, str(tmp_path), "--json")
    assert code == 0, err
    c = json.loads(out)["captions"]
    assert c["decoded"] is True and c["distinct"] == 3
    assert c["most_frequent"] == [{"caption": left, "steps": 7}, {"caption": up, "steps": 5},
                                  {"caption": cart, "steps": 4}]
    assert c["first_episode"] == {"episode": 0, "captions": [{"caption": up, "steps": 3},
                                                             {"caption": left, "steps": 2}]}
    assert c["last_episode"] == {"episode": 2, "captions": [{"caption": up, "steps": 2},
                                                            {"caption": left, "steps": 5}]}

    code, out, err = inspect(capsys, str(tmp_path))
    assert code == 0, err
    assert f"{left}" in out and f"{cart}" in out and "most frequent" in out
    assert f"{up} ×3 → {left} ×2" in out

    write_manifest(tmp_path, {"status": "completed"})  # no vocabulary: token ids, and a note saying why
    code, out, err = inspect(capsys, str(tmp_path), "--json")
    c = json.loads(out)["captions"]
    assert code == 0 and c["decoded"] is False and "caption_vocab" in c["note"]
    assert c["most_frequent"][0] == {"caption": "5 6 8 9 2", "steps": 7}  # ids less the padding


def test_a_task_run_is_broken_down_by_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["default", "heavy pole", "long pole", "weak push"]
    returns = {0: [10, 20], 1: [5, 5, 8], 2: [7]}  # task 3 never reached: the run was cut short
    specs = {"reward": ArraySpec((), "float32"), "task": ArraySpec((), "int32")}
    with create_store(tmp_path, specs) as writer:
        for task, values in returns.items():
            for value in values:
                length = 2 + task
                reward = np.zeros(length, np.float32)
                reward[-1] = value
                writer.add_episode({"reward": reward, "task": np.full(length, task, np.int32)}, task=task)
    write_manifest(tmp_path, {"status": "interrupted", "sequence": "cartpole-physics", "task_names": names,
                              "steps_per_task": 400})

    code, out, err = inspect(capsys, str(tmp_path), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["sequence"] == "cartpole-physics"
    assert r["tasks"] == [
        {"task": 0, "name": "default", "episodes": 2, "steps": 4, "return_mean": 15.0, "return_min": 10.0,
         "return_max": 20.0},
        {"task": 1, "name": "heavy pole", "episodes": 3, "steps": 9, "return_mean": 6.0, "return_min": 5.0,
         "return_max": 8.0},
        {"task": 2, "name": "long pole", "episodes": 1, "steps": 4, "return_mean": 7.0, "return_min": 7.0,
         "return_max": 7.0},
        {"task": 3, "name": "weak push", "episodes": 0, "steps": 0, "return_mean": None, "return_min": None,
         "return_max": None},
    ]
    code, out, err = inspect(capsys, str(tmp_path))
    assert code == 0, err
    assert "cartpole-physics" in out and "heavy pole" in out and "weak push" in out
    row = next(line for line in out.splitlines() if "heavy pole" in line)
    assert "3" in row and "6.00" in row


def test_tasks_without_a_manifest_are_numbered_and_one_task_has_no_breakdown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_episodes(tmp_path / "tasks", 4)  # tasks 0, 1, 2, 0 and no run.json
    code, out, err = inspect(capsys, str(tmp_path / "tasks"), "--json")
    r = json.loads(out)
    assert code == 0, err
    assert [(t["task"], t["name"], t["episodes"]) for t in r["tasks"]] == [(0, None, 2), (1, None, 1), (2, None, 1)]
    assert "captions" not in r

    with create_store(tmp_path / "one", {"reward": ArraySpec((), "float32")}) as writer:
        writer.add_episode({"reward": np.ones(3, np.float32)})
    code, out, err = inspect(capsys, str(tmp_path / "one"), "--json")
    assert code == 0 and "tasks" not in json.loads(out)
