"""What the loss study runs: tasks, losses, learning rates, seeds, budgets. No torch needed.

One *run* is (task, loss, learning rate, seed). Its protocol (:mod:`~segfuse.train.study_run`):
AdamW with a warm-up / stable / decay schedule. The stable phase (constant learning rate
after the warm-up) is validated after every epoch; each budget b (in epochs) and the
convergence point are *branches* off it that decay the learning rate linearly to 0 over
``decay_epochs`` epochs and are then scored on the test set. So the budget-b score is what
a b-epoch run with an annealed learning rate reaches, and all budgets come from one run.
Convergence: the validation mIoU has not beaten its best by ``min_delta`` for ``patience``
epochs (or ``max_epochs`` is reached).

Protocol of the whole study: for each (task, loss), every learning rate of ``lrs`` is run
with the ``tuning_seeds``; the learning rate with the best mean *validation* mIoU at
convergence is kept, and the remaining ``seeds`` are run with it. Every reported score is
on the separate *test* scenes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Optional

# bump when a change to the code changes what a run computes, so old runs are not reused
PROTOCOL_VERSION = 2

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

STUDY_TASKS = ("standard", "hard")

# the study's default run time on a quiet 2-core machine, quoted by `segfuse study --help` and the README
DEFAULT_RUN_TIME = "about 60 min"


@dataclass(frozen=True)
class StudySettings:
    """The study's grid (tasks, losses, learning rates, seeds) and the settings every run shares.

    The defaults are the published study. ``image_size`` is the scene size (validation and
    test see whole scenes); training sees random ``crop_size`` crops of the training scenes.
    """

    tasks: tuple[str, ...] = STUDY_TASKS
    losses: tuple[str, ...] = tuple(STUDY_LOSSES)
    lrs: tuple[float, ...] = (3e-3, 1e-2, 3e-2)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    tuning_seeds: tuple[int, ...] = (0, 1)
    budgets: tuple[int, ...] = (10, 20, 40)
    max_epochs: int = 60
    patience: int = 6
    min_delta: float = 0.005
    decay_epochs: int = 2
    train_samples: int = 384
    val_samples: int = 128
    test_samples: int = 256
    image_size: int = 64
    crop_size: Optional[int] = 32
    batch_size: int = 16
    weight_decay: float = 1e-4
    base_channels: int = 8
    depth: int = 2
    boundary_noise: float = 0.3

    # the grid: changing these adds or drops runs but leaves every run's result alone
    GRID = ("tasks", "losses", "lrs", "seeds", "tuning_seeds")

    def validate(self) -> None:
        unknown = [key for key in self.losses if key not in STUDY_LOSSES]
        if unknown or not self.losses:
            raise ValueError(f"study losses must be among {list(STUDY_LOSSES)}, got {list(self.losses)}")
        unknown = [task for task in self.tasks if task not in STUDY_TASKS]
        if unknown or not self.tasks:
            raise ValueError(f"study tasks must be among {list(STUDY_TASKS)}, got {list(self.tasks)}")
        for name in ("lrs", "seeds", "tuning_seeds", "budgets"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ValueError(f"{name} must be a non-empty list without repeats, got {list(values)}")
        if not set(self.tuning_seeds) <= set(self.seeds):
            raise ValueError(f"tuning_seeds must be among seeds {list(self.seeds)}, got {list(self.tuning_seeds)}")
        if any(lr <= 0 for lr in self.lrs):
            raise ValueError(f"lrs must be > 0, got {list(self.lrs)}")
        for name in ("max_epochs", "patience", "decay_epochs", "train_samples", "val_samples", "test_samples",
                     "batch_size", "base_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(self.budgets) <= self.decay_epochs:
            raise ValueError(f"budgets must exceed decay_epochs={self.decay_epochs}, got {list(self.budgets)}")
        if max(self.budgets) > self.max_epochs:
            raise ValueError(f"budgets must be <= max_epochs={self.max_epochs}, got {list(self.budgets)}")
        if self.batch_size > self.train_samples:
            raise ValueError(f"batch_size must be <= train_samples={self.train_samples}, got {self.batch_size}")
        if self.crop_size is not None and not 8 <= self.crop_size <= self.image_size:
            raise ValueError(f"crop_size must be in [8, image_size={self.image_size}], got {self.crop_size}")
        if not 0 <= self.boundary_noise <= 1:
            raise ValueError(f"boundary_noise must be in [0, 1], got {self.boundary_noise}")

    def total_runs(self) -> int:
        """Runs of the whole study: every learning rate with the tuning seeds, then the other seeds."""
        per_pair = len(self.lrs) * len(self.tuning_seeds) + len(set(self.seeds) - set(self.tuning_seeds))
        return len(self.tasks) * len(self.losses) * per_pair

    def run_settings(self) -> dict:
        """The settings that decide a run's result (everything but the grid), with the protocol version."""
        settings = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.GRID}
        settings["budgets"] = list(self.budgets)
        return {"protocol": PROTOCOL_VERSION, **settings}

    def run_tag(self) -> str:
        return json.dumps(self.run_settings(), sort_keys=True)

    def to_dict(self) -> dict:
        return {name: list(value) if isinstance(value, tuple) else value for name, value in asdict(self).items()}


def default_out_dir(root: Path = Path("runs")) -> Path:
    """A fresh folder for a new study: ``runs/study-YYYYmmdd-HHMMSS`` (a suffix if it exists)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate, count = root / f"study-{stamp}", 1
    while candidate.exists():
        count += 1
        candidate = root / f"study-{stamp}-{count}"
    return candidate
