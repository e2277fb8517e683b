"""The loss study: every loss, at three learning rates, over seeds, on two procedural tasks.

What one run does is in :mod:`~segfuse.train.study_run` (budget branches, convergence);
the grid and the learning-rate protocol are in :mod:`~segfuse.train.study_config`. This
module plans the runs, runs them in ``jobs`` worker processes (one torch thread each) with a
progress bar, and writes, in ``out_dir``:

- ``runs.jsonl``: one line per finished run (settings, curve, scores at every point). A
  rerun into the same folder reuses the runs whose settings match, says how many, and
  refuses a folder that holds runs made with other settings; so an interrupted study
  resumes where it stopped.
- ``weights/<run>/<point>.pt``: the model of every point of every run (``save_weights``), and
  ``boundary.jsonl``: Boundary IoU and HD95 of the reported runs' models on the hard task
  (:mod:`~segfuse.train.study_boundary`);
- ``settings.json``; ``summary.md`` and ``summary.csv`` (:mod:`~segfuse.train.study_report`);
  ``budgets_<task>.png`` and ``curves_<task>.png`` (:mod:`~segfuse.train.study_plots`).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import queue
import signal
from pathlib import Path
from typing import Callable, Optional

from segfuse.train.progress import StudyProgress
from segfuse.train.study_config import STUDY_LOSSES, StudySettings

RunKey = tuple[str, str, float, int]  # (task, loss, lr, seed)
RUNS_FILE = "runs.jsonl"


class StudyFolderError(ValueError):
    """The output folder holds runs of a study with other settings."""


def run_key(record: dict) -> RunKey:
    return record["task"], record["loss"], float(record["lr"]), int(record["seed"])


def load_runs(path: Path, settings: StudySettings) -> dict[RunKey, dict]:
    """The finished runs in ``runs.jsonl`` made with ``settings``; other settings are an error.

    A last line cut short by an interruption is ignored (that run is redone).
    """
    if not path.is_file():
        return {}
    runs, tag = {}, settings.run_tag()
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise StudyFolderError(f"{path} line {number} is not JSON; move the file away to start over") from None
        if record.get("settings") != tag:
            raise StudyFolderError(f"{path} holds runs made with other settings ({_difference(record, settings)}); "
                                   f"pass another --out, or the settings of that study, to reuse its runs")
        runs[run_key(record)] = record
    return runs


def _difference(record: dict, settings: StudySettings) -> str:
    try:
        before = json.loads(record.get("settings") or "{}")
    except json.JSONDecodeError:
        return "unreadable settings"
    now = settings.run_settings()
    changed = [f"{name} {before.get(name)!r} there, {now.get(name)!r} now" for name in sorted(set(before) | set(now))
               if before.get(name) != now.get(name)]
    return ", ".join(changed[:4]) + (", ..." if len(changed) > 4 else "")


def tuning_keys(settings: StudySettings) -> list[RunKey]:
    return [(task, loss, lr, seed) for task in settings.tasks for loss in settings.losses
            for lr in settings.lrs for seed in settings.tuning_seeds]


def select_lr(runs: dict[RunKey, dict], task: str, loss: str, settings: StudySettings) -> float:
    """The learning rate with the best mean validation mIoU at convergence over the tuning seeds."""
    def score(lr: float) -> float:
        values = [runs[(task, loss, lr, seed)]["points"]["converged"]["val"]["miou"] for seed in settings.tuning_seeds]
        mean = sum(values) / len(values)
        return -math.inf if math.isnan(mean) else mean

    return max(settings.lrs, key=score)


def final_keys(runs: dict[RunKey, dict], settings: StudySettings) -> list[RunKey]:
    return [(task, loss, select_lr(runs, task, loss, settings), seed) for task in settings.tasks
            for loss in settings.losses for seed in settings.seeds if seed not in settings.tuning_seeds]


def known_keys(runs: dict[RunKey, dict], settings: StudySettings) -> list[RunKey]:
    """The study's runs known so far: every tuning run, and the final runs of (task, loss) pairs tuned."""
    keys = tuning_keys(settings)
    for task in settings.tasks:
        for loss in settings.losses:
            if all((task, loss, lr, seed) in runs for lr in settings.lrs for seed in settings.tuning_seeds):
                lr = select_lr(runs, task, loss, settings)
                keys += [(task, loss, lr, seed) for seed in settings.seeds if seed not in settings.tuning_seeds]
    return keys


def describe(key: RunKey) -> str:
    task, loss, lr, seed = key
    return f"{task} {STUDY_LOSSES[loss][0]} lr {lr:g} seed {seed}"


# ---- running: in this process (jobs=1) or in worker processes ----

_WORKER: dict = {}


def _worker_init(settings: StudySettings, threads: int, ticks, weights_dir) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(settings=settings, ticks=ticks, tasks={}, weights_dir=weights_dir)


def _task(name: str, settings: StudySettings, cache: dict):
    from segfuse.train.study_run import build_task

    if name not in cache:
        cache[name] = build_task(name, settings)
    return cache[name]


def _worker_run(key: RunKey) -> dict:
    from segfuse.train.study_run import run_one

    settings, ticks = _WORKER["settings"], _WORKER["ticks"]
    task, loss, lr, seed = key
    return run_one(_task(task, settings, _WORKER["tasks"]), loss, lr, seed, settings,
                   on_epoch=lambda epoch: ticks.put((key, epoch)), weights_dir=_WORKER["weights_dir"])


class Runner:
    """Runs keys and hands each finished record to ``done``; ``tick(key, epoch)`` after every epoch."""

    def __init__(self, settings: StudySettings, jobs: int, threads: int, weights_dir: Optional[Path] = None):
        if jobs < 1 or threads < 1:
            raise ValueError(f"jobs and threads must be >= 1, got jobs={jobs}, threads={threads}")
        self.settings, self.jobs, self.threads, self.weights_dir = settings, jobs, threads, weights_dir
        self._tasks: dict = {}

    def run(self, keys: list[RunKey], done: Callable[[dict], None], tick: Callable[[RunKey, int], None]) -> None:
        if not keys:
            return
        if self.jobs == 1:
            import torch

            torch.set_num_threads(self.threads)
            from segfuse.train.study_run import run_one

            for key in keys:
                task, loss, lr, seed = key
                done(run_one(_task(task, self.settings, self._tasks), loss, lr, seed, self.settings,
                             on_epoch=lambda epoch, key=key: tick(key, epoch), weights_dir=self.weights_dir))
            return
        self._run_pool(keys, done, tick)

    def _run_pool(self, keys, done, tick) -> None:
        context = multiprocessing.get_context("spawn")
        ticks = context.Queue()
        # the workers start with Ctrl-C ignored (inherited), so that only this process reports it
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            pool = context.Pool(min(self.jobs, len(keys)), _worker_init,
                                (self.settings, self.threads, ticks, self.weights_dir))
        finally:
            signal.signal(signal.SIGINT, previous)
        try:
            pending = [pool.apply_async(_worker_run, (key,)) for key in keys]
            while pending:
                try:
                    tick(*ticks.get(timeout=0.2))
                except queue.Empty:
                    pass
                for result in [result for result in pending if result.ready()]:
                    pending.remove(result)
                    done(result.get())
            pool.close()
        finally:
            pool.terminate()
            pool.join()


def run_study(settings: StudySettings, out_dir, jobs: int = 2, threads: int = 1, progress: bool = True,
              log: Optional[Callable[[str], None]] = print, save_weights: bool = True) -> list[dict]:
    """Run (or reuse) every run of the study, then write the report; returns the final runs' records.

    With ``save_weights``, every point's model goes to ``out_dir/weights/<run>/<point>.pt``
    (about 120 kB each with the default network).

    Raises StudyFolderError when ``out_dir`` holds runs made with other settings. A
    KeyboardInterrupt leaves every finished run in ``runs.jsonl``; rerunning resumes.
    """
    from segfuse.train.study_boundary import attach_boundary_scores
    from segfuse.train.study_plots import plot_study
    from segfuse.train.study_report import write_report

    settings.validate()
    log = log or (lambda line: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; expected a folder")
    runs_path = out_dir / RUNS_FILE
    runs = load_runs(runs_path, settings)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_json(out_dir / "settings.json", settings.to_dict())
    total = settings.total_runs()
    reused = len(set(runs) & set(known_keys(runs, settings)))
    if reused:
        log(f"reusing {reused} of {total} runs from {runs_path} (made with the same settings)")
    runner = Runner(settings, jobs, threads, out_dir / "weights" if save_weights else None)
    with StudyProgress(total, enabled=progress, initial=reused) as bar:
        def done(record: dict) -> None:
            with runs_path.open("a") as file:
                file.write(json.dumps(record) + "\n")
                file.flush()
                os.fsync(file.fileno())
            runs[run_key(record)] = record
            bar.finish(describe(run_key(record)))
            converged = record["points"]["converged"]
            log(f"{describe(run_key(record))}: test mIoU {converged['test']['miou']:.3f} at epoch "
                f"{converged['epochs']} ({record['seconds']:.0f} s)")

        def tick(key: RunKey, epoch: int) -> None:
            bar.tick(describe(key), epoch)

        runner.run([key for key in tuning_keys(settings) if key not in runs], done, tick)
        runner.run([key for key in final_keys(runs, settings) if key not in runs], done, tick)
    reported = _reported_keys(runs, settings)
    attach_boundary_scores(runs, settings, out_dir, keys=reported, log=log)
    finals = [runs[key] for key in reported]
    write_report(runs, settings, out_dir)
    plot_study(runs, settings, out_dir)
    return finals


def _reported_keys(runs: dict[RunKey, dict], settings: StudySettings) -> list[RunKey]:
    return [(task, loss, select_lr(runs, task, loss, settings), seed) for task in settings.tasks
            for loss in settings.losses for seed in settings.seeds]


def _write_json(path: Path, document) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=1) + "\n")
    os.replace(temporary, path)
