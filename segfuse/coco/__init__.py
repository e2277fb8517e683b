"""COCO-style instance AP: pycocotools-compatible RLE masks and a vectorised COCOeval.

``mask`` mirrors ``pycocotools.mask``; ``evaluate`` mirrors ``COCOeval`` for "segm" and
"bbox" (same numbers, several times faster); ``evaluate_masks`` takes dense masks.
"""

from segfuse.coco import mask
from segfuse.coco.dense import evaluate_masks
from segfuse.coco.evaluate import CocoEvaluation, evaluate

__all__ = ["mask", "evaluate", "evaluate_masks", "CocoEvaluation"]
