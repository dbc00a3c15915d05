"""Meta-World step + 64×64 frame: MuJoCo's default render settings against ours, in one process.

    python benchmarks/metaworld_render.py                      # pick-place-v3, 200 steps each, 3 rounds
    python benchmarks/metaworld_render.py --task reach-v3 --json out.json

Both envs are Meta-World's own (`Meta-World/MT1`, camera corner2, 64×64); ours is `envs.make`, which
turns multisampling, shadows and reflections off before the first render (`envs.mujoco_render`).
Each measures random-action steps with a frame rendered every step, after `WARM_UP` steps; the
two alternate, three times, and the table gives steps/s and the ratio ours/default.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first

import gymnasium  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402


WARM_UP = 60  # steps before the clock starts: llvmpipe compiles its shaders during the first renders


def _default_env(task: str, size: int) -> gymnasium.Env:
    import metaworld  # noqa: F401  (registers Meta-World/MT1)

    return gymnasium.make("Meta-World/MT1", env_name=task, seed=0, render_mode="rgb_array", camera_name="corner2",
                          width=size, height=size, disable_env_checker=True)


def steps_per_s(env: gymnasium.Env, steps: int, render: bool) -> float:
    """Random-action steps a second, rendering a frame each step when ``render`` (ours renders in step)."""
    env.reset(seed=0)
    for i in range(steps + WARM_UP):
        if i == WARM_UP:
            start = time.perf_counter()
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if render:
            env.render()
        if terminated or truncated:
            env.reset()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="pick-place-v3", help="a Meta-World v3 task")
    parser.add_argument("--steps", type=int, default=200, help="measured steps per env and round")
    parser.add_argument("--frame-size", type=int, default=64, help="frame side in pixels")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    default = _default_env(args.task, args.frame_size)
    ours = envs.make(f"Meta-World/{args.task}", frame_size=args.frame_size, seed=0)
    rounds = [{"default": steps_per_s(default, args.steps, render=True),
               "ours": steps_per_s(ours, args.steps, render=False)} for _ in range(3)]
    default.close()
    ours.close()
    result = {"task": args.task, "frame_size": args.frame_size, "steps": args.steps, "rounds": rounds,
              "ratio": [r["ours"] / r["default"] for r in rounds], "machine": platform.node(),
              "cpus": __import__("os").cpu_count()}
    for i, r in enumerate(rounds):
        print(f"round {i + 1}: default {r['default']:6.1f} steps/s   ours {r['ours']:6.1f} steps/s   "
              f"ours/default {r['ours'] / r['default']:.1f}x")
    print(f"median ratio {np.median(result['ratio']):.1f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
