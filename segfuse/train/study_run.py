"""One run of the loss study: a (task, loss, learning rate, seed) trained once, scored at every budget.

The schedule is warm-up / stable / decay (see :mod:`~segfuse.train.study_config`): the
stable phase runs at a constant learning rate and is validated after each epoch; at each
budget b the state after ``b - decay_epochs`` epochs is *branched*: the branch decays the
learning rate linearly to 0 over ``decay_epochs`` epochs, is scored on the validation and
test scenes, and is discarded (the stable phase continues from the saved state, so
branches never change it). The convergence point is the branch taken when the validation
mIoU plateaus (``patience``, ``min_delta``) or at ``max_epochs``.

A run returns a JSON-ready dict: settings, per-epoch validation curve, and per point
(``"10"``, ``"20"``, ..., ``"converged"``) the epochs, optimizer steps and scores; the
model of every point can be saved to score it again later (e.g. with other metrics).
"""

from __future__ import annotations

import copy
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader

from segfuse.metrics import SemanticMetrics
from segfuse.train.class_balance import class_frequencies, median_frequency_weights
from segfuse.train.loop import TrainConfig, Trainer
from segfuse.train.procedural import ProceduralSegmentation
from segfuse.train.procedural_hard import HardProceduralSegmentation
from segfuse.train.progress import ProgressBar
from segfuse.train.study_config import STUDY_LOSSES, StudySettings
from segfuse.train.transforms import AugmentedDataset, PairedTransform

CONVERGED = "converged"
EVAL_BATCH = 32


@dataclass
class TaskData:
    """A task's scenes (train with its label noise; clean val and test) and what the study reports on."""

    name: str
    description: str
    train: object
    val: object
    test: object
    class_names: tuple[str, ...]
    rare_class: int
    thin_class: Optional[int]
    class_weights: list[float]
    pixel_shares: list[float]


def build_task(name: str, settings: StudySettings) -> TaskData:
    """The scenes of task ``"standard"`` or ``"hard"``: train seed 0, val seed 1, test seed 2."""
    size = settings.image_size
    if name == "standard":
        dataset, noise = ProceduralSegmentation, {}
        description = "shapes with a 1 % 'speck' class"
    elif name == "hard":
        dataset, noise = HardProceduralSegmentation, {"boundary_noise": settings.boundary_noise}
        description = (f"thin threads, a 0.1 % 'speck' class, training boundary labels flipped with "
                       f"probability {settings.boundary_noise:g}")
    else:
        raise ValueError(f"task must be 'standard' or 'hard', got {name!r}")
    train = dataset(settings.train_samples, seed=0, image_size=size, **noise)
    val = dataset(settings.val_samples, seed=1, image_size=size)
    test = dataset(settings.test_samples, seed=2, image_size=size)
    frequencies = class_frequencies(train, dataset.num_classes)
    return TaskData(name, description, train, val, test, tuple(dataset.class_names), dataset.rare_class,
                    getattr(dataset, "thin_class", None), median_frequency_weights(frequencies), frequencies)


def evaluate(model: torch.nn.Module, dataset, num_classes: int) -> dict:
    """Dataset-level scores of the argmax predictions: mIoU and per class IoU, Dice, precision, recall."""
    model.eval()
    metrics = SemanticMetrics(num_classes)
    with torch.no_grad():
        for image, mask, _ in DataLoader(dataset, batch_size=EVAL_BATCH):
            metrics.update(model(image).argmax(1), mask)
    scores = metrics.compute()
    return {"miou": float(scores.miou), "iou": scores.iou.tolist(), "dice": scores.dice.tolist(),
            "precision": scores.precision.tolist(), "recall": scores.recall.tolist(),
            "confusion_matrix": scores.confusion_matrix.tolist()}


def _config(task: TaskData, key: str, lr: float, seed: int, settings: StudySettings) -> TrainConfig:
    _, spec, weighted = STUDY_LOSSES[key]
    return TrainConfig(num_classes=len(task.class_names), loss=spec,
                       class_weights=task.class_weights if weighted else None, epochs=settings.max_epochs,
                       batch_size=settings.batch_size, lr=lr, weight_decay=settings.weight_decay,
                       schedule="constant", seed=seed, base_channels=settings.base_channels, depth=settings.depth,
                       device="cpu", save_predictions="none", class_names=list(task.class_names))


def _branch(trainer: Trainer, task: TaskData, epoch: int, settings: StudySettings, bar: ProgressBar,
            weights: Optional[Path]) -> dict:
    """Decay the learning rate to 0 over ``decay_epochs`` from the state after ``epoch``; score; restore.

    With ``weights``, the decayed model's state_dict is saved there (to score it again later).
    """
    saved = copy.deepcopy(trainer.state_dict())
    steps = trainer.steps_per_epoch
    trainer.schedule.decay(epoch * steps, settings.decay_epochs * steps)
    for decay_epoch in range(epoch + 1, epoch + settings.decay_epochs + 1):
        trainer.train_epoch(decay_epoch, bar)
    point = {"epochs": epoch + settings.decay_epochs, "steps": (epoch + settings.decay_epochs) * steps,
             "val": evaluate(trainer.model, task.val, len(task.class_names)),
             "test": evaluate(trainer.model, task.test, len(task.class_names))}
    if weights is not None:
        weights.parent.mkdir(parents=True, exist_ok=True)
        temporary = weights.with_name(weights.name + ".tmp")
        torch.save(trainer.model.state_dict(), temporary)
        os.replace(temporary, weights)
    trainer.load_state_dict(saved)
    trainer.schedule.clear_decay()
    return point


def weights_path(weights_dir: Path, task: str, key: str, lr: float, seed: int, point: str) -> Path:
    """Where a run's model at a point (``"10"``, ..., ``"converged"``) is saved."""
    return Path(weights_dir) / f"{task}_{key}_lr{lr:g}_seed{seed}" / f"{point}.pt"


def run_one(task: TaskData, key: str, lr: float, seed: int, settings: StudySettings,
            on_epoch: Optional[Callable[[int], None]] = None, weights_dir: Optional[Path] = None) -> dict:
    """Train one (loss, learning rate, seed) on ``task``; see the module docstring for the protocol.

    With ``weights_dir``, the model of every point is saved (:func:`weights_path`).
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    train = AugmentedDataset(task.train, PairedTransform(settings.crop_size, flip=False), seed=seed)
    trainer = Trainer(_config(task, key, lr, seed, settings), train, task.val, log=None)
    bar = ProgressBar(enabled=False)
    last_stable = settings.max_epochs - settings.decay_epochs
    branch_at = {budget - settings.decay_epochs: str(budget) for budget in settings.budgets}
    points, curve = {}, []
    best, waited, plateau, capped = float("-inf"), 0, None, False
    for epoch in range(1, last_stable + 1):
        record = trainer.run_epoch(epoch, bar)
        trainer.epoch = epoch
        curve.append({"epoch": epoch, "train_loss": record.train_loss, "val_miou": record.miou,
                      "val_iou": record.iou, "lr": record.lr, "seconds": record.seconds})
        if record.miou > best + settings.min_delta:
            best, waited = record.miou, 0
        else:
            waited += 1
        if epoch in branch_at:
            point = branch_at[epoch]
            points[point] = _branch(trainer, task, epoch, settings, bar, _weights(weights_dir, task, key, lr, seed,
                                                                                  point))
        if plateau is None and (waited >= settings.patience or epoch == last_stable):
            plateau, capped = epoch, waited < settings.patience
            points[CONVERGED] = _branch(trainer, task, epoch, settings, bar,
                                        _weights(weights_dir, task, key, lr, seed, CONVERGED))
        if on_epoch is not None:
            on_epoch(epoch)
        if plateau is not None and epoch >= max(branch_at):
            break
    return {"task": task.name, "loss": key, "lr": lr, "seed": seed, "settings": settings.run_tag(),
            "plateau_epoch": plateau, "capped": capped,
            "points": points, "curve": curve, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu_start,
            "class_weights": task.class_weights if STUDY_LOSSES[key][2] else None, "machine": machine()}


def _weights(weights_dir, task: TaskData, key: str, lr: float, seed: int, point: str) -> Optional[Path]:
    return None if weights_dir is None else weights_path(weights_dir, task.name, key, lr, seed, point)


def machine() -> dict:
    """Where a run ran: reused runs say so in the report."""
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads()}
