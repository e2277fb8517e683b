"""The ``segfuse`` command: parses arguments, calls the public API, prints.

Each subcommand lives in its own module that exposes ``add_parser(subparsers)``
(registering its arguments and ``set_defaults(run=...)``). ``run(args)`` returns the
process exit code: 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("eval", "coco", "bench", "train", "study", "compare")


def build_parser() -> argparse.ArgumentParser:
    from segfuse import __version__

    parser = argparse.ArgumentParser(
        prog="segfuse",
        description="Segmentation losses and metrics: evaluate masks, COCO AP, benchmarks, training.",
    )
    parser.add_argument("--version", action="version", version=f"segfuse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"segfuse.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name != f"segfuse.cli.{name}":
                raise
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    return int(args.run(args) or 0)


def entry_point() -> None:
    sys.exit(main())
