"""`thalamus eval`: a run's policy, a checkpoint file or Meta-World's expert on fresh, seeded episodes,
with 95% intervals; bad input in one line (agent/evaluation.py, launch/eval_cmd.py)."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from conftest import one_clear_line, run_here

from agent.config import AgentConfig
from agent.checkpoints import CheckpointError
from agent.evaluation import (POLICY_LOADERS, EvalConfig, EvaluationError, PPOPolicy, eval_tasks, evaluate,
                              load_run, mean_interval, wilson_interval)
from launch.cli import main
from envs.seeds import eval_seed


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Policies act on one observation at a time, which torch's threads only slow down (as the CLI runs them)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A CartPole-v1 run trained briefly in-process (1,024 steps, no captioner), with the run.json
    `thalamus run` writes beside its checkpoints."""
    from agent.runtime import Agent
    from memory import write_manifest

    path = tmp_path_factory.mktemp("cartpole")
    cfg = replace(AgentConfig(), env_id="CartPole-v1", steps=1024, num_envs=8, frame_size=16, captioner="off")
    Agent(cfg, path, use_ray=False).run()
    write_manifest(path, {"name": path.name, "config": cfg.to_dict()})
    return path


def _ci_holds(result: dict, mean_key: str, ci_key: str) -> None:
    low, high = result[ci_key]
    assert low <= result[mean_key] <= high, result


class _Tape(gymnasium.Wrapper):
    """Keeps each episode's observations and the actions taken on them."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.episodes: list[dict[str, list]] = []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.episodes.append({"obs": [obs], "actions": []})
        return obs, info

    def step(self, action):
        self.episodes[-1]["actions"].append(action)
        out = self.env.step(action)
        self.episodes[-1]["obs"].append(out[0])
        return out


def test_a_runs_policy_evaluates_through_the_cli(run_dir):
    """RUN_DIR's final.pt on its env: one JSON object on stdout, the episodes the API plays with the
    run's frame size and the evaluation seeds, and an interval around the mean."""
    proc = run_here("eval", str(run_dir), "--episodes", "5", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)  # the whole of stdout is the one object
    assert out["episodes"] == len(out["returns"]) == 5
    assert out["returns"] == out["lengths"]  # CartPole pays 1 a step: returns are summed over whole episodes
    assert out["mean_return"] == pytest.approx(np.mean(out["returns"]))
    _ci_holds(out, "mean_return", "return_ci95")
    assert out["success_rate"] is None and out["success_ci95"] is None  # CartPole reports no success
    loaded = load_run(run_dir)
    assert loaded.frame_size == 16
    here = evaluate(loaded.policy, eval_tasks(env_id="CartPole-v1", frame_size=16), EvalConfig(episodes=5))
    assert here.overall.returns == out["returns"]


def test_without_json_the_report_is_a_table(run_dir, capsys):
    assert main(["eval", str(run_dir), "--episodes", "2", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    result = evaluate(load_run(run_dir).policy, eval_tasks(env_id="CartPole-v1", frame_size=16),
                      EvalConfig(episodes=2, seed=3)).overall
    low, high = result.return_ci95
    assert "on CartPole-v1" in out and f"{result.mean_return:.1f}" in out and f"[{low:.1f}, {high:.1f}]" in out
    assert "success" not in out  # CartPole reports none: no success columns


def test_episodes_are_deterministic_per_seed_and_leave_the_policy_as_it_was(run_dir):
    loaded = load_run(run_dir)
    norm = loaded.policy.perception.norm
    before = (norm.mean.copy(), norm.var.copy(), norm.count)
    [task] = eval_tasks(env_id="CartPole-v1", frame_size=loaded.frame_size)
    tapes = []
    taped = replace(task, make=lambda seed: tapes.append(_Tape(task.make(seed))) or tapes[-1])
    first = evaluate(loaded.policy, [taped], EvalConfig(episodes=5, seed=0)).overall
    again = evaluate(loaded.policy, [task], EvalConfig(episodes=5, seed=0)).overall
    other = evaluate(loaded.policy, [task], EvalConfig(episodes=5, seed=1)).overall
    assert again.returns == first.returns  # greedy actions from the same starts: a sampled policy would differ
    assert other.returns != first.returns
    # episode i starts where CartPole-v1 starts from seed eval_seed(0, i)
    starts = [gymnasium.make("CartPole-v1").reset(seed=eval_seed(0, i))[0] for i in range(5)]
    assert np.array_equal([ep["obs"][0]["state"] for ep in tapes[0].episodes], np.float32(starts))
    # the running state normalization is read, never updated, while evaluating
    assert np.array_equal(norm.mean, before[0]) and np.array_equal(norm.var, before[1]) and norm.count == before[2]


def test_a_checkpoint_file_plays_every_task_of_a_sequence(run_dir):
    """ppo:PATH on --tasks: a result per task and all of them pooled; the sequence's `default` task is
    CartPole-v1 itself, so its episodes are the run's own env's from the same seeds."""
    loaded = POLICY_LOADERS["ppo"](run_dir / "checkpoints" / "final.pt")
    tasks = eval_tasks(sequence="cartpole-physics", frame_size=loaded.frame_size)
    out = evaluate(loaded.policy, tasks, EvalConfig(episodes=3)).to_dict()
    assert list(out["per_task"]) == ["default", "heavy pole", "long pole", "weak push"]
    assert all(task["episodes"] == 3 for task in out["per_task"].values())
    pooled = [r for task in out["per_task"].values() for r in task["returns"]]
    assert out["episodes"] == 12 and out["returns"] == pooled
    assert out["mean_return"] == pytest.approx(np.mean(pooled))
    for result in (out, *out["per_task"].values()):
        _ci_holds(result, "mean_return", "return_ci95")
    on_env = evaluate(loaded.policy, eval_tasks(env_id="CartPole-v1", frame_size=16), EvalConfig(episodes=3))
    assert out["per_task"]["default"]["returns"] == on_env.overall.returns
    # the physics did change: a briefly trained policy's 3 short episodes can match on one changed task
    # by chance (seen once under load), not on all three
    assert any(out["per_task"][t]["returns"] != on_env.overall.returns for t in ("heavy pole", "long pole", "weak push"))


def test_a_task_incremental_task_is_played_among_its_own_classes():
    """split-digits-task knows the task at test time: the policy's argmax is taken among the task's 2
    classes (digits 2 and 3 for task 1), where on split-digits it is taken among all 10."""
    from agent.perception.encoder import PerceptionModel
    from agent.policy.ppo import ActorCritic

    torch.manual_seed(0)
    perception = PerceptionModel(64)
    net = ActorCritic(64 + perception.cfg.frame_features, 10, True)
    with torch.no_grad():
        net.actor[-1].bias[7] += 100.0  # a policy that answers 7 to everything
        net.actor[-1].bias[3] += 50.0  # and 3 when 7 is not allowed
    policy = PPOPolicy(perception, net, None)
    for sequence, want in (("split-digits", 7), ("split-digits-task", 3)):
        task = eval_tasks(sequence=sequence, frame_size=16)[1]
        assert task.classes == (None if sequence == "split-digits" else (2, 3))
        env = task.make(0)
        policy.begin_task(task, env)
        obs, _ = env.reset(seed=0)
        actions = []
        for _ in range(3):
            actions.append(policy.act(obs))
            obs, *_ = env.step(actions[-1])
        assert actions == [want] * 3


def test_a_policy_on_an_env_of_other_spaces_is_refused(run_dir):
    with pytest.raises(EvaluationError, match="gives a state of 6 numbers; the policy takes 4"):
        evaluate(load_run(run_dir).policy, eval_tasks(env_id="Acrobot-v1"), EvalConfig(episodes=1))


def test_a_captioned_policy_acts_greedily_on_a_fresh_stream_each_episode():
    """With a captioner, every action is the argmax of the actor on [normalized state, the captioner's
    feature of the frame] where the features are those of the episode's frames played from a fresh
    stream (`caption_features`): the stream restarts at each episode, not running on from the last."""
    from agent.evaluation import caption_features
    from agent.perception.encoder import PerceptionModel
    from agent.perception.live import env_checkpoint
    from agent.perception.train import load_checkpoint
    from agent.policy.ppo import ActorCritic

    captioner = load_checkpoint(env_checkpoint("CartPole-v1"))
    torch.manual_seed(0)
    policy = PPOPolicy(PerceptionModel(4, cnn=False), ActorCritic(4 + captioner.cfg.d_model, 2, True), captioner)
    [task] = eval_tasks(env_id="CartPole-v1", frame_size=32)
    tapes = []
    taped = replace(task, make=lambda seed: tapes.append(_Tape(task.make(seed))) or tapes[-1])
    evaluate(policy, [taped], EvalConfig(episodes=2))
    assert len(tapes[0].episodes) == 2
    for episode in tapes[0].episodes:
        seen = episode["obs"][:-1]  # the observations acted on
        features = caption_features(captioner, np.stack([o["frame"] for o in seen]))
        state = policy.perception.encode_state(np.stack([o["state"] for o in seen]), update_stats=False)
        with torch.no_grad():
            logits = policy.net.actor(torch.from_numpy(np.concatenate([state, features], 1)))
        assert episode["actions"] == logits.argmax(-1).tolist()


@pytest.mark.parametrize("checkpoint", ["captioner-cartpole.pt", "captioner-softmax.pt"])
def test_caption_features_are_a_fresh_live_stream_of_the_episode(checkpoint):
    """`caption_features` of an episode are those a fresh LiveCaptioner gives its frames one
    at a time (either temporal mixer; frames of another size resized), whatever episode came before."""
    from agent.evaluation import FEATURE_CHUNK, caption_features
    from agent.perception.live import CHECKPOINTS, LiveCaptioner
    from agent.perception.train import load_checkpoint

    path = CHECKPOINTS / checkpoint
    rng = np.random.default_rng(0)
    before = rng.integers(0, 256, (7, 48, 48, 3), dtype=np.uint8)
    episode = np.repeat(rng.integers(0, 256, (4, 48, 48, 3), dtype=np.uint8), 5, axis=0)  # moves in steps
    live = LiveCaptioner(path)
    want = np.concatenate([live.features(frame[None]).numpy() for frame in episode])
    model = load_checkpoint(path)
    caption_features(model, before)
    got = caption_features(model, episode)
    assert got.shape == (20, model.cfg.d_model) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=1e-4)  # nothing of ``before`` carried over ...
    assert not np.allclose(got[5:10], caption_features(model, episode[5:10]), atol=1e-3)  # ... though a past counts
    long = rng.integers(0, 256, (FEATURE_CHUNK + 9, 64, 64, 3), dtype=np.uint8)  # in two chunks, one stream
    with torch.no_grad():
        whole, _ = model(torch.as_tensor(long)[None], model.initial_state(1))
    np.testing.assert_allclose(caption_features(model, long), whole[0].numpy(), atol=1e-4)


def test_the_expert_succeeds_on_reach():
    proc = run_here("eval", "--expert", "--env", "Meta-World/reach-v3", "--episodes", "3", "--frame-size", "16",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["episodes"] == 3 and out["success_rate"] >= 2 / 3
    assert out["success_rate"] == sum(out["successes"]) / 3
    _ci_holds(out, "success_rate", "success_ci95")
    _ci_holds(out, "mean_return", "return_ci95")
    # Meta-World ends an episode at its first success, well before its 500-step limit
    assert all(n < 500 for n, ok in zip(out["lengths"], out["successes"]) if ok)


def test_wilson_interval_matches_known_values():
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=1e-4)  # not empty at 0 successes
    assert wilson_interval(20, 20) == pytest.approx((0.8389, 1.0), abs=1e-4)
    assert wilson_interval(1, 2) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_mean_interval_is_students_t():
    assert mean_interval([1, 2, 3, 4, 5]) == pytest.approx((1.0368, 4.9632), abs=1e-4)  # t(0.975, 4) = 2.7764
    low, high = mean_interval([10.0, 12.0])
    assert (low + high) / 2 == pytest.approx(11.0) and (high - low) / 2 == pytest.approx(12.7062, abs=1e-4)
    assert mean_interval([7.0]) is None  # one episode has no spread to go by
    assert mean_interval([3.0] * 4) == (3.0, 3.0)


class _RunsCode:
    """Unpickling this touches ``marker``: what a hostile checkpoint could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return Path.touch, (self.marker,)


@pytest.fixture(scope="module")
def bad_files(run_dir, tmp_path_factory) -> dict[str, Path]:
    """Runs whose final.pt is text, a torch file without a policy, a file that would run code when
    loaded; and a real checkpoint outside any run."""
    root = tmp_path_factory.mktemp("bad")
    files = {}
    for name, write in (("text", lambda p: p.write_text("not a checkpoint")),
                        ("no-policy", lambda p: torch.save({"weights": torch.zeros(3)}, p)),
                        ("evil", lambda p: torch.save({"policy": {}, "payload": _RunsCode(root / "ran")}, p))):
        (root / name / "checkpoints").mkdir(parents=True)
        (root / name / "run.json").write_text((run_dir / "run.json").read_text())
        write(root / name / "checkpoints" / "final.pt")
        files[name] = root / name
    (root / "loose").mkdir()
    files["loose"] = root / "loose" / "final.pt"
    files["loose"].write_bytes((run_dir / "checkpoints" / "final.pt").read_bytes())
    return files


BAD_INPUT = [
    (["eval", "{missing}"], "the directory does not exist"),
    (["eval", "{run}", "--checkpoint", "task_3"], "has no checkpoint 'task_3' (it has: final)"),
    (["eval", "{text}"], "is not a thalamus checkpoint (not a torch.save file)"),
    (["eval", "--policy", "ppo:{loose}", "--env", "CartPole-v1"], "its run's config is missing"),
    (["eval", "{run}", "--policy", "ppo:{final}"], "RUN_DIR and --policy are two policies"),
    (["eval", "{run}", "--expert"], "RUN_DIR and --expert are two policies"),
    (["eval", "--policy", "ppo:{final}"], "add --env ID or --tasks NAME"),
    (["eval"], "give RUN_DIR, --policy KIND:PATH or --expert"),
    (["eval", "--policy", "foo:{final}", "--env", "CartPole-v1"], "unknown kind 'foo'; known kinds: ppo"),
    (["eval", "--expert", "--env", "CartPole-v1"], "CartPole-v1 has no scripted expert"),
    (["eval", "--expert", "--tasks", "cartpole-physics"], "cartpole-physics (its task 'default') has no scripted"),
    (["eval", "{run}", "--episodes", "0"], "--episodes must be at least 1, got 0"),
]


def _argv(argv: list[str], run_dir: Path, bad_files: dict[str, Path]) -> list[str]:
    paths = {"missing": run_dir / "nope", "run": run_dir, "final": run_dir / "checkpoints" / "final.pt", **bad_files}
    return [a.format_map(paths) if "{" in a else a for a in argv]


@pytest.mark.parametrize("argv, expect", BAD_INPUT[:3])
def test_bad_input_is_one_clear_line(argv, expect, run_dir, bad_files):
    """The real command line, in a process of its own: one line, no traceback."""
    one_clear_line(run_here(*_argv(argv, run_dir, bad_files)), expect)


@pytest.mark.parametrize("argv, expect", BAD_INPUT[3:])
def test_more_bad_input_is_one_clear_line(argv, expect, run_dir, bad_files, capsys):
    """The same command line called in this process (each process start costs a second of the file's budget)."""
    code = main(_argv(argv, run_dir, bad_files))
    out, err = capsys.readouterr()
    one_clear_line(subprocess.CompletedProcess(argv, code, out, err), expect)


def test_a_file_that_is_not_a_run_checkpoint_is_refused(bad_files):
    with pytest.raises(EvaluationError, match="is not a run's checkpoint"):
        load_run(bad_files["no-policy"])
    with pytest.raises(CheckpointError, match="holds more than tensors and plain data"):
        load_run(bad_files["evil"])
    assert not (bad_files["evil"].parent / "ran").exists()  # refusing it ran none of its code


def test_bad_input_is_refused_before_torch_is_imported(run_dir):
    """The quick checks come first: bad options cost no torch import (about 2 s)."""
    code = ("import sys; from launch.cli import main; "
            f"code = main(['eval', {str(run_dir)!r}, '--episodes', '0']); print(code, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["2", "False"], proc.stderr
