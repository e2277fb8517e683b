"""``segfuse eval --dataset``: presets pair and map real file layouts like the explicit flags do."""

import json

import numpy as np
import pytest
from PIL import Image

from segfuse.datasets import load_preset
from segfuse.metrics import cityscapes as cs
from tests.cli.test_eval import run_eval
from tests.metrics.test_cityscapes import assert_table_equal, official_results, write_cityscapes


def eval_json(capsys, *args):
    assert run_eval(*args, "--json") == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_cityscapes_tree_preset_equals_flags_and_the_official_script(tmp_path, capsys, monkeypatch):
    gt_files, pred_files, images = write_cityscapes(tmp_path, count=3, seed=2)
    (tmp_path / "train_ids").mkdir()
    for gt_file, pred_file, (label_ids, _, pred) in zip(gt_files, pred_files, images):
        train_gt = gt_file.with_name(gt_file.name.replace("_labelIds", "_labelTrainIds"))
        Image.fromarray(cs.LABEL_ID_TO_TRAIN_ID[label_ids], mode="L").save(train_gt)
        Image.fromarray(cs.LABEL_ID_TO_TRAIN_ID[pred], mode="L").save(tmp_path / "train_ids" / pred_file.name)
    preset = eval_json(capsys, "--dataset", "cityscapes", "--gt", tmp_path / "gtFine", "--pred", tmp_path / "results",
                       "--map-pred", "--workers", 0)
    flags = eval_json(capsys, "--num-classes", 19, "--gt-suffix", "_gtFine_labelTrainIds.png", "--pred-suffix",
                      "_leftImg8bit.png", "--gt", tmp_path / "gtFine", "--pred", tmp_path / "train_ids")
    assert preset["num_images"] == flags["num_images"] == 3
    assert preset["confusion_matrix"] == flags["confusion_matrix"]
    assert preset["metrics"] == flags["metrics"] and preset["unpredicted_pixels"] == flags["unpredicted_pixels"] > 0
    assert preset["class_names"] == list(cs.CLASS_NAMES)
    official = official_results(gt_files, pred_files, monkeypatch)
    ours = preset["cityscapes"]
    for key, theirs in [("class_iou", "classScores"), ("class_iiou", "classInstScores"),
                        ("category_iou", "categoryScores"), ("category_iiou", "categoryInstScores")]:
        assert_table_equal({k: float("nan") if v is None else v for k, v in ours[key].items()}, official[theirs])
    assert ours["miiou"] == pytest.approx(official["averageScoreInstClasses"], abs=1e-9, rel=0)
    assert ours["category_miiou"] == pytest.approx(official["averageScoreInstCategories"], abs=1e-9, rel=0)
    # the class IoU of the generic table is the benchmark's class IoU (misses included)
    assert [preset["per_class"][name]["iou"] for name in cs.CLASS_NAMES] == pytest.approx(
        [official["classScores"][name] for name in cs.CLASS_NAMES], abs=1e-12)
    train = eval_json(capsys, "--dataset", "cityscapes", "--gt", tmp_path / "gtFine", "--pred", tmp_path / "train_ids")
    assert train["confusion_matrix"] == preset["confusion_matrix"] and train["cityscapes"]["class_iou"] == ours["class_iou"]


def test_ade20k_names_preset_equals_reduce_zero_label_and_maps_1_based_predictions(tmp_path, capsys):
    rng = np.random.default_rng(3)
    for folder in ("annotations", "pred", "pred_submission"):
        (tmp_path / folder).mkdir()
    for i in range(1, 4):
        name = f"ADE_val_{i:08d}.png"
        truth = rng.integers(0, 151, (12, 16)).astype(np.uint8)  # 0 = other, 1..150 classes
        pred = rng.integers(0, 150, (12, 16)).astype(np.uint8)
        pred[truth > 0] = np.where(rng.random(int((truth > 0).sum())) < 0.7, truth[truth > 0] - 1, pred[truth > 0])
        Image.fromarray(truth, mode="L").save(tmp_path / "annotations" / name)
        Image.fromarray(pred, mode="L").save(tmp_path / "pred" / name)
        Image.fromarray(pred + 1, mode="L").save(tmp_path / "pred_submission" / name)  # ADE submission format
    common = ("--gt", tmp_path / "annotations")
    preset = eval_json(capsys, "--dataset", "ade20k", *common, "--pred", tmp_path / "pred")
    flags = eval_json(capsys, "--reduce-zero-label", "--num-classes", 150, *common, "--pred", tmp_path / "pred")
    submission = eval_json(capsys, "--dataset", "ade20k", "--map-pred", *common, "--pred", tmp_path / "pred_submission")
    assert preset["confusion_matrix"] == flags["confusion_matrix"] == submission["confusion_matrix"]
    assert preset["class_names"][:2] == ["wall", "building"] and preset["num_classes"] == 150


VOC_PALETTE = load_preset("voc").palette


def test_voc_palette_pngs_and_rgb_colour_predictions(tmp_path, capsys):
    rng = np.random.default_rng(4)
    for folder in ("SegmentationClass", "pred", "pred_rgb"):
        (tmp_path / folder).mkdir()
    colors = np.vstack([VOC_PALETTE, np.zeros((235, 3), np.uint8)])
    colors[255] = (224, 224, 192)
    for i in range(3):
        truth = rng.integers(0, 21, (10, 14)).astype(np.uint8)
        truth[0] = 255
        pred = rng.integers(0, 21, (10, 14)).astype(np.uint8)
        image = Image.fromarray(truth, mode="P")
        image.putpalette(colors.reshape(-1).tolist())
        image.save(tmp_path / "SegmentationClass" / f"2007_{i:06d}.png")
        Image.fromarray(pred, mode="L").save(tmp_path / "pred" / f"2007_{i:06d}.png")
        Image.fromarray(VOC_PALETTE[pred], mode="RGB").save(tmp_path / "pred_rgb" / f"2007_{i:06d}.png")
    common = ("--gt", tmp_path / "SegmentationClass")
    flags = eval_json(capsys, "--num-classes", 21, *common, "--pred", tmp_path / "pred")
    preset = eval_json(capsys, "--dataset", "voc", *common, "--pred", tmp_path / "pred_rgb")
    palette = eval_json(capsys, "--palette", "voc", "--num-classes", 21, *common, "--pred", tmp_path / "pred_rgb")
    assert preset["confusion_matrix"] == flags["confusion_matrix"] == palette["confusion_matrix"]
    assert preset["class_names"][15] == "person"


def test_rgb_colour_ground_truth_with_the_cityscapes_palette(tmp_path, capsys):
    id2label = pytest.importorskip("cityscapesscripts.helpers.labels").id2label
    colours = np.array([[*id2label[i].color, 255] for i in range(34)], dtype=np.uint8)
    rng = np.random.default_rng(5)
    for folder in ("gt_color", "gt_train", "pred"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        label_ids = rng.integers(0, 34, (8, 12)).astype(np.uint8)
        label_ids[label_ids == 18] = 17  # polegroup is drawn in pole's colour: colour masks cannot tell them apart
        Image.fromarray(colours[label_ids], mode="RGBA").save(tmp_path / "gt_color" / f"x{i}.png")  # as *_gtFine_color.png
        Image.fromarray(cs.LABEL_ID_TO_TRAIN_ID[label_ids], mode="L").save(tmp_path / "gt_train" / f"x{i}.png")
        Image.fromarray(rng.integers(0, 19, (8, 12)).astype(np.uint8), mode="L").save(tmp_path / "pred" / f"x{i}.png")
    explicit = eval_json(capsys, "--num-classes", 19, "--gt", tmp_path / "gt_train", "--pred", tmp_path / "pred")
    coloured = eval_json(capsys, "--palette", "cityscapes", "--num-classes", 19, "--gt", tmp_path / "gt_color",
                         "--pred", tmp_path / "pred")
    assert coloured["confusion_matrix"] == explicit["confusion_matrix"]


def test_user_preset_file(tmp_path, capsys):
    from tests.cli.test_eval import make_folders

    gt_dir, pred_dir, _, _ = make_folders(tmp_path)
    preset = tmp_path / "mine.toml"
    preset.write_text('name = "mine"\nclasses = ["a", "b", "c", "d"]\n')
    document = eval_json(capsys, "--dataset", preset, "--gt", gt_dir, "--pred", pred_dir)
    flags = eval_json(capsys, "--class-names", "a,b,c,d", "--gt", gt_dir, "--pred", pred_dir)
    assert document["dataset"] == "mine" and document["confusion_matrix"] == flags["confusion_matrix"]
