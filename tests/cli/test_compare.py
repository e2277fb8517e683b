"""``segfuse compare``: end to end on small folders, checked against the library."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.cli import main
from segfuse.metrics import compare_models, per_image_confusion_matrix

NUM_CLASSES = 4
LONG_NAMES = ["background", "a-rather-long-class-name-that-must-not-be-cut", "road", "sky"]


def make_folders(root: Path, count=8, size=(20, 24), seed=0):
    """gt / a / b PNG folders (B better than A); returns the folders and stacked arrays."""
    rng = np.random.default_rng(seed)
    folders = {name: root / name for name in ("gt", "a", "b")}
    for folder in folders.values():
        folder.mkdir(parents=True)
    arrays = {name: [] for name in folders}
    for i in range(count):
        gt = rng.integers(0, NUM_CLASSES, size, dtype=np.uint8)
        a = np.where(rng.random(size) < 0.5, gt, rng.integers(0, NUM_CLASSES, size)).astype(np.uint8)
        b = np.where(rng.random(size) < 0.8, gt, rng.integers(0, NUM_CLASSES, size)).astype(np.uint8)
        gt[rng.random(size) < 0.1] = 255
        for name, array in (("gt", gt), ("a", a), ("b", b)):
            Image.fromarray(array, mode="L").save(folders[name] / f"img{i}.png")
            arrays[name].append(array)
    return folders, {name: np.stack(values) for name, values in arrays.items()}


def library_comparison(arrays, **kwargs):
    gt = torch.from_numpy(arrays["gt"])
    confusions = [per_image_confusion_matrix(torch.from_numpy(arrays[name]), gt, NUM_CLASSES, 255) for name in ("a", "b")]
    return compare_models(*confusions, **kwargs)


def run_compare(folders, *extra):
    args = ["compare", "--gt", folders["gt"], "--pred", folders["a"], "--pred", folders["b"], "--workers", 1, *extra]
    return main([str(arg) for arg in args])


@pytest.fixture()
def folders(tmp_path):
    return make_folders(tmp_path)


def test_report_files_agree_with_the_library(folders, tmp_path, capsys):
    paths, arrays = folders
    out = tmp_path / "report"
    code = run_compare(paths, "--out", out, "--resamples", 300, "--seed", 4, "--confidence", 0.9, "--num-classes", NUM_CLASSES)
    assert code == 0
    expected = library_comparison(arrays, resamples=300, seed=4, confidence=0.9)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["comparison.json", "per_class.csv", "means.csv", "per_image.csv", "per_class_delta.png", "report.html"]
    )
    document = json.loads((out / "comparison.json").read_text())
    assert document["models"]["A"]["name"] == "a" and document["models"]["B"]["name"] == "b"
    assert document["num_images"] == 8 and document["resamples"] == 300 and document["confidence"] == 0.9
    assert document["images"] == [f"img{i}" for i in range(8)]
    for name in ("iou", "dice", "precision"):
        for key in ("a", "b", "delta", "low", "high"):
            assert document["per_class"][name][key] == pytest.approx(getattr(expected.per_class[name], key).tolist(), abs=1e-12)
        assert document["per_class"][name]["verdict"] == expected.per_class[name].verdict
    assert document["means"]["miou"]["low"] == pytest.approx(float(expected.means["miou"].low), abs=1e-12)
    assert document["means"]["miou"]["verdict"] == expected.means["miou"].verdict == "better"
    with (out / "per_class.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["score"] == "iou"]
    assert [row["class"] for row in rows] == ["0", "1", "2", "3"]
    assert [float(row["high"]) for row in rows] == pytest.approx(expected.per_class["iou"].high.tolist(), abs=1e-12)
    with (out / "per_image.csv").open() as handle:
        images = list(csv.DictReader(handle))
    assert [float(row["miou_b"]) for row in images] == pytest.approx(expected.image_miou_b.tolist(), abs=1e-12)
    with Image.open(out / "per_class_delta.png") as image:
        assert image.format == "PNG" and image.size[0] > 300
    html = (out / "report.html").read_text()
    assert "Worst images for b" in html and html.count("data:image/png;base64,") > 8
    assert "report written to" in capsys.readouterr().err


def test_table_prints_every_class_untruncated(folders, tmp_path, capsys, monkeypatch):
    paths, arrays = folders
    monkeypatch.setenv("COLUMNS", "40")
    code = run_compare(paths, "--out", tmp_path / "r", "--class-names", ",".join(LONG_NAMES), "--resamples", 100)
    assert code == 0
    printed = capsys.readouterr().out
    expected = library_comparison(arrays, resamples=100)
    for name, verdict in zip(LONG_NAMES, expected.per_class["iou"].verdict):
        line = next(line for line in printed.splitlines() if name in line)
        assert verdict in line
    assert "…" not in printed
    assert f"{100 * float(expected.means['miou'].b):.2f}" in printed


def test_json_without_out_writes_nothing(folders, tmp_path, capsys, monkeypatch):
    paths, arrays = folders
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run_compare(paths, "--json", "--resamples", 50, "--names", "base,new") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["models"]["B"]["name"] == "new"
    expected = library_comparison(arrays, resamples=50)
    assert document["means"]["acc"]["delta"] == pytest.approx(float(expected.means["acc"].delta), abs=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_html_elsewhere_and_no_html(folders, tmp_path):
    paths, _ = folders
    page = tmp_path / "pages" / "cmp.html"
    assert run_compare(paths, "--out", tmp_path / "r1", "--html", page, "--resamples", 50, "--worst", 2) == 0
    assert page.is_file() and not (tmp_path / "r1" / "report.html").exists()
    text = page.read_text()
    worst = text[text.index("Worst images for b") :]
    assert worst[: worst.find("<h2>") if "<h2>" in worst else None].count("<h3>") == 2
    assert run_compare(paths, "--out", tmp_path / "r2", "--no-html", "--resamples", 50) == 0
    assert not (tmp_path / "r2" / "report.html").exists() and (tmp_path / "r2" / "comparison.json").exists()


def test_skip_missing_uses_the_images_all_folders_hold(folders, tmp_path, capsys):
    paths, arrays = folders
    (paths["b"] / "img3.png").unlink()
    assert run_compare(paths, "--json", "--resamples", 50) == 2
    error = capsys.readouterr().err
    assert "img3.png: no prediction with the stem 'img3'" in error
    assert run_compare(paths, "--json", "--resamples", 50, "--skip-missing") == 0
    document = json.loads(capsys.readouterr().out)
    keep = [i for i in range(8) if i != 3]
    expected = library_comparison({name: value[keep] for name, value in arrays.items()}, resamples=50)
    assert document["images"] == [f"img{i}" for i in keep]
    assert document["per_class"]["iou"]["delta"] == pytest.approx(expected.per_class["iou"].delta.tolist(), abs=1e-12)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--confidence", "1.5"], "--confidence must lie in (0, 1), got 1.5"),
        (["--resamples", "0"], "--resamples must be >= 1, got 0"),
        (["--names", "x"], "--names needs two different names"),
        (["--num-classes", "2"], "labels in [0, 2)"),
        (["--worst", "-1"], "--worst must be >= 0"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(folders, capsys, extra, message):
    paths, _ = folders
    assert run_compare(paths, "--json", *extra) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("segfuse: error:") and message in lines[0]
    assert captured.out == ""


def test_bad_files_exit_2_naming_the_file(folders, capsys):
    paths, _ = folders
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8), mode="L").save(paths["b"] / "img2.png")
    assert run_compare(paths, "--json") == 2
    line = capsys.readouterr().err.strip()
    assert "img2.png" in line and "size" in line


def test_pred_given_once_or_one_image(tmp_path, capsys):
    paths, _ = make_folders(tmp_path / "one", count=1)
    assert main(["compare", "--gt", str(paths["gt"]), "--pred", str(paths["a"]), "--json"]) == 2
    assert "--pred must be given exactly twice" in capsys.readouterr().err
    assert run_compare(paths, "--json") == 2
    assert "at least 2 images" in capsys.readouterr().err


def test_failed_write_leaves_no_partial_report(folders, tmp_path, capsys):
    paths, _ = folders
    out = tmp_path / "file-not-folder"
    out.write_text("x")
    assert run_compare(paths, "--out", out, "--resamples", 20) == 2
    assert "not a folder" in capsys.readouterr().err
    assert out.read_text() == "x" and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_parser_does_not_import_torch_or_matplotlib():
    code = (
        "import sys, argparse\n"
        "import segfuse.cli.compare as command\n"
        "parser = argparse.ArgumentParser(); command.add_parser(parser.add_subparsers())\n"
        "parser.parse_args(['compare', '--gt', 'g', '--pred', 'a', '--pred', 'b'])\n"
        "print(sorted(name for name in ('torch', 'matplotlib', 'segfuse.cli.eval_pairs') if name in sys.modules))\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "[]"


def test_undefined_bounds_are_null_in_json(tmp_path, capsys):
    """A class in one image only: its interval is unbounded, written as null with its defined fraction."""
    paths, arrays = make_folders(tmp_path, count=10)
    for name in ("gt", "a", "b"):
        for i in range(10):
            image = arrays[name][i].copy()
            image[image == 3] = 0
            if i == 0 and name != "a":
                image[:4, :4] = 3  # class 3: in image 0 only, found by B, never predicted by A
            Image.fromarray(image, mode="L").save(paths[name] / f"img{i}.png")
    assert run_compare(paths, "--json", "--resamples", 200, "--num-classes", 4) == 0
    document = json.loads(capsys.readouterr().out)
    iou = document["per_class"]["iou"]
    assert iou["low"][3] is None and iou["high"][3] is None and 0 < iou["defined"][3] < 1
    assert iou["verdict"][3] == "within noise" and not math.isnan(iou["delta"][3])


def test_a_folder_against_itself_is_within_noise(folders, capsys):
    paths, _ = folders
    args = ["compare", "--gt", paths["gt"], "--pred", paths["a"], "--pred", paths["a"], "--json", "--resamples", 100]
    assert main([str(arg) for arg in args]) == 0
    document = json.loads(capsys.readouterr().out)
    assert [model["name"] for model in document["models"].values()] == ["A", "B"]
    for score in document["per_class"].values():
        assert score["verdict"] == ["within noise"] * NUM_CLASSES and score["low"] == score["high"] == [0.0] * NUM_CLASSES
    assert {mean["verdict"] for mean in document["means"].values()} == {"within noise"}


# ---- on eval's counting path: presets, misses, conventions; eval --pred A --pred B ------------------


def cityscapes_models(root: Path):
    """A Cityscapes tree (label ids) and two train-id prediction folders; B fixes some of A's errors and
    leaves some pixels unpredicted (255: misses). Returns the folders and the per-image (gt, A, B) train ids."""
    from segfuse.metrics import cityscapes as cs
    from tests.metrics.test_cityscapes import write_cityscapes

    rng = np.random.default_rng(5)
    gt_files, pred_files, images = write_cityscapes(root, count=5, seed=4, pred_ids="train")
    (root / "b").mkdir()
    arrays = []
    for pred_file, (label_ids, _, pred) in zip(pred_files, images):
        truth = cs.LABEL_ID_TO_TRAIN_ID[label_ids].astype(np.uint8)
        a = cs.LABEL_ID_TO_TRAIN_ID[pred].astype(np.uint8)
        b = np.where(rng.random(a.shape) < 0.5, truth, a).astype(np.uint8)
        b[:3] = 255  # a band with no prediction
        Image.fromarray(b, mode="L").save(root / "b" / pred_file.name)
        arrays.append((pred_file.name, (truth, a, b)))
    arrays = [images for _, images in sorted(arrays)]  # images in stem order, as paired
    return {"gt": root / "gtFine", "a": root / "results", "b": root / "b"}, arrays


def eval_counts(arrays, side: int, num_classes=19):
    """Per-image TP, FP, FN (N, 3, C) as eval counts them: ignored truth skipped, a prediction of 255 is FN only."""
    counts = []
    for images in arrays:
        truth, pred = images[0].astype(np.int64), images[side].astype(np.int64)
        valid = truth != 255
        matrix = np.zeros((num_classes, num_classes + 1), np.int64)
        np.add.at(matrix, (truth[valid], np.where(pred[valid] == 255, num_classes, pred[valid])), 1)
        tp = np.diagonal(matrix[:, :num_classes])
        counts.append(np.stack([tp, matrix[:, :num_classes].sum(0) - tp, matrix.sum(1) - tp]))
    return torch.from_numpy(np.stack(counts))


@pytest.mark.parametrize("convention", ["segfuse", "mmseg", "monai"])
def test_cityscapes_preset_misses_and_convention_equal_the_library(tmp_path, capsys, convention):
    from segfuse.metrics import compare_counts

    paths, arrays = cityscapes_models(tmp_path)
    args = ["compare", "--dataset", "cityscapes", "--gt", paths["gt"], "--pred", paths["a"], "--pred", paths["b"],
            "--json", "--resamples", 200, "--seed", 3, "--convention", convention, "--workers", 0]
    assert main([str(arg) for arg in args]) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    assert "counted as misses of their true class" in captured.err
    expected = compare_counts(eval_counts(arrays, 1), eval_counts(arrays, 2), resamples=200, seed=3, convention=convention)
    assert document["convention"] == convention and document["per_image"] == (convention == "monai")
    assert document["dataset"] == "cityscapes" and document["class_names"][0] == "road"
    for name in ("iou", "recall", "fscore"):
        for key in ("a", "b", "delta", "low", "high"):
            ours = [math.nan if v is None else v for v in document["per_class"][name][key]]
            np.testing.assert_allclose(ours, getattr(expected.per_class[name], key).numpy(), rtol=0, atol=1e-12)
        assert document["per_class"][name]["verdict"] == expected.per_class[name].verdict
    assert document["means"]["miou"]["delta"] == pytest.approx(float(expected.means["miou"].delta), abs=1e-12)
    assert document["means"]["miou"]["verdict"] == "better"


def test_eval_with_two_predictions_is_compare(tmp_path, capsys):
    paths, _ = cityscapes_models(tmp_path)
    common = ["--dataset", "cityscapes", "--gt", paths["gt"], "--pred", paths["a"], "--pred", paths["b"],
              "--resamples", 100, "--confidence", 0.9, "--seed", 1, "--workers", 0]
    outputs = {}
    for command in ("compare", "eval"):
        out = tmp_path / f"out-{command}"
        assert main([str(arg) for arg in [command, *common, "--out", out, "--worst", 2]]) == 0
        outputs[command] = out
    capsys.readouterr()
    names = sorted(p.name for p in outputs["eval"].iterdir())
    assert names == sorted(p.name for p in outputs["compare"].iterdir())
    assert "comparison.json" in names and "report.html" in names
    documents = [json.loads((outputs[c] / "comparison.json").read_text()) for c in ("compare", "eval")]
    for document in documents:
        document.pop("arguments")
    assert documents[0] == documents[1]
    for name in ("per_class.csv", "means.csv", "per_image.csv"):
        assert (outputs["eval"] / name).read_bytes() == (outputs["compare"] / name).read_bytes()


def test_comparison_report_draws_masks_in_the_preset_palette(tmp_path, capsys):
    import base64
    import io
    import re

    from segfuse.datasets import load_preset

    paths, _ = cityscapes_models(tmp_path)
    args = ["compare", "--dataset", "cityscapes", "--gt", paths["gt"], "--pred", paths["a"], "--pred", paths["b"],
            "--resamples", 20, "--out", tmp_path / "r", "--worst", 1, "--workers", 0]
    assert main([str(arg) for arg in args]) == 0
    page = (tmp_path / "r" / "report.html").read_text()
    panels = re.findall(r'<img alt="([^"]*)"[^>]*src="data:image/png;base64,([^"]+)"', page)
    truth = next(data for alt, data in panels if alt == "ground truth")
    with Image.open(io.BytesIO(base64.b64decode(truth))) as image:
        colours = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()}
    palette = {tuple(c) for c in load_preset("cityscapes").palette.tolist()}
    assert colours <= palette | {(0, 0, 0)} and len(colours & palette) >= 5
    predicted = next(data for alt, data in panels if alt == "b")
    with Image.open(io.BytesIO(base64.b64decode(predicted))) as image:
        colours = {tuple(c) for c in np.asarray(image.convert("RGB")).reshape(-1, 3).tolist()}
    assert (150, 150, 150) in colours  # B's unpredicted band: the "(no prediction)" grey
    assert "(no prediction)" in page
    capsys.readouterr()
