"""How to make an env beyond its id, frame size and seed: the options some kinds of env take."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvOptions:
    """Options of `envs.make`; each applies to one kind of env and is refused by the others."""

    camera: str | None = None  # Meta-World: the camera the frames come from (None: envs.metaworld.DEFAULT_CAMERA)
    full_episodes: bool = False  # Meta-World: run every episode its full 500 steps instead of ending it on success
    robot_config: str | None = None  # robot:MODULE:CLASS: the robot's config, JSON text or a .json file
    control_hz: float = 30.0  # robot:MODULE:CLASS: steps a second the robot is driven at
    frames: bool = True  # False: nothing is rendered and every frame is black (for a policy that reads the state only)
