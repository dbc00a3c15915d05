"""Train the shipped Meta-World captioner: play the episodes first, then train on them for several epochs.

    python scripts/train_metaworld_captioner.py --gen-s 90 --steps 0 --workers 16 --episodes eps.npz
    python scripts/train_metaworld_captioner.py --steps 3000 --seed 1 --random-weight 2 --episodes eps.npz \\
        --device cuda --out agent/perception/checkpoints/captioner-metaworld.pt --json stats.json

Why not ``thalamus train captioner --data env:mw-easy,Meta-World/pick-place-v3`` as it stands (it
works, and makes the same kind of checkpoint): a Meta-World frame costs a MuJoCo step and a render.
On the H200 machine one process alone makes ~390 frames/s, but 16 together sustain ~2,100 frames/s
in all, so frames made while training reach the GPU at that rate and each is seen once; a run of
1,422 steps fed that way (14 workers) did not finish within a 10-minute call. Here every core plays
episodes for ``--gen-s`` seconds first (the GPU only renders), the episodes are kept in memory, and
the trainer replays them as ``--streams`` persistent streams, each playing whole episodes back to
back in an order drawn from its seed, for ``--steps`` chunks: every frame is seen several times,
~25 steps/s (measured: 284,487 frames in 131 s, then 1,800 steps in 107 s, of which ~40 s went to
starting CUDA and compiling kernels).

Episodes are `envs.metaworld_captions.ArmStream`'s ``mixed`` play (expert, noisy expert, random),
one env per job, job j seeded j in the demonstrations' range. The end-of-run check and the
checkpoint's record are `agent.perception.train`'s, on live held-out streams of the same data.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first

import numpy as np  # noqa: E402

from agent.perception.captioner import CaptionerConfig  # noqa: E402
from envs.env_captions import EnvFrameTruth, env_ids  # noqa: E402
from envs.metaworld_captions import ArmCaptioner, ArmStream, ArmView  # noqa: E402

Episode = tuple[np.ndarray, list[str]]  # frames (T, S, S, 3) uint8, a caption per frame
Played = tuple[np.ndarray, list[ArmView], str]  # frames, what each shows (captions are made from these), play


def _play(job: tuple[str, int, int]) -> list[Played]:
    """Whole episodes of one env (seeded ``seed``) until they hold ``n_frames`` frames, in a worker."""
    env_id, seed, n_frames = job
    stream = ArmStream(env_id, seed, 64, "mixed")
    episodes: list[Played] = []
    while sum(len(v) for _, v, _ in episodes) < n_frames:
        kind = str(stream.kind)  # drawn when the episode began
        frames, _, views = stream.episode()
        episodes.append((frames, views, kind))
    stream.env.close()
    return episodes


def captioned(played: list[Played]) -> list[Episode]:
    """Each episode's frames with this checkout's captions of them (`envs.metaworld_captions`)."""
    episodes = []
    for frames, views, _ in played:
        captioner = ArmCaptioner()
        episodes.append((frames, [captioner(v) for v in views]))
    return episodes


def save_played(played: list[Played], path: Path) -> None:
    """Episodes to one .npz (frames concatenated, views as arrays), for other trainings to share."""
    views = [v for _, vs, _ in played for v in vs]
    np.savez(path, frames=np.concatenate([f for f, _, _ in played]), lengths=[len(vs) for _, vs, _ in played],
             kinds=[k for _, _, k in played],
             hand=[v.hand for v in views], opening=[v.opening for v in views], obj=[v.obj for v in views],
             success=[v.success for v in views])


def load_played(path: Path) -> list[Played]:
    z = np.load(path)
    views = [ArmView(h, float(o), b, bool(s)) for h, o, b, s in zip(z["hand"], z["opening"], z["obj"], z["success"])]
    ends = np.cumsum(z["lengths"])
    frames = z["frames"]
    return [(frames[e - n:e], views[e - n:e], str(k)) for e, n, k in zip(ends, z["lengths"], z["kinds"])]


def play_episodes(source: str, seconds: float, workers: int, frames_per_job: int = 1500) -> list[Played]:
    """Episodes played by ``workers`` processes for about ``seconds`` (jobs in seed order, tasks in turn)."""
    ids = env_ids(source)
    jobs = ((ids[j % len(ids)], j, frames_per_job) for j in range(10**6))
    episodes: list[Played] = []
    start = time.perf_counter()
    pool = mp.get_context("fork").Pool(workers)  # forked before torch starts CUDA
    for result in pool.imap(_play, jobs):
        episodes += result
        if time.perf_counter() - start > seconds:
            break
    pool.terminate()
    return episodes


class EpisodeReplay:
    """``streams`` persistent streams over stored episodes: ``next(n)`` → frames (B, n, S, S, 3) and
    per stream the truth of each frame; each stream plays episodes back to back, drawn at random with
    probabilities proportional to ``weights`` (uniform without)."""

    def __init__(self, episodes: list[Episode], streams: int, seed: int,
                 weights: Sequence[float] | None = None) -> None:
        self.episodes = episodes
        self.p = None if weights is None else np.asarray(weights, np.float64) / np.sum(weights)
        self.rngs = [np.random.default_rng([seed, i]) for i in range(streams)]
        self.at = [(self._draw(rng), 0) for rng in self.rngs]  # (episode, frame)

    def _draw(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self.episodes), p=self.p))

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[EnvFrameTruth]]]:
        size = self.episodes[0][0].shape[1:]
        frames = np.empty((len(self.rngs), n_frames, *size), np.uint8)
        truths: list[list[EnvFrameTruth]] = []
        for b, rng in enumerate(self.rngs):
            row: list[EnvFrameTruth] = []
            while len(row) < n_frames:
                e, pos = self.at[b]
                ep_frames, ep_captions = self.episodes[e]
                take = min(n_frames - len(row), len(ep_captions) - pos)
                frames[b, len(row):len(row) + take] = ep_frames[pos:pos + take]
                row += [EnvFrameTruth(c) for c in ep_captions[pos:pos + take]]
                pos += take
                self.at[b] = (e, pos) if pos < len(ep_captions) else (self._draw(rng), 0)
            truths.append(row)
        return frames, truths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="env:mw-easy,Meta-World/pick-place-v3", help="Meta-World env:SOURCE")
    p.add_argument("--gen-s", type=float, default=130.0, help="seconds of playing episodes before training")
    p.add_argument("--steps", type=int, default=1800, help="optimizer steps (chunks of --streams x 32 frames); 0: only play (and save --episodes)")
    p.add_argument("--streams", type=int, default=32)
    p.add_argument("--workers", type=int, default=16, help="processes playing episodes")
    p.add_argument("--episodes", type=Path, help="an .npz of played episodes: loaded if it exists, else saved there")
    p.add_argument("--random-weight", type=float, default=1.0,
                   help="how much likelier a random-action episode is replayed than an (noisy) expert one")
    p.add_argument("--d-model", type=int, default=CaptionerConfig.d_model)
    p.add_argument("--layers", type=int, default=CaptionerConfig.n_layers)
    p.add_argument("--channels", default=",".join(map(str, CaptionerConfig.channels)), help="encoder convs")
    p.add_argument("--gap", type=int, default=CaptionerConfig.gap, help="frames back of the second difference")
    p.add_argument("--device", default="cuda")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="checkpoint to write")
    p.add_argument("--json", type=Path, help="write the data's and the run's numbers here")
    args = p.parse_args()

    start = time.perf_counter()
    if args.episodes and args.episodes.exists():
        played = load_played(args.episodes)
    else:
        played = play_episodes(args.data.removeprefix("env:"), args.gen_s, args.workers)
        if args.episodes:
            save_played(played, args.episodes)
    gen_s = time.perf_counter() - start
    episodes = captioned(played)
    counts = collections.Counter(c for _, caps in episodes for c in caps)
    n_frames = sum(counts.values())
    kinds = collections.Counter(k for *_, k in played)
    print(f"played {len(episodes):,} episodes ({', '.join(f'{n:,} {k}' for k, n in kinds.items())}), "
          f"{n_frames:,} frames in {gen_s:.0f} s ({n_frames / gen_s:,.0f} frames/s)", flush=True)
    for caption, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {n / n_frames:6.2%}  {caption}")

    if args.steps == 0:  # only play the episodes (for --episodes)
        return
    from agent.perception.train import TrainConfig, train_captioner

    model = CaptionerConfig(d_model=args.d_model, n_layers=args.layers, gap=args.gap,
                            channels=tuple(int(c) for c in args.channels.split(",")))
    cfg = TrainConfig(steps=args.steps, streams=args.streams, seed=args.seed, data=args.data, device=args.device,
                      eval_every=0, model=model)

    def report(step: int, m: dict) -> None:
        if step % 100 == 0 or step == args.steps:
            print(f"step {step} loss {m['loss']:.3f} {m['elapsed_s']:.0f} s" +
                  (f" exact {m['exact']:.1%}" if "exact" in m else ""), flush=True)

    metrics = train_captioner(cfg, out=args.out, progress=report,
                              frames=EpisodeReplay(episodes, args.streams, args.seed,
                                                   [args.random_weight if k == "random" else 1.0 for *_, k in played]))
    print(json.dumps(metrics), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"episodes": len(episodes), "kinds": kinds, "frames": n_frames,
                                         "gen_s": gen_s, "random_weight": args.random_weight, "captions": counts,
                                         "epochs": metrics["frames"] / n_frames,
                                         "train": metrics}, indent=1))


if __name__ == "__main__":
    main()
