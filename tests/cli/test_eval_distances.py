"""``segfuse eval --boundary / --surface``: the CLI's numbers equal the library's, on 2D PNG and 3D NIfTI.

The oracle runs ``SurfaceMetrics`` and ``BoundaryIoU`` (``update`` on each image's arrays,
then ``compute``) with the settings the command documents: class maps after the label
mapping, ignored ground truth (255) left out, a prediction holding the ignore value (a
miss) in no class, spacing from ``--spacing`` or the NIfTI header, surface metrics without
class 0 unless ``--include-background``, Boundary IoU with it.
"""

from __future__ import annotations

import csv
import json
import math

import nibabel
import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.cli import main
from segfuse.metrics import BoundaryIoU, SurfaceMetrics

NUM_CLASSES = 4
IGNORE = 255


def shapes_2d(rng, size=(40, 48)):
    """A ground truth of blobs (an ignored band) and a shifted, damaged prediction with misses."""
    gt = np.zeros(size, np.uint8)
    top, left = rng.integers(2, 8, 2)
    gt[top : top + 15, left : left + 18] = 1
    gt[20:34, 25:44] = 2
    gt[rng.integers(5, 30) : 38, 3:9] = 3
    gt[:, -2:] = IGNORE
    pred = np.roll(gt, tuple(rng.integers(-2, 3, 2)), axis=(0, 1)).copy()
    pred[pred == IGNORE] = 0
    pred[10:13, 10:14] = IGNORE  # misses: no class predicted there
    if rng.random() < 0.5:
        pred[pred == 3] = 0  # class 3 missing from the prediction
    return gt, pred


def oracle_maps(gt, pred):
    """The library's inputs: the miss pixels hold C (no class); ignored truth is ignore_index."""
    pred = np.where((pred == IGNORE) & (gt != IGNORE), NUM_CLASSES, pred)
    return torch.from_numpy(gt.astype(np.int64))[None], torch.from_numpy(pred.astype(np.int64))[None]


def library(pairs, spacing, tolerances, definition="deepmind", background=None, empty="inf"):
    surface = SurfaceMetrics(NUM_CLASSES, spacing=spacing, definition=definition, tolerances=tolerances,
                             include_background=bool(background), ignore_index=IGNORE, empty=empty,
                             validate_args=False)
    boundary = BoundaryIoU(NUM_CLASSES, spacing=spacing, include_background=True if background is None else background,
                           ignore_index=IGNORE, validate_args=False)
    per_image = {"surface": [], "boundary": []}
    for gt, pred in pairs:
        target, prediction = oracle_maps(gt, pred)
        per_image["surface"].append(surface.update(prediction, target))
        per_image["boundary"].append(boundary.update(prediction, target))
    return surface.compute(), boundary.compute(), per_image


def value(entry):
    """metrics.json's number: null is NaN, "inf" is inf."""
    return math.nan if entry is None else math.inf if entry == "inf" else entry


def assert_close(ours, theirs):
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)  # NaN and inf where the library has them


def check_document(document, surface, boundary, tolerances):
    names = document["class_names"]
    for score in ("hd", "hd95", "assd", "msd_gt_to_pred", "msd_pred_to_gt", *(f"nsd@{t:g}" for t in tolerances)):
        ours = [value(document["surface"]["per_class"][name][score]) for name in names]
        assert_close(ours, surface.per_class[score].numpy())
        assert_close(value(document["surface"]["mean"][score]), float(surface.mean[score]))
    for key in ("images", "gt_empty", "pred_empty", "both_empty"):
        assert [document["surface"]["per_class"][name][key] for name in names] == getattr(surface, key).tolist()
    assert_close([value(document["boundary"]["per_class"][name]["iou"]) for name in names], boundary.iou_per_image.numpy())
    assert_close([value(document["boundary"]["per_class"][name]["iou_dataset"]) for name in names], boundary.iou.numpy())
    assert_close(value(document["boundary"]["miou"]), float(boundary.miou_per_image))
    assert_close(value(document["boundary"]["miou_dataset"]), float(boundary.miou))


def test_2d_png_numbers_equal_the_library_with_misses_and_spacing(tmp_path, capsys):
    rng = np.random.default_rng(0)
    pairs = [shapes_2d(rng) for _ in range(4)]
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    for i, (gt, pred) in enumerate(pairs):
        Image.fromarray(gt, mode="L").save(tmp_path / "gt" / f"im{i}.png")
        Image.fromarray(pred, mode="L").save(tmp_path / "pred" / f"im{i}.png")
    out = tmp_path / "report"
    code = main(["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--num-classes", "4",
                 "--surface", "1,2.5", "--boundary", "--spacing", "0.5,1.5", "--out", str(out), "--json", "--plots",
                 "--workers", "2"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    surface, boundary, per_image = library(pairs, (0.5, 1.5), (1.0, 2.5))
    assert surface.pred_empty.sum() >= 1 and document["unpredicted_pixels"] > 0  # the hard cases are there
    check_document(document, surface, boundary, (1.0, 2.5))
    assert document["surface"]["include_background"] is False and document["boundary"]["include_background"] is True
    with (out / "per_class.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert_close([float(row["hd95"]) if row["hd95"] != "n/a" else math.nan for row in rows], surface.per_class["hd95"].numpy())
    assert [int(row["pred_empty"]) for row in rows] == surface.pred_empty.tolist()
    with (out / "per_image.csv").open() as handle:
        images = list(csv.DictReader(handle))
    for row, scores, bands in zip(images, per_image["surface"], per_image["boundary"]):
        nsd = scores["nsd@1"][0]
        assert float(row["mean_nsd@1"]) == pytest.approx(float(nsd[~torch.isnan(nsd)].mean()), rel=1e-12)
        assert float(row["mean_boundary_iou"]) == pytest.approx(float(bands[0][~torch.isnan(bands[0])].mean()), rel=1e-12)
    assert (out / "distances.png").is_file()
    page = (out / "report.html").read_text()
    assert "Boundary and surface metrics" in page and "empty gt/pred/both" in page


def write_nifti(path, array, spacing):
    image = nibabel.Nifti1Image(array, np.diag([*spacing, 1.0]))
    image.header.set_zooms(spacing)
    nibabel.save(image, str(path))


def volumes(rng, shape=(18, 20, 12)):
    gt = np.zeros(shape, np.uint8)
    gt[3:12, 4:14, 2:9] = 1
    gt[9:16, 12:19, 5:11] = 2
    gt[1:5, 1:6, 1:4] = 3
    pred = np.roll(gt, tuple(rng.integers(-1, 2, 3)), axis=(0, 1, 2)).copy()
    if rng.random() < 0.5:
        pred[pred == 3] = 0
    return gt, pred


@pytest.mark.parametrize("definition, background", [("deepmind", None), ("monai", True)])
def test_3d_nifti_numbers_equal_the_library_with_the_header_spacing(tmp_path, capsys, definition, background):
    rng = np.random.default_rng(1)
    pairs = [volumes(rng) for _ in range(3)]
    spacing = (0.75, 0.75, 2.5)  # float32-exact
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    for i, (gt, pred) in enumerate(pairs):
        write_nifti(tmp_path / "gt" / f"case{i}.nii.gz", gt, spacing)
        write_nifti(tmp_path / "pred" / f"case{i}.nii.gz", pred, spacing)
    argv = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--surface", "1", "--boundary",
            "--surface-definition", definition, "--json", "--workers", "0"]
    argv += ["--include-background"] if background else []
    assert main(argv) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert "inferred 4 from the data" in captured.err  # C inferred in a first pass
    surface, boundary, _ = library(pairs, spacing, (1.0,), definition, background)
    check_document(document, surface, boundary, (1.0,))
    assert document["distance_spacings_used"] == [list(spacing)]
    # the overlap scores of the volumes too
    gts, preds = np.stack([g for g, _ in pairs]), np.stack([p for _, p in pairs])
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (gts.ravel(), preds.ravel()), 1)
    assert document["confusion_matrix"] == confusion.tolist()
    # --spacing overrides the header
    assert main(argv + ["--spacing", "1,1,1"]) == 0
    overridden = json.loads(capsys.readouterr().out)
    surface, boundary, _ = library(pairs, (1.0, 1.0, 1.0), (1.0,), definition, background)
    check_document(overridden, surface, boundary, (1.0,))


@pytest.mark.parametrize(
    "extra, problem",
    [
        (["--spacing", "1,1"], "--spacing applies to --boundary / --surface"),
        (["--surface", "a"], "--surface takes NSD tolerances"),
        (["--surface", "1", "--surface-empty", "never"], "--surface-empty must be"),
        (["--surface", "1", "--spacing", "1,2,3"], "--spacing must give 2 values"),
        (["--boundary-width", "0"], "--boundary-width must be > 0"),
    ],
)
def test_bad_distance_arguments_exit_2(tmp_path, capsys, extra, problem):
    rng = np.random.default_rng(2)
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    gt, pred = shapes_2d(rng)
    Image.fromarray(gt, mode="L").save(tmp_path / "gt" / "a.png")
    Image.fromarray(pred, mode="L").save(tmp_path / "pred" / "a.png")
    argv = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--num-classes", "4", "--json"]
    assert main(argv + extra) == 2
    assert problem in capsys.readouterr().err


def test_distances_with_two_predictions_are_an_error(tmp_path, capsys):
    for side in ("gt", "a", "b"):
        (tmp_path / side).mkdir()
    argv = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "a"), "--pred", str(tmp_path / "b"),
            "--boundary", "--json"]
    assert main(argv) == 2
    assert "give one --pred" in capsys.readouterr().err


def test_3d_npy_volumes_with_spacing(tmp_path, capsys):
    rng = np.random.default_rng(3)
    pairs = [volumes(rng) for _ in range(2)]
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    for i, (gt, pred) in enumerate(pairs):
        np.save(tmp_path / "gt" / f"v{i}.npy", gt)
        np.save(tmp_path / "pred" / f"v{i}.npy", pred.astype(np.int32))
    argv = ["eval", "--gt", str(tmp_path / "gt"), "--pred", str(tmp_path / "pred"), "--num-classes", "4",
            "--surface", "2", "--boundary", "--spacing", "1,1,3", "--json", "--workers", "0"]
    assert main(argv) == 0
    document = json.loads(capsys.readouterr().out)
    surface, boundary, _ = library(pairs, (1.0, 1.0, 3.0), (2.0,))
    check_document(document, surface, boundary, (2.0,))
    assert document["distance_unit"] == "the spacing's unit (--spacing)"
