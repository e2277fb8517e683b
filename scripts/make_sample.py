"""Generate the sample bundled with segfuse (``segfuse/data/sample``), deterministically.

20 pairs of 256 x 256 street-scene masks with 6 classes (classes.txt). The ground truth
(palette PNGs in gt/) has a 2-pixel void band (255) around cars and people and, in some
images, a void ego-vehicle hood. The predictions (8-bit PNGs in pred/) make the errors real
models make: noisy boundaries, a missed small object (a person painted over by its
surroundings) and two confused classes (parts of buildings predicted as vegetation).

    python scripts/make_sample.py [--out segfuse/data/sample] [--count 20] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("sky", "road", "building", "vegetation", "car", "person")
SKY, ROAD, BUILDING, VEGETATION, CAR, PERSON = range(6)
IGNORE = 255
SIZE = 256
PALETTE = [(70, 130, 180), (128, 64, 128), (70, 70, 70), (107, 142, 35), (0, 0, 142), (220, 20, 60)]


def scene(rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[slice, slice]]]:
    """Ground-truth labels without void, and the boxes of the people in it."""
    labels = np.full((SIZE, SIZE), SKY, dtype=np.uint8)
    horizon = int(rng.integers(96, 136))
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    width = (rows - horizon) * 1.2 + 20
    labels[(rows >= horizon) & (np.abs(cols - SIZE / 2) < width)] = ROAD
    labels[(rows >= horizon) & (np.abs(cols - SIZE / 2) >= width)] = VEGETATION
    for _ in range(int(rng.integers(1, 4))):
        left, span, top = int(rng.integers(0, 200)), int(rng.integers(30, 80)), int(rng.integers(20, horizon - 10))
        labels[top:horizon, left : left + span] = BUILDING
    for _ in range(int(rng.integers(1, 4))):
        centre_r, centre_c = horizon - int(rng.integers(0, 20)), int(rng.integers(0, SIZE))
        radius_r, radius_c = int(rng.integers(12, 30)), int(rng.integers(10, 25))
        labels[((rows - centre_r) / radius_r) ** 2 + ((cols - centre_c) / radius_c) ** 2 < 1] = VEGETATION
    for _ in range(int(rng.integers(1, 4))):
        top = int(rng.integers(horizon + 10, SIZE - 40))
        height = 10 + (top - horizon) // 4
        left = int(rng.integers(40, SIZE - 40 - 2 * height))
        labels[top : top + height, left : left + 2 * height] = CAR
    people = []
    for _ in range(int(rng.integers(1, 3))):
        top, left = int(rng.integers(horizon, SIZE - 40)), int(rng.integers(10, SIZE - 20))
        box = (slice(top, top + int(rng.integers(14, 26))), slice(left, left + int(rng.integers(5, 9))))
        labels[box] = PERSON
        people.append(box)
    return labels, people


def void(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Ground truth with a 2-pixel void band around cars and people, sometimes a void hood."""
    things = np.isin(labels, (CAR, PERSON))
    grown = things.copy()
    for axis in (0, 1):
        for shift in (-2, -1, 1, 2):
            grown |= np.roll(things, shift, axis=axis)
    truth = labels.copy()
    truth[grown & ~things] = IGNORE
    if rng.random() < 0.4:
        truth[SIZE - int(rng.integers(12, 24)) :, :] = IGNORE
    return truth


def predict(labels: np.ndarray, people: list, index: int, rng: np.random.Generator) -> np.ndarray:
    """A prediction with boundary noise, a missed person (every 3rd image), building->vegetation."""
    pred = labels.copy()
    for _ in range(3):
        shift = tuple(int(v) for v in rng.integers(-3, 4, size=2))
        shifted = np.roll(labels, shift, axis=(0, 1))
        noisy = (shifted != labels) & (rng.random(labels.shape) < 0.35)
        pred[noisy] = shifted[noisy]
    if index % 3 == 0 and people:
        rows, cols = people[0]
        surroundings = labels[rows.stop, cols.start] if rows.stop < SIZE else ROAD
        pred[rows, cols] = surroundings if surroundings != PERSON else ROAD
    if index % 2 == 1:
        split = int(rng.integers(SIZE // 3, 2 * SIZE // 3))
        confused = (labels == BUILDING) & (np.arange(SIZE)[None, :] < split)
        pred[confused & (rng.random(labels.shape) < 0.7)] = VEGETATION
    return pred


def palette_image(labels: np.ndarray) -> Image.Image:
    image = Image.fromarray(labels, mode="P")
    flat = [value for colour in PALETTE for value in colour] + [0, 0, 0] * (256 - len(PALETTE))
    flat[3 * IGNORE : 3 * IGNORE + 3] = [255, 255, 255]
    image.putpalette(flat)
    return image


def save(image: Image.Image, path: Path) -> None:
    """Save a PNG and check that reading it back gives the same labels."""
    image.save(path, optimize=True)
    with Image.open(path) as written:
        if not np.array_equal(np.array(written), np.array(image)):
            raise RuntimeError(f"{path}: the PNG does not read back as the labels written")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "segfuse/data/sample")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    (args.out / "gt").mkdir(parents=True, exist_ok=True)
    (args.out / "pred").mkdir(parents=True, exist_ok=True)
    (args.out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for index in range(args.count):
        labels, people = scene(rng)
        name = f"scene_{index:03d}.png"
        save(palette_image(void(labels, rng)), args.out / "gt" / name)
        save(Image.fromarray(predict(labels, people, index, rng), mode="L"), args.out / "pred" / name)
    print(f"wrote {args.count} pairs to {args.out}")


if __name__ == "__main__":
    main()
