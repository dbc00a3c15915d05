"""DDIM sampling on a GPU as replays of CUDA graphs: the step's stem, the body, the step's head and update.

A chunk of 16 DDIM steps is ~1,500 small kernels; launched one by one from Python they take longer
than they run (29 ms for 64 chunks on an H200, all of it launch overhead). Captured once per batch
size as three kinds of graph per step — ``enter[i]`` (condition and stem of step i), ``body`` and
``leave[i]`` (head and DDIM update of step i) — a step costs a few graph launches, and the step cache
still decides between them on the host: the body's graph is replayed when any sample of the batch
refreshes, and samples that did not refresh keep their cached residual (``torch.where``), so every
sample's chunk is the one the eager sampler gives it. Graphs read and write fixed buffers (``x``,
``obs``, ``h``, ``m``, ``cond``, ``r``); callers copy in and copy out.
"""

from __future__ import annotations

import torch

from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.unet import Denoiser


class StepGraphs:
    """The captured graphs of one batch size and one list of DDIM levels."""

    def __init__(self, model: Denoiser, schedule: NoiseSchedule, timesteps: list[int], batch: int,
                 device: torch.device) -> None:
        cfg = model.cfg
        self.x = torch.zeros((batch, cfg.horizon, cfg.action_dim), device=device)
        self.obs = torch.zeros((batch, cfg.obs_dim * cfg.obs_horizon), device=device)
        levels = [torch.full((batch,), t, device=device, dtype=torch.float32) for t in timesteps]
        cond = model.condition(levels[0], self.obs)
        h, m = model.enter(self.x, cond)
        self.cond, self.h, self.m = cond.clone(), h.clone(), m.clone()
        self.r = model.body(self.m, self.cond)
        self.r_new = self.r.clone()
        self.pool = torch.cuda.graph_pool_handle()

        def enter(i: int) -> None:
            c = model.condition(levels[i], self.obs)
            h, m = model.enter(self.x, c)
            self.cond.copy_(c)
            self.h.copy_(h)
            self.m.copy_(m)

        def body() -> None:
            self.r_new.copy_(model.body(self.m, self.cond))

        def leave(i: int) -> None:
            t_prev = timesteps[i + 1] if i + 1 < len(timesteps) else -1
            self.x.copy_(schedule.ddim_step(self.x, model.leave(self.h, self.r), timesteps[i], t_prev))

        self.enter = [self._capture(lambda i=i: enter(i)) for i in range(len(timesteps))]
        self.body = self._capture(body)
        self.leave = [self._capture(lambda i=i: leave(i)) for i in range(len(timesteps))]

    def _capture(self, fn) -> torch.cuda.CUDAGraph:
        """``fn``'s kernels as a graph (after warm-up runs on a side stream, as CUDA graphs need)."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        saved = self.x.clone()
        with torch.cuda.stream(side):
            for _ in range(2):
                fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            fn()
        self.x.copy_(saved)
        return graph
