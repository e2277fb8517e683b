"""Rich progress bars for the training loop and the loss study; disabled, they do nothing."""

from __future__ import annotations

from typing import Optional

from rich.table import Column

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressBar:
    """One bar per phase (``start``), advanced per batch; a context manager."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._progress: Optional[Progress] = None
        self._task = None

    def __enter__(self) -> "ProgressBar":
        if self.enabled:
            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(), TimeRemainingColumn(), transient=True,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def start(self, description: str, total: int) -> None:
        if self._progress is not None:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._task = self._progress.add_task(description, total=total, info="")

    def advance(self, loss: Optional[float] = None) -> None:
        if self._progress is not None:
            info = "" if loss is None else f"loss {loss:.4f}"
            self._progress.update(self._task, advance=1, info=info)


class StudyProgress:
    """The study's bar: finished runs out of ``total``, elapsed and remaining time, the latest epoch.

    A context manager; disabled, it does nothing. ``tick`` reports an epoch of a running
    run, ``finish`` a finished run.
    """

    def __init__(self, total: int, enabled: bool = True, initial: int = 0, console=None):
        self.total, self.enabled, self.initial, self.console = total, enabled, initial, console
        self.finished = initial
        self._progress: Optional[Progress] = None
        self._task = None

    def __enter__(self) -> "StudyProgress":
        if self.enabled:
            # the run description takes what width is left and is the only column ever shortened
            info = TextColumn("{task.fields[info]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis"))
            self._progress = Progress(
                TextColumn("study runs"), BarColumn(bar_width=16), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), info, console=self.console, transient=False, expand=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("runs", total=self.total, completed=self.initial, info="")
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def tick(self, run: str, epoch: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, info=f"{run}: epoch {epoch}")

    def finish(self, run: str) -> None:
        self.finished += 1
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=f"{run}: done")
