"""How the CLI reports bad input and interruptions: one line on stderr and an exit code.

Convention:
    Bad input is one line ``segfuse: error: <file or option>: <problem>`` and exit code 2.
    Ctrl-C (SIGINT) is one line ``segfuse: interrupted`` (plus a hint such as the
    checkpoint to resume from) and exit code 130, the shell's code for SIGINT; worker
    processes ignore SIGINT (:func:`ignore_interrupts`) so that only the main process
    reacts, stops the workers and prints the line. A closed stdout (``segfuse ... | head``)
    ends the command quietly.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class InputError(ValueError):
    """Bad input that the CLI reports as one line naming the file and the problem."""


def fail(message: str) -> int:
    """Print ``segfuse: error: message`` on stderr; return exit code 2."""
    print(f"segfuse: error: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def interrupted(hint: str | None = None) -> int:
    """Print ``segfuse: interrupted`` (and the hint) on stderr; return exit code 130.

    Example (a subcommand that saves checkpoints)::

        try:
            train(...)
        except KeyboardInterrupt:
            return interrupted(f"resume with --resume {checkpoint}")
    """
    print("segfuse: interrupted" + (f"; {hint}" if hint else ""), file=sys.stderr)
    return EXIT_INTERRUPTED


def ignore_interrupts() -> None:
    """Pool initializer for worker processes: ignore SIGINT, the main process handles Ctrl-C."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def quiet_broken_pipe():
    """End quietly when the reader of stdout goes away (``segfuse eval | head``)."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
        raise SystemExit(1) from None
