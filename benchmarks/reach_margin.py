"""How close to failing reach-v3's scripted expert succeeds: Meta-World counts reach a success while
the gripper's centre is within 5 cm of the goal, and the expert steers the hand (the observed
position, above that centre) onto the goal. Played past its first success, where does it settle?

    python benchmarks/reach_margin.py --episodes 20

Prints, per held-out episode (`thalamus eval`'s seeds): the step of the first success, the fraction
of later steps still successful, and the settled distances (gripper centre to goal, observed hand
to goal). A learned policy whose hand stops a few millimetres off the expert's point fails.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from envs.metaworld import expert, make_raw
from envs.seeds import eval_seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--episodes", type=int, default=20, help="held-out episodes (default: %(default)s)")
    p.add_argument("--steps", type=int, default=150, help="steps an episode (default: %(default)s)")
    args = p.parse_args()
    env = make_raw("Meta-World/reach-v3", 1, None, full_episodes=True)
    policy, sim = expert("reach-v3"), env.unwrapped
    rows = []
    for k in range(args.episodes):
        state = env.reset(seed=eval_seed(0, k))[0]
        success = []
        for _ in range(args.steps):
            obs, _, _, _, info = env.step(policy(state))
            state = obs
            success.append(bool(info["success"]))
        first = success.index(True) if any(success) else None
        rows.append({"episode": k, "first_success": first,
                     "still_successful": float(np.mean(success[first:])) if first is not None else 0.0,
                     "gripper_to_goal": float(np.linalg.norm(sim.tcp_center - sim._target_pos)),
                     "hand_to_goal": float(np.linalg.norm(state[:3] - state[36:39]))})
        print(f"episode {k}: first success at step {first}, "
              f"{rows[-1]['still_successful']:.0%} of later steps successful, settled with the gripper "
              f"{rows[-1]['gripper_to_goal'] * 100:.1f} cm and the hand {rows[-1]['hand_to_goal'] * 100:.1f} cm "
              f"from the goal", flush=True)
    env.close()
    settled = np.array([r["gripper_to_goal"] for r in rows])
    print(f"gripper centre settles {settled.min() * 100:.1f}–{settled.max() * 100:.1f} cm from the goal "
          f"(success below 5.0 cm); median margin {(0.05 - np.median(settled)) * 1000:.1f} mm")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
