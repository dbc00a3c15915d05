"""Skills one after another with a diffusion policy: trc keeps a learned skill that fine-tuning loses,
its router sends each skill's windows to that skill's column, and the benchmark's flags are its config's."""

from dataclasses import fields

import pytest
import torch

from agent.policy.diffusion.config import DiffusionConfig
from agent.policy.diffusion.continual import ImitationConfig, ImitationLearner, paired_gap
from launch.continual_bench_cmd import IMITATION_DEFAULTS

TINY = DiffusionConfig(obs_dim=6, action_dim=2, down_dims=(16, 32), time_dim=32, groups=4)


def _skill(sign: float, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """A skill's windows: observations around ``sign`` (two steps of 6 floats), and a chunk that holds
    the action (sign · 0.6, −sign · 0.3), offset a little per window."""
    g = torch.Generator().manual_seed(int(sign > 0))
    obs = sign + 0.3 * torch.randn(n, 2 * TINY.obs_dim, generator=g)
    act = torch.tensor([0.6, -0.3]) * sign + 0.02 * torch.randn(n, 1, TINY.action_dim, generator=g)
    return obs, act.expand(n, TINY.horizon, TINY.action_dim).contiguous()


def _action_error(learner: ImitationLearner, obs: torch.Tensor, act: torch.Tensor) -> float:
    noise = torch.randn(act.shape, generator=torch.Generator().manual_seed(7))
    chunk, _ = learner.sampler().sample(obs, noise=noise)
    return float((chunk - act).pow(2).mean())


def test_trc_keeps_a_skill_that_fine_tuning_overwrites():
    cfg = ImitationConfig(steps=150, batch=64, lr=1e-2, memory=200, ddim_steps=8, model=TINY)
    first, second = _skill(1.0), _skill(-1.0)
    trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
    trc.train_task(0, *first)
    naive = ImitationLearner("naive", cfg, tasks=2, seed=0)
    naive.columns[0].load_state_dict(trc.columns[0].state_dict())  # the same first skill, learned once
    learned = _action_error(trc, *first)
    assert learned < 0.15, learned  # the first skill was learned (a chunk of zeros is off by 0.23)
    for learner in (naive, trc):
        learner.train_task(1, *second)
        assert _action_error(learner, *second) < 0.15  # and the second
    assert _action_error(naive, *first) > 0.4  # fine-tuning on the second overwrote the first
    assert _action_error(trc, *first) < learned + 0.005  # trc's column kept it, and every window went there
    _, weights = trc.denoise(second[1], torch.full((256,), 50), torch.cat([first[0][:128], second[0][:128]]))
    owners = torch.tensor([trc.owners[0]] * 128 + [trc.owners[1]] * 128)
    assert trc.owners[0] != trc.owners[1] and (weights.argmax(-1) == owners).all()


def test_the_paired_gap_is_the_mean_difference_and_its_standard_error():
    old = torch.linspace(0.1, 0.5, 32)
    noise = torch.randn(32, generator=torch.Generator().manual_seed(0))
    gap, se = paired_gap(old + 0.05 + 0.1 * noise, old)
    assert gap == pytest.approx(0.05 + 0.1 * float(noise.mean()), rel=1e-5)
    assert se == pytest.approx(0.1 * float(noise.std()) / 32 ** 0.5, rel=1e-5)
    assert paired_gap(old + 0.01, old) == pytest.approx((0.01, 0.0), abs=1e-7)  # worse everywhere: no noise to hide in


def test_imitation_flags_default_to_its_config():
    cfg = ImitationConfig()
    for name, value in IMITATION_DEFAULTS.items():
        assert getattr(cfg, name) == value, name
    assert {f.name for f in fields(cfg)} >= set(IMITATION_DEFAULTS)


def test_the_newest_trc_column_replays_and_plays_an_old_skill_unless_it_acts_on_it_worse():
    first, second = _skill(1.0), _skill(-1.0)
    cfg = ImitationConfig(steps=150, batch=64, lr=1e-2, memory=200, held_out=16, ddim_steps=8, model=TINY)
    trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
    trc.train_task(0, first[0][:200], first[1][:200], held=(first[0][200:], first[1][200:]))
    old = trc.held[0][2]
    trc.train_task(1, second[0][:200], second[1][:200], held=(second[0][200:], second[1][200:]))
    assert trc.cache.capacity == 200 - 2 * 16 and trc.stored_windows() == trc.cache.size + 32
    newest = trc.owners[1]
    mine = trc.action_errors(newest, *trc.held[0][:2])
    assert mine.mean() < 0.15  # it replayed the first skill's stored windows and still acts on it
    gap, se = paired_gap(mine, old)
    moved = gap <= cfg.margin * se
    assert (trc.plays[trc.owners[0]] == newest) == moved  # it plays the first unless it acts on it worse
    assert trc.choices == [{"after": 1, "task": 0, "gap": gap, "se": se, "mastered": False, "moved": moved}]
    assert torch.equal(trc.held[0][2], mine if moved else old)
    frozen = ImitationLearner("trc", ImitationConfig(**{**cfg.__dict__, "held_out": 0}), tasks=2, seed=0)
    frozen.train_task(0, *first)
    frozen.train_task(1, *second)
    assert frozen.plays == {0: 0, 1: 1} and "labels" not in frozen.cache.data  # held_out 0: no replay, own columns


def test_trc_replays_an_earlier_task_against_the_column_that_plays_it_and_not_the_present_one():
    first, second = _skill(1.0), _skill(-1.0)
    cfg = ImitationConfig(steps=30, batch=64, memory=200, held_out=16, teach="all", shift=0.0, model=TINY)
    trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
    trc.train_task(0, *first, held=(first[0][:32], first[1][:32]))
    trc.train_task(1, *second)  # no held windows: task 0 stays with its own column
    obs, act = torch.cat([first[0][:8], second[0][:8]]), torch.cat([first[1][:8], second[1][:8]])
    noise, t = torch.randn(act.shape), torch.randint(0, TINY.levels, (16,))
    owner = torch.tensor([trc.owners[0]] * 8 + [trc.owners[1]] * 8)
    [(o, a, n, level, target, weight)] = trc._taught(obs, act, noise, t, owner)
    assert torch.equal(o, obs[:8]) and torch.equal(n, noise[:8]) and weight == cfg.replay_alpha
    player = trc.columns[trc.plays[trc.owners[0]]]
    assert trc.plays[trc.owners[0]] == trc.owners[0] != trc.last
    with torch.no_grad():
        expected = player(trc.schedule.add_noise(act[:8], noise[:8], t[:8]), t[:8], obs[:8])
    torch.testing.assert_close(target, expected)
    with torch.no_grad():
        present = trc.columns[trc.last](trc.schedule.add_noise(a, n, level), level, o)
    assert (target - present).abs().max() > 1e-3  # the column being trained is not its own teacher


def test_trc_also_teaches_its_windows_shifted_as_a_whole_off_the_demonstrations():
    first, second = _skill(1.0), _skill(-1.0)
    cfg = ImitationConfig(steps=30, batch=64, memory=200, held_out=16, teach="all", shift=0.5, model=TINY)
    trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
    trc.train_task(0, *first, held=(first[0][:32], first[1][:32]))
    trc.train_task(1, *second)  # task 0 stays with its own column, which teaches
    obs, act = first[0][:64], first[1][:64]
    noise, t = torch.randn(act.shape), torch.randint(0, TINY.levels, (64,))
    [clean, (o, a, n, level, target, weight)] = trc._taught(obs, act, noise, t, torch.full((64,), trc.owners[0]))
    assert torch.equal(a, act) and torch.equal(n, noise) and torch.equal(level, t) and weight == clean[-1]
    step = (o - obs).view(64, 2, TINY.obs_dim)
    torch.testing.assert_close(step[:, 0], step[:, 1])  # both frames of a window move together
    spread = step[:, 1].std(0) / obs.view(64, 2, -1)[:, 1].std(0)
    assert ((spread > 0.3) & (spread < 0.8)).all()  # about half a std of each state dim
    with torch.no_grad():
        expected = trc.columns[trc.owners[0]](trc.schedule.add_noise(act, noise, t), t, o)
    torch.testing.assert_close(target, expected)  # the player's answer where the windows moved to
    off = ImitationLearner("trc", ImitationConfig(**{**cfg.__dict__, "shift": 0.0}), tasks=2, seed=0)
    off.train_task(0, *first, held=(first[0][:32], first[1][:32]))
    off.train_task(1, *second, steps=1)
    assert len(off._taught(obs, act, noise, t, torch.full((64,), off.owners[0]))) == 1


def test_trc_shifts_each_task_s_windows_by_that_task_s_own_spread():
    first, far = _skill(1.0, 64), _skill(1.0, 64)
    obs = torch.cat([first[0], 8.0 + 4.0 * far[0]])  # a second task far away and four times as spread
    act, owner = torch.cat([first[1], far[1]]), torch.tensor([0] * 64 + [1] * 64)
    trc = ImitationLearner("trc", ImitationConfig(steps=1, batch=64, memory=200, held_out=16, shift=0.5, model=TINY),
                           tasks=2, seed=0)
    noise, t = torch.randn(act.shape), torch.randint(0, TINY.levels, (128,))
    moved = trc._shifted(obs, act, noise, t, torch.zeros(128, dtype=torch.long), owner, 1.0)[0]
    step, frames = (moved - obs).view(128, 2, -1)[:, 1], obs.view(128, 2, -1)[:, 1]
    for rows in (slice(0, 64), slice(64, 128)):  # about half of the task's own std, not of the two mixed
        spread = step[rows].std(0) / frames[rows].std(0)
        assert ((spread > 0.3) & (spread < 0.8)).all(), spread


def test_trc_teaches_only_the_windows_its_player_denoises_better_than_the_newest_column():
    first, second = _skill(1.0), _skill(-1.0)
    cfg = ImitationConfig(steps=30, batch=64, memory=200, held_out=16, teach="better", shift=0.0, model=TINY)
    trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
    trc.train_task(0, *first, held=(first[0][:32], first[1][:32]))
    trc.train_task(1, *second, steps=3)  # task 0 stays with its own column, which teaches; the newest drifts a little
    obs, act = first[0][:64], first[1][:64]
    noise, t = torch.randn(act.shape), torch.randint(0, TINY.levels, (64,))
    with torch.no_grad():
        x = trc.schedule.add_noise(act, noise, t)
        errors = [(trc.columns[c](x, t, obs) - noise).pow(2).flatten(1).mean(1) for c in (trc.owners[0], trc.last)]
    better = errors[0] < errors[1]
    assert 0 < int(better.sum()) < 64  # the check can go either way on these windows
    [(o, _, n, _, target, weight)] = trc._taught(obs, act, noise, t, torch.full((64,), trc.owners[0]))
    assert torch.equal(o, obs[better]) and torch.equal(n, noise[better])
    assert weight == pytest.approx(cfg.replay_alpha * int(better.sum()) / 64)  # each taught window weighs as before
    assert ((target - n).pow(2).flatten(1).mean(1) < errors[1][better]).all()


def test_a_task_its_column_masters_in_practice_stays_with_that_column():
    first, second = _skill(1.0), _skill(-1.0)
    cfg = ImitationConfig(steps=20, batch=64, memory=200, held_out=16, ddim_steps=4, margin=1e9, model=TINY)
    for success, stays in ((cfg.mastered, True), (cfg.mastered - 0.05, False)):
        trc = ImitationLearner("trc", cfg, tasks=2, seed=0)
        trc.train_task(0, *first, held=(first[0][:32], first[1][:32]))
        trc.practise(0, success)
        trc.train_task(1, *second, held=(second[0][:32], second[1][:32]))
        assert (trc.plays[trc.owners[0]] == trc.owners[0]) == stays  # any gap moves it (margin), unless mastered
        assert [c["mastered"] for c in trc.choices] == [stays]


def test_practice_episodes_are_training_seeds_never_evaluated_on():
    from envs.seeds import MAX_SEED, demo_seed, eval_seed, practice_seed

    run_seeds = MAX_SEED + 100 * 1000  # a run's envs: its seed upward, one per env and task
    assert run_seeds < practice_seed(0, 0) and practice_seed(MAX_SEED, 9_999) < eval_seed(0, 0)
    assert eval_seed(MAX_SEED, 99_999) < demo_seed(0, 0)


def test_forward_transfer_is_success_right_after_learning_minus_the_task_learned_alone():
    from launch.imitation_bench_cmd import forward_transfer

    def run(seed: int, diagonal: list[float]) -> dict:
        return {"seed": seed, "matrix": [[diagonal[i] if i == j else 0.9 for j in range(3)] for i in range(3)]}

    alone = [run(0, [0.5, 0.6, 0.7]), run(1, [0.3, 0.6, 0.9])]
    in_sequence = [run(0, [0.5, 0.9, 0.7]), run(1, [0.3, 0.3, 0.9]), run(2, [0.4, 0.6, 0.8])]
    # seed 0: +0.1 a task; seed 1: −0.1; seed 2 has no run alone: against their mean (0.4, 0.6, 0.8), 0
    assert forward_transfer(in_sequence, alone) == pytest.approx(0.0, abs=1e-12)
    assert forward_transfer(in_sequence[:1], alone) == pytest.approx(0.1)
