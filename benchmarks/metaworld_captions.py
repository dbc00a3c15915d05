"""Meta-World captioner on held-out frames: exact captions on expert and on random-action episodes.

    python benchmarks/metaworld_captions.py agent/perception/checkpoints/captioner-metaworld.pt
    python benchmarks/metaworld_captions.py CKPT --tasks mw-easy,Meta-World/pick-place-v3 --streams 4 \\
        --frames 400 --workers 14 --device cuda --json out.json
    python benchmarks/metaworld_captions.py --rates --workers 14     # data-generation frames/s only

For each task and each play (``expert``: Meta-World's scripted expert every episode; ``random``:
uniform random actions), ``--streams`` streams of ``--frames`` frames are played on evaluation
seeds (`envs.seeds.eval_seed` under seed 1: apart from training's demonstration seeds, from the
training run's own end-of-run check under seed 0 and from the validation set that chooses among
trainings, ``--seed-set 2``), captioned from the simulator state
(`envs.metaworld_captions`), and the checkpoint captions every frame in order, one carried state a
stream, decoded under its grammar. Reported per task and play: the fraction of frames whose
caption is exactly right, of the arm's phase alone, of "the task is done" alone, and the most
common mistakes. Frames are generated in ``--workers`` processes (forked before torch starts).
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing as mp
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first

import numpy as np  # noqa: E402

from envs.env_captions import EnvCaptionBatch, env_ids  # noqa: E402
from envs.metaworld_captions import DONE  # noqa: E402
from envs.seeds import eval_seed  # noqa: E402

PLAYS = ("expert", "random")
Stream = tuple[str, str, np.ndarray, list[str], float]  # task, play, frames, captions, frames/s made


def _play(job: tuple[str, str, int, int]) -> Stream:
    """One stream's frames [n, 64, 64, 3] and true captions (with its frames/s), in a worker."""
    env_id, play, seed, n_frames = job
    batch = EnvCaptionBatch(env_id, [seed], 64, play)
    start = time.perf_counter()
    frames, truths = batch.next(n_frames)
    rate = n_frames / (time.perf_counter() - start)
    return env_id, play, frames[0], [t.caption for t in truths[0]], rate


def streams(tasks: str, n_streams: int, n_frames: int, workers: int, seed_set: int = 1) -> list[Stream]:
    """Every (task, play, stream): its frames and captions, generated in ``workers`` processes."""
    jobs = [(env_id, play, eval_seed(seed_set, k), n_frames) for env_id in env_ids(tasks) for play in PLAYS
            for k in range(n_streams)]
    with mp.get_context("fork").Pool(workers) as pool:
        return pool.map(_play, jobs, chunksize=1)


def score(checkpoint: Path, played: list, device: str, chunk: int = 64, bf16: bool = False) -> dict[str, dict]:
    """Per ``task/play``: exact, phase and done accuracy over every frame, and the commonest mistakes
    (``bf16``: the encoder's convs folded and in bf16, as LiveCaptioner runs them on a CPU)."""
    import torch

    from agent.perception.decode import CaptionDecoding
    from agent.perception.train import checkpoint_grammar, load_checkpoint

    model = load_checkpoint(checkpoint, device)
    if bf16:
        model.encoder.fold_batch_norm(cpu_bf16=True)
    decoding = CaptionDecoding(model, checkpoint_grammar(checkpoint), device)
    groups: dict[str, list] = collections.defaultdict(list)
    for env_id, play, frames, truth, _ in played:
        groups[f"{env_id.removeprefix('Meta-World/')}/{play}"].append((frames, truth))
    out = {}
    with torch.no_grad():
        for name, group in groups.items():
            frames = torch.as_tensor(np.stack([f for f, _ in group]), device=device)  # [B, T, S, S, 3]
            state = model.initial_state(len(group), device)
            said: list[list[str]] = [[] for _ in group]
            for t in range(0, frames.shape[1], chunk):
                feats, state = model(frames[:, t:t + chunk], state)
                texts = decoding.greedy(feats.flatten(0, 1))
                width = feats.shape[1]
                for b in range(len(group)):
                    said[b] += texts[b * width:(b + 1) * width]
            pairs = [(want, got) for (_, truth), got_all in zip(group, said) for want, got in zip(truth, got_all)]
            # frames after an episode's success frame (play goes on `EpisodeMix.linger` frames), which a
            # run, a recording or an evaluation never shows: their episodes end at success
            after = [t > 0 and truth[t].endswith(DONE) and truth[t - 1].endswith(DONE)
                     for _, truth in group for t in range(len(truth))]
            until = [p for p, a in zip(pairs, after) if not a]
            phase = sum(w.removesuffix(DONE) == g.removesuffix(DONE) for w, g in pairs)
            done = sum(w.endswith(DONE) == g.endswith(DONE) for w, g in pairs)
            mistakes = collections.Counter(f"{w} -> {g}" for w, g in pairs if w != g)
            out[name] = {"frames": len(pairs), "exact": sum(w == g for w, g in pairs) / len(pairs),
                         "phase": phase / len(pairs), "done": done / len(pairs),
                         "done_frames": sum(w.endswith(DONE) for w, _ in pairs),
                         "until_success_frames": len(until),
                         "exact_until_success": sum(w == g for w, g in until) / max(len(until), 1),
                         "mistakes": mistakes.most_common(5)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", type=Path, nargs="?", help="captioner to score (not needed with --rates)")
    p.add_argument("--tasks", default="mw-easy,Meta-World/pick-place-v3", help="Meta-World ids / sequences")
    p.add_argument("--streams", type=int, default=4, help="held-out streams per task and play")
    p.add_argument("--frames", type=int, default=400, help="frames per stream")
    p.add_argument("--workers", type=int, default=2, help="processes generating frames")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed-set", type=int, default=1,
                   help="streams on eval_seed(SET, k): 1 is the benchmark's; 2 validates (chooses among trainings)")
    p.add_argument("--rates", action="store_true", help="only time frame generation (frames/s per process)")
    p.add_argument("--bf16", action="store_true", help="also score with the convs in bf16 (LiveCaptioner on a CPU)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    if args.checkpoint is None and not args.rates:
        p.error("give a checkpoint to score, or --rates")
    start = time.perf_counter()
    played = streams(args.tasks, args.streams, args.frames, args.workers, args.seed_set)
    gen_s = time.perf_counter() - start
    total = sum(len(t) for *_, t, _ in played)
    rates = [r for *_, r in played]
    print(f"{total:,} frames in {gen_s:.1f} s on {args.workers} workers ({total / gen_s:,.0f} frames/s; "
          f"per process {np.median(rates):.0f} frames/s median)")
    result: dict = {"tasks": args.tasks, "streams": args.streams, "frames": args.frames, "seed_set": args.seed_set,
                    "gen_s": gen_s,
                    "frames_per_s_per_process": float(np.median(rates)), "machine": platform.node()}
    if not args.rates:
        result["scores"] = score(args.checkpoint, played, args.device)
        print(f"{'task/play':36s} {'frames':>6s} {'exact':>7s} {'phase':>7s} {'done':>7s} {'until success':>18s}")
        for name, s in result["scores"].items():
            print(f"{name:36s} {s['frames']:6d} {s['exact']:7.1%} {s['phase']:7.1%} {s['done']:7.1%} "
                  f"{s['exact_until_success']:7.1%} of {s['until_success_frames']:5d}")
        for play in PLAYS:
            rows = [s for name, s in result["scores"].items() if name.endswith("/" + play)]
            frames, until = sum(s["frames"] for s in rows), sum(s["until_success_frames"] for s in rows)
            exact = sum(s["exact"] * s["frames"] for s in rows) / frames
            exact_until = sum(s["exact_until_success"] * s["until_success_frames"] for s in rows) / until
            print(f"{'all/' + play:36s} {frames:6d} {exact:7.1%} {'':15s} {exact_until:7.1%} of {until:5d}")
            result[f"exact_{play}"], result[f"exact_until_success_{play}"] = exact, exact_until
        if args.bf16:
            result["scores_bf16"] = score(args.checkpoint, played, args.device, bf16=True)
            for play in PLAYS:
                same = [(result["scores"][n], s) for n, s in result["scores_bf16"].items() if n.endswith("/" + play)]
                frames = sum(a["frames"] for a, _ in same)
                fp32, bf16 = (sum(x["exact"] * x["frames"] for x in col) / frames for col in zip(*same))
                print(f"{'all/' + play:36s} exact with fp32 convs {fp32:.1%}, with bf16 convs {bf16:.1%}")
                result[f"exact_{play}_bf16"] = bf16
        for name, s in result["scores"].items():
            if s["mistakes"]:
                print(f"{name}: " + "; ".join(f"{m} ({n})" for m, n in s["mistakes"][:3]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
