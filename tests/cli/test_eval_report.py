"""``segfuse eval``: --convention on the CLI (all five, per-image averaging, misses) and report.html."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.metrics import SemanticMetrics
from tests.cli.test_eval import NUM_CLASSES, make_folders, run_eval

MEANS = ("miou", "mdice", "mfscore", "mprecision", "mrecall", "acc", "macc", "fwiou")
SCORES = ("iou", "dice", "fscore", "precision", "recall")


def nan(value):
    return float("nan") if value is None else value


def eval_document(capsys, *args):
    assert run_eval(*args, "--json") == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "convention, per_image",
    [("segfuse", False), ("mmseg", False), ("detectron2", False), ("torchmetrics", True), ("monai", None),
     ("segfuse", True)],
)
def test_convention_equals_semantic_metrics(tmp_path, capsys, convention, per_image):
    gt_dir, pred_dir, gts, preds = make_folders(tmp_path, count=6, seed=4)
    preds[:, :, :4] = np.where(gts[:, :, :4] == 2, 3, preds[:, :, :4])  # class 3 predicted where absent
    for i, pred in enumerate(preds):
        Image.fromarray(pred, mode="L").save(pred_dir / f"img{i}.png")
    args = ["--gt", gt_dir, "--pred", pred_dir, "--num-classes", NUM_CLASSES + 1, "--convention", convention]
    document = eval_document(capsys, *args, *(["--per-image"] if per_image else []))
    metric = SemanticMetrics(NUM_CLASSES + 1, 255, convention=convention, per_image=per_image)
    metric.update(torch.from_numpy(preds), torch.from_numpy(gts))
    expected = metric.compute()
    assert document["convention"] == convention and document["per_image_average"] == expected.per_image_average
    for name in MEANS:
        np.testing.assert_allclose(nan(document["metrics"][name]), float(getattr(expected, name)), rtol=0, atol=1e-12)
    for name in SCORES:
        ours = [nan(document["per_class"][str(c)][name]) for c in range(NUM_CLASSES + 1)]
        np.testing.assert_allclose(ours, getattr(expected, name).numpy(), rtol=0, atol=1e-12, err_msg=name)


def test_misses_follow_mmseg_iou_metric(tmp_path, capsys):
    """Predictions of the ignore value at valid pixels: mmseg's own intersect_and_union counts them as misses."""
    from tests.parity.test_mmseg_metrics import MMSEG_MEANS, MMSEG_PER_CLASS, mmseg_metrics

    gt_dir, pred_dir, gts, preds = make_folders(tmp_path, count=4, seed=5)
    preds[:, 5:9, 3:20] = 255
    for i, pred in enumerate(preds):
        Image.fromarray(pred, mode="L").save(pred_dir / f"img{i}.png")
    document = eval_document(capsys, "--gt", gt_dir, "--pred", pred_dir, "--num-classes", NUM_CLASSES,
                             "--convention", "mmseg")
    assert document["unpredicted_pixels"] == int(((preds == 255) & (gts != 255)).sum()) > 0
    per_class, means = mmseg_metrics(list(preds), list(gts), NUM_CLASSES)  # float32 areas: 1e-6, as tests/parity
    for theirs, ours in MMSEG_MEANS.items():
        assert nan(document["metrics"][ours]) == pytest.approx(means[theirs], abs=1e-6), theirs
    for theirs, ours in MMSEG_PER_CLASS.items():
        values = [nan(document["per_class"][str(c)][ours]) for c in range(NUM_CLASSES)]
        np.testing.assert_allclose(values, np.asarray(per_class[theirs], dtype=float), atol=1e-6, rtol=0)


# ---- report.html ----------------------------------------------------------------------------------


def panels(page: str) -> list[tuple[str, np.ndarray]]:
    """(caption, RGB pixels) of every mask panel in the page."""
    found = []
    for alt, data in re.findall(r'<img alt="([^"]*)" width[^>]*src="data:image/png;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(data))) as image:
            found.append((alt, np.asarray(image.convert("RGB"))))
    return found


def test_cityscapes_report_has_the_mapping_worst_images_and_palette(tmp_path, capsys):
    from segfuse.datasets import load_preset
    from tests.metrics.test_cityscapes import write_cityscapes

    write_cityscapes(tmp_path, count=4, seed=1)
    out = tmp_path / "report"
    assert run_eval("--dataset", "cityscapes", "--gt", tmp_path / "gtFine", "--pred", tmp_path / "results",
                    "--map-pred", "--out", out, "--worst", 3, "--workers", 0) == 0
    capsys.readouterr()
    page = (out / "report.html").read_text()
    document = json.loads((out / "metrics.json").read_text())
    used = document["label_mapping_used"]
    assert used["ground_truth"]["7"] == 0 and used["ground_truth"]["0"] == "ignored" and used["prediction"]["26"] == 13
    assert "<td>7</td><td>0 (road)</td><td>0 (road)</td>" in page.replace(' class="num"', "")
    assert page.count('<div class="example">') == 3 and "Worst 3 images by per-image mIoU" in page
    masks = panels(page)
    assert [alt for alt, _ in masks[:3]] == ["ground truth", "prediction", "prediction: errors"]
    palette = {tuple(color) for color in load_preset("cityscapes").palette.tolist()}
    truth_colours = {tuple(c) for c in masks[0][1].reshape(-1, 3).tolist()}
    assert truth_colours <= palette | {(0, 0, 0)} and len(truth_colours & palette) >= 10
    assert "Cityscapes benchmark" in page and "Per-class scores (%)" in page


def test_no_html_and_html_elsewhere(tmp_path, capsys):
    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--out", tmp_path / "a", "--no-html") == 0
    assert not (tmp_path / "a" / "report.html").exists() and (tmp_path / "a" / "metrics.json").exists()
    page = tmp_path / "pages" / "eval.html"
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--out", tmp_path / "b", "--html", page, "--worst", 0) == 0
    assert page.is_file() and not (tmp_path / "b" / "report.html").exists()
    assert '<div class="example">' not in page.read_text()
    assert run_eval("--gt", gt_dir, "--pred", pred_dir, "--json", "--html", tmp_path / "only.html") == 0
    assert (tmp_path / "only.html").is_file()
    capsys.readouterr()
