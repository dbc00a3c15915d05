"""Errors raised when an environment cannot be made or cannot show its camera.

Each message is one line that names the environment and the fix, so a user never needs the
traceback to know what went wrong.
"""

from __future__ import annotations


class EnvNotFoundError(ValueError):
    """The id is not registered with Gymnasium; the message names the closest registered ids (or the
    supported ones) and `thalamus envs`. Bad input: the CLI exits 2 on it, as on a bad flag."""


class EnvUnavailableError(RuntimeError):
    """The id is registered but cannot run here: an extra is missing, or no renderer starts."""


class RobotError(EnvUnavailableError):
    """A robot (`envs.robot`) failed to connect, stopped answering within its timeout, or raised; the
    message names the robot, the call and what to check. An EnvUnavailableError, so the CLI prints it
    as its one line."""


def one_line(error: BaseException) -> str:
    """`error`'s message squeezed onto one line (Gymnasium's and MuJoCo's may span several)."""
    text = " ".join(str(error).split())
    return text or type(error).__name__
