"""The `thalamus` command: argument parsing and the one place errors become one clear line."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import simple_parsing

from launch import bench_cmd, caption_cmd, inspect_cmd, replay_cmd, run_cmd, train_cmd
from launch.errors import UsageError

# Quiet, headless defaults for the stack (see machine-notes): set before any of it is imported.
for _key, _value in (("MUJOCO_GL", "egl"), ("RAY_AUTH_MODE", "disabled"), ("SDL_VIDEODRIVER", "dummy"),
                     ("PYGAME_HIDE_SUPPORT_PROMPT", "1"), ("OPENCV_LOG_LEVEL", "ERROR")):
    os.environ.setdefault(_key, _value)


class _Parser(simple_parsing.ArgumentParser):
    """argparse (through simple-parsing, so a dataclass can be a command's flags, as `run`'s is), but a
    usage error is one line (plus exit code 2), not the whole usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("add_option_string_dash_variants", simple_parsing.DashVariant.DASH)
        kwargs.setdefault("add_config_path_arg", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="thalamus", description="A streaming embodied-agent runtime.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    run_cmd.add_parser(sub)
    inspect_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    caption_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    return parser


def _known_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is already a complete, user-facing sentence."""
    from agent.channels import ChannelTimeout
    from agent.messages import MessageError
    from agent.runtime import ActorFailed
    from envs import EnvNotFoundError, EnvUnavailableError
    from envs.clips import ClipDataError
    from envs.sources import SourceError
    from memory import StoreError

    return (UsageError, EnvNotFoundError, EnvUnavailableError, SourceError, ClipDataError, StoreError,
            MessageError, ChannelTimeout, ActorFailed)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("thalamus: interrupted\n")
        code = 130
    except Exception as exc:
        if not isinstance(exc, _known_errors()):
            raise
        sys.stderr.write(f"thalamus: error: {exc}\n")
        code = 2 if isinstance(exc, UsageError) else 1
    sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
