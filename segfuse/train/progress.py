"""A rich progress bar for the training loop that does nothing when disabled."""

from __future__ import annotations

from typing import Optional

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
