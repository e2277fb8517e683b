"""``segfuse eval``: score a folder of predicted masks against the ground truth and write a report.

Pairs the files (by stem, or by a dataset preset's file patterns), counts each pair in
worker processes (``eval_pairs``: one joint histogram per pair), scores the (C, C + 1)
counts with :mod:`segfuse.metrics.scores` under ``--convention`` (the last column: pixels
whose prediction holds the ignore value, misses of the true class), prints a per-class
table and writes metrics.json, per_class.csv, confusion_matrix.csv, per_image.csv,
report.html and, when asked, the plots to --out. With a Cityscapes preset and instance
files it adds the benchmark's class and category IoU / iIoU (``segfuse.metrics.cityscapes``);
with ``--boundary`` / ``--surface`` the workers also compute Boundary IoU and surface
distances (``eval_distances``). Two ``--pred`` folders compare model B against model A
(``segfuse compare``). Under torchrun the pairs are sharded across processes and rank 0
writes the report. Exit code 0 on success, 2 on bad input (one line naming the file and
the problem), 130 on Ctrl-C. torch is imported only for distances, comparisons and torchrun.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from segfuse.cli.errors import InputError, fail
from segfuse.cli.eval_options import Settings, add_arguments, pair_folder, sample_folder, settings_from
from segfuse.cli.eval_pairs import (
    JointCounts, Lookups, PairCounts, default_workers, infer_num_classes, map_counts, per_image_overlaps, read_pairs,
    stacked_counts,
)
from segfuse.cli.io_masks import MaskPair, Pairing
from segfuse.cli.io_report import ALL_FILES, ReportRows, data_files, metrics_document, metrics_json, write_outputs
from segfuse.metrics.scores import SemanticScores, per_image_scores, per_image_sums, semantic_scores

__all__ = ["add_parser", "run", "sample_folder"]

CHUNK = 256

EPILOG = """examples:
  segfuse eval --gt masks/gt --pred masks/pred --class-names classes.txt --out report/
  segfuse eval --dataset cityscapes --gt cityscapes/gtFine/val --pred results/
  segfuse eval --dataset ade20k --gt ADEChallengeData2016/annotations/validation --pred pred/ --map-pred
  segfuse eval --gt gt/ --pred pred_rgb/ --palette voc --num-classes 21 --json > metrics.json
  segfuse eval --gt gt/ --pred pred/ --convention mmseg
  segfuse eval --gt gt/ --pred model_a/ --pred model_b/ --resamples 2000
  segfuse eval --gt labels/ --pred seg/ --num-classes 4 --surface 1,2 --boundary --spacing 1,1,2.5

Predictions that hold the ignore value count as misses of the true class (mmseg's rule).
Presets: cityscapes, ade20k, voc, coco-stuff, pascal-context, or a preset file (TOML; see
segfuse/datasets/presets.py). Masks: PNG, .npy (2D or 3D), NIfTI (.nii, .nii.gz; needs
nibabel). Ctrl-C stops the run (exit 130); nothing is written then."""


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score a folder of predicted masks against the ground truth",
        description="Score predicted label masks against the ground truth (paired by file stem) and write a\n"
        "report: per-class IoU, Dice, F-beta, precision, recall, confusion matrix, per-image scores,\n"
        "report.html and plots; optionally Boundary IoU and surface distances, or compare two models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, "eval")
    parser.set_defaults(run=run)


# ---- pairing -------------------------------------------------------------------------------------


def _pairing(settings: Settings, args) -> Pairing:
    pairing = pair_folder(settings, settings.preds[0], args.skip_missing)
    if settings.instance_suffix:
        pairing = _with_instances(pairing, settings)
    return pairing


def _with_instances(pairing: Pairing, settings: Settings) -> Pairing:
    """Attach each gt file's instance-id file; without all of them the official iIoU is skipped."""
    suffixes = settings.gt_suffix or ()
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


def read_all(pairs: list[MaskPair], options, args) -> list[JointCounts]:
    """Every pair's joint histogram; under torchrun each process reads its shard and all gather."""
    if not _distributed():
        workers = args.workers if args.workers is not None else default_workers(pairs=pairs)
        return read_pairs(pairs, options, workers, progress=not args.json)
    from segfuse.cli.eval_distributed import first_error, gather_objects, shard, world_size

    shard_pairs = shard(pairs)
    workers = args.workers if args.workers is not None else default_workers(world_size(), shard_pairs)
    try:
        joints, message = read_pairs(shard_pairs, options, workers, progress=not args.json), None
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


def known_num_classes(settings: Settings, pairs: list[MaskPair], args) -> None:
    """Distance statistics are computed in the workers and need C: infer it first when not given."""
    if settings.options.distances is None or settings.num_classes is not None:
        return
    joints = read_all(pairs, replace(settings.options, distances=None), args)
    size = infer_num_classes(joints, settings.options)
    settings.notes.append(f"--num-classes not given: inferred {size} from the data (largest label {size - 1})")
    settings.num_classes = size
    settings.options = replace(settings.options, num_classes=size, classes_from=f"{size} inferred from the data")


def mapped(joints: list[JointCounts], pairs: list[MaskPair], settings: Settings) -> tuple[list[PairCounts], int]:
    size = settings.num_classes
    if size is None:
        size = infer_num_classes(joints, settings.options)
        settings.notes.append(f"--num-classes not given: inferred {size} from the data (largest label {size - 1})")
        settings.num_classes = size
    by_stem = {pair.stem: pair for pair in pairs}
    lookups = Lookups.build(settings.options, size)
    return [map_counts(joint, settings.options, by_stem[joint.stem], size, lookups) for joint in joints], size


# ---- scores and rows -----------------------------------------------------------------------------


IMAGE_MEANS = ("acc", "miou", "mdice", "mfscore", "mprecision", "mrecall")


def _text(values: np.ndarray) -> list[list[str]]:
    """Shortest round-trip text of each float; NaN (undefined) reads n/a."""
    return [["n/a" if value != value else repr(value) for value in row] for row in values.tolist()]


@dataclass
class Evaluation:
    """The scores (numpy), the per-image rows and mIoU, and the dataset counts (C, C + 1)."""

    scores: SemanticScores
    rows: ReportRows
    image_miou: np.ndarray
    total: np.ndarray


def _add(sums: dict | None, part: dict) -> dict:
    return part if sums is None else {name: sums[name] + part[name] for name in sums}


def evaluate_counts(counted: list[PairCounts], size: int, settings: Settings, beta: float) -> Evaluation:
    """Dataset scores (or per-image averages), per-image rows; numpy in chunks of images."""
    names = settings.class_names or [str(c) for c in range(size)]
    header = ["image", "shape", "valid_pixels", "unpredicted_pixels", *IMAGE_MEANS, *(f"iou_{name}" for name in names)]
    rows, sums, image_miou = [], None, []
    for start in range(0, len(counted), CHUNK):
        items = counted[start : start + CHUNK]
        counts = per_image_overlaps(items, size)  # misses are FN
        scores = semantic_scores(counts, beta, convention=settings.convention)
        if settings.per_image:
            sums = _add(sums, per_image_sums(counts, beta, convention=settings.convention))
        valid = (counts[0] + counts[2]).sum(1).astype(np.int64).tolist()
        means = _text(np.stack([getattr(scores, name) for name in IMAGE_MEANS], axis=1))
        rows += [[item.stem, "x".join(map(str, item.shape)), count, item.unpredicted, *mean, *iou]
                 for item, count, mean, iou in zip(items, valid, means, _text(scores.iou))]
        image_miou.append(scores.miou)
    total = stacked_counts(counted, size, total=True) if counted else np.zeros((size, size + 1), np.int64)
    confusion, misses = total[:, :size], total[:, size]
    if settings.per_image:
        result = per_image_scores(sums, confusion, beta, class_names=settings.class_names,
                                  convention=settings.convention, misses=misses)
    else:
        result = semantic_scores(confusion, beta, class_names=settings.class_names, convention=settings.convention,
                                 misses=misses)
    miou = np.concatenate(image_miou) if image_miou else np.zeros(0)
    return Evaluation(result, ReportRows(header, rows), miou, total)


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


def _distances(joints: list[JointCounts], size: int, settings: Settings):
    if settings.options.distances is None:
        return None
    from segfuse.cli.eval_distances import summarize

    return summarize([joint.distances for joint in joints], size, settings.options.distances, settings.class_names)


def _distance_rows(rows: ReportRows, distances) -> None:
    """per_image.csv: each image's mean over its classes of every distance score."""
    if distances is None:
        return
    from segfuse.cli.eval_distances import image_means

    means = image_means(distances)
    rows.header += [f"mean_{name}" for name in distances.names]
    columns = _text(np.stack([means[name] for name in distances.names], axis=1))
    for row, extra in zip(rows.rows, columns):
        row += extra


# ---- report --------------------------------------------------------------------------------------


def _arguments(args) -> dict:
    arguments = {}
    for key, value in vars(args).items():
        if key == "run":
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, list):
            value = [str(item) if isinstance(item, Path) else item for item in value]
        arguments[key] = value
    if isinstance(arguments.get("pred"), list) and len(arguments["pred"]) == 1:
        arguments["pred"] = arguments["pred"][0]
    return arguments


def _mapping_description(settings: Settings) -> str:
    options = settings.options
    mapping = options.gt_mapping(settings.num_classes)
    parts = [f"ground truth: {mapping.describe()}", f"ignore index {options.ignore_index}"]
    parts.append("predictions: the same mapping (--map-pred)" if options.map_pred else "predictions: identity")
    if options.palette is not None:
        parts.append(f"RGB masks decoded with the palette of {options.palette.name}")
    return "; ".join(parts)


def _metadata(args, settings: Settings, pairing: Pairing, size: int, misses: int, used: dict) -> dict:
    from segfuse import __version__

    options = settings.options
    return {
        "segfuse_version": __version__,
        "arguments": _arguments(args),
        "gt": str(settings.gt),
        "pred": str(settings.preds[0]),
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
        "label_mapping_used": {side: {str(value): mapped for value, mapped in values.items()}
                               for side, values in used.items()},
        "map_pred": options.map_pred,
        "unpredicted_pixels": misses,
        "beta": args.beta,
        "per_image": settings.per_image,
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
    }


def _notes(settings: Settings, pairing: Pairing, misses: int) -> None:
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


def _plots(evaluation: Evaluation, distances, settings: Settings) -> dict[str, bytes]:
    if not settings.plots:
        return {}
    from segfuse.cli.io_plots import confusion_figure, distances_figure, per_class_figure, png_bytes

    scores, names = evaluation.scores, evaluation.scores.names()
    plots = {
        "per_class_iou.png": png_bytes(
            per_class_figure(names, scores.iou.tolist(), float(scores.miou), settings.palette)),
        "confusion_matrix.png": png_bytes(confusion_figure(names, scores.confusion_matrix, scores.misses)),
    }
    if distances is not None:
        plots["distances.png"] = png_bytes(distances_figure(names, distances.per_class, distances.unit()))
    return plots


def _html(evaluation: Evaluation, document: dict, plots: dict, settings: Settings, pairing: Pairing, args,
          used: dict, official, distances) -> bytes:
    from segfuse.cli.eval_html import eval_html, mapping_table, worst_examples
    from segfuse.cli.eval_pairs import mapped_pair
    from segfuse.report.html import displayed

    scores, size = evaluation.scores, settings.num_classes
    names = scores.names()
    lookups = Lookups.build(settings.options, size)
    pairs = pairing.pairs

    def read_pair(index: int):
        return mapped_pair(pairs[index], settings.options, size, lookups, view=displayed)

    examples = worst_examples(evaluation.image_miou.tolist(), args.worst, read_pair, [pair.stem for pair in pairs])
    metadata = {
        "ground truth": settings.gt, "prediction": settings.preds[0],
        "dataset": settings.preset.name if settings.preset else "(none)", "images": document["num_images"],
        "classes": f"{size} ({settings.options.classes_from})",
        "convention": scores.convention
        + (f", per-image average ({scores.per_image_average})" if scores.per_image else ""),
        "pixels without a prediction": f"{document['unpredicted_pixels']} (misses: FN of the true class)",
        "label mapping": _mapping_description(settings),
        "segfuse": document["segfuse_version"],
    }
    if distances is not None:
        metadata["distances"] = "; ".join(
            f"{name}: " + ", ".join(f"{key} {value}" for key, value in values.items() if key != "definition")
            + (f" ({values['definition']})" if "definition" in values else "")
            for name, values in distances.options.describe().items() if isinstance(values, dict)
        ) + f"; distances in {distances.unit()}"
    mapping = mapping_table(used, names, _mapping_description(settings))
    return eval_html(f"segfuse eval: {settings.preds[0]}", metadata, scores, names, plots, examples, mapping,
                     settings.palette, official, distances)


def _write(evaluation: Evaluation, document: dict, settings: Settings, pairing: Pairing, args, used: dict,
           official, distances) -> None:
    plots = _plots(evaluation, distances, settings)
    files = {**data_files(evaluation.scores, document, evaluation.rows, distances), **plots}
    page = None if settings.html is None else _html(evaluation, document, plots, settings, pairing, args, used,
                                                    official, distances)
    write_outputs(settings.out, files, settings.html, page, stale=ALL_FILES)


def _evaluate(args) -> int:
    settings = settings_from(args, "eval")
    if settings.comparing:
        from segfuse.cli.compare import compare_folders

        return compare_folders(settings, args)
    pairing = _pairing(settings, args)
    if settings.options.distances is not None:
        import segfuse.metrics.boundary  # noqa: F401  (torch once, before the workers fork)
        import segfuse.metrics.surface  # noqa: F401

        known_num_classes(settings, pairing.pairs, args)
    joints = read_all(pairing.pairs, settings.options, args)
    if _rank() != 0:
        return 0
    counted, size = mapped(joints, pairing.pairs, settings)
    evaluation = evaluate_counts(counted, size, settings, args.beta)
    distances = _distances(joints, size, settings)
    _distance_rows(evaluation.rows, distances)
    official = _cityscapes(counted, settings)
    misses = int(evaluation.total[:, size].sum())
    _notes(settings, pairing, misses)
    from segfuse.cli.eval_pairs import label_mapping_used

    used = label_mapping_used(joints, settings.options, size)
    document = metrics_document(evaluation.scores, _metadata(args, settings, pairing, size, misses, used), official,
                                distances)
    if settings.out is not None or settings.html is not None:
        _write(evaluation, document, settings, pairing, args, used, official, distances)
    if args.json:
        print(metrics_json(document), end="")
        return 0
    from segfuse.cli.eval_table import print_scores

    print_scores(evaluation.scores, official, distances=distances)
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
