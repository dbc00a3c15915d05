"""Perception: turns frames and state vectors into percept vectors (the captioner comes later)."""

from agent.perception.encoder import PerceptionConfig, PerceptionModel

__all__ = ["PerceptionConfig", "PerceptionModel"]
