"""The learner: a world model trained off the hot path, by default trc (thalamically routed cortical
columns with cache and spectral memories, `trc.py`, run as a world model by `continual_world.py`),
else a replay-trained MLP (`world_model.py`); the LearnerActor that trains it (`actor.py`); the
forgetting report (`forgetting.py`) and the scoring of a finished task-sequence run (`scoring.py`).
"""

from agent.config import LearnerConfig
from agent.learner.world_model import WorldModel, WorldModelTrainer

__all__ = ["LearnerConfig", "WorldModel", "WorldModelTrainer"]
