"""How the CLI reports bad input: one line on stderr and exit code 2."""

from __future__ import annotations

import sys

EXIT_BAD_INPUT = 2


class InputError(ValueError):
    """Bad input that the CLI reports as one line naming the file and the problem."""


def fail(message: str) -> int:
    print(f"segfuse: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT
