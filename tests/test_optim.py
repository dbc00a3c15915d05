"""agent/optim.py against torch.optim beside it: the same parameters step for step, state dicts that
load either way, and no torch._dynamo import in a process that learns (the reason the module exists)."""

import subprocess
import sys

import pytest
import torch

from agent.optim import SGD, Adam


def _pair(seed: int) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(7, 3), (5,), (2, 3, 9)]  # odd sizes
    ours = [torch.nn.Parameter(torch.randn(s, generator=g)) for s in shapes]
    return ours, [torch.nn.Parameter(p.detach().clone()) for p in ours]


def _loss(params: list[torch.nn.Parameter], step: int) -> torch.Tensor:
    return sum(((p - step * 0.1) ** 2 * (i + 1)).sum() + p.sin().sum() for i, p in enumerate(params))


@pytest.mark.parametrize("make", [
    lambda ps: (Adam(ps[0], lr=3e-2, eps=1e-5), torch.optim.Adam(ps[1], lr=3e-2, eps=1e-5)),
    lambda ps: (Adam(ps[0], lr=1e-2, betas=(0.8, 0.99)), torch.optim.Adam(ps[1], lr=1e-2, betas=(0.8, 0.99))),
    lambda ps: (SGD(ps[0], lr=5e-2), torch.optim.SGD(ps[1], lr=5e-2)),
], ids=["adam-eps", "adam-betas", "sgd"])
def test_steps_match_torch_optim_with_a_changing_learning_rate(make):
    params = _pair(0)
    opts = make(params)
    for step in range(12):
        for ps, opt in zip(params, opts):
            opt.param_groups[0]["lr"] *= 0.9  # as PPO anneals it
            opt.zero_grad()
            _loss(ps, step).backward()
            opt.step()
    for ours, theirs in zip(*params):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not torch.equal(params[0][0], _pair(0)[0][0])  # they did move


def test_state_dicts_load_either_way_and_go_on_as_the_original_would():
    (a, b), (c, _) = _pair(1), _pair(1)
    theirs = torch.optim.Adam(a, lr=2e-2)
    for step in range(3):
        theirs.zero_grad()
        _loss(a, step).backward()
        theirs.step()
    for p, q in zip(c, a):
        p.data.copy_(q.data)
    ours = Adam(c, lr=0.5)
    ours.load_state_dict(theirs.state_dict())  # an older run's checkpoint
    assert ours.param_groups[0]["lr"] == 2e-2
    for opt, ps in ((theirs, a), (ours, c)):
        opt.zero_grad()
        _loss(ps, 3).backward()
        opt.step()
    for p, q in zip(c, a):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    back = torch.optim.Adam(b, lr=1.0)
    back.load_state_dict(ours.state_dict())
    assert back.state_dict()["state"][2]["step"] == 4
    with pytest.raises(ValueError, match="holds 3 parameters"):
        Adam(c[:2]).load_state_dict(ours.state_dict())


def test_the_actors_models_learn_without_importing_torch_dynamo():
    """An in-process run builds every actor's model and optimizer and updates PPO and the learner."""
    code = ("import sys, tempfile; from pathlib import Path; from envs.headless import configure; configure()\n"
            "from agent.config import AgentConfig; from agent.runtime import Agent\n"
            "s = Agent(AgentConfig(steps=600, num_envs=2, captioner='off'), Path(tempfile.mkdtemp()) / 'r',"
            " use_ray=False).run()\n"
            "assert s['policy']['updates'] > 0, s['policy']\n"
            "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
