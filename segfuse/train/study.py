"""The loss study: one U-Net trained with each loss family member on the procedural task, over seeds.

Every run shares the data (train scenes seed 0, val scenes seed 1), the network, the
optimiser and the schedule; only the loss and the training seed (initialisation, shuffle)
change. Outputs in ``out_dir``:

- ``runs.jsonl``: one line per (loss, seed) with its settings and per-epoch history (a
  rerun with the same settings reuses the lines it finds, so an interrupted study resumes),
- ``summary.md`` and ``summary.csv``: per loss, mean and sample standard deviation over
  seeds of the final mIoU, rare-class IoU, recall and precision, and seconds per training
  epoch; the rare-IoU change against CE and whether the seeds' ranges separate,
- ``curves_miou.png``, ``curves_rare_iou.png``, ``curves_rare_recall.png``: the validation
  curves per epoch (mean over seeds, band = min..max).
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from segfuse.train.class_balance import class_frequencies, median_frequency_weights
from segfuse.train.loop import EpochRecord, TrainConfig, Trainer
from segfuse.train.procedural import CLASS_NAMES, NUM_CLASSES, RARE_CLASS, ProceduralSegmentation

# key -> (label, loss spec, median-frequency class weights)
STUDY_LOSSES: dict[str, tuple[str, str, bool]] = {
    "ce": ("CE", "ce", False),
    "wce": ("weighted CE", "ce", True),
    "focal": ("focal (gamma 2)", "focal", False),
    "dice": ("Dice", "dice", False),
    "ce+dice": ("CE + Dice", "ce+dice", False),
    "focal+dice": ("focal + Dice", "focal+dice", False),
    "tversky": ("Tversky (0.3, 0.7)", "tversky", False),
    "lovasz": ("Lovasz-softmax", "lovasz", False),
}


@dataclass(frozen=True)
class StudySettings:
    """What every run of the study shares."""

    seeds: tuple[int, ...] = (0, 1, 2)
    train_samples: int = 384
    val_samples: int = 128
    image_size: int = 64
    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-2
    base_channels: int = 8
    depth: int = 2
    threads: int = 2


@dataclass
class RunResult:
    """One (loss, seed) run: its history (one record per epoch) and wall-clock seconds."""

    key: str
    seed: int
    history: list[EpochRecord]
    seconds: float

    @property
    def final(self) -> EpochRecord:
        return self.history[-1]


def _settings_tag(settings: StudySettings) -> str:
    return json.dumps(asdict(settings), sort_keys=True)


def _load_done(path: Path, settings: StudySettings) -> dict[tuple[str, int], RunResult]:
    done = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            if entry["settings"] == _settings_tag(settings):
                history = [EpochRecord(**record) for record in entry["history"]]
                done[(entry["key"], entry["seed"])] = RunResult(entry["key"], entry["seed"], history, entry["seconds"])
    return done


def train_one(key: str, seed: int, settings: StudySettings, train_set, val_set, class_weights) -> RunResult:
    """Train one loss with one seed; no files are written."""
    _, spec, weighted = STUDY_LOSSES[key]
    config = TrainConfig(num_classes=NUM_CLASSES, loss=spec, class_weights=class_weights if weighted else None,
                         epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr, seed=seed,
                         base_channels=settings.base_channels, depth=settings.depth, device="cpu",
                         save_predictions="none", class_names=list(CLASS_NAMES))
    start = time.perf_counter()
    history = Trainer(config, train_set, val_set, out_dir=None, log=None).fit()
    return RunResult(key, seed, history, time.perf_counter() - start)


def run_study(settings: StudySettings, out_dir, keys: Optional[Sequence[str]] = None,
              log: Callable[[str], None] = print) -> list[RunResult]:
    """Run (or reuse from ``runs.jsonl``) every (loss, seed) and write tables and plots."""
    keys = list(STUDY_LOSSES) if keys is None else list(keys)
    unknown = [key for key in keys if key not in STUDY_LOSSES]
    if unknown:
        raise ValueError(f"study losses must be among {list(STUDY_LOSSES)}, got {unknown}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(settings.threads)
    train_set = ProceduralSegmentation(settings.train_samples, seed=0, image_size=settings.image_size)
    val_set = ProceduralSegmentation(settings.val_samples, seed=1, image_size=settings.image_size)
    weights = median_frequency_weights(class_frequencies(train_set, NUM_CLASSES))
    runs_path = out_dir / "runs.jsonl"
    done = _load_done(runs_path, settings)
    results = []
    for key in keys:
        for seed in settings.seeds:
            if (key, seed) not in done:
                result = train_one(key, seed, settings, train_set, val_set, weights)
                entry = {"key": key, "seed": seed, "settings": _settings_tag(settings), "seconds": result.seconds,
                         "class_weights": weights if STUDY_LOSSES[key][2] else None,
                         "history": [asdict(record) for record in result.history]}
                with runs_path.open("a") as file:
                    file.write(json.dumps(entry) + "\n")
                done[(key, seed)] = result
            result = done[(key, seed)]
            log(f"{STUDY_LOSSES[key][0]:20s} seed {seed}: mIoU {result.final.miou:.4f}  "
                f"rare IoU {result.final.iou[RARE_CLASS]:.4f}  recall {result.final.recall[RARE_CLASS]:.4f}  "
                f"{result.seconds:.1f}s")
            results.append(result)
    rows = summarize(results)
    write_tables(rows, settings, out_dir)
    plot_curves(results, out_dir)
    return results


def _mean_std(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(results: list[RunResult]) -> list[dict]:
    """Per loss: mean and sample std over seeds of the final scores, and seconds per epoch."""
    rows = []
    for key in dict.fromkeys(result.key for result in results):
        runs = [result for result in results if result.key == key]
        finals = [run.final for run in runs]
        row = {"key": key, "loss": STUDY_LOSSES[key][0], "seeds": len(runs)}
        metrics = {
            "miou": [f.miou for f in finals],
            "rare_iou": [f.iou[RARE_CLASS] for f in finals],
            "rare_recall": [f.recall[RARE_CLASS] for f in finals],
            "rare_precision": [f.metrics["per_class"][CLASS_NAMES[RARE_CLASS]]["precision"] for f in finals],
            "seconds_per_epoch": [sum(r.seconds for r in run.history) / len(run.history) for run in runs],
        }
        for name, values in metrics.items():
            row[f"{name}_mean"], row[f"{name}_std"] = _mean_std(values)
        row["rare_iou_min"], row["rare_iou_max"] = min(metrics["rare_iou"]), max(metrics["rare_iou"])
        rows.append(row)
    return rows


def separation(row: dict, baseline: dict) -> str:
    """"above" / "below" when every seed's rare IoU lies above / below every seed of the baseline."""
    if row["rare_iou_min"] > baseline["rare_iou_max"]:
        return "above"
    if row["rare_iou_max"] < baseline["rare_iou_min"]:
        return "below"
    return "overlap"


def write_tables(rows: list[dict], settings: StudySettings, out_dir: Path) -> None:
    """summary.csv (every column) and summary.md (mean ± std; rare IoU change against CE)."""
    with (out_dir / "summary.csv").open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    baseline = next((row for row in rows if row["key"] == "ce"), None)
    lines = [
        f"Procedural task ({settings.image_size}x{settings.image_size}, {settings.train_samples} train / "
        f"{settings.val_samples} val scenes), U-Net base {settings.base_channels} depth {settings.depth}, "
        f"{settings.epochs} epochs, batch {settings.batch_size}, AdamW lr {settings.lr}, seeds "
        f"{list(settings.seeds)}; final-epoch validation scores, mean ± sample std over seeds. "
        f"Rare class: '{CLASS_NAMES[RARE_CLASS]}' (~1% of pixels).",
        "",
        "Δ: change of the mean rare IoU against CE; seeds vs CE: whether every seed's rare IoU lies above "
        "(or below) every CE seed's, or the ranges overlap. s / epoch: the training pass of one epoch.",
        "",
        "| loss | mIoU | rare IoU | rare recall | rare precision | Δ rare IoU vs CE | seeds vs CE | s / epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        versus = ["", ""] if baseline is None else [
            f"{row['rare_iou_mean'] - baseline['rare_iou_mean']:+.3f}",
            "" if row is baseline else separation(row, baseline)]
        cells = [f"{row[f'{name}_mean']:.3f} ± {row[f'{name}_std']:.3f}"
                 for name in ("miou", "rare_iou", "rare_recall", "rare_precision")]
        cells += [*versus, f"{row['seconds_per_epoch_mean']:.2f}"]
        lines.append(f"| {row['loss']} | " + " | ".join(cells) + " |")
    (out_dir / "summary.md").write_text("\n".join(lines) + "\n")


def plot_curves(results: list[RunResult], out_dir: Path) -> None:
    """Validation curves per epoch, one line per loss (mean over seeds, band min..max)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = {
        "miou": ("validation mIoU", lambda r: r.miou),
        "rare_iou": (f"validation IoU of '{CLASS_NAMES[RARE_CLASS]}'", lambda r: r.iou[RARE_CLASS]),
        "rare_recall": (f"validation recall of '{CLASS_NAMES[RARE_CLASS]}'", lambda r: r.recall[RARE_CLASS]),
    }
    for name, (title, value) in curves.items():
        figure, axes = plt.subplots(figsize=(7, 4.5))
        for key in dict.fromkeys(result.key for result in results):
            runs = [result for result in results if result.key == key]
            epochs = [record.epoch for record in runs[0].history]
            values = torch.tensor([[value(record) for record in run.history] for run in runs], dtype=torch.float64)
            line, = axes.plot(epochs, values.mean(0).tolist(), label=STUDY_LOSSES[key][0])
            axes.fill_between(epochs, values.min(0).values.tolist(), values.max(0).values.tolist(),
                              color=line.get_color(), alpha=0.15)
        axes.set_xlabel("epoch")
        axes.set_title(f"{title} (mean over {len(runs)} seeds, band = min..max)")
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        figure.savefig(out_dir / f"curves_{name}.png", dpi=110)
        plt.close(figure)
