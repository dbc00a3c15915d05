"""Process set-up for rendering without a display: one function, `configure()`, called first on
every entry path.

    >>> from envs.headless import configure
    >>> configure()  # before anything imports cv2, pygame, mujoco or renders a frame

It does two things, each of which must happen before a library loads:

- **Headless defaults** (`HEADLESS_DEFAULTS`): MuJoCo renders offscreen through EGL, pygame uses
  SDL's dummy video driver and prints no banner, OpenCV logs errors only (it reads its level when
  `cv2` is imported). Each is a default: a variable already set in the environment wins.
- **triton before MuJoCo's EGL.** triton bundles its own LLVM; loaded after Mesa's llvmpipe (which
  MuJoCo's EGL rendering pulls in) it segfaults. Importing triton first makes either order of later
  use safe. Skipped when triton is not installed. `TRITON_INTERPRET` is the caller's choice (the
  tests set it before calling this).

Callers: `launch/cli.py` (the `thalamus` command), `tests/conftest.py`, the `benchmarks/` scripts, and
`envs/__init__.py`, so any process that imports `envs` to make an env (a Ray worker too, on a cluster
started without these variables) is set up before `cv2` or `mujoco` load. Child processes inherit
the variables. Calling it again changes nothing.
"""

from __future__ import annotations

import os

HEADLESS_DEFAULTS: tuple[tuple[str, str], ...] = (
    ("MUJOCO_GL", "egl"),
    ("SDL_VIDEODRIVER", "dummy"),
    ("PYGAME_HIDE_SUPPORT_PROMPT", "1"),
    ("OPENCV_LOG_LEVEL", "ERROR"),
)


def configure() -> None:
    """Set the headless defaults (unless already set) and import triton if it is installed.

    Idempotent and cheap after the first call; call it before anything renders or imports cv2.
    """
    for key, value in HEADLESS_DEFAULTS:
        os.environ.setdefault(key, value)
    try:
        import triton  # noqa: F401  (loaded before Mesa's llvmpipe: see the module docstring)
    except ImportError:
        pass
