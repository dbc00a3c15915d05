"""A `thalamus run` of Meta-World tasks, and `thalamus replay` of it: its task checkpoints played on
fresh episodes of every task to a success-rate matrix, the evaluation stored in the run and read back, Continual World's metrics
and the --reference layout (agent/learner/scoring.py, transfer.py, forgetting.py, launch/replay_cmd.py)."""

import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_here, tree_digest

from agent.learner.forgetting import normalized_transfer, success_auc, task_forgetting
from envs.tasks import MW_EASY, task_sequence
from launch.cli import main
from memory import open_store, read_manifest

QUICK = ["--episodes", "1", "--max-steps", "5"]  # a 5×5 matrix of 25 five-step episodes


@pytest.fixture(scope="module")
def mw_run(ray_address, tmp_path_factory) -> Path:
    """A Meta-World task-sequence run (mw-easy) with a tiny budget: 32 steps a task on 1 env at 32 px,
    so hardly an episode finishes (500 steps, or a success); every test here reads it (replay only adds its
    replay/ folder)."""
    run_dir = tmp_path_factory.mktemp("mw") / "mw-easy"
    proc = run_here("run", "--tasks", "mw-easy", "--steps-per-task", "32", "--num-envs", "1", "--captioner", "off",
                   "--frame-size", "32", "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_a_meta_world_run_stores_success_and_reports_its_rates(mw_run):
    summary = read_manifest(mw_run)["summary"]
    assert summary["steps"] == 5 * 32 and "success_rate_last20" in summary
    assert len(summary["task_success"]) == 5  # per task of mw-easy (None: no episode finished in 32 steps)
    store = open_store(mw_run)
    ep = store.get_episode(0)
    assert ep["success"].dtype == bool and len(ep["success"]) == len(ep["reward"])
    assert ep["frame"].shape[1:] == (32, 32, 3) and ep["action"].shape[1:] == (4,)
    assert np.array_equal(np.unique(store.episode_tasks), np.arange(5))


def _replay(capsys, run_dir: Path, out: Path, *flags: str) -> tuple[dict, float, str]:
    """`thalamus replay` in this process (no start-up to pay): the JSON report, seconds taken, stdout."""
    start = time.perf_counter()
    assert main(["replay", str(run_dir), "--json", str(out), "--png", str(out.with_suffix(".png")), *flags]) == 0
    seconds = time.perf_counter() - start
    return json.loads(out.read_text()), seconds, capsys.readouterr().out


def _outside_replay(run_dir: Path) -> str:
    """A digest of every file of the run but those replay writes under replay/."""
    h = hashlib.sha256()
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file() and p.relative_to(run_dir).parts[0] != "replay"):
        h.update(str(path.relative_to(run_dir)).encode() + path.read_bytes())
    return h.hexdigest()


def test_mw_easy_replays_to_a_success_matrix_stored_in_the_run_and_read_back(mw_run, tmp_path, capsys):
    """The first replay plays 25 episodes and stores them under replay/, keyed by each checkpoint's
    sha256; the second plays none, is much faster and gives the same matrix; what it read is that
    file (an edited cell shows up)."""
    before = _outside_replay(mw_run)
    report, first_s, out = _replay(capsys, mw_run, tmp_path / "a.json", *QUICK)
    assert report["metric"] == "success rate" and report["tasks"] == list(MW_EASY)
    r = np.asarray(report["matrix"])
    assert r.shape == (5, 5) and set(np.unique(r)) <= {0.0, 1.0}  # one episode a cell
    for row, intervals in zip(r, report["intervals"]):
        for value, (low, high) in zip(row, intervals):
            assert 0 <= low <= value <= high <= 1 and high - low > 0.5  # Wilson's, of one episode
    cw = report["continual_world"]
    assert cw["performance"] == report["average"] == r[-1].mean()
    assert cw["forgetting_per_task"] == [r[j, j] - r[4, j] for j in range(5)]
    assert cw["forgetting"] == pytest.approx(np.mean(cw["forgetting_per_task"][:4]))
    assert cw["forward_transfer"] is None and "--reference" in cw["note"]
    store = open_store(mw_run)  # an area only for a task with a finished training episode (rare in 32 steps:
    finished = set(store.episode_tasks[store.episode_complete].tolist())  # one that succeeds at once)
    assert [a is None for a in cw["auc"]] == [j not in finished for j in range(5)]
    assert all(a is None or 0 <= a <= 1 for a in cw["auc"])
    assert "mw-easy: success rate R[i][j] on 1 fresh episode of each task (seed 0, at most 5 steps)" in out
    assert "Continual World: performance" in out and "forward transfer n/a" in out and "played 25 episodes" in out
    stored = mw_run / "replay" / "eval-episodes1-seed0-maxsteps5.json"
    assert report["evaluation"] == {"episodes": 1, "seed": 0, "max_steps": 5, "stored": str(stored), "played": 25}
    data = json.loads(stored.read_text())
    digests = {hashlib.sha256((mw_run / "checkpoints" / f"task_{i}.pt").read_bytes()).hexdigest(): f"task_{i}.pt"
               for i in range(5)}
    assert {d: e["file"] for d, e in data["checkpoints"].items()} == digests
    assert _outside_replay(mw_run) == before  # the store and the checkpoints are untouched

    stamp = stored.stat().st_mtime_ns
    again, second_s, out = _replay(capsys, mw_run, tmp_path / "b.json", *QUICK)
    assert again["matrix"] == report["matrix"] and again["intervals"] == report["intervals"]
    assert again["evaluation"]["played"] == 0 and "read from the stored evaluation" in out
    assert second_s < first_s / 4, (first_s, second_s)
    assert stored.stat().st_mtime_ns == stamp  # not rewritten

    last = next(d for d, name in digests.items() if name == "task_4.pt")
    flip = not data["checkpoints"][last]["tasks"]["reach-v3"]["successes"][0]
    data["checkpoints"][last]["tasks"]["reach-v3"]["successes"] = [flip]
    stored.write_text(json.dumps(data))
    edited, _, _ = _replay(capsys, mw_run, tmp_path / "c.json", *QUICK)
    assert edited["matrix"][4][0] == float(flip) and edited["evaluation"]["played"] == 0


def _reference(path: Path, env_id: str, successes: list[bool], length: int = 4) -> Path:
    """A single-task run as `thalamus run --env ENV` leaves it: run.json and a store of finished
    episodes of ``length`` steps whose success column says ``successes``."""
    from agent.config import AgentConfig
    from memory import write_manifest

    cfg = AgentConfig(env_id=env_id, captioner="off")
    write_manifest(path, {"name": path.name, "config": cfg.to_dict(), "status": "completed",
                          "started": dt.datetime.now(dt.timezone.utc).isoformat()})
    _store(path, [(0, s) for s in successes], length)
    return path


def _store(path: Path, episodes: list[tuple[int, bool]], length: int) -> None:
    """A store of finished episodes, (task, success) each, with Meta-World's spaces."""
    from agent.recorder import store_specs
    from memory import create_store

    specs = store_specs({"state_dim": 39, "frame_shape": (8, 8, 3), "action_shape": (4,), "discrete": False,
                         "success": True})
    with create_store(path, specs) as writer:
        for task, success in episodes:
            episode = {key: np.zeros((length, *spec.shape), spec.dtype) for key, spec in specs.items()}
            episode["success"][-1] = success
            episode["terminated"][-1] = success
            episode["truncated"][-1] = not success
            writer.add_episode(episode, task=task)


def test_forward_transfer_against_reference_runs(tmp_path):
    """Continual World's (AUC − AUC_ref)/(1 − AUC_ref) per task, from the stored training episodes:
    the run learned task 0 at once (AUC 1) where its reference took half the time (AUC 0.5)."""
    from agent.learner.transfer import forward_transfer, reference_runs

    seq = task_sequence("mw-easy")
    run = tmp_path / "run"
    run.mkdir()
    _store(run, [(0, True)] * 10 + [(1, False)] * 5 + [(1, True)] * 5, length=4)
    refs = tmp_path / "refs"
    _reference(refs / "reach-v3", "Meta-World/reach-v3", [False] * 5 + [True] * 5)
    _reference(refs / "button-press-topdown-v3", "Meta-World/button-press-topdown-v3", [False] * 10)
    got = forward_transfer(run, seq, 3, reference_runs(refs, seq, 3))
    assert got.auc == [1.0, 0.5, None] and got.reference_auc == [0.5, 0.0, None]
    assert got.per_task == [1.0, 0.5, None] and got.value == 0.75
    assert got.reference_steps == [40, 40, None]
    assert "drawer-close-v3 (no training episode of it finished)" in got.note
    assert "drawer-close-v3 (no reference run drawer-close-v3/)" in got.note


@pytest.mark.parametrize("layout, expect", [
    ({}, "no such directory"),
    ({"reach-v3": "Meta-World/push-v3"}, "is a run of --env Meta-World/push-v3, not of Meta-World/reach-v3 alone"),
    ({"reach-v3": None}, "is not a thalamus run (it has no run.json)"),
    ({"push-v3": "Meta-World/push-v3"}, "holds a run of none of the tasks"),
])
def test_a_bad_reference_is_one_clear_line_before_anything_is_played(mw_run, tmp_path, capsys, layout, expect):
    refs = tmp_path / "refs"
    for name, env_id in layout.items():
        (refs / name).mkdir(parents=True)
        if env_id is not None:
            _reference(refs / name, env_id, [True])
    before = tree_digest(mw_run)
    assert main(["replay", str(mw_run), "--reference", str(refs), "--episodes", "3"]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], lines
    assert tree_digest(mw_run) == before


def test_a_replay_with_a_reference_reports_what_it_lacks(mw_run, tmp_path, capsys):
    """The run's tasks finished no training episode, so no task has forward transfer, and the note
    says why for each."""
    refs = tmp_path / "refs"
    _reference(refs / "reach-v3", "Meta-World/reach-v3", [True, False])
    report, _, out = _replay(capsys, mw_run, tmp_path / "r.json", *QUICK, "--reference", str(refs))
    cw = report["continual_world"]
    assert "forward transfer: none for reach-v3" in out
    assert cw["forward_transfer"] is None and cw["reference_auc"] == [0.5, None, None, None, None]
    assert "reach-v3 (no training episode of it finished)" in cw["note"]
    assert "handle-press-v3 (no reference run handle-press-v3/)" in cw["note"]


def test_continual_world_numbers():
    assert task_forgetting([[0.9, 0.2, 0.0], [0.5, 0.8, 0.1], [0.25, 0.5, 0.7]]) == pytest.approx([0.65, 0.3, 0.0])
    # equal spans weigh each stretch of training alike: 9 short successes late count as one span
    ends = np.array([20, 40, *range(92, 101)])
    assert success_auc(np.array([False, False, *[True] * 9]), ends, 100, spans=2) == 0.5
    assert success_auc(np.array([], bool), np.array([], np.int64), 100) is None
    assert normalized_transfer(0.5, 0.5) == 0.0 and normalized_transfer(1.0, 0.2) == 1.0
    assert normalized_transfer(0.3, 1.0) is None
