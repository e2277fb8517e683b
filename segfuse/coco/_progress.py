"""A progress bar for long evaluations (rich), silent when not wanted.

Convention: ``progress=None`` (the default) shows a bar only when stdout is a terminal and
the evaluation has at least ``AUTO_MIN_IMAGES`` images; True forces it, False hides it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager, nullcontext

AUTO_MIN_IMAGES = 500


def wanted(progress, n_images: int) -> bool:
    if progress is None:
        return sys.stdout.isatty() and n_images >= AUTO_MIN_IMAGES
    return bool(progress)


def bar(enabled: bool, description: str, total: int):
    """A context giving ``advance(n)``: a transient rich bar when enabled, a no-op otherwise."""
    return _rich_bar(description, total) if enabled else nullcontext(_ignore)


def _ignore(n: int = 1) -> None:
    return None


@contextmanager
def _rich_bar(description: str, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n=1: progress.advance(task, n)
