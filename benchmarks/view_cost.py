"""What watching costs: `thalamus run` with `--view save:PATH.rrd` against the same run without it.

    python benchmarks/view_cost.py                      # CartPole-v1, 20k steps, 8 envs, 2 rounds
    python benchmarks/view_cost.py --env Meta-World/reach-v3 --steps 4000 --rounds 1

The runs go through the command a user types, alternating plain and viewed (so a slow spell of the
machine hits both), each on its own fresh Ray cluster; steps/s is the run's own (its summary's), and
the table gives each pair's ratio viewed/plain and the mean. `--log-only` measures instead what the
viewer itself spends: CPU time to log synthetic 110-step episodes of 64×64 frames into a recording,
and an idle recording stream's CPU a second. `--jpeg` measures how much colour a small frame keeps
as the viewer encodes it (4:4:4) against JPEG's default chroma (4:2:0).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path


def run(env: str, steps: int, num_envs: int, view: Path | None, run_dir: Path) -> dict:
    cmd = [sys.executable, "-m", "launch.cli", "run", "--env", env, "--steps", str(steps), "--num-envs",
           str(num_envs), "--run-dir", str(run_dir), "--json"] + (["--view", f"save:{view}"] if view else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout)


def log_cost(episodes: int = 50, rows: int = 110) -> None:
    """CPU milliseconds per episode logged (viewer/episodes.py), and per idle second of the stream."""
    import time

    import numpy as np
    import rerun as rr

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from viewer.episodes import EpisodeLog
    from viewer.layout import run_layout

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        rec = rr.RecordingStream("thalamus", recording_id="log-cost")
        rec.save(str(Path(tmp) / "cost.rrd"))
        rec.send_blueprint(run_layout(8))
        log = EpisodeLog(rec, fps=10, decode=lambda tokens: f"the pole leans {int(tokens[0])}")
        data = [{"step": np.arange(rows) + k * rows, "time": (np.arange(rows) + k * rows) * 0.045,
                 "frame": rng.integers(0, 255, (rows, 64, 64, 3), dtype=np.uint8),
                 "caption": np.repeat(np.arange(rows // 10 + 1), 10)[:rows, None],
                 "reward": np.ones(rows, np.float32), "action": np.zeros(rows, np.int64)} for k in range(episodes)]
        start = time.process_time()
        for k, episode in enumerate(data):
            log.log(k % 8, episode)
        logged = time.process_time()
        time.sleep(5)
        idle = time.process_time() - logged
        rec.disconnect()
    print(f"{1000 * (logged - start) / episodes:.1f} ms of CPU per {rows}-step episode logged; "
          f"an idle stream {1000 * idle / 5:.1f} ms a second")


def jpeg_colour(frames: int = 20) -> None:
    """How far from grey CartPole's most coloured pixel stays once JPEG-encoded as the viewer does
    (4:4:4) and at JPEG's default 4:2:0 chroma, and the bytes of each, over a random episode's frames."""
    import cv2
    import numpy as np

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from envs import make
    from viewer.episodes import JPEG_QUALITY

    def colour(img: np.ndarray) -> int:
        p = img.reshape(-1, 3).astype(int)
        return int((p.max(axis=1) - p.min(axis=1)).max())

    env = make("CartPole-v1", 64, 0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(frames):
        row = [colour(obs["frame"])]
        for sampling in (cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444):
            ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(obs["frame"][..., ::-1]), [
                cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, sampling])
            row += [colour(cv2.imdecode(buf, cv2.IMREAD_COLOR)), len(buf)]
        rows.append(row)
        obs, *_ = env.step(env.action_space.sample())
    r = np.array(rows)
    print(f"{frames} CartPole frames, 64x64, quality {JPEG_QUALITY}: raw colour {r[:, 0].min()}-{r[:, 0].max()} "
          f"levels from grey; 4:2:0 {r[:, 1].min()}-{r[:, 1].max()}; 4:4:4 {r[:, 3].min()}-{r[:, 3].max()}; "
          f"4:4:4 bytes {r[:, 4].sum() / r[:, 2].sum():.3f}x 4:2:0's")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1", help="(default: %(default)s)")
    p.add_argument("--steps", type=int, default=20_000, help="(default: %(default)s)")
    p.add_argument("--num-envs", type=int, default=8, help="(default: %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="plain/viewed pairs (default: %(default)s)")
    p.add_argument("--json", type=Path, help="also write the figures here (default: none)")
    p.add_argument("--log-only", action="store_true", help="only the viewer's own logging cost (default: off)")
    p.add_argument("--jpeg", action="store_true", help="only how much colour its JPEG frames keep (default: off)")
    args = p.parse_args()
    if args.log_only:
        log_cost()
        return
    if args.jpeg:
        jpeg_colour()
        return
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            plain = run(args.env, args.steps, args.num_envs, None, Path(tmp) / f"plain{r}")
            rrd = Path(tmp) / f"viewed{r}.rrd"
            viewed = run(args.env, args.steps, args.num_envs, rrd, Path(tmp) / f"viewed{r}")
            pair = {"plain_steps_per_s": plain["steps_per_s"], "viewed_steps_per_s": viewed["steps_per_s"],
                    "ratio": viewed["steps_per_s"] / plain["steps_per_s"], "rrd_bytes": rrd.stat().st_size,
                    "episodes_viewed": viewed["view"]["episodes_viewed"],
                    "episodes_dropped": viewed["view"]["episodes_dropped"]}
            pairs.append(pair)
            print(f"round {r}: plain {pair['plain_steps_per_s']:.0f} steps/s, viewed {pair['viewed_steps_per_s']:.0f} "
                  f"steps/s, ratio {pair['ratio']:.3f} ({pair['episodes_viewed']} episodes viewed, "
                  f"{pair['episodes_dropped']} dropped, recording {pair['rrd_bytes'] / 2**20:.1f} MiB)", flush=True)
    mean = sum(p["ratio"] for p in pairs) / len(pairs)
    print(f"{args.env}, {args.steps} steps, {args.num_envs} envs: viewed/plain steps/s {mean:.3f} "
          f"(cost {100 * (1 - mean):.1f}%)")
    if args.json:
        args.json.write_text(json.dumps({"env": args.env, "steps": args.steps, "num_envs": args.num_envs,
                                         "pairs": pairs, "mean_ratio": mean}, indent=1))


if __name__ == "__main__":
    main()
