"""A diffusion policy that learns tasks one after another from their demonstrations.

Each method sees task 1's demonstration windows, then task 2's, and so on, for ``steps`` optimizer
steps a task (Adam, warm-up and cosine decay per task), and never sees a task's data again except
what it stores (``memory`` windows, reservoir-sampled over what it trained on):

- ``naive``: one denoiser, fine-tuned task after task;
- ``er``: ... plus the diffusion loss on a replayed batch of stored windows;
- ``derpp``: ... plus, on one replayed batch, the distance of the denoiser's noise prediction from
  the one it made when the window was stored (same noise and level: DER++'s replayed logits, α) and
  the diffusion loss on another (β);
- ``multitask``: every task's windows at once for as many steps as the sequence (the upper bound);
- ``trc``: trc's parts (`agent/learner/`) around whole denoisers: each task owns a column (a
  denoiser of its own, starting as a copy of the column trained last, so a new skill starts from what
  the arm knows), frozen once its task ends, and a router reads the observation window and learns which
  task owns it, on the present batch and on stored windows (with their owner). The newest column
  learns its task and replays the stored windows of every earlier one, against the expert's chunk
  (as ER) and against the noise prediction of the frozen column that plays the window's task (as
  DER++, weight α, but made now by the chosen column rather than stored, and by default only where
  that column denoises the window better than the newest one: a half-learned skill does not hold
  back the column that goes on learning it), so it carries all the skills so far. The player also
  teaches those windows shifted off the demonstrations (``shift`` stds of each state dim within the
  task, a window's frames together): where an arm drifts in closed loop, the newest column would
  otherwise answer with its own task's habit (a reach played by a top-down button press's column
  pushed down into the table). A task moves to the newest column unless that column acts worse on
  ``held_out`` windows of the task kept aside (never replayed), worse by more than ``margin`` standard
  errors of the paired difference (a smaller gap is the windows' noise, and the newest column trained
  on more), or unless its column mastered it in ``practice`` episodes played as it ended (off by
  default: an env the others do not use).
  It acts by mixing the noise predictions of a window's hybrid top-k ∪ top-p owners by their routing
  weights, each through the column that plays it, computing only those columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from agent.learner.cache import CacheMemory
from agent.learner.columns import select
from agent.optim import Adam
from agent.policy.diffusion.config import DiffusionConfig
from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.train import learning_rate
from agent.policy.diffusion.unet import Denoiser

# "single": every task learned alone by a fresh policy, the reference forward transfer is measured against
IMITATION_METHODS = ("trc", "naive", "er", "derpp", "multitask", "single")


@dataclass(frozen=True)
class ImitationConfig:
    """The protocol every method follows and trc's routing settings."""

    steps: int = 1000  # optimizer steps a task (multitask: this times the tasks)
    batch: int = 256  # windows a step (and replayed windows a step)
    lr: float = 1e-3
    memory: int = 2000  # windows a storing method keeps (er, derpp, trc)
    replay_alpha: float = 0.5  # derpp, trc: the weight of replayed noise predictions
    replay_beta: float = 0.5  # derpp: the diffusion loss on replayed windows
    columns: int = 0  # trc's columns (0: one per task)
    held_out: int = 32  # trc: windows kept aside a task (of ``memory``) to choose its column (0: its own, no replay)
    margin: float = 3.0  # trc: standard errors by which the newest column may act worse and still take a task
    practice: int = 0  # trc: episodes it plays of each task when the task ends (0: none)
    mastered: float = 0.9  # trc: practice success at which a task stays with the column that played it
    teach: str = "better"  # trc: replay against the player's prediction on every earlier window ("all") or only where it denoises better ("better")
    shift: float = 0.5  # trc: the player also teaches its windows shifted off the demonstrations by this many stds of each state dim (0: off)
    top_k: int = 2
    top_p: float = 0.9
    router_hidden: int = 256
    ddim_steps: int = 16  # sampling steps when acting
    model: DiffusionConfig = field(default_factory=DiffusionConfig)


class Router(nn.Module):
    """Observation window (already scaled to [-1, 1] per dimension) → which column owns it (logits)."""

    def __init__(self, obs_dim: int, columns: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, columns))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class ImitationLearner:
    """One method's policy through a task sequence: ``train_task`` in order, ``sampler`` to act
    (through :meth:`DiffusionPolicy.from_sampler`)."""

    def __init__(self, method: str, cfg: ImitationConfig, tasks: int, seed: int, device: str = "cpu") -> None:
        if method not in IMITATION_METHODS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(IMITATION_METHODS)}")
        self.method, self.cfg, self.device = method, cfg, torch.device(device)
        torch.manual_seed(seed)
        self.schedule = NoiseSchedule(cfg.model.levels)
        n = (cfg.columns or tasks) if method == "trc" else 1
        self.columns = nn.ModuleList([Denoiser(cfg.model) for _ in range(n)]).to(self.device)
        obs_dim = cfg.model.obs_dim * cfg.model.obs_horizon
        self.router = Router(obs_dim, n, cfg.router_hidden).to(self.device) if method == "trc" else None
        held = cfg.held_out * tasks if method == "trc" else 0  # the kept windows share the memory
        self.cache = CacheMemory(cfg.memory - held, seed, self.device)
        self.owners: dict[int, int] = {}  # trc: task → the column that learns it
        self.plays: dict[int, int] = {}  # trc: owning column → the column that plays its task
        self.held: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # trc: task → windows, actions, errors
        self.choices: list[dict[str, Any]] = []  # trc: each comparison of the newest column with a task's player
        self.practised: dict[int, float] = {}  # trc: task → its player's practice success, while that column plays it
        self.last: int | None = None  # the column trained last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def train_task(self, task: int, obs: torch.Tensor, act: torch.Tensor, steps: int | None = None,
                   held: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        """``steps`` (default ``cfg.steps``) steps on one task's windows (obs [N, obs_horizon·obs_dim],
        act [N, horizon, A]). The step's windows and the replayed ones go through the denoiser as one
        batch; what the method stores is written after the step's update. trc keeps ``cfg.held_out`` of
        ``held`` (windows kept aside, never replayed) to choose which column plays each task."""
        cfg, g = self.cfg, self.generator
        steps = steps or cfg.steps
        if self.method == "trc" and task not in self.owners:  # a free column, else the least-owning one
            counts = np.bincount(list(self.owners.values()), minlength=len(self.columns))
            self.owners[task] = int(counts.argmin())
            if counts[self.owners[task]] == 0 and self.last is not None:  # a fresh column starts from the last skill
                self.columns[self.owners[task]].load_state_dict(self.columns[self.last].state_dict())
        self.last = self.owners.get(task, 0)
        model = self.columns[self.last]
        opt = Adam(list(model.parameters()) + (list(self.router.parameters()) if self.router else []))
        for step in range(steps):
            idx = torch.randint(0, len(obs), (cfg.batch,), generator=g, device=self.device)
            o, a = obs[idx], act[idx]
            t = self._levels(len(o))
            noise = torch.randn(a.shape, generator=g, device=self.device)
            parts = [(o, a, noise, t, noise, 1.0)] + self._replayed()
            o_all, a_all, n_all, t_all = (torch.cat([p[k] for p in parts]) for k in range(4))
            pred = model(self.schedule.add_noise(a_all, n_all, t_all), t_all, o_all)
            loss = sum(w * F.mse_loss(chunk, target)
                       for chunk, (*_, target, w) in zip(pred.split([len(p[0]) for p in parts]), parts))
            stored: dict[str, torch.Tensor] = {"x": o, "labels": a}
            if self.method == "trc":
                router_loss, stored = self._router_loss(o, a, task)
                loss = loss + router_loss
            opt.zero_grad()
            loss.backward()
            opt.param_groups[0]["lr"] = learning_rate(step, steps, cfg.lr)
            opt.step()
            if self.method == "derpp":
                stored |= {"noise": noise, "t": t, "logits": pred[: len(o)]}
            if self.method in ("er", "derpp", "trc"):
                self.cache.stash(**stored, task=torch.full((len(o),), task, device=self.device))
                self.cache.flush()
        if self.method == "trc":
            self._choose_players(task, held)

    def _levels(self, n: int) -> torch.Tensor:
        return torch.randint(0, self.cfg.model.levels, (n,), generator=self.generator, device=self.device)

    def _replayed(self) -> list[tuple[Any, ...]]:
        """Replayed windows as (obs, actions, noise, level, target, weight): er's and trc's batch with
        fresh noise (target: the noise); derpp's batch with its stored noise and level (target: the
        stored prediction, weight α) and another with fresh noise (weight β); trc's earlier-task windows
        of its batch again (target: their player's prediction, weight α)."""
        replays = self.method in ("er", "derpp") or (self.method == "trc" and self.cfg.held_out > 0)
        if not replays or self.cache.size == 0:
            return []
        out = []
        if self.method == "derpp":
            b = self.cache.sample(self.cfg.batch)
            out.append((b["x"], b["labels"], b["noise"], b["t"], b["logits"], self.cfg.replay_alpha))
        b = self.cache.sample(self.cfg.batch)
        noise = torch.randn(b["labels"].shape, generator=self.generator, device=self.device)
        weight = self.cfg.replay_beta if self.method == "derpp" else 1.0
        replay = (b["x"], b["labels"], noise, self._levels(len(noise)), noise, weight)
        taught = self._taught(*replay[:4], b["owner"]) if self.method == "trc" else []
        return out + [replay] + taught

    @torch.no_grad()
    def _taught(self, obs: torch.Tensor, act: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                owner: torch.Tensor) -> list[tuple[Any, ...]]:
        """trc: the replayed windows of earlier tasks again, their target the noise prediction of the
        (frozen) column that plays the task now, weight α: DER++'s replayed predictions, made fresh by
        the column chosen to act rather than stored when the window was."""
        players = self._players()[owner]
        rows = (players != self.last).nonzero().flatten()
        if not len(rows):
            return []
        n = len(rows)
        obs, act, noise, t, players, owner = obs[rows], act[rows], noise[rows], t[rows], players[rows], owner[rows]
        x = self.schedule.add_noise(act, noise, t)
        target = self._answers(players, x, t, obs)
        if self.cfg.teach == "better":  # the player teaches only the windows it denoises better than the learner
            own = self.columns[self.last](x, t, obs)
            keep = _errors(target, noise) < _errors(own, noise)
            if not keep.any():
                return []
            obs, act, noise, t, target = obs[keep], act[keep], noise[keep], t[keep], target[keep]
            players, owner = players[keep], owner[keep]
        taught = [(obs, act, noise, t, target, self.cfg.replay_alpha * len(obs) / n)]
        if self.cfg.shift > 0:
            taught.append(self._shifted(obs, act, noise, t, players, owner, self.cfg.replay_alpha * len(obs) / n))
        return taught

    def _shifted(self, obs: torch.Tensor, act: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                 players: torch.Tensor, owner: torch.Tensor, weight: float) -> tuple[Any, ...]:
        """The taught windows moved off the demonstrations (every frame of a window by one shift, ``cfg.shift``
        stds of each state dim over the taught windows of the same owner: the same task, with a column a
        task), their target the player's prediction there: where the arm drifts in closed loop, the newest
        column learns the earlier skill's answer, not its own task's. The std is the task's own, so a shift
        stays near that task's states rather than landing among another task's (across tasks a dim such as
        an object's place varies far more than within one)."""
        frames = obs.view(len(obs), self.cfg.model.obs_horizon, -1)
        std = torch.zeros_like(frames[:, -1])
        for m in owner.unique().tolist():
            mine = owner == m
            if int(mine.sum()) > 1:
                std[mine] = frames[mine, -1].std(0)
        step = torch.randn(frames[:, -1].shape, generator=self.generator, device=self.device) * std * self.cfg.shift
        moved = (frames + step[:, None]).flatten(1)
        return (moved, act, noise, t, self._answers(players, self.schedule.add_noise(act, noise, t), t, moved), weight)

    def _answers(self, players: torch.Tensor, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """Each window's noise prediction by the column in ``players`` that plays it."""
        target = torch.empty_like(x)
        for m in players.unique().tolist():
            mine = players == m
            target[mine] = self.columns[m](x[mine], t[mine], obs[mine])
        return target

    def _router_loss(self, obs: torch.Tensor, act: torch.Tensor, task: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """trc's router: the owner of the step's windows and of replayed ones; and what the cache stores
        of the step. (The router's stored logits are not replayed: while one column is in use the router
        learns nothing, and pulling later logits toward those untrained ones kept two skills mixed.)"""
        owner = torch.full((len(obs),), self.owners[task], device=self.device)
        b = self.cache.sample(self.cfg.batch)
        logits = self.router(obs if b is None else torch.cat([obs, b["x"]]))
        masked = logits.masked_fill(~self._used(), -1e9)
        loss = F.cross_entropy(masked[: len(obs)], owner)
        if b is not None:
            loss = loss + F.cross_entropy(masked[len(obs):], b["owner"])
        return loss, {"x": obs, "owner": owner} | ({"labels": act} if self.cfg.held_out else {})

    def _choose_players(self, task: int, held: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """After ``task``: keep ``cfg.held_out`` of its ``held`` windows aside, and let the column just
        trained play every earlier task unless its action errors on the task's kept windows exceed the
        playing column's by more than ``cfg.margin`` standard errors of their paired difference; every
        comparison goes to ``choices``."""
        owner = self.owners[task]
        self.plays[owner] = owner
        if not self.cfg.held_out or held is None or not len(held[0]):
            return
        pick = torch.randperm(len(held[0]), generator=torch.Generator().manual_seed(task))[: self.cfg.held_out]
        obs, act = held[0][pick.to(held[0].device)], held[1][pick.to(held[1].device)]
        self.held[task] = (obs, act, self.action_errors(owner, obs, act))
        for done, (o, a, errors) in self.held.items():
            if done == task:
                continue
            mine = self.action_errors(owner, o, a)
            gap, se = paired_gap(mine, errors)
            mastered = self.practised.get(done, 0.0) >= self.cfg.mastered
            moved = gap <= self.cfg.margin * se and not mastered
            self.choices.append({"after": task, "task": done, "gap": gap, "se": se, "mastered": mastered, "moved": moved})
            if moved:
                self.plays[self.owners[done]], self.held[done] = owner, (o, a, mine)
                self.practised.pop(done, None)  # the new player has not practised it

    def practise(self, task: int, success: float) -> None:
        """trc: the success rate of ``task``'s practice episodes, played when it ends: a task its column
        masters (``cfg.mastered``) stays with that column; chunk errors cannot tell (a reach that stops
        5 mm short imitates the expert closely and fails)."""
        self.practised[task] = success

    @torch.no_grad()
    def action_errors(self, column: int, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        """Each window's mean squared error [N] of the chunk ``column`` samples (DDIM, fixed noise) against
        the expert's."""
        x = torch.randn(act.shape, generator=torch.Generator().manual_seed(0)).to(act.device)
        net = self.columns[column]
        x = ddim(self.schedule, self.schedule.ddim_timesteps(self.cfg.ddim_steps), x, lambda x, t: net(x, t, obs))
        return (x - act).pow(2).flatten(1).mean(1)

    def _players(self) -> torch.Tensor:
        """For each column, the column that plays its task (itself until a later column takes it)."""
        return torch.tensor([self.plays.get(m, m) for m in range(len(self.columns))], device=self.device)

    def _used(self) -> torch.Tensor:
        used = torch.zeros(len(self.columns), dtype=torch.bool, device=self.device)
        used[list(self.owners.values()) or list(range(len(self.columns)))] = True
        return used

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise prediction [N, horizon, A] and the routing weights [N, columns] (one column: all ones)."""
        if self.router is None:
            return self.columns[0](x, t, obs), torch.ones(len(x), 1, device=self.device)
        owned = select(self.router(obs), self._used(), self.cfg.top_k, self.cfg.top_p)
        weights = torch.zeros_like(owned).index_add(1, self._players(), owned)  # an owner's weight, to its player
        return self.mix(weights, x, t, obs), weights

    def mix(self, weights: torch.Tensor, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The noise predictions of the columns weighted by ``weights`` [N, columns], each column computed
        only for the windows that weight it."""
        eps = torch.zeros_like(x)
        for m, column in enumerate(self.columns):
            rows = weights[:, m].nonzero().flatten()
            if len(rows):
                eps = eps.index_add(0, rows, weights[rows, m, None, None] * column(x[rows], t[rows], obs[rows]))
        return eps

    def memory_bytes(self) -> int:
        """What the stored windows take (every field the method keeps for them, the kept-aside ones too)."""
        held = sum(t.numel() * t.element_size() for o, a, _ in self.held.values() for t in (o, a))
        return held + sum(v[: self.cache.size].numel() * v.element_size() for v in self.cache.data.values())

    def stored_windows(self) -> int:
        """How many windows the method keeps (replayed and kept aside)."""
        return self.cache.size + sum(len(o) for o, _, _ in self.held.values())

    def sampler(self) -> DDIMSampler:
        """A DDIM sampler over :meth:`denoise`, with ``cfg.ddim_steps`` steps."""
        return DDIMSampler(self, self.cfg.ddim_steps)


def _errors(pred: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Each window's mean squared error [N] of a noise prediction."""
    return (pred - noise).pow(2).flatten(1).mean(1)


def paired_gap(new: torch.Tensor, old: torch.Tensor) -> tuple[float, float]:
    """The mean of per-window errors ``new - old`` and its standard error (0 for a single window)."""
    diff = (new - old).double()
    return float(diff.mean()), float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else 0.0


def ddim(schedule: NoiseSchedule, timesteps: list[int], x: torch.Tensor,
         eps: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """Deterministic DDIM from ``x`` over ``timesteps`` with the noise prediction ``eps(x, t)``; cuDNN in
    fp32, as :class:`Sampler` does (the first step scales the network's error ~1,300×)."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        for t, prev in zip(timesteps, [*timesteps[1:], -1]):
            x = schedule.ddim_step(x, eps(x, torch.full((len(x),), t, device=x.device)), t, prev)
    return x


class DDIMSampler:
    """Deterministic DDIM over a learner's (routed) noise prediction, with :class:`Sampler`'s
    ``sample`` signature, so a :class:`DiffusionPolicy` acts through it. Counts columns per window."""

    def __init__(self, learner: ImitationLearner, steps: int) -> None:
        self.learner, self.timesteps = learner, learner.schedule.ddim_timesteps(steps)
        self.routed = self.windows = 0

    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        cfg, schedule = self.learner.cfg.model, self.learner.schedule
        x = noise if noise is not None else torch.randn((len(obs), cfg.horizon, cfg.action_dim), generator=generator,
                                                      device=obs.device)
        routes: list[torch.Tensor] = []

        def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            noise, weights = self.learner.denoise(x, t, obs)
            routes.append(weights)
            return noise

        x = ddim(schedule, self.timesteps, x, eps)
        self.routed += int((routes[-1] > 0).sum())
        self.windows += len(obs)
        return x, torch.full((len(obs),), len(self.timesteps))
