"""segfuse.report.html: the self-contained page, checked as text and rendered in headless Chromium."""

import base64
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.metrics import compare_models, per_image_confusion_matrix, semantic_scores
from segfuse.report import (
    ExampleSection,
    Figure,
    HtmlReport,
    MaskExample,
    Table,
    comparison_means_table,
    comparison_plot,
    comparison_table,
    scores_table,
)
from segfuse.report.palette import FADE, colorize, error_overlay

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM = next((shutil.which(name) for name in CHROMIUM_NAMES if shutil.which(name)), None)
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars",
)
CLASS_NAMES = ["road", "sky", "car <b>&</b>", "tree"]
PALETTE = np.array([[128, 64, 128], [70, 130, 180], [0, 0, 142], [107, 142, 35]], dtype=np.uint8)


def masks(seed=0, count=6, shape=(30, 40)):
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 4, (count, *shape))
    gt[:, :3] = 255
    pred_a = np.where(rng.random(gt.shape) < 0.6, gt, rng.integers(0, 4, gt.shape))
    pred_b = np.where(rng.random(gt.shape) < 0.8, gt, rng.integers(0, 4, gt.shape))
    return gt, pred_a, pred_b


def build_report(palette=PALETTE) -> tuple[HtmlReport, dict]:
    gt, pred_a, pred_b = masks()
    target = torch.from_numpy(gt)
    confusions = [per_image_confusion_matrix(torch.from_numpy(p), target, 4, 255) for p in (pred_a, pred_b)]
    result = compare_models(*confusions, resamples=100, class_names=CLASS_NAMES)
    scores = semantic_scores(confusions[1].sum(0), class_names=CLASS_NAMES)
    tables = [comparison_means_table(result), comparison_table(result), scores_table(scores)]
    examples = [
        ExampleSection("Worst images", [MaskExample(f"img{i}", gt[i], {"A": pred_a[i], "B": pred_b[i]}, "note") for i in (2, 0)]),
        ExampleSection("One prediction (as eval shows it)", [MaskExample("img5", gt[5], {"prediction": pred_b[5]})]),
    ]
    report = HtmlReport(
        "Report <title>", metadata={"gt": "/data/gt", "images": 6}, tables=tables,
        figures=[Figure("Delta", comparison_plot(result))], examples=examples,
        class_names=CLASS_NAMES, palette=palette, ignore_index=255,
    )
    return report, {"gt": gt, "a": pred_a, "b": pred_b, "tables": tables}


def data_images(page: str) -> list[np.ndarray]:
    sources = re.findall(r'src="([^"]*)"', page)
    assert sources and all(source.startswith("data:image/png;base64,") for source in sources)
    images = []
    for source in sources:
        with Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))) as image:
            images.append(np.array(image.convert("RGB")))
    return images


def test_convention_page_is_self_contained():
    report, _ = build_report()
    page = report.render()
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    for forbidden in ("http://", "https://", "<script", "<link", "url(", "@import", "<iframe"):
        assert forbidden not in page
    images = data_images(page)
    assert len(images) == 1 + (1 + 2 * 2) * 2 + (1 + 2)  # the plot, two A/B examples, one single-prediction example
    assert "car &lt;b&gt;&amp;&lt;/b&gt;" in page and "car <b>" not in page
    assert "Report &lt;title&gt;" in page


def test_panels_are_drawn_with_the_palette():
    report, data = build_report()
    images = data_images(report.render())
    gt, pred_a = data["gt"][2], data["a"][2]
    ignored = gt == 255
    np.testing.assert_array_equal(images[1], colorize(gt, PALETTE, ignored))
    np.testing.assert_array_equal(images[2], colorize(pred_a, PALETTE, ignored))
    overlay = images[3]
    np.testing.assert_array_equal(overlay, error_overlay(gt, pred_a, PALETTE, 255))
    wrong = (gt != pred_a) & ~ignored
    assert np.array_equal(overlay[wrong], PALETTE[pred_a[wrong]])
    correct = (gt == pred_a) & ~ignored
    assert np.array_equal(overlay[correct], np.round(PALETTE[gt[correct]] + (255.0 - PALETTE[gt[correct]]) * FADE).astype(np.uint8))
    assert (overlay[ignored] == 0).all()


def test_default_palette_when_none_and_palette_too_short():
    report, data = build_report(palette=None)
    images = data_images(report.render())
    assert images[1].shape == (30, 40, 3) and len(np.unique(images[1].reshape(-1, 3), axis=0)) == 5  # 4 classes + black
    short, _ = build_report(palette=PALETTE[:2])
    with pytest.raises(ValueError, match="palette has 2 colours but the masks hold labels up to 3"):
        short.render()


def test_large_masks_are_subsampled_small_ones_enlarged_volumes_sliced():
    big = np.zeros((1000, 700), dtype=np.int64)
    big[:, 350:] = 1
    volume = np.stack([np.zeros((8, 10), dtype=np.int64), np.ones((8, 10), dtype=np.int64), np.zeros((8, 10), dtype=np.int64)])
    sections = [ExampleSection("x", [MaskExample("big", big, {"p": big}), MaskExample("vol", volume, {"p": volume})])]
    page = HtmlReport("t", examples=sections, max_side=100).render()
    images = data_images(page)
    assert images[0].shape == (100, 70, 3)
    assert images[3].shape == (8, 10, 3) and len(np.unique(images[3].reshape(-1, 3), axis=0)) == 1  # middle slice: class 1
    assert 'width="100" height="80"' in page  # 8 x 10 enlarged by 100 // 10


def test_bad_examples_and_tables_raise():
    gt = np.zeros((4, 4), dtype=np.int64)
    with pytest.raises(ValueError, match=r"prediction 'p' has shape \(4, 5\)"):
        HtmlReport("t", examples=[ExampleSection("s", [MaskExample("x", gt, {"p": np.zeros((4, 5), dtype=int)})])]).render()
    with pytest.raises(TypeError, match="integer labels"):
        HtmlReport("t", examples=[ExampleSection("s", [MaskExample("x", gt, {"p": gt.astype(float)})])]).render()
    with pytest.raises(ValueError, match="at least one"):
        HtmlReport("t", examples=[ExampleSection("s", [MaskExample("x", gt, {})])]).render()
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        HtmlReport("t", tables=[Table("x", ["a", "b"], [["1"]])]).render()
    with pytest.raises(ValueError, match="max_side"):
        HtmlReport("t", max_side=0).render()
    with pytest.raises(ValueError, match="PNG"):
        HtmlReport("t", figures=[Figure("f", b"GIF89a")]).render()


def test_write_is_atomic(tmp_path):
    report, _ = build_report()
    path = report.write(tmp_path / "sub" / "report.html")
    assert path.read_text(encoding="utf-8") == report.render()
    broken = HtmlReport("t", tables=[Table("x", ["a"], [["1", "2"]])])
    with pytest.raises(ValueError):
        broken.write(tmp_path / "sub" / "report.html")
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["report.html"]
    assert path.read_text(encoding="utf-8") == report.render()


# ---- in a real browser ---------------------------------------------------------------------

CHECK_SCRIPT = """
<script>
window.addEventListener('load', function () {
  var result = {title: document.title, tables: [], images: [], resources: []};
  document.querySelectorAll('section table').forEach(function (table) {
    result.tables.push({
      title: table.closest('section').querySelector('h2').textContent,
      rows: Array.from(table.tBodies[0].rows).map(function (row) {
        return Array.from(row.cells).map(function (cell) { return cell.textContent; });
      }),
      width: table.getBoundingClientRect().width
    });
  });
  Array.from(document.images).forEach(function (image) {
    var box = image.getBoundingClientRect();
    result.images.push({alt: image.alt, complete: image.complete, natural: [image.naturalWidth, image.naturalHeight],
                        shown: [box.width, box.height]});
  });
  performance.getEntriesByType('resource').forEach(function (entry) {
    if (entry.name.indexOf('data:') !== 0) { result.resources.push(entry.name); }
  });
  var out = document.createElement('pre');
  out.id = 'segfuse-check';
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
"""
BROKEN_IMAGE = '<img alt="control: broken" src="data:image/png;base64,iVBORw0KGgoAAAAbroken">'


def chromium(tmp_path, *arguments) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    command = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *arguments]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, env={**os.environ, "HOME": str(tmp_path)})


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (.ci/run installs the Debian package 'chromium')")
def test_page_renders_in_headless_chromium(tmp_path):
    report, data = build_report()
    page = report.write(tmp_path / "report.html")
    checked = tmp_path / "checked.html"  # the report plus a script that writes what the browser rendered into the DOM
    checked.write_text(page.read_text().replace("</body>", BROKEN_IMAGE + CHECK_SCRIPT + "</body>"))
    completed = chromium(tmp_path, "--dump-dom", checked.as_uri())
    found = re.search(r'<pre id="segfuse-check">(.*?)</pre>', completed.stdout, re.S)
    assert found, completed.stderr[-2000:]
    result = json.loads(found.group(1).replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&"))
    assert result["title"] == "Report <title>"
    assert result["resources"] == []
    tables = data["tables"]
    assert [table["title"] for table in result["tables"]] == [table.title for table in tables]
    for rendered, table in zip(result["tables"], tables):
        assert rendered["rows"] == [list(row) for row in table.rows] and rendered["width"] > 100
    assert result["tables"][1]["rows"][2][0] == "car <b>&</b>"  # the escaped name renders as text
    *images, control = result["images"]
    assert control["alt"] == "control: broken" and control["natural"] == [0, 0]  # the check can fail
    expected = data_images(page.read_text())
    assert len(images) == len(expected) == 14
    for image, decoded in zip(images, expected):
        assert image["complete"] and image["natural"] == [decoded.shape[1], decoded.shape[0]], image
        assert image["shown"][0] > 50 and image["shown"][1] > 20, image
    screenshot = tmp_path / "screenshot.png"
    completed = chromium(tmp_path, "--window-size=1280,2000", f"--screenshot={screenshot}", page.as_uri())
    assert screenshot.is_file(), completed.stderr[-2000:]
    with Image.open(screenshot) as image:
        pixels = np.array(image.convert("RGB"))
    assert pixels.shape[:2] == (2000, 1280)
    road = np.all(pixels == PALETTE[0], axis=-1)  # the road colour of the mask panels is on screen
    assert road.sum() > 1000
    if os.environ.get("SEGFUSE_KEEP_SCREENSHOT"):
        shutil.copy(screenshot, os.environ["SEGFUSE_KEEP_SCREENSHOT"])


@pytest.mark.parametrize("num_colours", [4, 255, 256, 300])
def test_mask_panels_are_palette_pngs_while_the_colours_fit(num_colours):
    """Ground-truth and prediction panels are palette PNGs (the colours plus black for
    ignored pixels in 256 entries) and RGB PNGs past that; both decode to ``colorize``."""
    palette = np.random.default_rng(num_colours).integers(0, 256, (num_colours, 3), dtype=np.uint8)
    gt, pred_a, _ = masks()
    gt, pred = gt[0], np.where(pred_a[0] == 3, num_colours - 1, pred_a[0])  # the last colour drawn too
    report = HtmlReport("t", examples=[ExampleSection("w", [MaskExample("m", gt, {"A": pred})])],
                        palette=palette, ignore_index=255)
    sources = re.findall(r'src="data:image/png;base64,([^"]*)"', report.render())
    modes, images = [], []
    for source in sources[:2]:  # ground truth, prediction
        with Image.open(io.BytesIO(base64.b64decode(source))) as image:
            modes.append(image.mode)
            images.append(np.array(image.convert("RGB")))
    assert modes == (["P", "P"] if num_colours < 256 else ["RGB", "RGB"])
    ignored = gt == 255
    np.testing.assert_array_equal(images[0], colorize(gt, palette, ignored))
    np.testing.assert_array_equal(images[1], colorize(pred, palette, ignored))
