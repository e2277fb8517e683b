"""``segfuse eval``: score two folders of label masks and write a report.

Pairs the files (by stem, or by a dataset preset's file patterns), counts each pair in
worker processes (``eval_pairs``: one joint histogram per pair), scores the counts
(``eval_scores``, the formulas of ``segfuse.metrics``), prints a per-class table and writes
metrics.json, per_class.csv, confusion_matrix.csv, per_image.csv and, when asked, two plots
to --out. With a Cityscapes preset and instance files it adds the benchmark's class and
category IoU / iIoU (``segfuse.metrics.cityscapes``). Under torchrun the pairs are sharded
across processes and rank 0 writes the report. Exit code 0 on success, 2 on bad input
(one line naming the file and the problem), 130 on Ctrl-C. torch is not imported unless
the run is distributed.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from segfuse.cli.errors import InputError, fail
from segfuse.cli.eval_pairs import (
    CountOptions, JointCounts, Lookups, PairCounts, default_workers, infer_num_classes, map_counts, per_image_overlaps,
    read_pairs, stacked_counts,
)
from segfuse.cli.eval_scores import EvalScores, eval_scores, overlap_scores, per_image_average, per_image_sums
from segfuse.cli.io_masks import MaskPair, Pairing, Palette, pair_masks
from segfuse.cli.io_report import ReportRows, metrics_document, metrics_json, write_report

CHUNK = 256
DEFAULT_OUT = Path("segfuse-report")


def sample_folder() -> Path:
    """The sample bundled in the package (gt/, pred/, classes.txt)."""
    return Path(str(resources.files("segfuse").joinpath("data", "sample")))


NO_IGNORE = "none"


def _ignore_index(text: str):
    if text.lower() in ("none", "off"):
        return NO_IGNORE
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None


EPILOG = """examples:
  segfuse eval --gt masks/gt --pred masks/pred --class-names classes.txt --out report/
  segfuse eval --dataset cityscapes --gt cityscapes/gtFine/val --pred results/
  segfuse eval --dataset ade20k --gt ADEChallengeData2016/annotations/validation --pred pred/ --map-pred
  segfuse eval --gt gt/ --pred pred_rgb/ --palette voc --num-classes 21 --json > metrics.json

Predictions that hold the ignore value count as misses of the true class (mmseg's rule).
Presets: cityscapes, ade20k, voc, coco-stuff, pascal-context, or a preset file (TOML; see
segfuse/datasets/presets.py). Ctrl-C stops the run (exit 130); nothing is written then."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a folder of predicted masks against the ground truth",
        description="Score predicted label masks against the ground truth (paired by file stem) and write a\n"
        "report: per-class IoU, Dice, F-beta, precision, recall, confusion matrix, per-image scores, plots.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument("--gt", type=Path, metavar="DIR", help="ground-truth masks (PNG or .npy); default: the bundled sample")
    data.add_argument("--pred", type=Path, metavar="DIR", help="predicted masks, paired with --gt by file stem")
    data.add_argument("--dataset", metavar="NAME|FILE",
                      help="preset: class names, ignore index, label mapping, palette and file patterns of "
                      "cityscapes, ade20k, voc, coco-stuff, pascal-context, or a preset file (TOML)")
    data.add_argument("--gt-suffix", nargs="+", metavar="SUFFIX",
                      help="ground-truth file names end with this (e.g. _gtFine_labelIds.png); default .png / .npy")
    data.add_argument("--pred-suffix", nargs="+", metavar="SUFFIX", help="prediction file names end with this")
    data.add_argument("--skip-missing", action="store_true", help="skip unpaired files (counted in the report)")
    labels = parser.add_argument_group("labels")
    labels.add_argument("--num-classes", type=int, metavar="C", help="C; from --class-names / --dataset, else inferred from the data")
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
    scoring.add_argument("--beta", type=float, default=1.0, metavar="B", help="F-beta's beta (default 1: the column is Dice)")
    scoring.add_argument("--per-image", action="store_true", help="average per-image scores instead of dataset counts")
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, metavar="DIR", help=f"report folder (default ./{DEFAULT_OUT}; with --json only when given)")
    output.add_argument("--json", action="store_true", help="print metrics.json to stdout instead of the table")
    output.add_argument("--plots", action=argparse.BooleanOptionalAction, default=None,
                        help="draw per_class_iou.png and confusion_matrix.png (default: when stdout is a terminal)")
    output.add_argument("--workers", type=int, metavar="K",
                        help="reader processes; 0 reads in this process (default: as many as pay off, at most the cores)")
    parser.set_defaults(run=run)


# ---- settings ------------------------------------------------------------------------------


@dataclass
class Settings:
    gt: Path
    pred: Path
    class_names: list[str] | None
    num_classes: int | None
    ignore_index: int | None
    options: CountOptions
    out: Path | None
    plots: bool
    preset: object = None
    instance_suffix: str | None = None
    notes: list[str] = field(default_factory=list)


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


def _palette(args, preset, ignore_index) -> Palette | None:
    source = _preset(args.palette, "--palette") if args.palette else preset
    if source is None or source.palette is None:
        return None
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


def _check_numbers(args) -> None:
    if (args.gt is None) != (args.pred is None):
        raise InputError("--gt and --pred go together (give both, or neither for the bundled sample)")
    if args.workers is not None and args.workers < 0:
        raise InputError(f"--workers must be >= 0 (0 reads in this process), got {args.workers}")
    if not args.beta > 0:
        raise InputError(f"--beta must be > 0, got {args.beta}")
    if args.num_classes is not None and args.num_classes < 1:
        raise InputError(f"--num-classes must be >= 1, got {args.num_classes}")


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


def settings_from(args) -> Settings:
    """Resolve the arguments (preset, names, mapping, palette); bad values raise InputError."""
    _check_numbers(args)
    preset = _preset(args.dataset, "--dataset")
    sample = sample_folder() if args.gt is None else None
    gt, pred = (sample / "gt", sample / "pred") if sample else (args.gt, args.pred)
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
    out = args.out if args.out is not None else (None if args.json else DEFAULT_OUT)
    if out is not None:
        check_out(out)
    options = CountOptions(num_classes, ignore_index, reduce_zero_label and not label_map, label_map, args.map_pred,
                           _palette(args, preset, ignore_index), classes_from)
    instance_suffix = preset.instance_suffix if preset and preset.official_metrics == "cityscapes" else None
    return Settings(gt, pred, names, num_classes, ignore_index, options, out, _plots_wanted(args, out), preset,
                    instance_suffix)


# ---- pairing ---------------------------------------------------------------------------------


def _pairing(settings: Settings, args) -> Pairing:
    preset = settings.preset
    gt_suffix = args.gt_suffix or (preset.gt_suffix if preset else None)
    pred_suffix = args.pred_suffix or (preset.pred_suffix if preset else None)
    pairing = pair_masks(settings.gt, settings.pred, gt_suffix, pred_suffix)
    _check_pairing(pairing, args.skip_missing, settings)
    if settings.instance_suffix:
        pairing = _with_instances(pairing, settings, gt_suffix)
    return pairing


def _check_pairing(pairing: Pairing, skip_missing: bool, settings: Settings) -> None:
    if skip_missing or not (pairing.missing_pred or pairing.missing_gt):
        if not pairing.pairs:
            raise InputError(f"{settings.pred}: no prediction pairs with a ground-truth mask in {settings.gt}")
        return
    side, files, folder = ("prediction", pairing.missing_pred, settings.pred) if pairing.missing_pred else (
        "ground truth", pairing.missing_gt, settings.gt)
    more = f" (and {len(files) - 1} more; --skip-missing skips them)" if len(files) > 1 else " (--skip-missing skips it)"
    raise InputError(f"{files[0]}: no {side} with the stem {Path(files[0].name).stem!r} in {folder}{more}")


def _with_instances(pairing: Pairing, settings: Settings, gt_suffix) -> Pairing:
    """Attach each gt file's instance-id file; without all of them the official iIoU is skipped."""
    suffixes = (gt_suffix,) if isinstance(gt_suffix, str) else tuple(gt_suffix or ())
    pairs = []
    for pair in pairing.pairs:
        suffix = next((s for s in suffixes if pair.gt.name.endswith(s)), None)
        instances = pair.gt.with_name(pair.gt.name[: -len(suffix)] + settings.instance_suffix) if suffix else None
        if instances is None or not instances.is_file():
            settings.notes.append(f"no {settings.instance_suffix} beside {pair.gt}: Cityscapes iIoU not computed")
            settings.instance_suffix = None
            return pairing
        pairs.append(MaskPair(pair.stem, pair.gt, pair.pred, instances))
    return Pairing(pairs, pairing.missing_pred, pairing.missing_gt, pairing.by_name)


# ---- counting (sharded under torchrun) ----------------------------------------------------------


def _distributed() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _read_all(pairing: Pairing, settings: Settings, args) -> list[JointCounts]:
    """Every pair's joint histogram; under torchrun each process reads its shard and all gather."""
    if not _distributed():
        workers = args.workers if args.workers is not None else default_workers(pairs=pairing.pairs)
        return read_pairs(pairing.pairs, settings.options, workers, progress=not args.json)
    from segfuse.cli.eval_distributed import first_error, gather_objects, shard, world_size

    shard_pairs = shard(pairing.pairs)
    workers = args.workers if args.workers is not None else default_workers(world_size(), shard_pairs)
    try:
        joints, message = read_pairs(shard_pairs, settings.options, workers, progress=not args.json), None
    except InputError as error:
        joints, message = [], str(error)
    error = first_error(message)
    if error:
        raise InputError(error)
    gathered = [joint for part in gather_objects(joints) for joint in part]
    return sorted(gathered, key=lambda joint: joint.stem)


def _rank() -> int:
    if not _distributed():
        return 0
    from segfuse.cli.eval_distributed import rank

    return rank()


def _mapped(joints: list[JointCounts], pairing: Pairing, settings: Settings) -> tuple[list[PairCounts], int]:
    size = settings.num_classes
    if size is None:
        size = infer_num_classes(joints, settings.options)
        settings.notes.append(f"--num-classes not given: inferred {size} from the data (largest label {size - 1})")
    by_stem = {pair.stem: pair for pair in pairing.pairs}
    lookups = Lookups.build(settings.options, size)
    return [map_counts(joint, settings.options, by_stem[joint.stem], size, lookups) for joint in joints], size


# ---- scores and rows -----------------------------------------------------------------------------


IMAGE_MEANS = ("acc", "miou", "mdice", "mfscore", "mprecision", "mrecall")


def _text(values: np.ndarray) -> list[list[str]]:
    """Shortest round-trip text of each float; NaN (undefined) reads n/a."""
    return [["n/a" if value != value else repr(value) for value in row] for row in values.tolist()]


def _per_image(counted: list[PairCounts], size: int, names: list[str], beta: float):
    """Per-image CSV rows, the summed per-image statistics and the dataset counts (C, C + 1); numpy in chunks."""
    header = ["image", "shape", "valid_pixels", "unpredicted_pixels", *IMAGE_MEANS, *(f"iou_{name}" for name in names)]
    rows, sums = [], None
    for start in range(0, len(counted), CHUNK):
        items = counted[start : start + CHUNK]
        tp, fp, fn = per_image_overlaps(items, size)
        scores = overlap_scores(tp, fp, fn, beta)
        part = per_image_sums(scores)
        sums = part if sums is None else sums + part
        valid = (tp + fn).sum(1).astype(np.int64).tolist()
        means = _text(np.stack([getattr(scores, name) for name in IMAGE_MEANS], axis=1))
        ious = _text(scores.iou)
        rows += [[item.stem, "x".join(map(str, item.shape)), count, item.unpredicted, *mean, *iou]
                 for item, count, mean, iou in zip(items, valid, means, ious)]
    total = stacked_counts(counted, size, total=True) if counted else np.zeros((size, size + 1), np.int64)
    return ReportRows(header, rows), sums, total


def _scores(counted: list[PairCounts], size: int, settings: Settings, args) -> tuple[EvalScores, ReportRows]:
    names = settings.class_names or [str(c) for c in range(size)]
    rows, sums, total = _per_image(counted, size, names, args.beta)
    if args.per_image:
        return per_image_average(sums, total, args.beta, settings.class_names), rows
    return eval_scores(total, args.beta, settings.class_names), rows


def _cityscapes(counted: list[PairCounts], settings: Settings):
    """The official class / category IoU and iIoU (label-id space), or None when not applicable."""
    if not settings.instance_suffix:
        return None
    from segfuse.metrics import cityscapes

    to_label_id = None if settings.options.map_pred else cityscapes.TRAIN_ID_TO_LABEL_ID
    confusion = np.zeros((cityscapes.NUM_LABEL_IDS,) * 2, dtype=np.int64)
    instances = cityscapes.InstanceStatistics()
    for item in counted:
        joint = item.joint
        if joint.gt_decoded or joint.pred_decoded:
            settings.notes.append("colour masks: the Cityscapes official scores need label-id masks; not computed")
            return None
        pred = joint.pred_values if to_label_id is None else to_label_id[joint.pred_values]
        try:
            confusion += np.bincount(joint.gt_values * cityscapes.NUM_LABEL_IDS + pred, weights=joint.counts,
                                     minlength=cityscapes.NUM_LABEL_IDS**2).astype(np.int64).reshape(confusion.shape)
            instances = instances + cityscapes.instance_statistics(joint.instances, to_label_id)
        except (IndexError, ValueError) as error:
            raise InputError(f"{joint.stem}: Cityscapes official scores: {error}") from error
    return cityscapes.cityscapes_scores(confusion, instances)


# ---- report --------------------------------------------------------------------------------------


def _metadata(args, settings: Settings, pairing: Pairing, size: int, misses: int) -> dict:
    from segfuse import __version__

    arguments = {key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()}
    arguments.pop("run", None)
    options = settings.options
    return {
        "segfuse_version": __version__,
        "arguments": arguments,
        "gt": str(settings.gt),
        "pred": str(settings.pred),
        "dataset": settings.preset.name if settings.preset else None,
        "num_images": len(pairing.pairs),
        "skipped": {"missing_prediction": len(pairing.missing_pred), "missing_ground_truth": len(pairing.missing_gt)},
        "num_classes": size,
        "num_classes_source": "argument" if args.num_classes else "class names" if args.class_names else (
            "dataset" if settings.preset else "class names" if settings.class_names else "data"),
        "num_classes_from": options.classes_from,
        "ignore_index": options.ignore_index,
        "reduce_zero_label": options.reduce_zero_label,
        "label_mapping": "table" if options.label_map else None,
        "map_pred": options.map_pred,
        "unpredicted_pixels": misses,
        "beta": args.beta,
        "per_image": args.per_image,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }


def _notes(settings: Settings, pairing: Pairing, misses: int, args) -> None:
    skipped = len(pairing.missing_pred) + len(pairing.missing_gt)
    if skipped:
        settings.notes.append(
            f"--skip-missing: skipped {len(pairing.missing_pred)} ground-truth files without a prediction and "
            f"{len(pairing.missing_gt)} predictions without a ground truth")
    if misses:
        settings.notes.append(
            f"{misses} prediction pixels hold the ignore value {settings.options.ignore_index}: "
            "counted as misses of their true class")
    for note in settings.notes:
        print(f"segfuse: {note}", file=sys.stderr)


def _evaluate(args) -> int:
    settings = settings_from(args)
    pairing = _pairing(settings, args)
    joints = _read_all(pairing, settings, args)
    if _rank() != 0:
        return 0
    counted, size = _mapped(joints, pairing, settings)
    scores, rows = _scores(counted, size, settings, args)
    official = _cityscapes(counted, settings)
    misses = int(scores.misses.sum())
    _notes(settings, pairing, misses, args)
    document = metrics_document(scores, _metadata(args, settings, pairing, size, misses), official)
    if settings.out is not None:
        palette = settings.preset.palette if settings.preset is not None else None
        try:
            write_report(settings.out, scores, document, rows, plots=settings.plots, palette=palette)
        except OSError as error:
            raise InputError(f"{settings.out}: cannot write the report ({error})") from error
    if args.json:
        print(metrics_json(document), end="")
        return 0
    from segfuse.cli.eval_table import print_scores

    print_scores(scores, official)
    if settings.out is not None:
        print(f"report written to {settings.out}", file=sys.stderr)
    return 0


def run(args) -> int:
    """Entry point of ``segfuse eval``: 0 on success, 2 on bad input."""
    if not _distributed():
        try:
            return _evaluate(args)
        except InputError as error:
            return fail(str(error))
    from segfuse.cli.eval_distributed import process_group, rank, world_size

    with process_group():
        try:
            return _evaluate(args)
        except InputError as error:
            return fail(str(error)) if rank() == 0 or world_size() == 1 else 2
