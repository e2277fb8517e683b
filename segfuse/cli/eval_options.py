"""The options of ``segfuse eval`` and ``segfuse compare``: one set of argument definitions, one settings step.

Both commands read and map masks the same way (folders, dataset presets, file suffixes,
label mapping, palettes, misses) and score them under the same options; ``compare`` is
``eval`` with two ``--pred`` folders. :func:`add_arguments` defines the arguments of
both, :func:`settings_from` resolves them (preset, class names, ignore index, mapping,
palette, output paths) into :class:`Settings`, and :func:`pair_folder` pairs a prediction
folder with the ground truth. Building the parser imports neither torch nor the counting
code.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from segfuse.cli.errors import InputError

DEFAULT_OUT = Path("segfuse-report")
COMPARE_OUT = Path("segfuse-compare")
NO_IGNORE = "none"
SCORES = ("iou", "dice", "fscore", "precision", "recall")


def sample_folder() -> Path:
    """The sample bundled in the package (gt/, pred/, classes.txt)."""
    return Path(str(resources.files("segfuse").joinpath("data", "sample")))


def _ignore_index(text: str):
    if text.lower() in ("none", "off"):
        return NO_IGNORE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """The arguments of ``command`` ("eval" or "compare"); compare has no distance metrics."""
    comparing = command == "compare"
    data = parser.add_argument_group("data")
    data.add_argument("--gt", type=Path, metavar="DIR",
                      help="ground-truth masks (PNG, .npy, NIfTI)"
                      + ("" if comparing else "; default: the bundled sample"))
    data.add_argument("--pred", type=Path, action="append", metavar="DIR",
                      help="predicted masks, paired with --gt by file stem; give it twice (--pred A --pred B) to "
                      "compare model B against model A" if not comparing else
                      "predicted masks; give it twice: --pred A --pred B (B is compared against A)")
    data.add_argument("--dataset", metavar="NAME|FILE",
                      help="preset: class names, ignore index, label mapping, palette and file patterns of "
                      "cityscapes, ade20k, voc, coco-stuff, pascal-context, or a preset file (TOML)")
    data.add_argument("--gt-suffix", nargs="+", metavar="SUFFIX",
                      help="ground-truth file names end with this (e.g. _gtFine_labelIds.png); "
                      "default .png / .npy / .nii / .nii.gz")
    data.add_argument("--pred-suffix", nargs="+", metavar="SUFFIX", help="prediction file names end with this")
    data.add_argument("--skip-missing", action="store_true",
                      help="skip unpaired files (counted in the report)" if not comparing else
                      "use only the images all three folders hold")
    labels = parser.add_argument_group("labels")
    labels.add_argument("--num-classes", type=int, metavar="C",
                        help="C; from --class-names / --dataset, else inferred from the data")
    labels.add_argument("--class-names", metavar="FILE|a,b,c", help="a file with one name per line, or a,b,c")
    labels.add_argument("--ignore-index", type=_ignore_index, default=None, metavar="I",
                        help="ground-truth label to skip (default 255, or the preset's; 'none')")
    labels.add_argument("--reduce-zero-label", action="store_true",
                        help="mmseg: ground truth 0 -> ignored, others - 1 (ADE20K)")
    labels.add_argument("--map-pred", action="store_true",
                        help="apply the label mapping to the predictions too (Cityscapes label-id predictions, "
                        "ADE20K 1..150 submissions)")
    labels.add_argument("--palette", metavar="NAME|FILE",
                        help="decode RGB colour masks with a preset's palette (e.g. voc, cityscapes) or a preset file")
    scoring = parser.add_argument_group("scores")
    scoring.add_argument("--beta", type=float, default=1.0, metavar="B",
                         help="F-beta's beta (default 1: the column is Dice)")
    from segfuse.metrics.scores import CONVENTIONS, DEFAULT_CONVENTION  # numpy only

    scoring.add_argument("--convention", choices=tuple(CONVENTIONS), default=DEFAULT_CONVENTION,
                         help="whose rules for undefined scores and means: segfuse (default), mmseg (IoUMetric), "
                         "detectron2 (SemSegEvaluator), torchmetrics, monai (per image); see the README")
    scoring.add_argument("--per-image", action="store_true",
                         help="average per-image scores instead of dataset counts (as the convention averages them)")
    if not comparing:
        _add_distance_arguments(parser)
    comparison = parser.add_argument_group("comparison (two --pred folders)")
    comparison.add_argument("--resamples", type=int, default=1000, metavar="R", help="bootstrap resamples (default 1000)")
    comparison.add_argument("--seed", type=int, default=0, help="seed of the resampling (default 0)")
    comparison.add_argument("--confidence", type=float, default=0.95, metavar="P",
                            help="interval level in (0, 1) (default 0.95)")
    comparison.add_argument("--names", metavar="A,B", help="display names of the two models (default: the folder names)")
    comparison.add_argument("--score", choices=SCORES, default="iou", help="score of the table and the plot (default iou)")
    output = parser.add_argument_group("output")
    default_out = COMPARE_OUT if comparing else f"{DEFAULT_OUT}, or {COMPARE_OUT} with two --pred"
    output.add_argument("--out", type=Path, metavar="DIR", help=f"report folder (default ./{default_out}; with --json only when given)")
    output.add_argument("--json", action="store_true", help="print the JSON report to stdout instead of the table")
    output.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                        help="draw the plots (default: when stdout is a terminal; a comparison always draws its one)")
    output.add_argument("--html", type=Path, metavar="FILE", help="write the HTML report here (default: report.html in --out)")
    output.add_argument("--no-html", action="store_true", help="no HTML report")
    output.add_argument("--worst", type=int, default=6, metavar="K", help="worst images shown in the HTML report (default 6)")
    output.add_argument("--workers", type=int, metavar="K",
                        help="reader processes; 0 reads in this process (default: as many as pay off, at most the cores)")


def _add_distance_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("boundary and surface distances (2D and 3D)")
    group.add_argument("--boundary", action="store_true",
                       help="Boundary IoU per class (band of 2%% of the image diagonal; --boundary-width for pixels)")
    group.add_argument("--boundary-width", type=float, metavar="D",
                       help="Boundary IoU band width d in pixels (or the spacing's unit); implies --boundary")
    group.add_argument("--surface", metavar="TOL[,TOL...]",
                       help="surface distances: HD, HD95, ASSD, and NSD at these tolerances (in the spacing's unit)")
    group.add_argument("--surface-definition", choices=("deepmind", "monai"), default="deepmind",
                       help="surface points: DeepMind surface-distance's surfels (default) or MONAI's edge voxels")
    group.add_argument("--surface-empty", default="inf", metavar="POLICY",
                       help="a class empty in the truth or the prediction: inf (default), nan, reference, or a distance")
    group.add_argument("--spacing", metavar="S,S[,S]",
                       help="pixel / voxel spacing per axis, e.g. 1,1,2.5 (default: the NIfTI header's, else 1)")
    group.add_argument("--include-background", action=argparse.BooleanOptionalAction, default=None,
                       help="score class 0 in the distance metrics (default: surface no, Boundary IoU yes)")


# ---- settings ------------------------------------------------------------------------------


@dataclass
class Settings:
    """The resolved arguments: folders, classes, counting options, outputs and scoring rules."""

    gt: Path
    preds: list[Path]
    class_names: list[str] | None
    num_classes: int | None
    ignore_index: int | None
    options: object  # segfuse.cli.eval_pairs.CountOptions
    out: Path | None
    plots: bool
    html: Path | None
    convention: str
    per_image: bool
    preset: object = None
    gt_suffix: tuple[str, ...] | None = None
    pred_suffix: tuple[str, ...] | None = None
    instance_suffix: str | None = None
    labels: tuple[str, str] = ("A", "B")
    notes: list[str] = field(default_factory=list)

    @property
    def comparing(self) -> bool:
        return len(self.preds) == 2

    @property
    def palette(self):
        """The class colours (K, 3) for plots and the report: the preset's, else --palette's; or None."""
        if self.preset is not None and self.preset.palette is not None:
            return self.preset.palette
        decoding = getattr(self.options, "palette", None)
        return decoding.colors if decoding is not None else None


def _read_names(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM is not part of the first name
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read --class-names ({error})") from error
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise InputError(f"{path}: --class-names file holds no names")
    return names


def _class_names(text: str | None) -> list[str] | None:
    """Names from a file, or from a,b,c; a single word that is no file is a missing file, not one name."""
    if text is None:
        return None
    path = Path(text)
    if path.is_file():
        return _read_names(path)
    if "," not in text:
        raise InputError(f"{text}: --class-names file not found (for names on the command line write a,b,c)")
    names = [name.strip() for name in text.split(",")]
    if any(not name for name in names):
        raise InputError(f"{text}: --class-names has an empty name")
    return names


def _preset(name: str | None, option: str):
    if name is None:
        return None
    from segfuse.datasets import load_preset

    try:
        return load_preset(name)
    except ValueError as error:
        raise InputError(f"{option} {error}") from error


def _palette(args, preset, ignore_index):
    from segfuse.cli.io_masks import Palette

    source = _preset(args.palette, "--palette") if args.palette else preset
    if source is None or source.palette is None:
        return None
    import numpy as np

    ignore = source.ignore_colors if source.ignore_colors is not None else np.zeros((0, 3), np.uint8)
    return Palette(source.palette, ignore, ignore_index, source.name)


def check_out(out: Path) -> None:
    """Fail before any work when ``out`` cannot become the report folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out exists and is not a folder")
    parent = out if out.exists() else out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"{out}: --out cannot be written ({parent} is not a writable folder)")


def _plots_wanted(args, out: Path | None) -> bool:
    if out is None:
        return False
    if args.plots is not None:
        return args.plots
    return not args.json and sys.stdout is not None and sys.stdout.isatty()


def _check_folders(args, command: str) -> None:
    preds = args.pred or []
    if command == "compare" and len(preds) != 2:
        raise InputError(f"--pred must be given exactly twice (model A, then model B), got {len(preds)}")
    if (args.gt is None) != (not preds):
        raise InputError("--gt and --pred go together (give both, or neither for the bundled sample)")
    if len(preds) > 2:
        raise InputError(f"--pred takes one folder (evaluate) or two (compare B against A), got {len(preds)}")


def _check_numbers(args, command: str) -> None:
    _check_folders(args, command)
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be >= 0 (0 reads in this process), got {args.workers}")
    if not args.beta > 0:
        raise InputError(f"--beta must be > 0, got {args.beta}")
    if args.num_classes is not None and args.num_classes < 1:
        raise InputError(f"--num-classes must be >= 1, got {args.num_classes}")
    if args.worst < 0:
        raise InputError(f"--worst must be >= 0, got {args.worst}")
    if args.resamples < 1:
        raise InputError(f"--resamples must be >= 1, got {args.resamples}")
    if not 0 < args.confidence < 1:
        raise InputError(f"--confidence must lie in (0, 1), got {args.confidence}")


def _names_and_count(args, preset, sample: Path | None) -> tuple[list[str] | None, int | None, str]:
    names = _class_names(args.class_names)
    source = f"--class-names {args.class_names}" if names else ""
    if names is None and preset is not None:
        names, source = list(preset.classes), f"--dataset {args.dataset}"
    if names is None and sample is not None:
        names, source = _read_names(sample / "classes.txt"), "the bundled sample's classes.txt"
    if names and args.num_classes is not None and len(names) != args.num_classes:
        raise InputError(f"{source} has {len(names)} names but --num-classes is {args.num_classes}")
    if args.num_classes is not None:
        return names, args.num_classes, f"--num-classes {args.num_classes}"
    return names, (len(names) if names else None), (f"{source} ({len(names)} names)" if names else "the data")


def _model_labels(args) -> tuple[str, str]:
    preds = args.pred or []
    if len(preds) != 2:
        return ("A", "B")
    if args.names is not None:
        labels = [name.strip() for name in args.names.split(",")]
        if len(labels) != 2 or not all(labels) or labels[0] == labels[1]:
            raise InputError(f"--names needs two different names 'A,B', got {args.names!r}")
        return labels[0], labels[1]
    first, second = (path.resolve().name or str(path) for path in preds)
    return (first, second) if first != second else ("A", "B")


def _distance_options(args, comparing: bool):
    """The boundary / surface settings, or None when neither is asked for."""
    boundary = getattr(args, "boundary", False) or getattr(args, "boundary_width", None) is not None
    surface = getattr(args, "surface", None)
    if not (boundary or surface is not None):
        for option in ("spacing", "include_background"):
            if getattr(args, option, None) is not None:
                raise InputError(f"--{option.replace('_', '-')} applies to --boundary / --surface, which are not given")
        return None
    if comparing:
        raise InputError("--boundary / --surface score one model: give one --pred")
    from segfuse.cli.eval_distances import DistanceOptions, parse_empty, parse_tolerances
    from segfuse.cli.io_volumes import parse_spacing

    if args.boundary_width is not None and not args.boundary_width > 0:
        raise InputError(f"--boundary-width must be > 0, got {args.boundary_width}")
    return DistanceOptions(
        boundary=boundary, boundary_width=args.boundary_width,
        tolerances=parse_tolerances(surface) if surface is not None else None,
        definition=args.surface_definition, empty=parse_empty(args.surface_empty),
        spacing=parse_spacing(args.spacing) if args.spacing is not None else None,
        include_background=args.include_background,
    )


def _resolve_per_image(args) -> bool:
    from segfuse.metrics.scores import CONVENTIONS

    return bool(args.per_image or CONVENTIONS[args.convention].per_image)


def _outputs(args, comparing: bool) -> tuple[Path | None, Path | None]:
    default = COMPARE_OUT if comparing else DEFAULT_OUT
    out = args.out if args.out is not None else (None if args.json else default)
    if out is not None:
        check_out(out)
    html = None if args.no_html else args.html if args.html is not None else (out / "report.html" if out else None)
    if html is not None and html.is_dir():
        raise InputError(f"{html}: the HTML report path is a folder")
    return out, html


def settings_from(args, command: str = "eval") -> Settings:
    """Resolve the arguments (preset, names, mapping, palette, outputs); bad values raise InputError."""
    from segfuse.cli.eval_pairs import CountOptions

    _check_numbers(args, command)
    comparing = len(args.pred or []) == 2
    preset = _preset(args.dataset, "--dataset")
    sample = sample_folder() if args.gt is None else None
    gt, preds = (sample / "gt", [sample / "pred"]) if sample else (args.gt, list(args.pred))
    names, num_classes, classes_from = _names_and_count(args, preset, sample)
    if args.ignore_index is None:
        ignore_index = preset.ignore_index if preset else 255
    else:
        ignore_index = None if args.ignore_index == NO_IGNORE else args.ignore_index
    reduce_zero_label = args.reduce_zero_label or bool(preset and preset.reduce_zero_label)
    if reduce_zero_label and ignore_index is None:
        raise InputError("--reduce-zero-label needs an --ignore-index for the former label 0")
    label_map = preset.label_map if preset else None
    if args.map_pred and not (reduce_zero_label or label_map):
        raise InputError("--map-pred needs a label mapping (--reduce-zero-label or a --dataset with a label map)")
    labels = _model_labels(args)
    distances = _distance_options(args, comparing)
    out, html = _outputs(args, comparing)
    options = CountOptions(num_classes, ignore_index, reduce_zero_label and not label_map, label_map, args.map_pred,
                           _palette(args, preset, ignore_index), classes_from, distances)
    official = preset is not None and preset.official_metrics == "cityscapes" and not comparing
    return Settings(
        gt, preds, names, num_classes, ignore_index, options, out, _plots_wanted(args, out), html, args.convention,
        _resolve_per_image(args), preset,
        gt_suffix=tuple(args.gt_suffix) if args.gt_suffix else (preset.gt_suffix if preset else None),
        pred_suffix=tuple(args.pred_suffix) if args.pred_suffix else (preset.pred_suffix if preset else None),
        instance_suffix=preset.instance_suffix if official else None, labels=labels,
    )


# ---- pairing ---------------------------------------------------------------------------------


def pair_folder(settings: Settings, pred: Path, skip_missing: bool):
    """Pair ``pred`` with the ground truth (stems, the preset's suffixes); unpaired files are errors unless skipped."""
    from segfuse.cli.io_masks import pair_masks

    pairing = pair_masks(settings.gt, pred, settings.gt_suffix, settings.pred_suffix)
    _check_pairing(pairing, skip_missing, settings.gt, pred)
    return pairing


def _check_pairing(pairing, skip_missing: bool, gt: Path, pred: Path) -> None:
    if skip_missing or not (pairing.missing_pred or pairing.missing_gt):
        if not pairing.pairs:
            raise InputError(f"{pred}: no prediction pairs with a ground-truth mask in {gt}")
        return
    side, files, folder = ("prediction", pairing.missing_pred, pred) if pairing.missing_pred else (
        "ground truth", pairing.missing_gt, gt)
    more = f" (and {len(files) - 1} more; --skip-missing skips them)" if len(files) > 1 else " (--skip-missing skips it)"
    raise InputError(f"{files[0]}: no {side} with the stem {Path(files[0].name).stem!r} in {folder}{more}")
