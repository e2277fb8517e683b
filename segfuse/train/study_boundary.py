"""Boundary metrics for the loss study: Boundary IoU and HD95 per class, from the saved models.

Thin structures are where overlap and boundary metrics part: a thread predicted one pixel
off loses most of its IoU and Dice but little of its HD95, and a thread with a gap keeps
most of its Dice but gets a large HD95. The study scores every reported run's model at
every point (budgets, convergence) again on the test scenes, from the weights
:func:`~segfuse.train.study_run.run_one` saved, and caches the scores in
``out_dir/boundary.jsonl`` (a rerun computes only what is missing).

Convention: Boundary IoU (Cheng et al. 2021, :class:`segfuse.metrics.BoundaryIoU`) with the
boundary-iou-api's band, d = 2 % of the image diagonal (2 px on 64x64 scenes), from counts
summed over the test scenes (dataset-level, like IoU). HD95: the DeepMind surface-distance
definition (:class:`segfuse.metrics.SurfaceMetrics`), per image and class, averaged over
images; a class empty in the truth or in the prediction (not both) scores the image
diagonal (the largest distance on the image), so misses and false alarms cost the most a
distance can; a class empty in both is left out.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from segfuse.metrics import BoundaryIoU, SurfaceMetrics
from segfuse.train.study_config import StudySettings
from segfuse.train.study_run import EVAL_BATCH, build_task, weights_path
from segfuse.train.unet import UNet

BOUNDARY_FILE = "boundary.jsonl"
BOUNDARY_TASKS = ("hard",)


def boundary_scores(model: torch.nn.Module, dataset, num_classes: int) -> dict:
    """Boundary IoU (C,) from summed counts, HD95 (C,) mean over images and its image counts (C,)."""
    image_size = dataset[0][1].shape
    diagonal = math.sqrt(sum(side * side for side in image_size))
    boundary = BoundaryIoU(num_classes)
    surface = SurfaceMetrics(num_classes, include_background=True, empty=diagonal, tolerances=(1.0,))
    model.eval()
    with torch.no_grad():
        for image, mask, _ in DataLoader(dataset, batch_size=EVAL_BATCH):
            pred = model(image).argmax(1)
            boundary.update(pred, mask)
            surface.update(pred, mask)
    summary = surface.compute()
    return {"boundary_iou": boundary.compute().iou.tolist(), "hd95": summary.per_class["hd95"].tolist(),
            "hd95_images": summary.defined["hd95"].tolist()}


def _key(task: str, loss: str, lr: float, seed: int, point: str) -> tuple:
    return task, loss, float(lr), int(seed), point


def load_boundary(path: Path, settings: StudySettings) -> dict[tuple, dict]:
    """Cached scores of ``boundary.jsonl`` made with ``settings`` (others, and a cut-off last line, are skipped)."""
    cached, tag = {}, settings.run_tag()
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if entry.get("settings") == tag:
                cached[_key(entry["task"], entry["loss"], entry["lr"], entry["seed"], entry["point"])] = entry["scores"]
    return cached


def attach_boundary_scores(runs: dict, settings: StudySettings, out_dir: Path, keys=None, log=None) -> int:
    """Add ``boundary_iou``, ``hd95`` and ``hd95_images`` to the test scores of every point of the runs
    ``keys`` (default: all) of :data:`BOUNDARY_TASKS` whose models were saved; returns how many points
    were scored anew."""
    path = Path(out_dir) / BOUNDARY_FILE
    cached = load_boundary(path, settings)
    tasks, computed = {}, 0
    for task, loss, lr, seed in runs if keys is None else keys:
        run = runs[(task, loss, lr, seed)]
        if task not in BOUNDARY_TASKS:
            continue
        for point, scores in run["points"].items():
            key = _key(task, loss, lr, seed, point)
            if key not in cached:
                weights = weights_path(Path(out_dir) / "weights", task, loss, lr, seed, point)
                if not weights.is_file():
                    continue
                if task not in tasks:
                    tasks[task] = build_task(task, settings)
                data = tasks[task]
                model = UNet(3, len(data.class_names), settings.base_channels, settings.depth)
                model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
                cached[key] = boundary_scores(model, data.test, len(data.class_names))
                entry = {"task": task, "loss": loss, "lr": lr, "seed": seed, "point": point,
                         "settings": settings.run_tag(), "scores": cached[key]}
                with path.open("a") as file:
                    file.write(json.dumps(entry) + "\n")
                    file.flush()
                    os.fsync(file.fileno())
                computed += 1
            scores["test"].update(cached[key])
    if computed and log is not None:
        log(f"scored {computed} saved models with Boundary IoU and HD95 ({path})")
    return computed
