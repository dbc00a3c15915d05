"""`thalamus envs`: the environment ids and task sequences to give `thalamus run`.

    thalamus envs
    thalamus envs --json

The ids are the ones this project tests (`envs.SUPPORTED_ENVS`) for `run --env ID` and
`caption --source env:ID`, and Meta-World's arm tasks as `Meta-World/TASK`; any other registered
Gymnasium id that renders `rgb_array` frames works too. MuJoCo envs render offscreen (EGL) and need the `mujoco` package. Task sequences are for
`run --tasks NAME`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `envs` command to the `thalamus` parser."""
    p = sub.add_parser("envs", help="list the environment ids (--env) and task sequences (--tasks)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true",
                   help='print {"envs": [{"id", "kind", "available"}, ...], "meta_world": [ids], "task_sequences": [...]}')
    p.set_defaults(func=main)


def _kind(env_id: str) -> str:
    """How an env draws its camera frame: MuJoCo's renderer, or gymnasium's classic-control painter."""
    import gymnasium

    entry = gymnasium.registry[env_id].entry_point
    return "MuJoCo" if isinstance(entry, str) and ".mujoco." in entry else "classic control"


def main(args: argparse.Namespace) -> int:
    """Print the supported env ids, what renders them and whether they run here, and the task sequences."""
    from envs import SUPPORTED_ENVS
    from envs.metaworld import PREFIX, task_names
    from envs.tasks import TASK_SEQUENCES

    has_mujoco = importlib.util.find_spec("mujoco") is not None
    rows = []
    for env_id in SUPPORTED_ENVS:
        kind = _kind(env_id)
        rows.append({"id": env_id, "kind": kind, "available": kind == "classic control" or has_mujoco})
    if args.json:
        print(json.dumps({"envs": rows, "meta_world": [PREFIX + t for t in task_names()],
                          "task_sequences": list(TASK_SEQUENCES)}))
        return 0
    from rich.table import Table

    from launch.display import stdout_console

    table = Table("--env ID", "camera frame", "here", title="environments", title_justify="left")
    for row in rows:
        table.add_row(row["id"], "MuJoCo, offscreen (EGL)" if row["kind"] == "MuJoCo" else "classic control",
                      "yes" if row["available"] else "needs `pip install mujoco`")
    names = task_names()
    table.add_row(f"{PREFIX}TASK", "MuJoCo, offscreen (EGL), a Sawyer arm",
                  f"yes: {len(names)} tasks" if names else "needs `pip install metaworld==3.0.0`")
    console = stdout_console()
    console.print(table)
    if names:
        console.print(f"Meta-World tasks (--env {PREFIX}TASK): {', '.join(names)}")
    console.print(f"task sequences (--tasks NAME): {', '.join(TASK_SEQUENCES)}")
    console.print("Any other registered Gymnasium id that renders rgb_array frames works too.")
    return 0
