"""`thalamus view RUN_DIR`: a run in Rerun — every env's camera, the captions, actions, rewards,
returns and success on the step timeline, task boundaries, the learner's memories and the replay
matrix — from its store, whether the run finished, is still going or crashed.

    thalamus view runs/cartpole                       # the desktop viewer (needs a display)
    thalamus view runs/mw-easy --web                  # the web viewer on loopback: open the URL it prints
    thalamus view runs/mw-easy --save mw-easy.rrd     # a recording: rerun mw-easy.rrd, or share it

Needs rerun-sdk (pip install 'thalamus[view]'). `thalamus run --view` shows the same while the run goes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from launch.errors import UsageError

DEFAULT_FPS = 10.0  # frames a second of run time per env (AgentConfig's view_fps is the live one)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="a run in the Rerun viewer (desktop, web, or an .rrd file)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--web", action="store_true",
                       help="serve the web viewer on loopback and print its URL; serves until Ctrl-C (default: desktop)")
    where.add_argument("--save", type=Path, metavar="PATH.rrd", help="write a recording here instead (default: none)")
    p.add_argument("--episodes", default="all", metavar="LIST",
                   help="episodes to show: all, or e.g. 0,3,5-7 (default: %(default)s)")
    p.add_argument("--fps", type=float, default=DEFAULT_FPS,
                   help="camera frames a second of run time per env; 0: every frame (default: %(default)s)")
    p.add_argument("--web-port", type=int, default=0, metavar="PORT",
                   help="--web: the page's port (default: a free one)")
    p.add_argument("--json", action="store_true", help="print what was logged (and the URL) as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from launch.export_cmd import episode_list
    from memory import StoreError, open_store
    from viewer.store import log_run
    from viewer.target import ViewError, ViewTarget, open_recording, require_rerun

    if args.fps < 0:
        raise UsageError(f"--fps must be 0 or more, got {args.fps}")
    if not 0 <= args.web_port < 65536:
        raise UsageError(f"--web-port must be a port number, got {args.web_port}")
    try:
        target = ViewTarget("web", web_port=args.web_port) if args.web else ViewTarget("native")
        if args.save is not None:
            target = ViewTarget.save(args.save)
    except ViewError as exc:
        raise UsageError(f"--save {exc}") from None
    try:
        require_rerun()
        store = open_store(args.run_dir)
    except (ViewError, StoreError) as exc:
        raise UsageError(str(exc)) from None
    if not store.n_episodes:
        raise UsageError(f"{args.run_dir}: the store holds no committed episode yet")
    episodes = episode_list(args.episodes, store.n_episodes)
    rec, url = open_recording(target, "thalamus", store.path.parent.name)
    if url and not args.json:
        print(f"the web viewer: {url}", flush=True)

    def progress(done: int, total: int) -> None:
        if not args.json:
            print(f"\r{done}/{total} episodes", end="", flush=True)

    logged = log_run(rec, store, episodes, args.fps, progress)
    rec.flush()
    if not args.json:
        print()
    logged |= {"run_dir": str(args.run_dir), "view": target.kind, "url": url,
               "path": str(target.path) if target.path else None}
    if target.kind == "save":
        rec.disconnect()
        if not args.json:
            print(f"wrote {target.path}: open it with `rerun {target.path}`")
    if args.json:
        print(json.dumps(logged), flush=True)
    if target.kind == "web":
        if not args.json:
            print("serving the viewer: Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            sys.stderr.write("thalamus: stopped serving the viewer\n")
    return 0
