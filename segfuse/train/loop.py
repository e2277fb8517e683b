"""The training loop: a U-Net, any segfuse loss, per-epoch validation, checkpoints and resume.

Convention (what makes a run reproducible and resumable bit-exactly):

- the model is initialised after seeding torch, numpy and random with ``seed``;
- the shuffle of epoch e uses a torch.Generator seeded from (seed, e), and augmentations
  draw from (seed, e, index) (:class:`~segfuse.train.transforms.AugmentedDataset`), so no
  epoch depends on how the process got there;
- the learning rate is a closed-form function of the global step (linear warm-up over the
  first 5 percent of steps, then cosine to 0, or constant; see :class:`LearningRateSchedule`),
  so it never depends on history;
- a checkpoint after epoch e holds model, optimizer, scheduler, AMP scaler, the RNG states
  (torch, CUDA, numpy, random), the history and e; ``resume`` restores all of them and
  continues with epoch e + 1. Resuming needs the settings that define the run
  (:data:`RUN_FIELDS`: loss, class weights, epochs, learning rate, ...) to equal the
  checkpoint's; a resume that would switch any of them mid-run is refused.

Files under ``out_dir``: ``checkpoints/last.pt`` (and ``epoch_NNN.pt`` with
``keep_checkpoints``), ``history.json`` (config and one record per epoch), ``metrics.json``
(the last epoch's validation metrics) and ``predictions/epoch_NNN/{pred,gt}/<stem>.png``.
Undefined scores (0/0, NaN) are written as JSON null.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from segfuse.metrics import SemanticMetrics
from segfuse.train.loss_spec import build_loss
from segfuse.train.predictions import MAX_PNG_LABEL, PredictionWriter
from segfuse.train.progress import ProgressBar
from segfuse.train.unet import UNet

SAVE_PREDICTIONS = ("last", "all", "none")
SCHEDULES = ("cosine", "constant")
# TrainConfig fields that define a run: a resume must not change them
RUN_FIELDS = ("num_classes", "loss", "class_weights", "ignore_index", "epochs", "batch_size", "lr", "weight_decay",
              "seed", "base_channels", "depth", "in_channels", "schedule")


@dataclass
class TrainConfig:
    """Everything that defines a run. ``class_weights`` (C,) go to the loss terms that take them."""

    num_classes: int
    loss: str = "ce"
    class_weights: Optional[list[float]] = None
    ignore_index: Optional[int] = None
    epochs: int = 10
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    seed: int = 0
    base_channels: int = 16
    depth: int = 3
    in_channels: int = 3
    device: str = "auto"
    amp: bool = True
    workers: int = 0
    save_predictions: str = "last"
    keep_checkpoints: bool = False
    class_names: Optional[list[str]] = None

    def validate(self) -> None:
        for name in ("num_classes", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        for name in ("lr", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.ignore_index is not None and not 0 <= self.ignore_index <= MAX_PNG_LABEL:
            raise ValueError(f"ignore_index must be in [0, {MAX_PNG_LABEL}] (masks are PNG files), "
                             f"got {self.ignore_index}")
        if self.class_weights is not None and len(self.class_weights) != self.num_classes:
            raise ValueError(f"class_weights must have num_classes={self.num_classes} entries, "
                             f"got {len(self.class_weights)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.save_predictions not in SAVE_PREDICTIONS:
            raise ValueError(f"save_predictions must be one of {SAVE_PREDICTIONS}, got {self.save_predictions!r}")
        build_loss(self.loss, self.class_weights, self.ignore_index)


@dataclass
class EpochRecord:
    """One epoch: mean training loss (and per term), validation loss and scores, seconds."""

    epoch: int
    train_loss: float
    train_terms: dict[str, float]
    val_loss: float
    miou: float
    iou: list[float]
    recall: list[float]
    acc: float
    lr: float
    seconds: float
    metrics: dict = field(default_factory=dict, repr=False)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device must be available, got {name!r} but CUDA is not")
    return device


def seed_everything(seed: int, device: torch.device) -> None:
    """Seed torch, numpy and random; on CUDA also ask for deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "random": random.getstate()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["random"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def warmup_cosine(total_steps: int) -> Callable[[int], float]:
    """LR factor at a global step: linear warm-up over 5 percent of the steps, then cosine to 0."""
    warmup = max(1, total_steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


class LearningRateSchedule:
    """The LR factor of a global step, for ``LambdaLR`` (its state travels in the scheduler's state_dict).

    Linear warm-up over the first 5 percent of ``total_steps``, then cosine to 0 at
    ``total_steps`` (``"cosine"``) or a constant 1 (``"constant"``). :meth:`decay` multiplies
    it by a linear ramp from 1 at step ``start`` down to 0 at ``start + length``: the decay
    phase of a warm-up / stable / decay schedule, which the loss study branches off the
    stable phase at each budget.
    """

    def __init__(self, kind: str, total_steps: int):
        if kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {kind!r}")
        self.kind, self.total_steps = kind, total_steps
        self.decay_start: Optional[int] = None
        self.decay_length: Optional[int] = None

    def __call__(self, step: int) -> float:
        factor = warmup_cosine(self.total_steps)(step)
        if self.kind == "constant" and step >= max(1, self.total_steps // 20):
            factor = 1.0
        if self.decay_start is not None and step >= self.decay_start:
            factor *= max(0.0, (self.decay_start + self.decay_length - step) / self.decay_length)
        return factor

    def decay(self, start: int, length: int) -> None:
        """From global step ``start`` on, ramp the factor linearly to 0 over ``length`` steps."""
        if length < 1:
            raise ValueError(f"decay length must be >= 1 step, got {length}")
        self.decay_start, self.decay_length = start, length

    def clear_decay(self) -> None:
        self.decay_start = self.decay_length = None


def run_differences(saved: dict, config: "TrainConfig") -> list[str]:
    """The :data:`RUN_FIELDS` whose value in a checkpoint's config differs from ``config``'s."""
    defaults = {"schedule": "cosine"}
    differences = []
    for name in RUN_FIELDS:
        before, now = saved.get(name, defaults.get(name)), getattr(config, name)
        if before != now:
            differences.append(f"{name} must equal the checkpoint's {before!r} to resume, got {now!r}")
    return differences


def uniform_sizes(dataset) -> bool:
    """Whether every item has one size (datasets without a ``sizes`` list are assumed uniform)."""
    sizes = getattr(dataset, "sizes", None)
    return sizes is None or len(set(map(tuple, sizes))) <= 1


class Trainer:
    """Trains ``UNet`` on ``train_set`` and validates on ``val_set`` (items (image, mask, stem)).

    Args:
        config: the run (see :class:`TrainConfig`).
        train_set, val_set: datasets of (image float (3, H, W), mask int (H, W), stem).
        out_dir: where checkpoints, history, metrics and predictions go (None writes nothing).
        progress: show a progress bar (rich) while training.
        log: called with one line per epoch (``print`` by default; None is silent).
    """

    def __init__(self, config: TrainConfig, train_set, val_set, out_dir=None, progress: bool = False,
                 log: Optional[Callable[[str], None]] = print):
        config.validate()
        if len(train_set) < config.batch_size:
            raise ValueError(f"batch_size must be <= the {len(train_set)} training samples, got {config.batch_size}")
        if len(val_set) == 0:
            raise ValueError("val_set must not be empty")
        self.config, self.train_set, self.val_set = config, train_set, val_set
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.progress, self.log = progress, log or (lambda line: None)
        self.device = resolve_device(config.device)
        self.amp = config.amp and self.device.type == "cuda"
        seed_everything(config.seed, self.device)
        self.model = UNet(config.in_channels, config.num_classes, config.base_channels, config.depth).to(self.device)
        self.loss_fn = build_loss(config.loss, config.class_weights, config.ignore_index).to(self.device)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.steps_per_epoch = len(train_set) // config.batch_size
        self.schedule = LearningRateSchedule(config.schedule, config.epochs * self.steps_per_epoch)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self.schedule)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.metrics = SemanticMetrics(config.num_classes, ignore_index=config.ignore_index,
                                       class_names=config.class_names)
        self.epoch, self.history = 0, []
        # the checkpoint to resume from and its epoch: the last one written or resumed from
        self.checkpoint: Optional[Path] = None
        self.checkpoint_epoch = 0

    def _loader(self, dataset, shuffle: bool, epoch: int, batch_size: int) -> DataLoader:
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=shuffle, generator=generator,
                          num_workers=self.config.workers, pin_memory=self.device.type == "cuda")

    def _autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self.amp)

    def train_epoch(self, epoch: int, bar: ProgressBar) -> tuple[float, dict[str, float]]:
        """One pass over the training set; returns the mean loss and the mean of each term."""
        self.model.train()
        total, terms, count = torch.zeros((), dtype=torch.float64), {}, 0
        loader = self._loader(self.train_set, True, epoch, self.config.batch_size)
        bar.start(f"epoch {epoch} train", len(loader))
        for image, mask, _ in loader:
            image, mask = image.to(self.device, non_blocking=True), mask.to(self.device, non_blocking=True)
            with self._autocast():
                loss = self.loss_fn(self.model(image), mask)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            total += loss.detach().double().cpu() * len(image)
            for name, value in self.loss_fn.last_terms.items():
                terms[name] = terms.get(name, 0.0) + float(value) * len(image)
            count += len(image)
            bar.advance(loss=float(loss.detach()))
        return float(total) / count, {name: value / count for name, value in terms.items()}

    @torch.no_grad()
    def validate(self, epoch: int, bar: ProgressBar, writer: Optional[PredictionWriter] = None):
        """Validation loss (mean over batches weighted by size) and SemanticMetrics scores."""
        self.model.eval()
        self.metrics.reset()
        batch_size = self.config.batch_size if uniform_sizes(self.val_set) else 1
        loader = self._loader(self.val_set, False, epoch, batch_size)
        total, count = 0.0, 0
        bar.start(f"epoch {epoch} val", len(loader))
        for image, mask, stems in loader:
            image, mask = image.to(self.device), mask.to(self.device)
            with self._autocast():
                logits = self.model(image)
                loss = self.loss_fn(logits, mask)
            pred = logits.argmax(1)
            self.metrics.update(pred, mask)
            total, count = total + float(loss) * len(image), count + len(image)
            if writer is not None:
                writer.write(list(stems), pred, mask)
            bar.advance()
        return total / count, self.metrics.compute()

    def _writer(self, epoch: int) -> Optional[PredictionWriter]:
        mode = self.config.save_predictions
        if self.out_dir is None or mode == "none" or (mode == "last" and epoch != self.config.epochs):
            return None
        return PredictionWriter(self.out_dir / "predictions" / f"epoch_{epoch:03d}")

    def run_epoch(self, epoch: int, bar: ProgressBar) -> EpochRecord:
        start = time.perf_counter()
        lr = self.optimizer.param_groups[0]["lr"]
        train_loss, terms = self.train_epoch(epoch, bar)
        seconds = time.perf_counter() - start
        val_loss, scores = self.validate(epoch, bar, self._writer(epoch))
        return EpochRecord(epoch=epoch, train_loss=train_loss, train_terms=terms, val_loss=val_loss,
                           miou=float(scores.miou), iou=scores.iou.tolist(), recall=scores.recall.tolist(),
                           acc=float(scores.acc), lr=lr, seconds=seconds, metrics=scores.to_dict())

    def fit(self, stop_after: Optional[int] = None) -> list[EpochRecord]:
        """Train epochs ``self.epoch + 1 .. config.epochs`` (or up to ``stop_after``, as if interrupted)."""
        last = self.config.epochs if stop_after is None else min(stop_after, self.config.epochs)
        with ProgressBar(self.progress) as bar:
            for epoch in range(self.epoch + 1, last + 1):
                record = self.run_epoch(epoch, bar)
                self.history.append(record)
                self.epoch = epoch
                self.log(format_record(record))
                self._save(record)
        return self.history

    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rng_states(), "epoch": self.epoch, "config": asdict(self.config),
            "history": [asdict(record) for record in self.history],
        }

    def load_state_dict(self, state: dict) -> None:
        planned = state["config"]["epochs"]
        if planned != self.config.epochs:
            raise ValueError(f"epochs must equal the checkpoint's planned {planned} epochs to resume (the LR "
                             f"schedule depends on it), got {self.config.epochs}")
        differences = run_differences(state["config"], self.config)
        if differences:
            raise ValueError("; ".join(differences) + " (a resume continues the same run; train with other "
                             "settings into a new output folder)")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_states(state["rng"])
        self.epoch = state["epoch"]
        self.history = [EpochRecord(**record) for record in state["history"]]

    def resume(self, path) -> None:
        """Restore a checkpoint written by this class; the next :meth:`fit` continues after its epoch.

        The checkpoint is unpickled (it holds numpy RNG state): load only files you trust.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"resume checkpoint {path} does not exist")
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=False))
        self.checkpoint, self.checkpoint_epoch = path, self.epoch

    def _save(self, record: EpochRecord) -> None:
        if self.out_dir is None:
            return
        directory = self.out_dir / "checkpoints"
        directory.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        _atomic(directory / "last.pt", lambda path: torch.save(state, path))
        self.checkpoint, self.checkpoint_epoch = directory / "last.pt", record.epoch
        if self.config.keep_checkpoints:
            _atomic(directory / f"epoch_{record.epoch:03d}.pt", lambda path: torch.save(state, path))
        history = {"config": asdict(self.config), "epochs": [asdict(r) for r in self.history]}
        metrics = {"epoch": record.epoch, "val_loss": record.val_loss, **record.metrics}
        for name, document in (("history.json", history), ("metrics.json", metrics)):
            text = json.dumps(_nan_to_none(document), indent=1, allow_nan=False)
            _atomic(self.out_dir / name, lambda path: path.write_text(text))


def _nan_to_none(value):
    """Undefined scores (NaN) become JSON null, as in ``segfuse eval``'s metrics.json."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_to_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(item) for item in value]
    return value


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name, then rename: no half-written file is ever left behind."""
    temporary = path.with_name(path.name + ".tmp")
    write(temporary)
    os.replace(temporary, path)


def format_record(record: EpochRecord) -> str:
    iou = " ".join(f"{value:.3f}" for value in record.iou)
    return (f"epoch {record.epoch:3d}  loss {record.train_loss:.4f}  val_loss {record.val_loss:.4f}  "
            f"mIoU {record.miou:.4f}  IoU [{iou}]  {record.seconds:.1f}s")
