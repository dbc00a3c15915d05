"""The learner: for now an MLP world model trained off the hot path (the columns come later)."""

from agent.learner.world_model import LearnerConfig, WorldModel, WorldModelTrainer

__all__ = ["LearnerConfig", "WorldModel", "WorldModelTrainer"]
