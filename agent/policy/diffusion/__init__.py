"""A diffusion action policy (Diffusion Policy's conditional U-Net over action chunks) with step caching.

config.py the settings · unet.py the denoiser (stem, body, head) · noise.py the schedule and DDPM/DDIM
steps · step_cache.py SeaCache and SenCache · sampler.py the sampling loop · sensitivity.py SenCache's
offline table · data.py demonstrations → windows · train.py the training loop · policy.py acting on
a batch of envs · rollout.py lockstep episodes.
"""

from agent.policy.diffusion.config import DiffusionConfig
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy, PolicyFileError
from agent.policy.diffusion.sampler import Sampler, SamplerConfig

__all__ = ["DiffusionCheckpoint", "DiffusionConfig", "DiffusionPolicy", "PolicyFileError", "Sampler", "SamplerConfig"]
