"""Perception: the percept encoder the agent runs today (``encoder.py``) and the streaming captioner
(``captioner.py``, trained by ``train.py``, run live by ``live.py``).

Only the encoder is imported here: the captioner pulls in triton, which must not load after MuJoCo's
EGL renderer in one process (see ``kernels/__init__.py``), and ``thalamus run`` renders a probe frame
before it imports the agent.
"""

from agent.perception.encoder import PerceptionConfig, PerceptionModel

__all__ = ["PerceptionConfig", "PerceptionModel"]
