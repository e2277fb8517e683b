"""The loss study's figures (matplotlib, Agg), one pair per task.

- ``budgets_<task>.png``: test scores against the training budget in epochs (log scale),
  one line per loss at its chosen learning rate: the budget branches, then the converged
  point (hollow marker, at the mean epochs to converge). Error bars are the 95 % t
  intervals over seeds, clipped to the score range [0, 1].
- ``curves_<task>.png``: the validation learning curves of the stable phase (constant
  learning rate, before any decay), mean over seeds with a min..max band, up to the last
  epoch every seed reached.

Epoch axes have integer ticks.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from segfuse.train.study import RunKey
from segfuse.train.study_config import STUDY_LOSSES, StudySettings
from segfuse.train.study_report import CONVERGED, metrics, reported_runs, task_info, values
from segfuse.train.study_stats import mean_interval


# the panels of budgets_<task>.png, where the task reports them; DISTANCES are in pixels, lower is better
BUDGET_PANELS = ("miou", "rare_iou", "thin_iou", "thin_dice", "thin_biou", "thin_hd95")
DISTANCES = ("thin_hd95", "rare_hd95")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _integer_epochs(axes) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")


def _legend(figure, axes) -> None:
    handles, labels = axes.get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)


def plot_budgets(runs: dict[RunKey, dict], settings: StudySettings, task: str, path: Path):
    """Test scores per budget and at convergence (see the module docstring); returns the figure's path."""
    plt = _pyplot()
    chosen = [name for name in BUDGET_PANELS if name in metrics(task)]
    rows = (len(chosen) + 2) // 3
    columns = min(3, len(chosen))
    figure, grid = plt.subplots(rows, columns, figsize=(4.6 * columns, 0.6 + 3.9 * rows), squeeze=False)
    panels = [list(grid.flat)]
    # losses side by side around each budget: a small multiplicative shift on the log2 epoch axis
    shifts = {loss: 2 ** ((index - (len(settings.losses) - 1) / 2) * 0.025)
              for index, loss in enumerate(settings.losses)}
    for axes, name in zip(panels[0], chosen):
        label, value = metrics(task)[name]
        for loss in settings.losses:
            group = reported_runs(runs, settings, task, loss)
            if not group:
                continue
            epochs = [budget * shifts[loss] for budget in settings.budgets]
            intervals = [mean_interval(values(group, str(budget), value)) for budget in settings.budgets]
            converged_epoch = sum(run["points"][CONVERGED]["epochs"] for run in group) / len(group) * shifts[loss]
            converged = mean_interval(values(group, CONVERGED, value))
            high = math.inf if name in DISTANCES else 1.0
            line = axes.errorbar(epochs, [i.mean for i in intervals], yerr=_clipped_errors(intervals, high),
                                 marker="o", markersize=4, capsize=2, linewidth=1.2,
                                 label=f"{STUDY_LOSSES[loss][0]} (lr {group[0]['lr']:g})")
            colour = line.lines[0].get_color()
            axes.errorbar([converged_epoch], [converged.mean], yerr=_clipped_errors([converged], high), marker="o",
                          markersize=6, markerfacecolor="white", color=colour, capsize=2)
            axes.plot([epochs[-1], converged_epoch], [intervals[-1].mean, converged.mean], color=colour,
                      linestyle=":", linewidth=1)
        axes.set_title(label, fontsize=10)
        axes.grid(alpha=0.3)
        _budget_axis(axes, settings, label=axes in grid[-1])
    _legend(figure, panels[0][0])
    figure.suptitle(f"task '{task}': test score per training budget, mean and 95 % t interval over "
                    f"{len(settings.seeds)} seeds (clipped to the score's range)", fontsize=11)
    figure.tight_layout(rect=(0, 0.12 / rows, 1, 1 - 0.05 / rows))
    _save(figure, path)
    return path


def _budget_axis(axes, settings: StudySettings, label: bool = True) -> None:
    """A log2 epoch axis with integer ticks at the budgets and at powers of two up to ``max_epochs``."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    axes.set_xscale("log", base=2)
    ticks = sorted(set(settings.budgets) | {2**k for k in range(1, 12) if 2**k <= settings.max_epochs}
                   | {settings.max_epochs})
    axes.xaxis.set_major_locator(FixedLocator(ticks))
    axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.xaxis.set_minor_locator(NullLocator())
    if label:
        axes.set_xlabel("training budget (epochs, log scale); hollow: converged")


def _clipped_errors(intervals, high: float = 1.0) -> list[list[float]]:
    """Error bar lengths below and above each mean, clipped to the score range [0, high]."""
    lower, upper = [], []
    for interval in intervals:
        half = 0.0 if math.isnan(interval.half_width) else interval.half_width
        lower.append(min(half, max(0.0, interval.mean)))
        upper.append(min(half, max(0.0, high - interval.mean)))
    return [lower, upper]


def _save(figure, path: Path) -> None:
    """Write through a temporary name, then rename (no half-written image is left behind)."""
    temporary = path.with_name(path.name + ".tmp")
    figure.savefig(temporary, dpi=110, format="png")
    _pyplot().close(figure)
    os.replace(temporary, path)


def plot_curves(runs: dict[RunKey, dict], settings: StudySettings, task: str, path: Path):
    """Validation curves of the stable phase (see the module docstring); returns the figure's path."""
    plt = _pyplot()
    info = task_info(task)
    panels_spec = [("validation mIoU", lambda point: point["val_miou"]),
                   (f"validation IoU of '{info['names'][info['rare']]}'", lambda point: point["val_iou"][info["rare"]])]
    if info["thin"] is not None:
        panels_spec.append((f"validation IoU of '{info['names'][info['thin']]}'",
                            lambda point: point["val_iou"][info["thin"]]))
    figure, panels = plt.subplots(1, len(panels_spec), figsize=(4.6 * len(panels_spec), 4.4), squeeze=False)
    for axes, (title, value) in zip(panels[0], panels_spec):
        for loss in settings.losses:
            group = reported_runs(runs, settings, task, loss)
            if not group:
                continue
            length = min(len(run["curve"]) for run in group)
            epochs = [point["epoch"] for point in group[0]["curve"][:length]]
            series = [[value(point) for point in run["curve"][:length]] for run in group]
            means = [sum(column) / len(column) for column in zip(*series)]
            line, = axes.plot(epochs, means, linewidth=1.2, label=f"{STUDY_LOSSES[loss][0]} (lr {group[0]['lr']:g})")
            axes.fill_between(epochs, [min(column) for column in zip(*series)], [max(column) for column in zip(*series)],
                              color=line.get_color(), alpha=0.08, linewidth=0)
        for budget in settings.budgets:
            axes.axvline(budget - settings.decay_epochs, color="grey", linewidth=0.6, linestyle=":")
        axes.set_title(title, fontsize=10)
        axes.grid(alpha=0.3)
        _integer_epochs(axes)
    _legend(figure, panels[0][0])
    figure.suptitle(f"task '{task}': constant-learning-rate phase, mean over {len(settings.seeds)} seeds "
                    f"(band min..max; dotted: budget branch points)", fontsize=11)
    figure.tight_layout(rect=(0, 0.12, 1, 0.95))
    _save(figure, path)
    return path


def plot_study(runs: dict[RunKey, dict], settings: StudySettings, out_dir: Path) -> list[Path]:
    """Both figures for every task, written to ``out_dir``; returns their paths."""
    written = []
    for task in settings.tasks:
        written.append(plot_budgets(runs, settings, task, out_dir / f"budgets_{task}.png"))
        written.append(plot_curves(runs, settings, task, out_dir / f"curves_{task}.png"))
    return written
