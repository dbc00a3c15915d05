"""`thalamus run --policy diffusion:PATH`: a trained diffusion policy acting in the actor runtime, in
place of PPO, on the same ring; and the bad input refused before Ray starts."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import one_clear_line, run_here, run_main

from agent.checkpoints import load_tensors
from agent.config import AgentConfig
from memory import open_store, read_manifest

REACH = (Path(__file__).parents[1] / "agent/policy/checkpoints/mw-easy/reach-v3.pt").resolve()
POLICY = f"diffusion:{REACH}"


def test_a_diffusion_policy_reaches_in_a_run_and_the_run_keeps_what_it_acted_with(ray_address, tmp_path):
    """Its states reach it unnormalized and its plans start afresh with each episode: it succeeds
    (a policy fed running-normalized states, or one acting on the last episode's plan, does not)."""
    run_dir = tmp_path / "reach"
    proc = run_here("run", "--env", "Meta-World/reach-v3", "--policy", POLICY, "--num-envs", "2", "--steps", "300",
                   "--captioner", "off", "--run-dir", str(run_dir), "--address", ray_address, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    store = open_store(run_dir)
    episodes = [store.get_episode(i) for i in range(store.n_episodes)]
    complete = [e for e in episodes if not e["stopped"][-1]]
    assert len(complete) >= 3, [len(e["action"]) for e in episodes]
    assert sum(bool(e["success"].any()) for e in complete) >= 0.75 * len(complete)
    actions = np.concatenate([e["action"] for e in episodes])
    assert len(actions) == 300 and np.abs(actions).max() <= 1.0
    assert (actions.std(0) > 0.01).all()  # not one action repeated
    policy = summary["policy"]
    assert policy["updates"] == 0 and policy["sampler"] == "ddim16"
    assert policy["chunks"] >= 300 // 8 and policy["body_evals_per_chunk"] == 16
    assert summary["learner"]["replay"] > 0  # the world model still learns from what it did
    config = AgentConfig.from_dict(read_manifest(run_dir)["config"])  # run.json reads back, for --resume
    assert config.policy == POLICY and config.step_cache == "none"
    assert load_tensors(run_dir / "checkpoints" / "final.pt")["policy"] == {"diffusion_policy": str(REACH)}


def test_an_env_whose_episode_ended_is_planned_afresh_from_its_new_state():
    """Env 0's first action after its episode ended is what a fresh policy does on that state with
    the seed of env 0's second episode (seed + 0 + num_envs·1); without the reset it would be the
    old plan's next action."""
    from agent.messages import Action, Percept, decode, encode
    from agent.policy.actor import PolicyActor
    from agent.policy.ppo import PPOConfig

    spec = {"discrete": False, "action_dim": 4, "state_dim": 39, "action_low": -np.ones(4, np.float32),
            "action_high": np.ones(4, np.float32)}
    rng = np.random.default_rng(0)

    def act(actor: PolicyActor, vector: np.ndarray, done: list[bool]) -> np.ndarray:
        msg = encode(Percept(vector=vector, reward=np.zeros(2, np.float32), done=np.array(done)))
        return decode(actor.act(msg), Action).action

    def percept() -> np.ndarray:  # [state (39), frame features (16)]
        return rng.uniform(-0.5, 0.5, (2, 39 + 16)).astype(np.float32)

    running = PolicyActor(39 + 16, spec, 2, PPOConfig(), None, seed=0, policy=POLICY)
    for _ in range(3):
        act(running, percept(), [False, False])
    new = percept()
    after = act(running, new, [True, False])
    fresh = PolicyActor(39 + 16, spec, 2, PPOConfig(), None, seed=2, policy=POLICY)
    np.testing.assert_array_equal(after[0], act(fresh, new, [False, False])[0])
    assert running.state_dict() == {"diffusion_policy": str(REACH)}
    running.load_state_dict(running.state_dict())  # a restarted policy actor takes its checkpoint back


@pytest.mark.parametrize("argv, expect", [
    (["--policy", "ppo:run/final.pt"], "unknown kind 'ppo'; give diffusion:PATH"),
    (["--policy", "diffusion:no/such.pt"], "no/such.pt: no such file"),
    (["--step-cache", "seacache"], "--step-cache is for a diffusion policy: add --policy diffusion:PATH"),
    (["--policy", POLICY], "CartPole-v1 does not fit this diffusion policy: its actions are discrete"),
    (["--env", "Meta-World/reach-v3", "--policy", POLICY, "--step-cache", "fast"], "--step-cache must be one of"),
], ids=["unknown-kind", "missing-file", "cache-without-policy", "discrete-env", "unknown-cache"])
def test_bad_policy_input_is_one_clear_line_before_anything_starts(capsys, tmp_path, argv, expect):
    run_dir = tmp_path / "never"
    one_clear_line(run_main(capsys, "run", *argv, "--steps", "10", "--run-dir", str(run_dir)), expect)
    assert not run_dir.exists()
