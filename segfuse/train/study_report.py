"""The loss study's tables: ``summary.md`` (per task, per budget, mean ± 95 % t interval) and ``summary.csv``.

Every score is on the test scenes, at the learning rate chosen on the validation scenes
(see :mod:`~segfuse.train.study_config`). ``summary.csv`` has one row per (task, loss,
learning rate, point, metric) with the mean, the interval's half-width, n, min and max;
``summary.md`` has the same numbers as tables, plus the learning-rate sweep, the
differences against CE (Welch intervals) and every seed's rare-class IoU.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Callable

from segfuse.train.study import RunKey, select_lr
from segfuse.train.study_config import STUDY_LOSSES, StudySettings
from segfuse.train.study_stats import Interval, difference_interval, mean_interval

CONVERGED = "converged"
FOUND = 0.5  # a run "finds" the rare class when its rare-class IoU reaches this


def points(settings: StudySettings) -> list[str]:
    return [str(budget) for budget in settings.budgets] + [CONVERGED]


def point_label(point: str) -> str:
    return "converged" if point == CONVERGED else f"{point} ep"


def task_info(task: str) -> dict:
    """Class names, the rare class and the thin class of a task (None when it has none)."""
    from segfuse.train.procedural import CLASS_NAMES, RARE_CLASS
    from segfuse.train.procedural_hard import HARD_CLASS_NAMES, HARD_RARE_CLASS, HARD_THIN_CLASS

    if task == "standard":
        return {"names": CLASS_NAMES, "rare": RARE_CLASS, "thin": None}
    return {"names": HARD_CLASS_NAMES, "rare": HARD_RARE_CLASS, "thin": HARD_THIN_CLASS}


def metrics(task: str) -> dict[str, tuple[str, Callable[[dict], float]]]:
    """name -> (label, value of a point's test scores) for the task's reported metrics."""
    info = task_info(task)
    rare, rare_name = info["rare"], info["names"][info["rare"]]
    chosen = {
        "miou": ("mIoU", lambda test: test["miou"]),
        "rare_iou": (f"IoU of '{rare_name}'", lambda test: test["iou"][rare]),
        "rare_recall": (f"recall of '{rare_name}'", lambda test: test["recall"][rare]),
        "rare_precision": (f"precision of '{rare_name}'", lambda test: test["precision"][rare]),
    }
    if info["thin"] is not None:
        thin, thin_name = info["thin"], info["names"][info["thin"]]
        chosen["thin_iou"] = (f"IoU of '{thin_name}'", lambda test: test["iou"][thin])
        chosen["thin_dice"] = (f"Dice of '{thin_name}'", lambda test: test["dice"][thin])
        chosen["thin_biou"] = (f"Boundary IoU of '{thin_name}'", lambda test: _score(test, "boundary_iou", thin))
        chosen["thin_hd95"] = (f"HD95 of '{thin_name}' (px, lower is better)", lambda test: _score(test, "hd95", thin))
        chosen["rare_hd95"] = (f"HD95 of '{rare_name}' (px, lower is better)", lambda test: _score(test, "hd95", rare))
    return chosen


def _score(test: dict, name: str, cls: int) -> float:
    """A boundary score of a point, NaN when the point's model was not scored (no saved weights)."""
    return test[name][cls] if name in test else math.nan


def _runs_of(runs: dict[RunKey, dict], task: str, loss: str, lr: float, seeds) -> list[dict]:
    return [runs[(task, loss, lr, seed)] for seed in seeds if (task, loss, lr, seed) in runs]


def reported_runs(runs: dict[RunKey, dict], settings: StudySettings, task: str, loss: str) -> list[dict]:
    """The runs of a (task, loss) at its chosen learning rate, one per seed."""
    return _runs_of(runs, task, loss, select_lr(runs, task, loss, settings), settings.seeds)


def values(runs: list[dict], point: str, value: Callable[[dict], float]) -> list[float]:
    return [value(run["points"][point]["test"]) for run in runs]


def _cell(interval: Interval) -> str:
    return interval.format(3)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def overview_section(runs, settings: StudySettings, task: str) -> list[str]:
    """One row per loss: the rare-class IoU at every point, then the converged mIoU (and thin-class scores)."""
    chosen = metrics(task)
    columns = [("rare_iou", point) for point in points(settings)] + [("miou", CONVERGED)]
    columns += [(name, CONVERGED) for name in ("thin_iou", "thin_biou", "thin_hd95") if name in chosen]
    short = {"rare_iou": "rare IoU", "miou": "mIoU", "thin_iou": "thin IoU", "thin_biou": "thin Boundary IoU",
             "thin_hd95": "thin HD95 (px)"}
    header = ["loss", "lr"] + [f"{short[name]} {point_label(point)}" for name, point in columns]
    rows = []
    for loss in settings.losses:
        group = reported_runs(runs, settings, task, loss)
        row = [STUDY_LOSSES[loss][0], f"{group[0]['lr']:g}" if group else ""]
        for name, point in columns:
            interval = mean_interval(values(group, point, chosen[name][1]))
            row.append(interval.format(1 if name.endswith("hd95") else 3))
        rows.append(row)
    info = task_info(task)
    thin = "" if info["thin"] is None else f", thin class '{info['names'][info['thin']]}'"
    return [f"Overview (test scenes, mean ± 95 % t interval over {len(settings.seeds)} seeds; rare class "
            f"'{info['names'][info['rare']]}'{thin}):", ""] + _table(header, rows)


def sweep_section(runs, settings: StudySettings, task: str) -> list[str]:
    rare = task_info(task)["rare"]
    first = str(settings.budgets[0])
    header = ["loss"] + [f"lr {lr:g}: val mIoU conv. / rare IoU {first} ep" for lr in settings.lrs] + ["chosen lr"]
    rows = []
    for loss in settings.losses:
        cells = [STUDY_LOSSES[loss][0]]
        for lr in settings.lrs:
            tuned = _runs_of(runs, task, loss, lr, settings.tuning_seeds)
            conv = mean_interval([run["points"][CONVERGED]["val"]["miou"] for run in tuned]).mean
            early = mean_interval([run["points"][first]["val"]["iou"][rare] for run in tuned]).mean
            cells.append(f"{conv:.3f} / {early:.3f}")
        cells.append(f"{select_lr(runs, task, loss, settings):g}")
        rows.append(cells)
    return [f"Learning-rate sweep (validation scenes, mean over tuning seeds {list(settings.tuning_seeds)}); "
            f"the chosen learning rate has the best validation mIoU at convergence:", ""] + _table(header, rows)


def metric_section(runs, settings: StudySettings, task: str, name: str) -> list[str]:
    label, value = metrics(task)[name]
    header = ["loss", "lr"] + [point_label(point) for point in points(settings)]
    if name == "miou":
        header.append("epochs to converge")
    if name == "rare_iou":
        header += [f"seeds with IoU ≥ {FOUND} ({point_label(point)})" for point in (points(settings)[0], CONVERGED)]
    rows = []
    for loss in settings.losses:
        chosen = reported_runs(runs, settings, task, loss)
        row = [STUDY_LOSSES[loss][0], f"{chosen[0]['lr']:g}" if chosen else ""]
        row += [_cell(mean_interval(values(chosen, point, value))) for point in points(settings)]
        if name == "miou":
            epochs = [run["points"][CONVERGED]["epochs"] for run in chosen]
            capped = sum(run["capped"] for run in chosen)
            row.append(f"{sum(epochs) / len(epochs):.0f} ({min(epochs)}-{max(epochs)})"
                       + (f", {capped} at the cap" if capped else ""))
        if name == "rare_iou":
            for point in (points(settings)[0], CONVERGED):
                found = sum(v >= FOUND for v in values(chosen, point, value))
                row.append(f"{found}/{len(chosen)}")
        rows.append(row)
    return [f"Test {label}, mean ± 95 % t interval over {len(settings.seeds)} seeds:", ""] + _table(header, rows)


def difference_section(runs, settings: StudySettings, task: str) -> list[str]:
    if "ce" not in settings.losses:
        return []
    chosen = metrics(task)
    first = points(settings)[0]
    columns = [("rare_iou", first), ("rare_iou", CONVERGED), ("miou", first), ("miou", CONVERGED)]
    header = ["loss"] + [f"Δ {chosen[name][0]} ({point_label(point)})" for name, point in columns]
    baseline = reported_runs(runs, settings, task, "ce")
    rows = []
    for loss in settings.losses:
        if loss == "ce":
            continue
        other = reported_runs(runs, settings, task, loss)
        cells = [STUDY_LOSSES[loss][0]]
        for name, point in columns:
            value = chosen[name][1]
            interval = difference_interval(values(other, point, value), values(baseline, point, value))
            mark = "" if math.isnan(interval.low) or interval.low <= 0 <= interval.high else " *"
            cells.append(f"{interval.format(3, signed=True)}{mark}")
        rows.append(cells)
    return ["Difference against CE (each at its chosen learning rate), mean ± 95 % Welch interval; "
            "* marks an interval that excludes 0:", ""] + _table(header, rows)


def first_found(run: dict, rare: int):
    """The first epoch of the constant-learning-rate phase whose validation rare-class IoU reaches FOUND."""
    return next((point["epoch"] for point in run["curve"] if point["val_iou"][rare] >= FOUND), None)


def speed_section(runs, settings: StudySettings, task: str) -> list[str]:
    rare = task_info(task)["rare"]
    header = ["loss", "lr", f"first epoch with validation rare IoU ≥ {FOUND}, per seed", "median", "never"]
    rows = []
    for loss in settings.losses:
        chosen = reported_runs(runs, settings, task, loss)
        epochs = [first_found(run, rare) for run in chosen]
        found = sorted(epoch for epoch in epochs if epoch is not None)
        never = len(epochs) - len(found)
        # the median counts a seed that never found it as later than any that did
        ordered = found + [math.inf] * never
        median = ordered[(len(ordered) - 1) // 2] if ordered else math.nan
        rows.append([STUDY_LOSSES[loss][0], f"{chosen[0]['lr']:g}" if chosen else "",
                     " / ".join("never" if epoch is None else str(epoch) for epoch in epochs),
                     "never" if median == math.inf else f"{median:g}", f"{never}/{len(epochs)}"])
    return ["Speed of learning the rare class (constant-learning-rate phase, before any decay; a seed that "
            f"never found it within its run counts as later than every other for the median):", ""] + _table(header, rows)


def seeds_section(runs, settings: StudySettings, task: str) -> list[str]:
    rare_value = metrics(task)["rare_iou"][1]
    header = ["loss"] + [f"seeds {', '.join(map(str, settings.seeds))}: rare IoU ({point_label(point)})"
                         for point in points(settings)]
    rows = []
    for loss in settings.losses:
        chosen = reported_runs(runs, settings, task, loss)
        rows.append([STUDY_LOSSES[loss][0]] + [" / ".join(f"{v:.2f}" for v in values(chosen, point, rare_value))
                                               for point in points(settings)])
    return ["Every seed's rare-class IoU:", ""] + _table(header, rows)


def timing_section(runs: dict[RunKey, dict]) -> list[str]:
    """Run time: wall-clock (what the shared machine gave) and CPU time (the work; one thread per run)."""
    seconds = sorted(run["seconds"] for run in runs.values())
    cpu = sorted(run.get("cpu_seconds", float("nan")) for run in runs.values())
    machines = sorted({f"{run['machine']['processor']}, {run['machine']['cpus']} CPUs, torch {run['machine']['torch']}"
                       for run in runs.values()})
    return [f"Run time: {len(runs)} runs, {sum(seconds) / 3600:.2f} h of wall-clock time summed over runs (median "
            f"{seconds[len(seconds) // 2]:.0f} s per run) and {sum(cpu) / 3600:.2f} h of CPU time (median "
            f"{cpu[len(cpu) // 2]:.0f} s per run, one torch thread each); machines: {'; '.join(machines)}."]


def header_lines(settings: StudySettings, task: str) -> list[str]:
    info = task_info(task)
    rare = info["names"][info["rare"]]
    what = ("today's procedural task: ellipses, rectangles and a 1 % 'speck' class" if task == "standard" else
            f"the harder variant: thin 'thread' lines, a 0.1 % '{rare}' class in about a third of the scenes, "
            f"training boundary labels flipped with probability {settings.boundary_noise:g}")
    crop = f", trained on random {settings.crop_size}x{settings.crop_size} crops" if settings.crop_size else ""
    return [f"## Task '{task}': {what}", "",
            f"{settings.image_size}x{settings.image_size} scenes ({settings.train_samples} train{crop}, "
            f"{settings.val_samples} val, {settings.test_samples} test), U-Net base {settings.base_channels} depth "
            f"{settings.depth}, AdamW (weight decay {settings.weight_decay:g}), batch {settings.batch_size}; "
            f"warm-up / constant learning rate; each budget (epochs) and convergence (validation mIoU not "
            f"up by {settings.min_delta:g} in {settings.patience} epochs, at most {settings.max_epochs}) ends with "
            f"a {settings.decay_epochs}-epoch linear decay to 0."] + ([
            "", "Boundary metrics (models of the reported runs scored again): Boundary IoU with the "
            "boundary-iou-api's band, d = 2 % of the image diagonal, from counts summed over the test scenes; "
            "HD95 per image (DeepMind surface definition), mean over images, a class present in only one of "
            "truth and prediction scoring the image diagonal "
            f"({(2 * settings.image_size ** 2) ** 0.5:.1f} px)."] if info["thin"] is not None else []) + [""]


def write_report(runs: dict[RunKey, dict], settings: StudySettings, out_dir: Path) -> None:
    """summary.md and summary.csv from the finished runs (see the module docstring)."""
    lines = ["# Loss study", ""]
    for task in settings.tasks:
        lines += header_lines(settings, task)
        sections = [overview_section(runs, settings, task), sweep_section(runs, settings, task)]
        sections += [metric_section(runs, settings, task, name) for name in metrics(task)]
        sections += [speed_section(runs, settings, task), difference_section(runs, settings, task),
                     seeds_section(runs, settings, task)]
        for section in sections:
            if section:
                lines += section + [""]
    lines += timing_section(runs)
    _atomic_text(out_dir / "summary.md", "\n".join(lines) + "\n")
    _write_csv(runs, settings, out_dir / "summary.csv")


def _write_csv(runs, settings: StudySettings, path: Path) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["task", "loss", "lr", "chosen", "point", "metric", "mean", "ci95", "n", "min", "max"])
        for task in settings.tasks:
            for loss in settings.losses:
                chosen_lr = select_lr(runs, task, loss, settings)
                for lr in settings.lrs:
                    group = _runs_of(runs, task, loss, lr, settings.seeds)
                    for point in points(settings):
                        for name, (_, value) in metrics(task).items():
                            interval = mean_interval(values(group, point, value))
                            writer.writerow([task, loss, f"{lr:g}", lr == chosen_lr, point, name, interval.mean,
                                             interval.half_width, interval.n, interval.low, interval.high])
    os.replace(temporary, path)


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
