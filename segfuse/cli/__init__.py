"""The ``segfuse`` command: parses arguments, calls the public API, prints.

Each subcommand lives in its own module that exposes ``add_parser(subparsers)``
(registering its arguments and ``set_defaults(run=...)``). ``run(args)`` returns the
process exit code: 0 on success, 2 on bad input, 130 when interrupted (Ctrl-C).

Only the module of the subcommand being run is imported: ``segfuse --help`` lists the
subcommands from their module docstrings (read, not imported) and ``segfuse --version``
imports nothing, so both answer at once, without loading torch.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

from segfuse.cli.errors import interrupted, quiet_broken_pipe

SUBCOMMANDS = ("eval", "coco", "bench", "train", "study", "compare")


def _summary(name: str) -> str | None:
    """First line of the subcommand module's docstring, without importing the module."""
    import ast

    spec = importlib.util.find_spec(f"segfuse.cli.{name}")
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    docstring = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
    line = docstring.strip().splitlines()[0] if docstring.strip() else ""
    prefix = f"``segfuse {name}``:"
    return line[len(prefix) :].strip().rstrip(".") if line.startswith(prefix) else line or None


def _register(subparsers, name: str) -> bool:
    """Import the subcommand's module and let it add its parser; False when it is not installed."""
    try:
        module = importlib.import_module(f"segfuse.cli.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"segfuse.cli.{name}":
            raise
        return False
    module.add_parser(subparsers)
    return True


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``command`` is the subcommand whose module is imported (None: list them all)."""
    from segfuse import __version__

    parser = argparse.ArgumentParser(
        prog="segfuse",
        description="Segmentation losses and metrics: evaluate masks, COCO AP, benchmarks, training.",
    )
    parser.add_argument("--version", action="version", version=f"segfuse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    if command is not None and _register(subparsers, command):
        return parser  # running one subcommand: the others need not be listed
    for name in SUBCOMMANDS:
        summary = _summary(name)
        if summary is not None:
            subparsers.add_parser(name, help=summary, add_help=False)
    return parser


def _command(argv: list[str]) -> str | None:
    """The subcommand named on the command line (the first argument that is not an option)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in SUBCOMMANDS else None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with quiet_broken_pipe():
            parser = build_parser(_command(argv))
            args = parser.parse_args(argv)
            if not getattr(args, "run", None):
                parser.print_help()
                return 2
            return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return interrupted()


def entry_point() -> None:
    sys.exit(main())
