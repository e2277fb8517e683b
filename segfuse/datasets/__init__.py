"""Dataset presets for evaluation: class names, ignore index, label mapping, palette, file patterns.

``load_preset("cityscapes")`` returns a :class:`DatasetPreset`; ``load_preset("my.toml")``
reads a preset file a user wrote (the built-in ones in ``segfuse/datasets/presets/`` are
examples of the format). :class:`LabelMapping` turns stored mask values into class
indices. numpy only, no torch.
"""

from segfuse.datasets.labels import IGNORED, INVALID, LabelMapping
from segfuse.datasets.presets import DatasetPreset, load_preset, preset_names

__all__ = ["IGNORED", "INVALID", "DatasetPreset", "LabelMapping", "load_preset", "preset_names"]
