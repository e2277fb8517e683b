"""Mask decoding (pyspng fast paths against Pillow), colour palettes and pairing by suffix or name."""

import numpy as np
import pytest
from PIL import Image

import segfuse.cli.io_masks as io_masks
from segfuse.cli.errors import InputError
from segfuse.cli.io_masks import Palette, colors_to_labels, pair_masks, read_labels, read_mask


def pillow_array(path):
    with Image.open(path) as image:
        return np.array(image.convert("RGB") if image.mode == "RGBA" else image)


def save_variants(folder, rng):
    labels = rng.integers(0, 40, (13, 17)).astype(np.uint8)
    labels[0, 0] = 255
    paths = {}
    Image.fromarray(labels, mode="L").save(paths.setdefault("L", folder / "grey.png"))
    palette = Image.fromarray(labels, mode="P")
    palette.putpalette([v for i in range(256) for v in (i, 255 - i, (7 * i) % 256)])
    palette.save(paths.setdefault("P", folder / "palette.png"), transparency=3)  # a tRNS chunk too
    Image.fromarray(labels.astype(np.uint16) * 100).save(paths.setdefault("I;16", folder / "wide.png"))
    Image.fromarray(labels % 2 == 1).save(paths.setdefault("1", folder / "bits.png"))
    rgb = np.stack([labels, 255 - labels, labels // 2], axis=-1)
    Image.fromarray(rgb, mode="RGB").save(paths.setdefault("RGB", folder / "rgb.png"))
    Image.fromarray(np.concatenate([rgb, np.full((13, 17, 1), 255, np.uint8)], -1), mode="RGBA").save(
        paths.setdefault("RGBA", folder / "rgba.png"))
    return paths


def test_pyspng_and_pillow_decode_every_mask_type_alike(tmp_path, monkeypatch):
    pytest.importorskip("pyspng")
    paths = save_variants(tmp_path, np.random.default_rng(0))
    fast = {mode: io_masks._read_png(path) for mode, path in paths.items()}
    monkeypatch.setattr(io_masks, "_pyspng", lambda: None)
    for mode, path in paths.items():
        slow = io_masks._read_png(path)
        expected = pillow_array(path).astype(np.uint8) if mode == "1" else pillow_array(path)
        assert np.array_equal(slow, expected), mode
        assert fast[mode].dtype == slow.dtype and np.array_equal(fast[mode], slow), mode
    assert fast["P"].max() == 255 and fast["I;16"].max() == 25500


def test_palette_as_grey_keeps_the_indices():
    import io

    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="P")
    image.putpalette([0] * 768)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    with Image.open(io.BytesIO(io_masks.palette_as_grey(buffer.getvalue()))) as grey:
        assert grey.mode == "L" and np.array_equal(np.array(grey), np.arange(64).reshape(8, 8))


def test_corrupt_and_rgb_without_palette_raise_naming_the_file(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(InputError, match="bad.png: cannot read the PNG"):
        read_mask(bad)
    Image.new("RGB", (4, 3), (1, 2, 3)).save(tmp_path / "rgb.png")
    with pytest.raises(InputError, match="rgb.png: an RGB colour mask; give --palette"):
        read_mask(tmp_path / "rgb.png")


def test_colors_to_labels_decodes_known_colours_and_names_unknown_ones(tmp_path):
    palette = Palette(np.array([[0, 0, 0], [128, 0, 0], [0, 128, 0]], np.uint8), np.array([[224, 224, 192]], np.uint8))
    rgb = np.array([[[0, 0, 0], [128, 0, 0]], [[0, 128, 0], [224, 224, 192]]], dtype=np.uint8)
    assert colors_to_labels(rgb, palette, tmp_path).tolist() == [[0, 1], [2, 255]]
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "m.png")
    labels, decoded = read_labels(tmp_path / "m.png", palette)
    assert decoded and labels.tolist() == [[0, 1], [2, 255]]
    rgb[0, 0] = (9, 9, 9)
    with pytest.raises(InputError, match=r"1 colours are not in --palette palette: \(9, 9, 9\) x 1"):
        colors_to_labels(rgb, palette, tmp_path)
    shared = Palette(np.array([[1, 1, 1], [1, 1, 1]], np.uint8), name="ade20k")
    with pytest.raises(InputError, match=r"colour \(1, 1, 1\) is used by entries \[0, 1\]"):
        colors_to_labels(rgb, shared, tmp_path)


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((2, 2), np.uint8), mode="L").save(path)
    return path


def test_convention_pairing_by_suffix_and_by_name_across_folders(tmp_path):
    gt = touch(tmp_path / "gt" / "aachen" / "aachen_000000_000019_gtFine_labelIds.png")
    touch(tmp_path / "gt" / "aachen" / "aachen_000000_000019_gtFine_instanceIds.png")
    pred = touch(tmp_path / "pred" / "aachen_000000_000019_leftImg8bit.png")
    pairing = pair_masks(tmp_path / "gt", tmp_path / "pred", "_gtFine_labelIds.png", ["_leftImg8bit.png", ".png"])
    assert pairing.by_name and [(p.stem, p.gt, p.pred) for p in pairing.pairs] == [("aachen_000000_000019", gt, pred)]
    assert not pairing.missing_gt and not pairing.missing_pred
    # names shared across sub-folders: pairing keeps the folders
    a, b = touch(tmp_path / "g2" / "a" / "x.png"), touch(tmp_path / "g2" / "b" / "x.png")
    touch(tmp_path / "p2" / "a" / "x.png")
    touch(tmp_path / "p2" / "b" / "x.png")
    pairing = pair_masks(tmp_path / "g2", tmp_path / "p2")
    assert not pairing.by_name and [p.gt for p in pairing.pairs] == [a, b]


def test_volumes_pair_and_read_with_their_spacing(tmp_path):
    import nibabel

    from segfuse.cli.io_masks import read_labels_and_spacing

    volume = np.random.default_rng(0).integers(0, 3, (4, 5, 6)).astype(np.uint8)
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
    image = nibabel.Nifti1Image(volume, np.diag([0.5, 0.5, 2.0, 1.0]))
    image.header.set_zooms((0.5, 0.5, 2.0))
    nibabel.save(image, str(tmp_path / "gt" / "case.nii.gz"))
    np.save(tmp_path / "pred" / "case.npy", volume)
    pairing = pair_masks(tmp_path / "gt", tmp_path / "pred")
    assert [pair.stem for pair in pairing.pairs] == ["case"] and not pairing.missing_gt
    labels, decoded, spacing = read_labels_and_spacing(pairing.pairs[0].gt)
    np.testing.assert_array_equal(labels, volume)
    assert spacing == (0.5, 0.5, 2.0) and not decoded
    labels, _, spacing = read_labels_and_spacing(pairing.pairs[0].pred)
    np.testing.assert_array_equal(labels, volume)
    assert spacing is None
    np.save(tmp_path / "pred" / "case.npy", volume[None, None])
    with pytest.raises(InputError, match=r"case.npy: expected a label array shaped"):
        read_labels_and_spacing(tmp_path / "pred" / "case.npy")
