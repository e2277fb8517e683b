"""Training a compact U-Net with any segfuse loss: data, model, loop and the loss study.

- :mod:`~segfuse.train.procedural`: an imbalanced synthetic task generated from a seed,
- :mod:`~segfuse.train.folder`: a VOC-layout folder of images and PNG masks,
- :mod:`~segfuse.train.transforms`: paired flips, crops and rescales (masks never interpolated),
- :mod:`~segfuse.train.unet`: the network, :mod:`~segfuse.train.loss_spec`: ``"ce:1,dice:0.5"``,
- :mod:`~segfuse.train.loop`: :class:`Trainer` (validation, checkpoints, exact resume),
- :mod:`~segfuse.train.study`: every loss over seeds on the procedural task.
"""

from segfuse.train.folder import SegmentationFolder
from segfuse.train.loop import EpochRecord, TrainConfig, Trainer
from segfuse.train.loss_spec import build_loss, parse_loss_spec
from segfuse.train.procedural import ProceduralSegmentation
from segfuse.train.transforms import AugmentedDataset, PairedTransform
from segfuse.train.unet import UNet

__all__ = [
    "AugmentedDataset", "EpochRecord", "PairedTransform", "ProceduralSegmentation", "SegmentationFolder",
    "TrainConfig", "Trainer", "UNet", "build_loss", "parse_loss_spec",
]
