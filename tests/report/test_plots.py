import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from segfuse.metrics import compare_models, per_image_confusion_matrix
from segfuse.report import comparison_plot


def comparison(num_classes: int):
    generator = torch.Generator().manual_seed(0)
    gt = torch.randint(0, num_classes, (5, 12, 12), generator=generator)
    gt[0, :2] = num_classes - 1  # the last class lives in image 0 only
    gt[1:][gt[1:] == num_classes - 1] = 0
    noisy = torch.where(torch.rand(gt.shape, generator=generator) < 0.6, gt, torch.randint(0, num_classes - 1, gt.shape, generator=generator))
    noisy[gt == num_classes - 1] = 0  # A never finds it: B's delta there is undefined in some resamples
    return compare_models(per_image_confusion_matrix(noisy, gt, num_classes), per_image_confusion_matrix(gt, gt, num_classes), resamples=200)


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as image:
        assert image.format == "PNG"
        return np.array(image.convert("RGB"))


def test_plot_grows_with_classes_and_draws_unbounded_intervals():
    small, large = comparison(4), comparison(12)
    iou = large.per_class["iou"]
    assert math.isinf(float(iou.low[-1])) and math.isinf(float(iou.high[-1]))
    image_small, image_large = decode(comparison_plot(small)), decode(comparison_plot(large, "dice", ("x", "y")))
    assert image_large.shape[0] > image_small.shape[0] > 150
    green = np.all(image_small == (0x1A, 0x7F, 0x37), axis=-1)  # "better" points and bars
    assert green.sum() > 50


def test_plot_rejects_unknown_score():
    with pytest.raises(ValueError, match="score must be one of"):
        comparison_plot(comparison(3), "miou")
