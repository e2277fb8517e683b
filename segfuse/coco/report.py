"""Writing an evaluation's report: JSON, CSV tables and plots, all or nothing (``segfuse coco --out``).

Convention: files are written into a fresh temporary folder beside ``out`` and moved into
place only when every file is complete (a new folder is renamed; an existing one gets each
file by an atomic ``os.replace``), so a failed or interrupted run leaves no partial report.
Files get the permissions a plain ``open()`` gives (0666 minus the umask: 0644 usually),
folders those of ``mkdir``. NaN (undefined) is ``null`` in JSON and empty in CSV. Plots use
matplotlib's Agg backend, imported only here.

Files: results.json (parameters, stats, per-category AP, the analysis' overall row and
per-class rows), per_class.csv, detections.csv (every result's outcome, matched ground
truth and IoU), ground_truths.csv (every evaluated ground truth: tp / fn / ignored),
pr_curves.csv (per class: score, precision, recall, F1 at each distinct score),
f1_confidence.csv (the macro values against the score threshold), pr_curves.png (mean
interpolated precision-recall curve per IoU threshold and the per-class curves),
pr_per_class.png (one panel per class, up to ``MAX_PANELS`` classes) and f1_confidence.png.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from segfuse.coco._params import recall_thresholds
from segfuse.report.files import staged_folder

REPORT_FILES = ("results.json", "per_class.csv", "detections.csv", "ground_truths.csv", "pr_curves.csv",
                "f1_confidence.csv", "pr_curves.png", "pr_per_class.png", "f1_confidence.png")
MAX_PANELS = 100
PER_CLASS_COLUMNS = ("id", "name", "AP", "AP50", "AP75", "n_gt", "n_dt", "tp", "fp", "fn", "precision", "recall",
                     "f1", "score_threshold", "mean_iou", "precision_at_overall", "recall_at_overall",
                     "f1_at_overall", "frequency")


def report_document(result, analysis) -> dict:
    """results.json's content: ``result.to_dict()`` plus the analysis (NaN -> None)."""
    document = result.to_dict()
    document["analysis"] = {"iou_threshold": analysis.iou_threshold, "overall": analysis.overall,
                            "per_class": analysis.per_class}
    return _json_ready(document)


def write_report(result, out, analysis=None, plots: bool = True) -> list[Path]:
    """Write the report of ``result`` (a CocoEvaluation) into folder ``out``; returns the files written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: the report folder exists and is not a folder")
    analysis = result.analysis() if analysis is None else analysis
    with staged_folder(out) as staging:
        names = _write_files(staging, result, analysis, plots)
    return [out / name for name in names]


def _write_files(folder: Path, result, analysis, plots: bool) -> list[str]:
    (folder / "results.json").write_text(json.dumps(report_document(result, analysis), indent=2,
                                                    allow_nan=False) + "\n", encoding="utf-8")
    columns = [c for c in PER_CLASS_COLUMNS if any(c in row for row in analysis.per_class)]
    _write_csv(folder / "per_class.csv", columns, ([row.get(c, "") for c in columns] for row in analysis.per_class))
    _write_columns(folder / "detections.csv", analysis.detections)
    _write_columns(folder / "ground_truths.csv", analysis.ground_truths)
    names = {row["id"]: row["name"] for row in analysis.per_class}
    curve_rows = ([cat, names.get(cat, ""), s, p, r, f] for cat, c in analysis.curves.items()
                  for s, p, r, f in zip(c["score"], c["precision"], c["recall"], c["f1"]))
    _write_csv(folder / "pr_curves.csv", ("category_id", "name", "score", "precision", "recall", "f1"), curve_rows)
    _write_columns(folder / "f1_confidence.csv", analysis.f1_curve)
    written = list(REPORT_FILES[:6])
    if plots:
        plt = _pyplot()
        _plot_pr(plt, folder / "pr_curves.png", result, analysis)
        _plot_pr_per_class(plt, folder / "pr_per_class.png", analysis)
        _plot_f1(plt, folder / "f1_confidence.png", analysis)
        written += list(REPORT_FILES[6:])
    return written


def _json_ready(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return _json_ready(value.item())
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def _cell(value):
    if isinstance(value, (float, np.floating)):
        return "" if math.isnan(value) else repr(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_csv(path: Path, header, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([_cell(v) for v in row] for row in rows)


def _write_columns(path: Path, columns: dict) -> None:
    names = list(columns)
    _write_csv(path, names, zip(*(columns[n].tolist() if hasattr(columns[n], "tolist") else columns[n] for n in names)))


# ----------------------------------------------------------------------------------------------- plots


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(plt, figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    plt.close(figure)


def _plot_pr(plt, path: Path, result, analysis) -> None:
    """Left: mean interpolated PR curve per IoU threshold. Right: every class's curve at the analysis IoU."""
    params = result.params
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    block = result.precision[:, :, :, params.all_area, -1]  # (T, R, K)
    recall = recall_thresholds()
    for t, key in enumerate(params.threshold_keys):
        defined = block[t] > -1
        if not defined.any():
            continue
        with np.errstate(invalid="ignore"):
            curve = np.where(defined, block[t], 0).sum(axis=1) / defined.sum(axis=1)
        left.plot(recall, curve, label=f"IoU {params.iou_thresholds[t]:.2f}: {key} {result.stats.get(key, -1):.3f}")
    left.set(xlabel="recall", ylabel="precision (mean over classes, interpolated)", xlim=(0, 1), ylim=(0, 1.02),
             title=f"{params.iou_type} precision-recall")
    if len(params.iou_thresholds) <= 12:
        left.legend(fontsize=7, loc="lower left")
    for c in analysis.curves.values():
        if len(c["recall"]):
            right.plot(np.r_[0, c["recall"]], np.r_[c["precision"][0], c["precision"]], color="#4c72b0", alpha=0.25,
                       linewidth=0.8)
    right.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
              title=f"per class at IoU {analysis.iou_threshold:.2f} ({len(analysis.curves)} classes)")
    figure.tight_layout()
    _save(plt, figure, path)


def _plot_pr_per_class(plt, path: Path, analysis) -> None:
    """One small panel per class (the MAX_PANELS with most ground truths if there are more)."""
    rows = [r for r in analysis.per_class if r["n_gt"] > 0 or r["n_dt"] > 0]
    title_note = ""
    if len(rows) > MAX_PANELS:
        rows = sorted(rows, key=lambda r: -r["n_gt"])[:MAX_PANELS]
        title_note = f" (the {MAX_PANELS} classes with most ground truths of {len(analysis.per_class)})"
    n = max(len(rows), 1)
    cols = min(10, n)
    grid_rows = math.ceil(n / cols)
    figure, axes = plt.subplots(grid_rows, cols, figsize=(1.9 * cols, 1.9 * grid_rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.tick_params(labelsize=6)
    for ax, row in zip(axes.ravel(), rows):
        c = analysis.curves[row["id"]]
        if len(c["recall"]):
            ax.plot(np.r_[0, c["recall"]], np.r_[c["precision"][0], c["precision"]], color="#4c72b0", linewidth=1)
        if row["f1"] == row["f1"] and row["score_threshold"] == row["score_threshold"]:
            ax.plot([row["recall"]], [row["precision"]], "o", color="#c44e52", markersize=3)
        key = f"AP{int(round(100 * analysis.iou_threshold))}"
        ap = row.get(key, float("nan"))
        ax.set_title(f"{row['name']}\n{key} {ap:.3f}" if ap == ap else f"{row['name']}\n{key} -", fontsize=7)
    for ax in axes.ravel()[len(rows):]:
        ax.axis("off")
    figure.suptitle(f"precision-recall per class at IoU {analysis.iou_threshold:.2f}; dot: best F1{title_note}",
                    fontsize=9)
    figure.tight_layout()
    _save(plt, figure, path)


def _plot_f1(plt, path: Path, analysis) -> None:
    """F1 against the score threshold: every class (thin) and the macro mean (bold) with the chosen threshold."""
    figure, ax = plt.subplots(figsize=(6.5, 4.4))
    for c in analysis.curves.values():
        if len(c["score"]):
            ax.plot(c["score"], c["f1"], color="#4c72b0", alpha=0.2, linewidth=0.8, drawstyle="steps-post")
    curve = analysis.f1_curve
    if len(curve["score"]):
        ax.plot(curve["score"], curve["f1"], color="#222222", linewidth=2, drawstyle="steps-post", label="macro F1")
    overall = analysis.overall
    if overall["score_threshold"] == overall["score_threshold"]:
        ax.axvline(overall["score_threshold"], color="#c44e52", linestyle="--",
                   label=f"best macro F1 {overall['f1']:.3f} at score {overall['score_threshold']:.3f}")
    scores = np.concatenate([c["score"] for c in analysis.curves.values()] + [np.zeros(0)])
    low, high = min(0.0, float(scores.min(initial=0))), max(1.0, float(scores.max(initial=1)))
    ax.set(xlabel="score threshold (keep detections scored >= it)", ylabel="F1", xlim=(low, high), ylim=(0, 1.02),
           title=f"F1 against confidence at IoU {analysis.iou_threshold:.2f}")
    ax.legend(fontsize=8, loc="upper right")
    figure.tight_layout()
    _save(plt, figure, path)
