"""SenCache's offline table: how fast the denoiser body's output moves with its input and its noise level.

For every noise level t, over training windows (x0 from demonstrations, fresh noise):

- ‖J_x‖ ≈ ‖r(x', t) − r(x_t, t)‖ / ‖x' − x_t‖, with x' one DDIM step of the given stride from x_t
  (the direction a sampler actually moves in, as SenCache measures it);
- ‖J_t‖ ≈ ‖r(x_t, t ± 1) − r(x_t, t)‖ (one level);
- ‖r‖, the output's own mean norm, which SenCache's threshold is relative to here.

``r`` is the body's output (what the cache reuses); norms are L2 over a chunk, averaged over windows.
"""

from __future__ import annotations

import torch

from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.step_cache import Sensitivity
from agent.policy.diffusion.unet import Denoiser


@torch.no_grad()
def estimate_sensitivity(model: Denoiser, schedule: NoiseSchedule, obs: torch.Tensor, actions: torch.Tensor,
                         stride: int, generator: torch.Generator | None = None) -> Sensitivity:
    """The table for ``model`` over windows ``obs`` (N, O·S) and clean chunks ``actions`` (N, H, A)."""
    n = obs.shape[0]
    j_x, j_t, r_norm = (torch.zeros(schedule.levels) for _ in range(3))

    def body(x: torch.Tensor, level: float) -> torch.Tensor:
        cond = model.condition(torch.full((n,), level, device=obs.device), obs)
        return model.body(model.enter(x, cond)[1], cond)

    for t in range(schedule.levels):
        noise = torch.randn(actions.shape, generator=generator, device=actions.device)
        x = schedule.add_noise(actions, noise, torch.full((n,), t, dtype=torch.long, device=actions.device))
        r = body(x, t)
        cond = model.condition(torch.full((n,), t, device=obs.device), obs)
        h, m = model.enter(x, cond)
        x_next = schedule.ddim_step(x, model.leave(h, r), t, max(t - stride, -1))
        moved = (x_next - x).flatten(1).norm(dim=1).clamp_min(1e-8)
        j_x[t] = ((body(x_next, t) - r).flatten(1).norm(dim=1) / moved).mean()
        other = t - 1 if t == schedule.levels - 1 else t + 1
        j_t[t] = (body(x, other) - r).flatten(1).norm(dim=1).mean()
        r_norm[t] = r.flatten(1).norm(dim=1).mean()
    return Sensitivity(j_x, j_t, r_norm)
