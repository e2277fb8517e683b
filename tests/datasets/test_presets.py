"""Built-in dataset presets, the preset file format and label mappings."""

import numpy as np
import pytest

from segfuse.datasets import IGNORED, INVALID, LabelMapping, load_preset, preset_names

SIZES = {"cityscapes": 19, "ade20k": 150, "voc": 21, "coco-stuff": 171, "pascal-context": 59}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_built_in_presets_load_with_their_class_counts(name):
    preset = load_preset(name)
    assert preset.num_classes == SIZES[name] and len(set(preset.classes)) == SIZES[name]
    assert preset.palette is not None and preset.palette.shape == (SIZES[name], 3)
    assert preset.ignore_index == 255 and preset.gt_suffix and preset.pred_suffix
    assert sorted(preset_names()) == sorted(SIZES)


def test_cityscapes_preset_equals_cityscapesscripts_labels():
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")
    preset = load_preset("cityscapes")
    train = sorted((label for label in labels.labels if label.trainId not in (255, -1)), key=lambda l: l.trainId)
    assert preset.classes == tuple(label.name for label in train)
    assert preset.palette.tolist() == [list(label.color) for label in train]
    assert preset.label_map == {label.id: label.trainId for label in labels.labels if label.id >= 0}
    mapping = preset.mapping()
    ids = np.arange(34)
    expected = [labels.id2label[i].trainId if labels.id2label[i].trainId != 255 else IGNORED for i in ids]
    assert mapping.classes(ids).tolist() == expected
    assert mapping.classes([34, 200]).tolist() == [INVALID, INVALID] and mapping.classes([255]).tolist() == [IGNORED]


def test_known_names_and_colours():
    ade, voc, context = load_preset("ade20k"), load_preset("voc"), load_preset("pascal-context")
    assert ade.classes[:3] == ("wall", "building", "sky") and ade.classes[-1] == "flag" and ade.reduce_zero_label
    assert voc.palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert voc.ignore_colors.tolist() == [[224, 224, 192]]
    assert context.classes[0] == "aeroplane" and context.reduce_zero_label


def test_convention_label_mappings():
    values = np.array([0, 1, 3, 4, 255, -1])
    assert LabelMapping(4).classes(values).tolist() == [0, 1, 3, INVALID, IGNORED, INVALID]
    assert LabelMapping(4, reduce_zero_label=True).classes(values).tolist() == [IGNORED, 0, 2, 3, IGNORED, INVALID]
    assert LabelMapping(None).classes(values).tolist() == [0, 1, 3, 4, IGNORED, INVALID]
    table = LabelMapping(2, table={7: 0, 8: 1, 9: 255})
    assert table.classes([7, 8, 9, 10, 255]).tolist() == [0, 1, IGNORED, INVALID, IGNORED]
    assert LabelMapping(4, ignore_index=None).classes([255]).tolist() == [INVALID]


def test_a_preset_file_written_by_a_user(tmp_path):
    path = tmp_path / "roads.toml"
    path.write_text('\ufeffclasses = ["road", "lane"]\nignore_index = 0\ngt_suffix = "_mask.png"\n'
                    'palette = [[0, 0, 0], [255, 255, 255]]\n[label_map]\n10 = 0\n20 = 1\n0 = 0\n', encoding="utf-8")
    preset = load_preset(path)
    assert preset.name == "roads" and preset.classes == ("road", "lane") and preset.gt_suffix == ("_mask.png",)
    assert preset.mapping().classes([10, 20, 0, 5]).tolist() == [0, 1, IGNORED, INVALID]


@pytest.mark.parametrize("text, problem", [
    ('classes = ["a"]\ncolour = 1\n', "key 'colour' is unknown"),
    ('classes = []\n', "classes must be a non-empty list"),
    ('classes = ["a", "b"]\npalette = [[1, 2, 3]]\n', "palette has 1 colours for 2 classes"),
    ('classes = ["a"]\n[label_map]\n5 = 3\n', "label_map maps 5 to 3; expected a class index in [0, 1) or 255"),
    ('classes = ["a"\n', "not a valid TOML preset"),
])
def test_bad_preset_files_name_the_file_and_the_key(tmp_path, text, problem):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as error:
        load_preset(path)
    assert str(error.value).startswith(str(path)) and problem in str(error.value)
