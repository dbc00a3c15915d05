"""Perception: the percept encoder the agent runs today (``encoder.py``) and the streaming captioner
(``captioner.py``, trained by ``train.py``, run live by ``live.py``).

Only the encoder is imported here: the captioner pulls in triton, which a process needs only when it
captions (the import order with MuJoCo's renderer is envs/headless.py's job).
"""

from agent.config import PerceptionConfig
from agent.perception.encoder import PerceptionModel

__all__ = ["PerceptionConfig", "PerceptionModel"]
