"""Checkpoints are read as tensors only: a file that would run code when loaded is refused by every
command that reads one, in one line, and its code never runs (issue 11, item 11)."""

import datetime as dt
import json
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_clear_line, run_main

from agent.config import AgentConfig

REFUSED = "holds more than tensors and plain data"


class _RunsCode:
    """Unpickling this calls ``Path.touch(marker)``: what a hostile checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "the-checkpoint-ran-code"


def _evil(path: Path, marker: Path, contents: dict) -> Path:
    """``contents`` with a code-running object in it, written as torch.save writes any checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**contents, "payload": _RunsCode(marker)}, path)
    return path


def _evil_captioner(path: Path, marker: Path) -> Path:
    """A captioner checkpoint (the shipped one's contents) with the payload beside them."""
    shipped = Path(__file__).parents[1] / "agent" / "perception" / "checkpoints" / "captioner.pt"
    return _evil(path, marker, torch.load(shipped, weights_only=True))


def test_the_evil_file_runs_code_when_unpickled(tmp_path, marker):
    """The payload is real: the pickle inside the file, read by plain ``pickle`` (what a full,
    not weights-only, load does), touches the marker."""
    path = _evil(tmp_path / "evil.pt", marker, {"policy": {"updates": 3}})
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    assert pickle.loads(data)["policy"]["updates"] == 3
    assert marker.exists()


def test_caption_refuses_an_evil_captioner(tmp_path, marker, capsys):
    evil = _evil_captioner(tmp_path / "evil.pt", marker)
    proc = run_main(capsys, "caption", "--source", "synthetic", "--max-frames", "2", "--checkpoint", str(evil))
    one_clear_line(proc, REFUSED)
    assert not marker.exists()


def test_run_refuses_an_evil_captioner_before_it_starts(tmp_path, marker, capsys):
    evil = _evil_captioner(tmp_path / "evil.pt", marker)
    run_dir = tmp_path / "run"
    proc = run_main(capsys, "run", "--captioner", str(evil), "--steps", "16", "--run-dir", str(run_dir))
    one_clear_line(proc, REFUSED)
    assert not marker.exists()
    assert not run_dir.exists()  # refused before anything was made


def _task_run(run_dir: Path) -> None:
    """A cartpole-physics run's run.json and a one-episode store of task 0, as `thalamus run --tasks`
    leaves them (its checkpoints are for the caller to write)."""
    from agent.recorder import store_specs
    from memory import create_store, write_manifest

    cfg = replace(AgentConfig(), env_id="cartpole-physics", tasks="cartpole-physics", steps=64, num_envs=2,
                  captioner="off")
    write_manifest(run_dir, {"name": run_dir.name, "config": cfg.to_dict(), "sequence": "cartpole-physics",
                             "task_names": ["default", "heavy pole", "long pole", "weak push"],
                             "steps_per_task": 16, "started": dt.datetime.now(dt.timezone.utc).isoformat(),
                             "status": "completed"})
    specs = store_specs({"state_dim": 4, "frame_shape": (64, 64, 3), "action_shape": (), "discrete": True})
    episode = {key: np.zeros((8, *spec.shape), spec.dtype) for key, spec in specs.items()}
    episode["reward"][:] = 1.0
    episode["terminated"][-1] = True
    with create_store(run_dir, specs) as writer:
        writer.add_episode(episode, task=0)


def test_replay_refuses_an_evil_task_checkpoint(tmp_path, marker, capsys):
    run_dir = tmp_path / "run"
    _task_run(run_dir)
    _evil(run_dir / "checkpoints" / "task_0.pt", marker, {"task": 0, "task_name": "default"})
    proc = run_main(capsys, "replay", str(run_dir), "--png", str(tmp_path / "r.png"))
    one_clear_line(proc, REFUSED)
    assert "task_0.pt" in proc.stderr
    assert not marker.exists() and not (tmp_path / "r.png").exists()


def test_resume_refuses_an_evil_latest_checkpoint(ray_address, tmp_path, marker, capsys):
    """The resume is refused before anything starts: one line, the code not run, run.json untouched."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg = replace(AgentConfig(), steps=64, num_envs=2, captioner="off")
    (run_dir / "run.json").write_text(json.dumps({"name": "run", "config": cfg.to_dict(), "status": "interrupted",
                                                  "started": dt.datetime.now(dt.timezone.utc).isoformat()}))
    _evil(run_dir / "checkpoints" / "latest.pt", marker, {"steps": 32, "task": 0})
    before = (run_dir / "run.json").read_text()
    proc = run_main(capsys, "run", "--resume", str(run_dir), "--address", ray_address, "--json")
    one_clear_line(proc, REFUSED)
    assert "latest.pt" in proc.stderr
    assert not marker.exists()
    assert (run_dir / "run.json").read_text() == before
