"""DDIM sampling with a step cache as a few CUDA graphs, for one batch size.

On a GPU a small denoiser is launch-bound: an eager DDIM-16 chunk is ~1,500 kernel launches, and at
batch 64 the launches, not the arithmetic, take the time. Here the loop is recorded once as graphs
and replayed per chunk. The cache's choice is data-dependent, so the loop is cut at every step whose
choice is not fixed (not the first, not the last, not NoCache): one graph runs up to that step's
decision, the host reads "does any sample refresh?", and the next graph is the variant that runs the
body (then every sample that asked for it takes the new residual, the others keep theirs) or the one
that skips it. A sample's result is the eager sampler's, up to rounding: the body just runs on the
whole batch instead of on the refreshing subset.

Every tensor one graph hands to the next (the chunk, the stem's features, the residual, the mask, the
cache's state) is written in place into memory fixed before or at the first graph, so the variants
that were recorded but not taken leave nothing stale behind. With ``capture=False`` the same program
runs eagerly: that is how the CPU tests hold it to the eager sampler.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.step_cache import NoCache, StepCache
from agent.policy.diffusion.unet import Denoiser

Piece = Callable[[], None]


class GraphedSampler:
    """DDIM over ``timesteps`` for exactly ``batch`` chunks; ``times[i]`` are step i's time features
    (batch, time_dim), ``cache`` a fresh step cache this sampler owns."""

    def __init__(self, model: Denoiser, schedule: NoiseSchedule, timesteps: list[int], times: list[torch.Tensor],
                 cache: StepCache, batch: int, capture: bool = True) -> None:
        cfg, device = model.cfg, times[0].device
        self.model, self.schedule, self.ts, self.times, self.cache = model, schedule, timesteps, times, cache
        width = cfg.down_dims[0]
        self.obs = torch.zeros(batch, cfg.obs_dim * cfg.obs_horizon, device=device)
        self.x = torch.zeros(batch, cfg.horizon, cfg.action_dim, device=device)
        self.h = torch.zeros(batch, width, cfg.horizon, device=device)
        self.m = torch.zeros_like(self.h)
        self.residual = torch.zeros_like(self.h)
        self.run = torch.ones(batch, dtype=torch.bool, device=device)
        self.any = torch.ones((), dtype=torch.bool, device=device)
        self.nfe = torch.zeros(batch, dtype=torch.long, device=device)
        self.segments = self._program()
        self.graphs: list[list[torch.cuda.CUDAGraph]] | None = None
        if capture:
            self._capture()

    def _fixed(self, i: int) -> bool:
        """Whether step ``i``'s choice is known before the data: every step refreshes there."""
        return isinstance(self.cache, NoCache) or i in (0, len(self.ts) - 1)

    def _program(self) -> list[list[list[Piece]]]:
        """The loop cut at each open decision: segment 0 has one variant; each later segment has two,
        [with the body, without], for the decision that ends the segment before it."""
        segments: list[list[list[Piece]]] = [[[self._reset, self._decide(0)]]]
        for i in range(len(self.ts)):
            if self._fixed(i):
                for variant in segments[-1]:
                    variant.append(self._finish(i, True))
            else:
                segments.append([[self._finish(i, True)], [self._finish(i, False)]])
            if i + 1 < len(self.ts):
                for variant in segments[-1]:
                    variant.append(self._decide(i + 1))
        return segments

    def _reset(self) -> None:
        self.nfe.zero_()

    def _decide(self, i: int) -> Piece:
        def piece() -> None:
            cond = torch.cat([self.times[i], self.obs], dim=-1)
            h, m = self.model.enter(self.x, cond)
            run = self.cache.refresh(i, self.ts[i], self.x, m)
            self.h.copy_(h)
            self.m.copy_(m)
            self.run.copy_(run)
            self.nfe.add_(run)
            torch.any(run, out=self.any)
        return piece

    def _finish(self, i: int, body: bool) -> Piece:
        t, t_next = self.ts[i], self.ts[i + 1] if i + 1 < len(self.ts) else -1

        def piece() -> None:
            if body:
                r = self.model.body(self.m, torch.cat([self.times[i], self.obs], dim=-1))
                self.residual.copy_(torch.where(self.run[:, None, None], r, self.residual))
            eps = self.model.leave(self.h, self.residual)
            self.x.copy_(self.schedule.ddim_step(self.x, eps, t, t_next))
        return piece

    def _capture(self) -> None:
        """Warm up on a side stream (cuDNN picks its kernels, lazy state is made), then record each
        variant into its own graph and memory pool."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                self._run_eager()
        torch.cuda.current_stream().wait_stream(side)
        self.cache.start(self.x.shape[0], len(self.ts))  # the first graph makes the cache's state
        self.graphs = []
        for segment in self.segments:
            recorded = []
            for variant in segment:
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for piece in variant:
                        piece()
                recorded.append(graph)
            self.graphs.append(recorded)

    def _run_eager(self) -> None:
        self.cache.start(self.x.shape[0], len(self.ts))
        for k, segment in enumerate(self.segments):
            for piece in segment[0 if k == 0 or bool(self.any) else 1]:
                piece()

    @torch.inference_mode()
    def sample(self, obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks from initial ``noise`` for observation windows ``obs`` (exactly ``batch`` rows) and
        the body evaluations each took, as new tensors (the buffers are reused by the next call)."""
        self.obs.copy_(obs)
        self.x.copy_(noise)
        if self.graphs is None:
            self._run_eager()
        else:
            for k, graphs in enumerate(self.graphs):
                graphs[0 if k == 0 or bool(self.any) else 1].replay()
        return self.x.clone(), self.nfe.clone()
