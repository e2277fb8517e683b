"""Dataset presets: a small TOML file per dataset, built-in or written by a user.

Keys (only ``classes`` is required)::

    name = "my-dataset"                   # shown in the report (default: the file name)
    description = "one line"
    classes = ["road", "car", ...]        # C class names, in class-index order
    ignore_index = 255                    # stored value whose pixels are skipped ("none": nothing)
    reduce_zero_label = false             # mmseg: stored 0 is ignored, 1..C are the classes
    gt_suffix = "_gtFine_labelIds.png"    # ground-truth file names end with this (or a list)
    pred_suffix = ["_leftImg8bit.png", ".png"]
    palette = [[128, 64, 128], ...]       # one RGB colour per class: decodes RGB masks, colours plots
    ignore_colors = [[0, 0, 0]]           # RGB colours that mean ignore_index
    instance_suffix = "_gtFine_instanceIds.png"   # Cityscapes instance ids beside each gt file
    official_metrics = "cityscapes"       # also compute the benchmark's own scores

    [label_map]                           # stored value = class index (or ignore_index)
    7 = 0
    8 = 1

Convention:
    Built-in presets are ``cityscapes``, ``ade20k``, ``voc``, ``coco-stuff`` and
    ``pascal-context``; any other argument is read as a path to a preset file. Errors
    raise ValueError naming the file and the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from segfuse.datasets.labels import LabelMapping

KEYS = {
    "name", "description", "classes", "ignore_index", "reduce_zero_label", "gt_suffix", "pred_suffix",
    "palette", "ignore_colors", "instance_suffix", "official_metrics", "label_map",
}
OFFICIAL_METRICS = ("cityscapes",)


@dataclass(frozen=True)
class DatasetPreset:
    """Everything ``segfuse eval`` needs to know about a dataset's files (see the module docstring)."""

    name: str
    classes: tuple[str, ...]
    ignore_index: int | None = 255
    reduce_zero_label: bool = False
    label_map: dict[int, int] | None = None
    gt_suffix: tuple[str, ...] | None = None
    pred_suffix: tuple[str, ...] | None = None
    palette: np.ndarray | None = field(default=None, compare=False)
    ignore_colors: np.ndarray | None = field(default=None, compare=False)
    instance_suffix: str | None = None
    official_metrics: str | None = None
    description: str = ""
    source: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def mapping(self) -> LabelMapping:
        """The ground truth's mapping (the predictions' too with ``--map-pred``)."""
        return LabelMapping(self.num_classes, self.ignore_index, self.reduce_zero_label, self.label_map)


def preset_names() -> list[str]:
    """Names of the built-in presets."""
    folder = resources.files("segfuse.datasets").joinpath("presets")
    return sorted(entry.name[: -len(".toml")] for entry in folder.iterdir() if entry.name.endswith(".toml"))


def _toml():
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    try:
        import tomli
    except ImportError as error:  # pragma: no cover - Python 3.10 without the declared dependency
        raise ImportError("reading dataset presets on Python 3.10 needs tomli: pip install tomli") from error
    return tomli


def load_preset(name_or_path: str | Path) -> DatasetPreset:
    """A built-in preset by name, or a preset file a user wrote (TOML)."""
    text_name = str(name_or_path)
    if text_name in preset_names():
        source = resources.files("segfuse.datasets").joinpath("presets", f"{text_name}.toml")
        text, origin = source.read_text(encoding="utf-8"), f"built-in preset {text_name!r}"
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise ValueError(
                f"{path}: no such preset file (built-in presets: {', '.join(preset_names())})"
            )
        text, origin = path.read_text(encoding="utf-8-sig"), str(path)
    try:
        data = _toml().loads(text)
    except ValueError as error:  # tomllib.TOMLDecodeError is a ValueError
        raise ValueError(f"{origin}: not a valid TOML preset ({error})") from error
    return _preset(data, origin, Path(text_name).stem)


def _fail(origin: str, key: str, problem: str):
    raise ValueError(f"{origin}: {key} {problem}")


def _suffixes(data: dict, key: str, origin: str) -> tuple[str, ...] | None:
    value = data.get(key)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        _fail(origin, key, f"must be a non-empty string or list of strings, got {value!r}")
    return tuple(values)


def _colors(data: dict, key: str, origin: str, count: int | None) -> np.ndarray | None:
    value = data.get(key)
    if value is None:
        return None
    colors = np.asarray(value)
    if colors.ndim != 2 or colors.shape[1:] != (3,) or not np.issubdtype(colors.dtype, np.integer) or (
        colors.size and (colors.min() < 0 or colors.max() > 255)
    ):
        _fail(origin, key, "must be a list of [r, g, b] colours with values in 0..255")
    if count is not None and len(colors) != count:
        _fail(origin, key, f"has {len(colors)} colours for {count} classes")
    return colors.astype(np.uint8)


def _ignore_index(data: dict, origin: str) -> int | None:
    value = data.get("ignore_index", 255)
    if isinstance(value, str) and value.lower() == "none":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(origin, "ignore_index", f"must be an integer or \"none\", got {value!r}")
    return value


def _label_map(data: dict, origin: str, count: int, ignore_index: int | None) -> dict[int, int] | None:
    table = data.get("label_map")
    if table is None:
        return None
    if not isinstance(table, dict) or not table:
        _fail(origin, "label_map", "must be a table of stored value = class index")
    mapping = {}
    for key, value in table.items():
        try:
            stored = int(key)
        except ValueError:
            _fail(origin, "label_map", f"keys must be integers (stored values), got {key!r}")
        if isinstance(value, bool) or not isinstance(value, int) or not (0 <= value < count or value == ignore_index):
            _fail(origin, "label_map", f"maps {stored} to {value!r}; expected a class index in [0, {count}) or {ignore_index}")
        mapping[stored] = value
    return mapping


def _preset(data: dict, origin: str, default_name: str) -> DatasetPreset:
    unknown = sorted(set(data) - KEYS)
    if unknown:
        _fail(origin, "key", f"{unknown[0]!r} is unknown (known keys: {', '.join(sorted(KEYS))})")
    classes = data.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) and c.strip() for c in classes):
        _fail(origin, "classes", "must be a non-empty list of class names")
    classes = tuple(c.strip() for c in classes)
    ignore_index = _ignore_index(data, origin)
    reduce_zero_label = bool(data.get("reduce_zero_label", False))
    label_map = _label_map(data, origin, len(classes), ignore_index)
    if reduce_zero_label and label_map is not None:
        _fail(origin, "label_map", "and reduce_zero_label cannot both be set")
    if reduce_zero_label and ignore_index is None:
        _fail(origin, "reduce_zero_label", "needs an ignore_index for the former label 0")
    official = data.get("official_metrics")
    if official is not None and official not in OFFICIAL_METRICS:
        _fail(origin, "official_metrics", f"must be one of {OFFICIAL_METRICS}, got {official!r}")
    instance_suffix = data.get("instance_suffix")
    if instance_suffix is not None and not (isinstance(instance_suffix, str) and instance_suffix):
        _fail(origin, "instance_suffix", f"must be a string, got {instance_suffix!r}")
    return DatasetPreset(
        name=str(data.get("name", default_name)),
        classes=classes,
        ignore_index=ignore_index,
        reduce_zero_label=reduce_zero_label,
        label_map=label_map,
        gt_suffix=_suffixes(data, "gt_suffix", origin),
        pred_suffix=_suffixes(data, "pred_suffix", origin),
        palette=_colors(data, "palette", origin, len(classes)),
        ignore_colors=_colors(data, "ignore_colors", origin, None),
        instance_suffix=instance_suffix,
        official_metrics=official,
        description=str(data.get("description", "")),
        source=origin,
    )
