"""`thalamus bench policy`: diffusion-policy samplers side by side — success, evaluations and ms per chunk.

    thalamus bench policy --checkpoints policies/                        # mw-easy, 50 episodes a task, CPU
    thalamus bench policy --checkpoints policies/ --device cuda --json policy.json
    thalamus bench policy --checkpoints policies/ --tasks Meta-World/reach-v3 --episodes 10

For each task, the checkpoint CHECKPOINTS/TASK.pt (e.g. policies/reach-v3.pt, from
`thalamus train policy --task reach-v3 --out policies/reach-v3.pt`) plays the same held-out episodes
(`thalamus eval`'s seeds) under: DDPM 100 steps (`ddpm100`), DDIM 16 (`ddim16`), DDIM 16 with SeaCache
(`ddim16+seacache`) and with SenCache (`ddim16+sencache`), and DDIM with as many steps as the caches
used evaluations (`ddim_matched`, the honest baseline: fewer steps instead of caching). Reported per
sampler: success rate with a Wilson 95% interval, denoiser (body) evaluations per action chunk, and
ms per sampler call of `--latency-batch` chunks (p50/p99; default 1 chunk on the CPU, 64 on CUDA).
`--json PATH` writes {"configs": {NAME: {"success", "nfe", "ms_p50", "ms_p99", "per_task", ...}}, ...}.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from launch.errors import UsageError


def add_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("policy", help="diffusion-policy samplers: success, evaluations and ms per chunk",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoints", type=Path, default=Path("policies"), metavar="DIR",
                   help="folder with one TASK.pt per task (default: %(default)s)")
    p.add_argument("--tasks", default="mw-easy", metavar="NAME|ID,...",
                   help="a Meta-World sequence or a comma list of Meta-World ids (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=50, metavar="N", help="episodes per task and sampler (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="episode i starts from eval_seed(SEED, i) (default: %(default)s)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the policy runs (default: %(default)s)")
    p.add_argument("--envs", type=int, metavar="N", help="envs stepped in lockstep (default: 10 on cpu, 25 on cuda)")
    p.add_argument("--latency-batch", type=int, metavar="B", help="chunks per timed call (default: 1 on cpu, 64 on cuda)")
    p.add_argument("--latency-calls", type=int, default=200, metavar="N", help="timed calls per sampler and task (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default: %(default)s)")
    p.add_argument("--sea-threshold", type=float, metavar="DELTA", help="SeaCache's δ (default: the sampler's, 0.5)")
    p.add_argument("--sen-threshold", type=float, metavar="EPS", help="SenCache's ε (default: the sampler's, 0.3)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here (default: none)")
    p.set_defaults(func=main)


def _env_ids(tasks: str) -> list[str]:
    from envs import metaworld
    from envs.tasks import METAWORLD_SEQUENCES

    if tasks in METAWORLD_SEQUENCES:
        return [metaworld.PREFIX + t for t in METAWORLD_SEQUENCES[tasks]]
    ids = [t for t in tasks.split(",") if t]
    for env_id in ids:
        if not metaworld.is_metaworld(env_id):
            raise UsageError(f"--tasks: {env_id} is not a Meta-World id or sequence ({', '.join(METAWORLD_SEQUENCES)}, "
                             "or Meta-World/TASK,...)")
        try:
            metaworld.check_id(env_id)
        except ValueError as exc:
            raise UsageError(f"--tasks: {exc}") from None
    return ids


def main(args: argparse.Namespace) -> int:
    if args.episodes < 1 or args.latency_calls < 1 or (args.envs is not None and args.envs < 1) or \
            (args.latency_batch is not None and args.latency_batch < 1) or args.threads < 1:
        raise UsageError("--episodes, --envs, --latency-batch, --latency-calls and --threads must be positive")
    env_ids = _env_ids(args.tasks)
    from envs.metaworld import PREFIX

    paths = {e: args.checkpoints / f"{e.removeprefix(PREFIX)}.pt" for e in env_ids}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        first = next(e for e, p in paths.items() if not p.is_file())
        raise UsageError(f"no checkpoint {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "") +
                         f"; train one: thalamus train policy --data RUN_DIR --task {first.removeprefix(PREFIX)} "
                         f"--out {missing[0]}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    torch.set_num_threads(args.threads)
    from rich.table import Table

    from agent.policy.diffusion.policy import DiffusionCheckpoint, PolicyFileError
    from launch.bench.policy import PolicyBenchConfig, bench_task, pooled
    from launch.display import stdout_console

    cuda = args.device == "cuda"
    cfg = PolicyBenchConfig(episodes=args.episodes, seed=args.seed, device=args.device,
                            envs=args.envs or (25 if cuda else 10), latency_batch=args.latency_batch or (64 if cuda else 1),
                            latency_calls=args.latency_calls, sea_threshold=args.sea_threshold,
                            sen_threshold=args.sen_threshold)
    console = stdout_console()
    per_task = {}
    for env_id, path in paths.items():
        try:
            ckpt = DiffusionCheckpoint.read(path)
        except PolicyFileError as exc:
            raise UsageError(str(exc)) from None
        per_task[env_id.removeprefix(PREFIX)] = bench_task(ckpt, env_id, cfg, say=lambda s: console.print(f"{s} ..."))
    configs = pooled(per_task)
    table = Table("sampler", "success", "95% interval", "evals/chunk", f"ms p50 (batch {cfg.latency_batch})", "ms p99",
                  title=f"diffusion policy on {args.tasks}, {args.episodes} episodes a task, {args.device}",
                  title_justify="left")
    for name, c in configs.items():
        lo, hi = c["success_ci95"]
        table.add_row(name, f"{c['success']:.1%}", f"[{lo:.0%}, {hi:.0%}]", f"{c['nfe']:.2f}",
                      f"{c['ms_p50']:.2f}", f"{c['ms_p99']:.2f}")
    console.print(table)
    console.print("ddim_matched steps per task: " +
                  ", ".join(f"{t} {k}" for t, k in configs["ddim_matched"]["steps_per_task"].items()), highlight=False)
    if args.json:
        out = {"configs": configs, "bench": asdict(cfg), "tasks": list(per_task),
               "checkpoints": {t.removeprefix(PREFIX): str(p) for t, p in paths.items()},
               "torch_threads": args.threads}
        args.json.write_text(json.dumps(out, indent=1))
        console.print(f"wrote {args.json}")
    return 0
