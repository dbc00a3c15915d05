"""Task sequences (envs/tasks.py), `thalamus run --tasks` and `thalamus replay`, run for real."""

import hashlib
import json
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import one_clear_line, run_here, run_main, tree_digest
from gymnasium.utils.env_checker import check_env

from envs.tasks import (
    CARTPOLE_VARIANTS,
    DIGITS_EPISODE_LENGTH,
    TASK_SEQUENCES,
    task_sequence,
)
from memory import open_store

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _rollout(env, actions, seed):
    obs, info = env.reset(seed=seed)
    out = [(obs, info)]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, info))
        if terminated or truncated:
            break
    return out


# -- envs/tasks.py ----------------------------------------------------------------------------------
def test_digits_task_env_is_seeded_rewards_the_target_and_draws_the_digit():
    seq = task_sequence("split-digits")
    env = seq.make(2, frame_size=48, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_env's note that the env is wrapped (SeedFirstReset)
        check_env(env.unwrapped)
    a, b = seq.make(2, frame_size=48, seed=5), seq.make(2, frame_size=48, seed=5)
    oa, ia = a.reset()
    ob, ib = b.reset()
    assert np.array_equal(oa["state"], ob["state"]) and ia == ib
    assert oa["frame"].shape == (48, 48, 3) and oa["frame"].dtype == np.uint8 and oa["frame"].std() > 0
    assert oa["state"].shape == (64,) and oa["state"].dtype == np.float32
    rng = np.random.default_rng(0)
    rewards = []
    for t in range(DIGITS_EPISODE_LENGTH):
        action = ia["target"] if t == 0 else int(rng.integers(10))  # the first digit's label is known
        oa, reward, terminated, truncated, info = a.step(action)
        ob, *_ = b.step(action)
        assert np.array_equal(oa["state"], ob["state"])
        assert info["target"] in (4, 5)  # task 2 of split-digits is digits 4 and 5
        assert reward == (1.0 if action == info["target"] else 0.0)
        assert terminated == (t == DIGITS_EPISODE_LENGTH - 1) and not truncated
        rewards.append(reward)
    assert rewards[0] == 1.0 and 0.0 in rewards
    first = [o["state"] for o, *_ in _rollout(seq.make(2, seed=6), [0] * 16, None)]
    other = [o["state"] for o, *_ in _rollout(seq.make(2, seed=5), [0] * 16, None)]
    assert not all(np.array_equal(x, y) for x, y in zip(first, other))  # the seed picks the digits


def test_every_sequence_keeps_its_spaces_across_tasks_and_unknown_names_are_refused():
    for name in TASK_SEQUENCES:
        seq = task_sequence(name)
        # a Meta-World env takes 1-2 s to make: its sequences are checked on their first and last task
        tasks = (0, seq.n_tasks - 1) if seq.reports_success else range(seq.n_tasks)
        envs = [seq.make(i, frame_size=32) for i in tasks]
        assert len(seq.names) == seq.n_tasks == {"cartpole-physics": 4, "permuted-digits": 10, "cw10": 10}.get(name, 5)
        assert all(e.observation_space == envs[0].observation_space for e in envs)
        assert all(e.action_space == envs[0].action_space for e in envs)
        assert seq.has_targets == (name not in ("cartpole-physics", "cw10", "mw-easy"))
        assert seq.reports_success == (name in ("cw10", "mw-easy"))
    with pytest.raises(ValueError, match="choose one of: cartpole-physics, split-digits"):
        task_sequence("split-digit")


def test_cartpole_physics_variants_differ_under_the_same_seed_and_actions():
    seq = task_sequence("cartpole-physics")
    actions = [1, 1, 0, 1, 1, 1, 0, 0, 1, 1] * 3
    runs = [_rollout(seq.make(i, frame_size=64, seed=0), actions, None) for i in range(seq.n_tasks)]
    starts = [r[0][0]["state"] for r in runs]
    assert all(np.array_equal(s, starts[0]) for s in starts)  # same start state ...
    states = [np.stack([step[0]["state"] for step in r[1:9]]) for r in runs]
    for i in range(seq.n_tasks):
        for j in range(i):
            assert not np.allclose(states[i], states[j]), (CARTPOLE_VARIANTS[i], CARTPOLE_VARIANTS[j])
    default, long_pole = runs[0][0][0]["frame"], runs[2][0][0]["frame"]
    assert (default != long_pole).any()  # ... but the long pole is drawn longer


# -- thalamus run --tasks / thalamus replay ----------------------------------------------------------
@pytest.fixture(scope="module")
def cartpole_tasks(ray_address, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tasks") / "cartpole-physics"
    proc = run_here("run", "--tasks", "cartpole-physics", "--steps", "800", "--num-envs", "4",
                   "--captioner", "off", "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    return run_dir, json.loads(proc.stdout)


def test_run_over_tasks_checkpoints_every_boundary_and_stores_task_ids_in_order(cartpole_tasks):
    run_dir, summary = cartpole_tasks
    names = [v.name for v in CARTPOLE_VARIANTS]
    assert summary["steps"] == 800 and summary["tasks"] == "cartpole-physics"
    assert summary["steps_per_task"] == 200 and summary["task_names"] == names
    for i in range(4):
        assert (run_dir / "checkpoints" / f"task_{i}.pt").stat().st_size > 0
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["sequence"] == "cartpole-physics" and manifest["task_names"] == names
    assert manifest["status"] == "completed"
    store = open_store(run_dir)
    task = np.concatenate([store.get_episode(i)["task"] for i in range(store.n_episodes)])
    assert len(task) == 800 and np.array_equal(np.unique(task), [0, 1, 2, 3])
    assert (np.diff(task) >= 0).all() and np.array_equal(np.bincount(task), [200] * 4)
    assert np.array_equal(store.episode_tasks, np.sort(store.episode_tasks))
    assert "target" not in store.keys


def _outside_replay(run_dir: Path) -> str:
    """A digest of every file of the run but those `thalamus replay` writes (replay/, forgetting.png)."""
    h = hashlib.sha256()
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir)
        if rel.parts[0] not in ("replay", "forgetting.png"):
            h.update(str(rel).encode() + path.read_bytes())
    return h.hexdigest()


def test_replay_plays_each_checkpoint_to_a_return_matrix_and_a_png_and_changes_nothing_else(cartpole_tasks, tmp_path):
    """cartpole-physics reports no success: R is the mean return of fresh episodes (each at most 30
    steps here), with a t interval per cell (2 episodes); only replay/ is added to the run."""
    run_dir, _ = cartpole_tasks
    before = _outside_replay(run_dir)
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    proc = run_here("replay", str(run_dir), "--episodes", "2", "--max-steps", "30", "--json", str(out_json),
                   "--png", str(out_png))
    assert proc.returncode == 0, proc.stderr
    assert "backward transfer" in proc.stdout and "heavy pole" in proc.stdout and "Continual World" in proc.stdout
    report = json.loads(out_json.read_text())
    assert report["run"] == str(run_dir) and report["sequence"] == "cartpole-physics"
    assert report["metric"] == "mean return" and len(report["tasks"]) == 4
    r = np.asarray(report["matrix"])
    assert r.shape == (4, 4) and ((r >= 1) & (r <= 30)).all()  # CartPole pays 1 a step
    for row, intervals in zip(r, report["intervals"]):
        for value, (low, high) in zip(row, intervals):
            assert low <= value <= high
    for key in ("average", "backward_transfer", "forgetting", "forgetting_auc"):
        assert np.isfinite(report[key])
    cw = report["continual_world"]
    assert cw["performance"] == report["average"] and cw["forward_transfer"] is None
    assert cw["forgetting"] == pytest.approx(np.mean([r[j, j] - r[3, j] for j in range(3)]))
    assert "report no success" in cw["note"]
    assert report["evaluation"] == {"episodes": 2, "seed": 0, "max_steps": 30, "played": 32,
                                    "stored": str(run_dir / "replay" / "eval-episodes2-seed0-maxsteps30.json")}
    assert out_png.read_bytes()[:8] == PNG_MAGIC and out_png.stat().st_size > 5000
    assert _outside_replay(run_dir) == before


def test_replay_rows_are_what_eval_gives_each_checkpoint_and_a_changed_checkpoint_is_played_again(
        cartpole_tasks, tmp_path):
    """A row of R is `thalamus eval`'s result for that checkpoint on fresh envs (replay plays every
    checkpoint on one env per task); a checkpoint whose bytes change is played again, alone."""
    from agent.checkpoints import load_tensors, save_tensors
    from agent.evaluation import EvalConfig, eval_tasks, evaluate, load_run
    from agent.learner.scoring import score_run

    run_dir = tmp_path / "run"
    shutil.copytree(cartpole_tasks[0], run_dir)
    shutil.rmtree(run_dir / "replay", ignore_errors=True)
    cfg = EvalConfig(episodes=2, max_steps=40, seed=3)
    first = score_run(run_dir, cfg)
    assert first.played == 32
    loaded = load_run(run_dir, "task_2")
    alone = evaluate(loaded.policy, eval_tasks(sequence="cartpole-physics", frame_size=loaded.frame_size), cfg)
    assert first.report.matrix[2] == [r.mean_return for r in alone.per_task.values()]
    task_0 = run_dir / "checkpoints" / "task_0.pt"
    shutil.copyfile(run_dir / "checkpoints" / "task_1.pt", task_0)  # results are keyed by the file's bytes:
    second = score_run(run_dir, cfg)
    assert second.played == 0 and second.report.matrix[0] == first.report.matrix[1]  # task_1's, already played
    state = load_tensors(task_0)
    state["policy"]["net"]["actor.0.bias"] += 1.0
    save_tensors(task_0, state)
    third = score_run(run_dir, cfg)
    assert third.played == 8  # task_0's row alone: 4 tasks × 2 episodes
    assert third.report.matrix[1:] == first.report.matrix[1:]
    stored = json.loads(Path(third.stored).read_text())["checkpoints"]  # the old task_0's entry is gone
    assert sorted(entry["file"] for entry in stored.values()) == [f"task_{i}.pt" for i in range(4)]


def test_digits_run_stores_targets_and_replays_to_a_return_matrix(ray_address, tmp_path):
    run_dir = tmp_path / "digits"
    proc = run_here("run", "--tasks", "split-digits", "--steps-per-task", "160", "--num-envs", "4",
                   "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr
    store = open_store(run_dir)
    rows = {k: np.concatenate([store.get_episode(i)[k] for i in range(store.n_episodes)])
            for k in ("action", "reward", "target", "task")}
    assert rows["target"].dtype == np.int64 and len(rows["target"]) == 800
    assert np.array_equal(rows["reward"] == 1.0, rows["action"] == rows["target"])
    assert np.array_equal(rows["target"] // 2, rows["task"])  # task t shows digits 2t and 2t+1
    proc = run_here("replay", str(run_dir), "--episodes", "1", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    r = np.asarray(report["matrix"])
    assert report["metric"] == "mean return" and r.shape == (5, 5)  # digits answered right, of 16
    assert ((r >= 0) & (r <= DIGITS_EPISODE_LENGTH)).all() and r.sum() > 0
    assert (run_dir / "forgetting.png").read_bytes()[:8] == PNG_MAGIC  # the default PNG path


def test_runs_without_task_checkpoints_or_a_sequence_are_refused_untouched(cartpole_tasks, tmp_path, capsys):
    run_dir, _ = cartpole_tasks
    bare, plain = tmp_path / "bare", tmp_path / "plain"
    shutil.copytree(run_dir, bare)
    for path in (bare / "checkpoints").glob("task_*.pt"):
        path.unlink()  # as a run stopped before its first boundary leaves it
    shutil.copytree(run_dir, plain)
    manifest = json.loads((plain / "run.json").read_text())
    for key in ("sequence", "task_names", "steps_per_task"):
        del manifest[key]  # what `thalamus run --env` writes (a real --env run costs ~20 s here)
    manifest["config"].update(env_id="CartPole-v1", tasks=None)
    (plain / "run.json").write_text(json.dumps(manifest))
    for path, expect in ((bare, "has no task checkpoints"), (plain, "is a run of CartPole-v1 (--env)")):
        before = tree_digest(path)
        one_clear_line(run_main(capsys, "replay", str(path)), expect)
        assert tree_digest(path) == before


@pytest.mark.parametrize("flags, expect", [
    (["--episodes", "0"], "--episodes must be at least 1, got 0"),
    (["--max-steps", "0"], "--max-steps must be at least 1, got 0"),
    (["--seed", "-1"], "--seed must be 0.."),
    (["--reference", "refs"], "cartpole-physics's tasks report no success"),
])
def test_bad_replay_flags_get_one_clear_line_and_play_nothing(cartpole_tasks, flags, expect, capsys):
    """Checked before any episode is played or anything written (in this process: no start-up to pay)."""
    from launch.cli import main

    run_dir, _ = cartpole_tasks
    before = tree_digest(run_dir)
    assert main(["replay", str(run_dir), *flags]) == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], lines
    assert tree_digest(run_dir) == before


def test_replay_of_no_run_getsone_clear_line(capsys):
    one_clear_line(run_main(capsys, "replay", "/nonexistent/run"), "no run at '/nonexistent/run'")


@pytest.mark.parametrize("argv, expect", [
    (["replay", str(Path(__file__).parent)], "it has no run.json"),
    (["run", "--tasks", "split-digit"], "choose one of: cartpole-physics, split-digits"),
    (["run", "--tasks", "split-digits", "--env", "CartPole-v1"], "give --env or --tasks, not both"),
    (["run", "--tasks", "split-digits", "--episodes", "3"], "--episodes cannot be used with --tasks"),
    (["run", "--steps-per-task", "100"], "--steps-per-task needs --tasks"),
    (["run", "--tasks", "cartpole-physics", "--steps", "3"], "less than one step for each"),
    (["run", "--tasks", "split-digits", "--steps-per-task", "0"], "--steps-per-task must be between 1"),
])
def test_bad_task_flags_getone_clear_line(argv, expect, capsys):
    proc = run_main(capsys, *argv)
    one_clear_line(proc, expect)
    assert proc.returncode == 2
