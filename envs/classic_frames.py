"""Classic-control camera frames drawn with OpenCV straight from the simulator state.

Gymnasium draws CartPole, Acrobot, Pendulum and MountainCar with pygame on a 600x400 or 500x500
screen (and Pendulum reloads its arrow PNG every frame); a camera would then have to shrink that
picture every step. Drawing the same scene directly is 12-20x faster: step + 64x64 frame ran at
2.9k-6.2k steps/s painted against 180-340 steps/s with pygame + resize (2 shared cores, loaded).
Every shape uses gymnasium's screen units, sizes, colours and layout, and the screen is mapped onto
the square frame as `cv2.resize(env.render(), (F, F), interpolation=cv2.INTER_AREA)` maps it, so a
painted frame matches gymnasium's picture shrunk to F x F to within ~1-2 levels per pixel on average
(a test checks this).

Coordinates are in screen units with the origin bottom-left and y up, as in gymnasium's drawing code
before its final vertical flip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import gymnasium
import numpy as np
from gymnasium.envs.classic_control import (
    AcrobotEnv,
    CartPoleEnv,
    Continuous_MountainCarEnv,
    MountainCarEnv,
    PendulumEnv,
)

Color = tuple[int, int, int]
Points = Sequence[tuple[float, float]] | np.ndarray
Painter = Callable[[Any, int], np.ndarray]  # (unwrapped env, frame size) -> (F, F, 3) uint8

# Fractional bits of OpenCV's fixed-point coordinates: sub-pixel motion still changes the frame.
SHIFT = 4
# Frames are drawn this many times larger (a power of 2), then area-averaged down (see Canvas).
SUPERSAMPLE = 4

BLACK: Color = (0, 0, 0)
POLE: Color = (202, 152, 101)
AXLE: Color = (129, 132, 203)
LINK: Color = (0, 204, 204)
JOINT: Color = (204, 204, 0)
ROD: Color = (204, 77, 77)
WHEEL: Color = (128, 128, 128)
FLAG: Color = (204, 204, 0)


class Canvas:
    """A square RGB frame addressed in a gymnasium screen's units (origin bottom-left, y up).

    Shapes are drawn at SUPERSAMPLE times the frame size and area-averaged down, so that a pixel
    gets the share of it that a shape covers, as in gymnasium's big picture shrunk with INTER_AREA.
    (Anti-aliased drawing straight at the frame size widens every shape by about a pixel, which
    doubles a 1-pixel pole.)
    """

    def __init__(self, size: int, screen_width: float, screen_height: float) -> None:
        self._size = size
        fine = size * SUPERSAMPLE
        self._image = np.full((fine, fine, 3), 255, dtype=np.uint8)  # white
        self._sx = fine / screen_width
        self._sy = fine / screen_height
        one = 1 << SHIFT
        # screen (x, y) -> fixed-point pixel centre: (x * sx - 0.5, (height - y) * sy - 0.5)
        self._scale = np.array([self._sx, -self._sy]) * one
        self._offset = np.array([-0.5, screen_height * self._sy - 0.5]) * one

    def frame(self) -> np.ndarray:
        """The drawing as a (size, size, 3) uint8 RGB frame."""
        image = self._image
        while image.shape[0] > self._size:
            # 2x2 averages, repeated: the same pixels as one INTER_AREA step, ~3x faster for 4x
            half = (image.shape[1] // 2, image.shape[0] // 2)
            image = cv2.resize(image, half, interpolation=cv2.INTER_AREA)
        return image

    def _pixels(self, points: Points) -> np.ndarray:
        """Screen points (N, 2) -> OpenCV fixed-point pixel centres (N, 2) int32."""
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return np.rint(p * self._scale + self._offset).astype(np.int32)

    def polygon(self, points: Points, color: Color) -> None:
        cv2.fillPoly(self._image, [self._pixels(points)], color, cv2.LINE_AA, SHIFT)

    def disc(self, center: tuple[float, float], radius: float, color: Color) -> None:
        """A filled circle of `radius` screen units (an ellipse when the screen is not square)."""
        cx, cy = self._pixels([center])[0]
        axes = (round(radius * self._sx * (1 << SHIFT)), round(radius * self._sy * (1 << SHIFT)))
        cv2.ellipse(self._image, (int(cx), int(cy)), axes, 0, 0, 360, color, -1, cv2.LINE_AA, SHIFT)

    def line(self, points: Points, color: Color, width: float = 1.0) -> None:
        """An open polyline `width` screen units wide (at least one fine pixel)."""
        thickness = max(1, round(width * self._sx))
        pixels = [self._pixels(points)]
        cv2.polylines(self._image, pixels, False, color, thickness, cv2.LINE_AA, SHIFT)


def box(
    left: float, right: float, bottom: float, top: float, angle: float, origin: tuple[float, float]
) -> np.ndarray:
    """Corners (4, 2) of a rectangle rotated counter-clockwise by `angle` radians about the local
    origin, then moved to `origin`."""
    corners = np.array([(left, bottom), (left, top), (right, top), (right, bottom)], np.float64)
    return rotate(corners, angle) + np.asarray(origin, dtype=np.float64)


def rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Points (N, 2) rotated counter-clockwise by `angle` radians about (0, 0)."""
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def paint_cartpole(env: CartPoleEnv, size: int) -> np.ndarray:
    """Cart (black), pole (brown) on its axle (blue), and the track line; the pole leans right for
    positive angles."""
    width, height = env.screen_width, env.screen_height
    scale = width / (2 * env.x_threshold)
    x, _, theta, _ = (float(v) for v in env.state)
    cart_w, cart_h, pole_w = 50.0, 30.0, 10.0
    pole_len = scale * 2 * env.length
    cart = (x * scale + width / 2, 100.0)  # gymnasium keeps the cart's centre 100 units up
    axle = (cart[0], cart[1] + cart_h / 4)

    canvas = Canvas(size, width, height)
    canvas.polygon(box(-cart_w / 2, cart_w / 2, -cart_h / 2, cart_h / 2, 0.0, cart), BLACK)
    pole = box(-pole_w / 2, pole_w / 2, -pole_w / 2, pole_len - pole_w / 2, -theta, axle)
    canvas.polygon(pole, POLE)
    canvas.disc(axle, pole_w / 2, AXLE)
    canvas.line([(0.0, cart[1]), (width, cart[1])], BLACK)
    return canvas.frame()


def paint_acrobot(env: AcrobotEnv, size: int) -> np.ndarray:
    """Two links (cyan) hanging from a fixed joint, joints (yellow), and the line the tip must rise
    above; angles are zero when a link hangs straight down."""
    dim = env.SCREEN_DIM
    l1, l2 = env.LINK_LENGTH_1, env.LINK_LENGTH_2
    bound = l1 + l2 + 0.2
    scale = dim / (2 * bound)
    centre = dim / 2
    th1, th2 = float(env.state[0]), float(env.state[1])
    elbow = (centre + l1 * scale * np.sin(th1), centre - l1 * scale * np.cos(th1))

    canvas = Canvas(size, dim, dim)
    goal = centre + scale  # one link length above the fixed joint
    canvas.line([(centre - bound * scale, goal), (centre + bound * scale, goal)], BLACK)
    links = (((centre, centre), th1 - np.pi / 2, l1), (elbow, th1 + th2 - np.pi / 2, l2))
    for joint, angle, length in links:
        canvas.polygon(box(0.0, length * scale, -0.1 * scale, 0.1 * scale, angle, joint), LINK)
        canvas.disc(joint, 0.1 * scale, JOINT)
    return canvas.frame()


def paint_pendulum(env: PendulumEnv, size: int) -> np.ndarray:
    """The rod (red) from its axle (black), upright at angle zero, and an arrow for the last torque.

    Gymnasium shows the torque as a scaled picture of a circular arrow (clockwise for negative
    torque); here the arrow is drawn as an arc with a head, of the same size and direction."""
    dim = env.screen_dim
    scale = dim / 4.4  # gymnasium's view spans +-2.2 rod lengths
    centre = (dim // 2, dim // 2)
    theta = float(env.state[0])
    rod_w = 0.2 * scale
    tip = (centre[0] - scale * np.sin(theta), centre[1] + scale * np.cos(theta))

    canvas = Canvas(size, dim, dim)
    canvas.polygon(box(0.0, scale, -rod_w / 2, rod_w / 2, theta + np.pi / 2, centre), ROD)
    canvas.disc(centre, rod_w / 2, ROD)
    canvas.disc(tip, rod_w / 2, ROD)
    torque = 0.0 if env.last_u is None else float(env.last_u)
    if torque != 0.0:
        _torque_arrow(canvas, centre, scale * abs(torque) / 2, clockwise=torque < 0)
    canvas.disc(centre, 0.05 * scale, BLACK)
    return canvas.frame()


def _torque_arrow(
    canvas: Canvas, centre: tuple[float, float], extent: float, clockwise: bool
) -> None:
    """An arc of 3/4 turn from 12 o'clock with its head at 9 o'clock pointing up (clockwise), or its
    mirror image; `extent` is the side of gymnasium's arrow picture in screen units."""
    radius = 0.45 * extent
    arc = np.linspace(np.pi / 2, -np.pi, 24)
    head = np.array(
        [
            (np.cos(-np.pi - 0.45) * radius, np.sin(-np.pi - 0.45) * radius),
            (-(radius - 0.13 * extent), 0.0),
            (-(radius + 0.13 * extent), 0.0),
        ]
    )
    points = np.stack([np.cos(arc) * radius, np.sin(arc) * radius], axis=-1)
    mirror = np.array([1.0 if clockwise else -1.0, 1.0])
    canvas.line(points * mirror + centre, BLACK, width=0.036 * extent)
    canvas.polygon(head * mirror + centre, BLACK)


def paint_mountain_car(env: MountainCarEnv | Continuous_MountainCarEnv, size: int) -> np.ndarray:
    """The hill curve, the car (black, wheels grey) tilted with the slope, and the goal flag."""
    width, height = env.screen_width, env.screen_height
    lo, hi = env.min_position, env.max_position
    scale = width / (hi - lo)
    pos = float(env.state[0])
    xs = np.linspace(lo, hi, 100)
    car_w, car_h, clearance = 40.0, 20.0, 10.0
    base = ((pos - lo) * scale, clearance + _hill(pos) * scale)
    tilt = np.cos(3 * pos)  # gymnasium's tilt, in radians
    flag_x = (env.goal_position - lo) * scale
    flag_low = _hill(env.goal_position) * scale
    flag_top = flag_low + 50

    canvas = Canvas(size, width, height)
    canvas.line(np.stack([(xs - lo) * scale, _hill(xs) * scale], axis=-1), BLACK)
    canvas.polygon(box(-car_w / 2, car_w / 2, 0.0, car_h, tilt, base), BLACK)
    for wheel in rotate(np.array([(car_w / 4, 0.0), (-car_w / 4, 0.0)]), tilt) + base:
        canvas.disc((wheel[0], wheel[1]), car_h / 2.5, WHEEL)
    canvas.line([(flag_x, flag_low), (flag_x, flag_top)], BLACK)
    canvas.polygon([(flag_x, flag_top), (flag_x, flag_top - 10), (flag_x + 25, flag_top - 5)], FLAG)
    return canvas.frame()


def _hill(x: float | np.ndarray) -> float | np.ndarray:
    """MountainCar's track height at position `x`."""
    return np.sin(3 * x) * 0.45 + 0.55


# Subclasses share their parent's painter: Continuous_MountainCarEnv is not a MountainCarEnv.
PAINTERS: tuple[tuple[type, Painter], ...] = (
    (CartPoleEnv, paint_cartpole),
    (AcrobotEnv, paint_acrobot),
    (PendulumEnv, paint_pendulum),
    (MountainCarEnv, paint_mountain_car),
    (Continuous_MountainCarEnv, paint_mountain_car),
)


def painter_for(env: gymnasium.Env) -> Painter | None:
    """The OpenCV painter for `env` (an unwrapped env), or None when it has none."""
    for env_type, paint in PAINTERS:
        if isinstance(env, env_type):
            return paint
    return None
