"""segfuse.cli.io_volumes: .npy and NIfTI label volumes, their spacing, pairing and errors."""

from __future__ import annotations

import builtins

import nibabel
import numpy as np
import pytest
import torch

from segfuse.cli.errors import InputError
from segfuse.cli.io_masks import MaskPair
from segfuse.cli.io_volumes import (
    Volume,
    list_volumes,
    pair_spacing,
    pair_volumes,
    parse_spacing,
    read_volume,
    read_volume_pair,
    volume_suffix,
)
from segfuse.metrics import surface_statistics


def write_nifti(path, array, spacing, dtype=None, slope=None):
    affine = np.diag((list(spacing) + [1.0, 1.0, 1.0])[:3] + [1.0])
    image = nibabel.Nifti1Image(array.astype(dtype or array.dtype), affine)
    image.header.set_zooms(spacing)
    if slope is not None:
        image.header.set_slope_inter(slope, 0)
    nibabel.save(image, str(path))


def labels(shape=(6, 7, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.uint8)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
def test_nifti_labels_and_spacing_from_the_header(tmp_path, suffix):
    array = labels()
    write_nifti(tmp_path / f"case{suffix}", array, (0.8, 0.8, 2.5))
    volume = read_volume(tmp_path / f"case{suffix}")
    np.testing.assert_array_equal(volume.labels, array)
    assert volume.spacing == pytest.approx((0.8, 0.8, 2.5))


def test_float_nifti_with_whole_values_becomes_integers(tmp_path):
    array = labels().astype(np.float32) * 100  # up to 300: int16
    write_nifti(tmp_path / "f.nii.gz", array, (1.0, 1.0, 1.0))
    volume = read_volume(tmp_path / "f.nii.gz")
    assert volume.labels.dtype == np.int16
    np.testing.assert_array_equal(volume.labels, array.astype(np.int16))


def test_non_integer_or_scaled_nifti_is_an_error(tmp_path):
    write_nifti(tmp_path / "half.nii", labels().astype(np.float32) + 0.5, (1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="half.nii: expected integer class labels"):
        read_volume(tmp_path / "half.nii")
    write_nifti(tmp_path / "scaled.nii", labels().astype(np.int16), (1.0, 1.0, 1.0), slope=0.25)
    with pytest.raises(InputError, match="scaled.nii: expected integer"):
        read_volume(tmp_path / "scaled.nii")


def test_singleton_fourth_axis_is_dropped_and_2d_spacing_kept(tmp_path):
    write_nifti(tmp_path / "t.nii.gz", labels()[..., None], (1.0, 2.0, 3.0, 1.0))
    assert read_volume(tmp_path / "t.nii.gz").labels.shape == (6, 7, 5)
    write_nifti(tmp_path / "flat.nii.gz", labels((8, 9)), (0.5, 0.7))
    volume = read_volume(tmp_path / "flat.nii.gz")
    assert volume.labels.shape == (8, 9) and volume.spacing == pytest.approx((0.5, 0.7))
    write_nifti(tmp_path / "movie.nii.gz", np.zeros((4, 4, 4, 2), np.uint8), (1.0, 1.0, 1.0, 1.0))
    with pytest.raises(InputError, match="movie.nii.gz: expected a 2D or 3D"):
        read_volume(tmp_path / "movie.nii.gz")


def test_npy_volumes_have_no_spacing_and_must_hold_integers(tmp_path):
    np.save(tmp_path / "a.npy", labels())
    assert read_volume(tmp_path / "a.npy").spacing is None
    np.save(tmp_path / "b.npy", labels().astype(bool))
    assert read_volume(tmp_path / "b.npy").labels.dtype == np.uint8
    np.save(tmp_path / "c.npy", np.zeros((0, 3), np.uint8))
    with pytest.raises(InputError, match="c.npy: the volume is empty"):
        read_volume(tmp_path / "c.npy")
    (tmp_path / "d.npy").write_bytes(b"not an array")
    with pytest.raises(InputError, match="d.npy: cannot read"):
        read_volume(tmp_path / "d.npy")
    (tmp_path / "e.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(InputError, match="e.nii.gz: cannot read the NIfTI volume"):
        read_volume(tmp_path / "e.nii.gz")


def test_missing_nibabel_names_the_extra(tmp_path, monkeypatch):
    write_nifti(tmp_path / "x.nii", labels(), (1.0, 1.0, 1.0))
    real_import = builtins.__import__

    def no_nibabel(name, *args, **kwargs):
        if name == "nibabel":
            raise ImportError("no nibabel")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_nibabel)
    with pytest.raises(InputError, match=r"pip install 'segfuse\[volumes\]'"):
        read_volume(tmp_path / "x.nii")


def test_pairing_by_stem_across_suffixes_and_folders(tmp_path):
    (tmp_path / "gt" / "sub").mkdir(parents=True)
    (tmp_path / "pred" / "sub").mkdir(parents=True)
    write_nifti(tmp_path / "gt" / "sub" / "case1.nii.gz", labels(), (1.0, 1.0, 2.0))
    write_nifti(tmp_path / "gt" / "case2.nii", labels(), (1.0, 1.0, 2.0))
    np.save(tmp_path / "pred" / "sub" / "case1.npy", labels(seed=1))
    np.save(tmp_path / "pred" / "case3.npy", labels())
    (tmp_path / "pred" / "notes.txt").write_text("not a volume")
    pairing = pair_volumes(tmp_path / "gt", tmp_path / "pred")
    assert [p.stem for p in pairing.pairs] == ["sub/case1"]
    assert [p.name for p in pairing.missing_pred] == ["case2.nii"]
    assert [p.name for p in pairing.missing_gt] == ["case3.npy"]
    assert volume_suffix(tmp_path / "X.NII.GZ") == ".nii.gz"
    np.save(tmp_path / "gt" / "case2.npy", labels())
    with pytest.raises(InputError, match="share the stem 'case2'"):
        list_volumes(tmp_path / "gt", "gt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no pred volumes"):
        list_volumes(tmp_path / "empty", "pred")
    with pytest.raises(InputError, match="is not a folder"):
        list_volumes(tmp_path / "missing", "gt")


def test_pair_spacing_rules(tmp_path):
    a, b = tmp_path / "a.nii", tmp_path / "b.nii"
    gt, pred = Volume(labels(), (1.0, 1.0, 2.5)), Volume(labels(), (1.0, 1.0, 2.5))
    assert pair_spacing(gt, pred, None, a, b) == (1.0, 1.0, 2.5)
    assert pair_spacing(gt, Volume(labels(), None), None, a, b) == (1.0, 1.0, 2.5)
    assert pair_spacing(Volume(labels(), None), Volume(labels(), None), None, a, b) is None
    assert pair_spacing(gt, pred, (2, 2, 2), a, b) == (2.0, 2.0, 2.0)
    with pytest.raises(InputError, match="b.nii: voxel spacing"):
        pair_spacing(gt, Volume(labels(), (1.0, 1.0, 3.0)), None, a, b)
    with pytest.raises(InputError, match="--spacing must give 3 values"):
        pair_spacing(gt, pred, (1.0, 1.0), a, b)
    assert parse_spacing("1,1,2.5") == (1.0, 1.0, 2.5)
    for bad in ("1,x", "1,-1", ""):
        with pytest.raises(InputError, match="--spacing"):
            parse_spacing(bad)


def test_read_volume_pair_feeds_the_surface_metrics(tmp_path):
    gt, pred = labels(seed=2), labels(seed=3)
    write_nifti(tmp_path / "gt.nii.gz", gt, (0.9, 0.9, 2.5))
    np.save(tmp_path / "pred.npy", pred)
    pair = MaskPair("case", tmp_path / "gt.nii.gz", tmp_path / "pred.npy")
    gt_read, pred_read, spacing = read_volume_pair(pair)
    assert spacing == pytest.approx((0.9, 0.9, 2.5), rel=1e-6)  # the header stores float32
    stats = surface_statistics(pred_read[None], gt_read[None], 4, spacing=spacing)
    expected = surface_statistics(torch.from_numpy(pred)[None], torch.from_numpy(gt)[None], 4, spacing=spacing)
    torch.testing.assert_close(stats.distance_sum, expected.distance_sum, rtol=0, atol=0)
    np.save(tmp_path / "small.npy", pred[:3])
    with pytest.raises(InputError, match="small.npy: size"):
        read_volume_pair(MaskPair("case", tmp_path / "gt.nii.gz", tmp_path / "small.npy"))
