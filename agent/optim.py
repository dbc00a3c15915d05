"""Adam and SGD as ``torch.optim`` computes them, without its start-up cost.

The first ``torch.optim`` optimizer a process builds imports ``torch._dynamo`` and sympy: 2.3–2.6 s
of CPU (torch 2.13, the 2-core machine), as much as importing torch, paid again by every run's
policy and learner actors and by every ``thalamus replay`` or ``eval`` that loads a policy. These two
do the same arithmetic as ``torch.optim.Adam`` and ``torch.optim.SGD`` (tests/test_optim.py checks
them step by step) and read and write their ``state_dict`` format, so checkpoints go either way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class _Optimizer:
    """One parameter group; ``param_groups[0]["lr"]`` may be changed between steps (a schedule)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], **defaults: Any) -> None:
        self.params = list(params)
        self.param_groups = [{**defaults, "params": self.params}]
        self.state: dict[int, dict[str, torch.Tensor]] = {}

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict[str, Any]:
        group = {k: v for k, v in self.param_groups[0].items() if k != "params"}
        return {"state": {i: dict(s) for i, s in self.state.items()},
                "param_groups": [{**group, "params": list(range(len(self.params)))}]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        (group,) = state_dict["param_groups"]
        if len(group["params"]) != len(self.params):
            raise ValueError(f"the saved optimizer holds {len(group['params'])} parameters, "
                             f"this one {len(self.params)}")
        self.param_groups[0].update({k: v for k, v in group.items() if k in self.param_groups[0] and k != "params"})
        self.state = {int(i): {k: v.to(self.params[int(i)].device, copy=True) for k, v in s.items()}
                      for i, s in state_dict["state"].items()}  # copies: the saved dict may still be stepped


class Adam(_Optimizer):
    """``torch.optim.Adam`` without weight decay, amsgrad or maximize."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps)

    @torch.no_grad()
    def step(self) -> None:
        group = self.param_groups[0]
        (beta1, beta2), lr, eps = group["betas"], group["lr"], group["eps"]
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            s = self.state.setdefault(i, {"step": torch.tensor(0.0), "exp_avg": torch.zeros_like(p),
                                          "exp_avg_sq": torch.zeros_like(p)})
            s["step"] += 1
            step = float(s["step"])
            s["exp_avg"].lerp_(p.grad, 1 - beta1)
            s["exp_avg_sq"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
            denom = (s["exp_avg_sq"].sqrt() / (1 - beta2 ** step) ** 0.5).add_(eps)
            p.addcdiv_(s["exp_avg"], denom, value=-lr / (1 - beta1 ** step))


class SGD(_Optimizer):
    """``torch.optim.SGD`` without momentum or weight decay: each parameter moves ``-lr`` times its gradient."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float) -> None:
        super().__init__(params, lr=lr)

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            if p.grad is not None:
                p.add_(p.grad, alpha=-self.param_groups[0]["lr"])
