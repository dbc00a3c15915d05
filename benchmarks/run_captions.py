"""What captioning costs `thalamus run`, and how right the stored captions are: the same run with the
env's shipped captioner and with ``--captioner off``, alternating, each pair on the same machine state.

    python -P benchmarks/run_captions.py --pairs 3 --steps 20000 --json out.json
    python -P benchmarks/run_captions.py --caption-skip 1 --pairs 3
    python -P benchmarks/run_captions.py --load 2 --steps 10000 --pairs 1   # two busy processes beside it
    python -P benchmarks/run_captions.py --captioner my-captioner.pt      # a checkpoint instead of the shipped one

Each run is ``thalamus run --env ENV --steps N --run-dir DIR --json`` (a store for both, so both pay
for recording). Per pair: steps/s with and without captions and their ratio, the caption lag, how
many steps the captioner skipped to keep up (they carry the next read frame's caption), from which
vector step a CPU captioner ran at normal priority because other work held the cores, and the share
of stored captions that equal the simulator-state caption of their step (`envs.env_captions`).
``--load N`` keeps N busy-looping processes running through every run (a machine loaded by other work).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.stored_caption_errors import stored_captions  # noqa: E402


def run(env: str, steps: int, run_dir: Path, captioner: str, device: str, skip: int) -> dict:
    """One ``thalamus run`` with ``--captioner CAPTIONER`` (auto, off or a checkpoint); its summary."""
    cmd = [sys.executable, "-m", "launch.cli", "run", "--env", env, "--steps", str(steps), "--device", device,
           "--run-dir", str(run_dir), "--json", "--captioner", captioner] + \
        (["--caption-skip", str(skip)] if captioner != "off" else [])
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"thalamus run failed: {proc.stderr.strip().splitlines()[-1]}")
    return json.loads(proc.stdout.splitlines()[0])


def stored_accuracy(run_dir: Path, env: str) -> dict[str, float]:
    """Share of the stored captions equal to their step's simulator-state caption: all steps, the
    steps whose own frame was read, and the skipped ones."""
    stored = stored_captions(run_dir, env)
    right, skipped = stored.right, stored.skipped
    return {"all": float(right.mean()),
            "read": float(right[~skipped].mean()) if (~skipped).any() else float("nan"),
            "skipped": float(right[skipped].mean()) if skipped.any() else float("nan")}


def pairs(args: argparse.Namespace) -> list[dict]:
    """Runs with and without captions, alternating; a row per pair."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            on = run(args.env, args.steps, Path(tmp) / f"on-{pair}", args.captioner, args.device, args.caption_skip)
            off = run(args.env, args.steps, Path(tmp) / f"off-{pair}", "off", args.device, 0)
            row = {"pair": pair, "on_steps_per_s": on["steps_per_s"], "off_steps_per_s": off["steps_per_s"],
                   "ratio": on["steps_per_s"] / off["steps_per_s"], "lag": on.get("caption_lag_steps"),
                   "skipped": on.get("captions_skipped", 0) / on["steps"], "missing": on["captions_missing"],
                   "idle_until": on.get("caption_idle_until"),
                   "accuracy": stored_accuracy(Path(tmp) / f"on-{pair}", args.env)}
            rows.append(row)
            print(f"pair {pair}: {row['on_steps_per_s']:.0f} vs {row['off_steps_per_s']:.0f} steps/s "
                  f"({row['ratio']:.0%}); skipped {row['skipped']:.0%}; lag {row['lag']}; "
                  + ("" if row["idle_until"] is None else f"normal priority from step {row['idle_until']}; ")
                  + f"stored captions right {row['accuracy']['all']:.1%} "
                  f"(read {row['accuracy']['read']:.1%}, skipped {row['accuracy']['skipped']:.1%})", flush=True)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="CartPole-v1", help="the env (default: %(default)s)")
    p.add_argument("--steps", type=int, default=20000, help="steps a run (default: %(default)s)")
    p.add_argument("--pairs", type=int, default=3, help="runs with and without captions (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="thalamus run --device (default: %(default)s)")
    p.add_argument("--captioner", default="auto", help="thalamus run --captioner: auto or a checkpoint (default: %(default)s)")
    p.add_argument("--caption-skip", type=int, default=0, help="thalamus run --caption-skip (default: %(default)s)")
    p.add_argument("--load", type=int, default=0, help="busy processes beside every run (default: %(default)s)")
    p.add_argument("--json", type=Path, help="write the rows here")
    args = p.parse_args()
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        rows = pairs(args)
    finally:
        for proc in busy:
            proc.kill()
    on_mean = np.mean([r["on_steps_per_s"] for r in rows])
    off = [r["off_steps_per_s"] for r in rows]
    ratios = [r["ratio"] for r in rows]
    # the runs without captions swing by a quarter on a small shared machine: that spread, not the
    # captioner, often decides a pair's ratio, so both are shown beside the mean
    print(f"all pairs: {on_mean:.0f} vs {np.mean(off):.0f} steps/s ({on_mean / np.mean(off):.0%}); pair ratios "
          f"{min(ratios):.0%}–{max(ratios):.0%}, median {np.median(ratios):.0%}; without captions "
          f"{min(off):.0f}–{max(off):.0f} steps/s")
    if args.json:
        args.json.write_text(json.dumps({"env": args.env, "steps": args.steps, "device": args.device,
                                         "caption_skip": args.caption_skip, "load": args.load,
                                         "ratio": on_mean / np.mean(off), "median_pair_ratio": float(np.median(ratios)),
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
