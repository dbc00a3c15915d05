"""SimArm: a simulated three-joint arm with a camera behind LeRobot's robot interface, for trying the
robot bridge (`envs.robot`) without hardware.

    >>> arm = SimArm()
    >>> arm.connect()
    >>> sorted(arm.get_observation())
    ['elbow_flex.pos', 'front', 'shoulder_lift.pos', 'shoulder_pan.pos']
    >>> arm.send_action({"shoulder_pan.pos": 5.0, "shoulder_lift.pos": 0.0, "elbow_flex.pos": 0.0})
    {'shoulder_pan.pos': 1.9, 'shoulder_lift.pos': 0.0, 'elbow_flex.pos': 0.0}
    >>> arm.disconnect()

or ``thalamus run --env robot:envs.sim_arm:SimArm``.

What makes it behave like a real arm rather than a Gymnasium env:

- **It runs in wall-clock time.** The physics (MuJoCo, 2 ms steps) advances by the time that passed
  since the last call, as a real arm keeps moving between commands; a pause of more than
  `MAX_CATCH_UP_S` is skipped rather than simulated.
- **Position control with limits.** Actions are joint position goals in radians (names and limits in
  `JOINTS`, the names of an SO-101 arm's first three motors); `send_action` clips them to the joint
  limits and returns what it applied, as LeRobot's `send_action` returns what was really sent.
- **Latency.** Each servo-bus read or write sleeps `bus_latency_s`, each camera capture
  `camera_latency_s` (defaults: 2 ms and 4 ms, about what a Feetech bus and a USB camera take).
- **Failures on request**, for tests: ``stop_answering_after=N`` makes every `get_observation` after
  the N-th hang (until `disconnect`, as closing a port unblocks a read), like an arm whose cable came
  out; ``disconnect_file`` is a path that gets a line appended at each `disconnect`, so a test (in this
  process or another) can see that the arm was let go.

The camera ``"front"`` is rendered offscreen with `mujoco.Renderer` (EGL without a display; see
`envs.headless`), without shadows or multisampling. Its OpenGL context stays current on the thread
that connected, so read the arm from that thread only (`envs.robot.RobotEnv` makes every call on its
one robot thread). `disconnect` may come from another thread (RobotEnv's, after a call timed out): all
MuJoCo calls hold one lock, so it never frees the renderer while it draws.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

# name -> (low, high) joint limits in radians
JOINTS: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.9, 1.9),
    "shoulder_lift": (-1.7, 1.7),
    "elbow_flex": (-1.6, 1.6),
}
CAMERA = "front"
CAMERA_SHAPE: tuple[int, int, int] = (96, 128, 3)  # (H, W, 3), a small USB camera's 4:3 picture
MAX_CATCH_UP_S = 0.25  # a longer gap between calls (a paused run) is skipped, not simulated

MJCF = f"""
<mujoco model="sim_arm">
  <compiler angle="radian"/>
  <option timestep="0.002"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient=".35 .35 .35"/>
    <global offwidth="{CAMERA_SHAPE[1]}" offheight="{CAMERA_SHAPE[0]}"/>
  </visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".25 .3 .35" rgb2=".35 .4 .45" width="64" height="64"/>
    <material name="grid" texture="grid" texrepeat="6 6"/>
  </asset>
  <default>
    <joint damping="2" armature="0.01"/>
    <geom type="capsule" size="0.025" rgba=".9 .55 .15 1" contype="0" conaffinity="0"/>
    <position kp="30"/>
  </default>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1" castshadow="false"/>
    <geom name="floor" type="plane" size="1 1 0.05" material="grid"/>
    <geom name="target" type="sphere" size="0.03" pos="0.25 0.15 0.03" rgba=".2 .8 .3 1"/>
    <body name="base" pos="0 0 0.04">
      <geom type="cylinder" size="0.06 0.04" rgba=".25 .25 .25 1"/>
      <body name="turret" pos="0 0 0.04">
        <joint name="shoulder_pan" axis="0 0 1" range="{JOINTS['shoulder_pan'][0]} {JOINTS['shoulder_pan'][1]}"/>
        <geom type="cylinder" size="0.035 0.02" rgba=".3 .3 .3 1"/>
        <body name="upper_arm" pos="0 0 0.02">
          <joint name="shoulder_lift" axis="0 1 0" range="{JOINTS['shoulder_lift'][0]} {JOINTS['shoulder_lift'][1]}"/>
          <geom fromto="0 0 0 0 0 0.22"/>
          <body name="forearm" pos="0 0 0.22">
            <joint name="elbow_flex" axis="0 1 0" range="{JOINTS['elbow_flex'][0]} {JOINTS['elbow_flex'][1]}"/>
            <geom fromto="0 0 0 0.18 0 0" size="0.02" rgba=".95 .7 .3 1"/>
            <geom name="gripper" type="box" pos="0.19 0 0" size="0.015 0.03 0.015" rgba=".2 .2 .2 1"/>
          </body>
        </body>
      </body>
    </body>
    <camera name="{CAMERA}" pos="0.55 -0.3 0.4" mode="targetbody" target="upper_arm"/>
  </worldbody>
  <actuator>
    {"".join(f'<position name="{j}" joint="{j}" ctrlrange="{lo} {hi}"/>' for j, (lo, hi) in JOINTS.items())}
  </actuator>
</mujoco>
"""


class SimArm:
    """A simulated three-joint arm with a front camera, with LeRobot's `Robot` interface.

    ## Features

    | name                  | type          | what                                   |
    |-----------------------|---------------|----------------------------------------|
    | `"shoulder_pan.pos"`  | `float`       | joint position, radians (also actions) |
    | `"shoulder_lift.pos"` | `float`       | joint position, radians (also actions) |
    | `"elbow_flex.pos"`    | `float`       | joint position, radians (also actions) |
    | `"front"`             | `(96, 128, 3)`| RGB uint8 camera picture (observations)|

    Args:
        bus_latency_s: seconds each servo-bus read (in `get_observation`) or write (`send_action`) takes.
        camera_latency_s: seconds each camera capture takes.
        stop_answering_after: after this many `get_observation` calls, the next ones hang until
            `disconnect` (None: never).
        disconnect_file: a path that gets the line ``disconnected`` appended at each `disconnect`.
    """

    name = "sim_arm"

    def __init__(self, bus_latency_s: float = 0.002, camera_latency_s: float = 0.004,
                 stop_answering_after: int | None = None, disconnect_file: str | None = None) -> None:
        if bus_latency_s < 0 or camera_latency_s < 0:
            raise ValueError(f"latencies must be >= 0 seconds, got bus_latency_s={bus_latency_s}, "
                             f"camera_latency_s={camera_latency_s}")
        self.bus_latency_s, self.camera_latency_s = bus_latency_s, camera_latency_s
        self.stop_answering_after = stop_answering_after
        self.disconnect_file = Path(disconnect_file) if disconnect_file is not None else None
        self.observations = 0  # get_observation calls so far
        self._lock = threading.Lock()  # held by every MuJoCo call
        self._released = threading.Event()  # set by disconnect: a hung read gives up
        self._model: mujoco.MjModel | None = None
        self._data: mujoco.MjData | None = None
        self._renderer: mujoco.Renderer | None = None
        self._sim_clock = 0.0  # the wall-clock time (perf_counter) the physics has reached

    def __str__(self) -> str:
        return f"SimArm({', '.join(JOINTS)})"

    # -- LeRobot's Robot interface -----------------------------------------------------------------
    @property
    def observation_features(self) -> dict[str, type | tuple[int, ...]]:
        return {**{f"{j}.pos": float for j in JOINTS}, CAMERA: CAMERA_SHAPE}

    @property
    def action_features(self) -> dict[str, type]:
        return {f"{j}.pos": float for j in JOINTS}

    @property
    def is_connected(self) -> bool:
        return self._renderer is not None

    @property
    def is_calibrated(self) -> bool:
        return True  # a simulated arm's encoders are exact

    def calibrate(self) -> None:
        """Nothing to calibrate in simulation."""

    def configure(self) -> None:
        """Nothing to configure in simulation."""

    def connect(self, calibrate: bool = True) -> None:
        """Build the MuJoCo model and the camera's renderer; the arm starts at rest, all joints at 0."""
        if self.is_connected:
            raise ConnectionError(f"{self} is already connected")
        with self._lock:
            self._model = mujoco.MjModel.from_xml_string(MJCF)
            self._data = mujoco.MjData(self._model)
            mujoco.mj_forward(self._model, self._data)
            self._renderer = mujoco.Renderer(self._model, height=CAMERA_SHAPE[0], width=CAMERA_SHAPE[1])
            self._released.clear()
            self._sim_clock = time.perf_counter()

    def get_observation(self) -> dict[str, Any]:
        """Joint positions (radians) and the front camera's picture, after the physics caught up."""
        self._check_connected()
        self.observations += 1
        if self.stop_answering_after is not None and self.observations > self.stop_answering_after:
            self._released.wait()
            raise ConnectionError(f"{self} was disconnected while a read hung")
        time.sleep(self.bus_latency_s + self.camera_latency_s)  # the bus read, then the camera's frame
        with self._lock:
            self._check_connected()
            self._advance()
            obs: dict[str, Any] = {f"{j}.pos": float(self._data.joint(j).qpos[0]) for j in JOINTS}
            self._renderer.update_scene(self._data, camera=CAMERA)
            obs[CAMERA] = self._renderer.render().copy()
        return obs

    def send_action(self, action: dict[str, Any]) -> dict[str, float]:
        """Set each joint's position goal, clipped to its limits; returns the goals applied."""
        self._check_connected()
        missing = [f"{j}.pos" for j in JOINTS if f"{j}.pos" not in action]
        if missing:
            raise ValueError(f"{self}: the action lacks {', '.join(missing)}")
        sent = {f"{j}.pos": float(np.clip(float(action[f"{j}.pos"]), lo, hi)) for j, (lo, hi) in JOINTS.items()}
        time.sleep(self.bus_latency_s)
        with self._lock:
            self._check_connected()
            self._advance()
            for j in JOINTS:
                self._data.actuator(j).ctrl[0] = sent[f"{j}.pos"]
        return sent

    def disconnect(self) -> None:
        """Free the renderer and the model, let go of a hung read, and append to `disconnect_file`."""
        self._check_connected()
        self._released.set()
        with self._lock:
            self._renderer.close()
            self._renderer = self._model = self._data = None
        if self.disconnect_file is not None:
            with self.disconnect_file.open("a") as f:
                f.write("disconnected\n")

    # -- simulation -------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Step the physics up to now (lock held): a real arm moves between calls too."""
        now = time.perf_counter()
        self._sim_clock = max(self._sim_clock, now - MAX_CATCH_UP_S)
        dt = self._model.opt.timestep
        n = int((now - self._sim_clock) / dt)
        if n:
            mujoco.mj_step(self._model, self._data, nstep=n)
        self._sim_clock += n * dt

    def _check_connected(self) -> None:
        if not self.is_connected:
            raise ConnectionError(f"{self} is not connected; call connect() first")
