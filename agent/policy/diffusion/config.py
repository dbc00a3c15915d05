"""The diffusion policy's settings: the denoiser's shape, the horizons and the noise schedule.

Horizons and the 100 training noise levels are Diffusion Policy's (Chi et al. 2023, every config):
look at the last 2 observations, predict 16 actions, execute the first 8, then plan again. The
U-Net is much smaller than its low-dim config's (widths [256, 512, 1024] and two blocks a level
there; [32, 64] and one here): on two CPU cores each layer costs tens of microseconds however small,
and a chunk of denoising steps has to fit a 30 Hz control period.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class DiffusionConfig:
    """What a checkpoint's network and sampler are; stored in the checkpoint and read back from it."""

    obs_dim: int = 39  # the state's length (Meta-World's 39 floats)
    action_dim: int = 4  # Meta-World's Sawyer: xyz of the hand and the gripper, in [-1, 1]
    obs_horizon: int = 2  # observations the policy conditions on (this one and the one before)
    horizon: int = 16  # actions predicted per chunk (a multiple of 4: the U-Net halves it twice)
    n_action: int = 8  # actions executed per chunk before planning again
    levels: int = 100  # DDPM noise levels trained on
    down_dims: tuple[int, ...] = (32, 64)  # U-Net widths, one level each
    blocks: int = 1  # FiLM blocks per U-Net level (Diffusion Policy: 2; one halves a chunk's CPU time)
    kernel: int = 5  # temporal convolution width
    time_dim: int = 64  # the noise level's embedding
    groups: int = 8  # GroupNorm groups

    def validate(self) -> None:
        """ValueError (one line) for a config no network can be built from."""
        if self.horizon % 2 ** (len(self.down_dims) - 1):
            raise ValueError(f"horizon {self.horizon} must halve {len(self.down_dims) - 1} times (down_dims "
                             f"{self.down_dims})")
        if not 1 <= self.n_action <= self.horizon:
            raise ValueError(f"n_action must be 1..horizon ({self.horizon}), got {self.n_action}")
        if self.blocks < 1:
            raise ValueError(f"blocks must be at least 1, got {self.blocks}")
        if self.obs_horizon < 1 or self.levels < 2:
            raise ValueError(f"obs_horizon must be >= 1 and levels >= 2, got {self.obs_horizon} and {self.levels}")
        if any(d % self.groups for d in self.down_dims):
            raise ValueError(f"every width in {self.down_dims} must divide into {self.groups} groups")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiffusionConfig:
        known = {f.name for f in fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
        return cls(**values)


@dataclass(frozen=True)
class PolicyTrainConfig:
    """`thalamus train policy`'s settings (its flags and defaults)."""

    steps: int = 4000  # optimizer steps
    batch: int = 256  # windows per step
    lr: float = 1e-3  # peak learning rate (after 200 warm-up steps, cosine to 0)
    ema: float = 0.999  # the EMA's decay (ramped up from 0 over the first steps)
    held_out: float = 0.1  # share of episodes held out for scoring
    seed: int = 0
    device: str = "cpu"
    eval_episodes: int = 10  # rollouts at the end (0: none)
    eval_steps: int = 16  # DDIM steps of those rollouts
    task: str | None = None  # the task to learn when the data holds several
    model: DiffusionConfig = field(default_factory=DiffusionConfig)

    def validate(self) -> None:
        if self.steps < 1 or self.batch < 1:
            raise ValueError(f"--steps and --batch must be positive, got {self.steps} and {self.batch}")
        if not 0 <= self.held_out < 1:
            raise ValueError(f"--held-out must be in [0, 1), got {self.held_out}")
        if self.eval_episodes < 0:
            raise ValueError(f"--eval-episodes must not be negative, got {self.eval_episodes}")
        self.model.validate()
