import colorsys

import numpy as np
import pytest

from segfuse.report.palette import FADE, as_palette, colorize, default_palette, error_overlay


def test_default_palette_is_fixed_distinct_and_follows_the_golden_angle():
    palette = default_palette(300)
    assert palette.shape == (300, 3) and palette.dtype == np.uint8
    assert np.array_equal(palette, default_palette(300))
    assert np.array_equal(palette[:256], default_palette(256))
    assert len({tuple(color) for color in palette[:256]}) == 256
    assert palette.max(axis=1).min() > 150  # no black (ignored pixels are black) and no dark colour
    for index in (1, 7, 100, 255):
        hue = colorsys.rgb_to_hsv(*(palette[index] / 255.0))[0]
        expected = (index * 0.618033988749895) % 1.0
        assert min(abs(hue - expected), 1 - abs(hue - expected)) < 0.01


def test_convention_error_overlay():
    palette = np.array([[200, 0, 0], [0, 100, 0], [0, 0, 50]], dtype=np.uint8)
    gt = np.array([[0, 1, 2, 255]])
    pred = np.array([[0, 2, 1, 7]])  # correct, wrong, wrong, ignored (any value)
    overlay = error_overlay(gt, pred, palette, ignore_index=255)
    faded = np.round(palette[0] + (255.0 - palette[0]) * FADE)
    assert overlay[0, 0].tolist() == faded.tolist()
    assert overlay[0, 1].tolist() == palette[2].tolist() and overlay[0, 2].tolist() == palette[1].tolist()
    assert overlay[0, 3].tolist() == [0, 0, 0]
    image = colorize(gt, palette, gt == 255)
    assert image[0, :3].tolist() == palette.tolist() and image[0, 3].tolist() == [0, 0, 0]


def test_as_palette_checks_its_argument():
    assert as_palette(None, 400).shape == (400, 3)
    assert as_palette([[1, 2, 3], [4, 5, 6]], 2).tolist() == [[1, 2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="palette has 2 colours but the masks hold labels up to 4"):
        as_palette([[1, 2, 3], [4, 5, 6]], 5)
    with pytest.raises(ValueError, match=r"shape \(K, 3\)"):
        as_palette(np.zeros((4, 4)), 2)
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        as_palette([[0, 0, 300]], 1)
    with pytest.raises(TypeError, match="palette must be"):
        as_palette("viridis", 1)
    with pytest.raises(ValueError, match="num_colors"):
        default_palette(0)
