"""The `thalamus` command: argument parsing and the one place errors become one clear line."""

from __future__ import annotations

from envs.headless import configure

configure()  # headless rendering defaults and triton before anything renders (envs/headless.py)

import argparse  # noqa: E402
import functools  # noqa: E402
import gc  # noqa: E402
import sys  # noqa: E402
from typing import Any  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import simple_parsing  # noqa: E402

from launch import (bench_cmd, caption_cmd, envs_cmd, eval_cmd, inspect_cmd, plot_cmd, record_cmd,  # noqa: E402
                    replay_cmd, run_cmd, train_cmd, view_cmd)
from envs import EnvNotFoundError  # noqa: E402
from launch.errors import UsageError  # noqa: E402
from agent.processes import keep_freed_memory  # noqa: E402


class _Parser(simple_parsing.ArgumentParser):
    """argparse (simple-parsing's, so a command can take a dataclass's fields as flags), but a usage
    error is one line (plus exit code 2), not the whole usage block."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # simple-parsing keeps the dash style of the parser made last for all of them: every one says DASH
        kwargs.setdefault("add_option_string_dash_variants", simple_parsing.DashVariant.DASH)
        kwargs.setdefault("add_config_path_arg", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default after its help, unless the help already
    says it or there is none to say (None, False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        nothing = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if not action.option_strings or nothing or "default" in text.lower():
            return action.help
        return f"{text} (default: %(default)s)".lstrip()


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """``parser`` and every parser of its subcommands, each once."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                yield from _parsers(sub)


def _print_help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """What a command group given without its command does: show its help."""
    parser.print_help()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command line. Every parser shows its defaults in ``--help``; a command group
    (``thalamus``, ``thalamus train``, …) given without its command prints its help."""
    parser = _Parser(prog="thalamus", description="A streaming embodied-agent runtime.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run_cmd.add_parser(sub)
    inspect_cmd.add_parser(sub)
    replay_cmd.add_parser(sub)
    plot_cmd.add_parser(sub)
    view_cmd.add_parser(sub)
    eval_cmd.add_parser(sub)
    record_cmd.add_parser(sub)
    train_cmd.add_parser(sub)
    caption_cmd.add_parser(sub)
    envs_cmd.add_parser(sub)
    bench_cmd.add_parser(sub)
    for each in _parsers(parser):
        if each.formatter_class in (argparse.HelpFormatter, argparse.RawDescriptionHelpFormatter):
            each.formatter_class = HelpFormatter  # (a parser with a formatter of its own keeps it)
        for action in each._actions:
            if isinstance(action, argparse._SubParsersAction):
                action.required = False
                each.set_defaults(func=functools.partial(_print_help, each))
    return parser


# Exception types whose message is already a complete, user-facing sentence, by (module, name).
KNOWN_ERRORS: tuple[tuple[str, str], ...] = (
    ("launch.errors", "UsageError"), ("envs.errors", "EnvNotFoundError"), ("envs.errors", "EnvUnavailableError"),
    ("envs.sources", "SourceError"), ("envs.clips", "ClipDataError"), ("memory.errors", "StoreError"),
    ("agent.messages", "MessageError"), ("agent.channels", "ChannelTimeout"), ("agent.recovery", "ActorFailed"),
    ("agent.checkpoints", "CheckpointError"))


def _known_errors() -> tuple[type[BaseException], ...]:
    """The known error types among the modules loaded: an error can only have been raised by a module
    that was imported, so the failure path never pays for importing torch or Ray to name a type."""
    return tuple(getattr(sys.modules[module], name) for module, name in KNOWN_ERRORS if module in sys.modules)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` names; returns the exit code: 0, 1 (it failed), 2 (bad input), 130 (Ctrl-C)."""
    args = build_parser().parse_args(argv)
    keep_freed_memory()  # before any worker starts: they inherit it
    # the flags the user wrote (a command may need to tell "given" from "left at its default")
    args.flags_given = {a.split("=")[0] for a in (sys.argv[1:] if argv is None else argv) if a.startswith("--")}
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write("thalamus: interrupted\n")
        code = 130
    except Exception as exc:
        if not isinstance(exc, _known_errors()):
            raise
        sys.stderr.write(f"thalamus: error: {exc}\n")
        code = 2 if isinstance(exc, (UsageError, EnvNotFoundError)) else 1
    sys.stdout.flush()
    return code


def entry() -> None:
    """The `thalamus` executable: ``main``, then exit without Python's last garbage collections, which
    would walk every object torch and Ray created (a second of CPU) only to find nothing to free."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    entry()
