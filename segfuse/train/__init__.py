"""Training a compact U-Net with any segfuse loss: data, model, loop and the loss study.

- :mod:`~segfuse.train.procedural`: an imbalanced synthetic task generated from a seed,
- :mod:`~segfuse.train.procedural_hard`: its harder variant (thin threads, a 0.1 % class,
  noisy training boundaries),
- :mod:`~segfuse.train.folder`: a VOC-layout folder of images and PNG masks,
- :mod:`~segfuse.train.transforms`: paired flips, crops and rescales (masks never interpolated),
- :mod:`~segfuse.train.unet`: the network, :mod:`~segfuse.train.loss_spec`: ``"ce:1,dice:0.5"``,
- :mod:`~segfuse.train.loop`: :class:`Trainer` (validation, checkpoints, exact resume),
- :mod:`~segfuse.train.study`: every loss, learning rate and seed on both procedural tasks.

The names below are resolved lazily (PEP 562): ``segfuse.train.study_config`` (the study's
settings, read by ``segfuse study --help``) loads without torch.
"""

from __future__ import annotations

import importlib

_NAMES = {
    "AugmentedDataset": "transforms", "PairedTransform": "transforms",
    "EpochRecord": "loop", "TrainConfig": "loop", "Trainer": "loop",
    "HardProceduralSegmentation": "procedural_hard", "ProceduralSegmentation": "procedural",
    "SegmentationFolder": "folder", "UNet": "unet", "build_loss": "loss_spec", "parse_loss_spec": "loss_spec",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(f"segfuse.train.{_NAMES[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'segfuse.train' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
