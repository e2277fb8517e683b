"""COCO-style instance AP: pycocotools-compatible RLE masks and a vectorised COCOeval (and LVIS).

``mask`` mirrors ``pycocotools.mask``; ``evaluate`` mirrors ``COCOeval`` for "segm", "bbox"
and "boundary" (same numbers, several times faster) and the ``lvis`` package's LVISEval
(``mode="lvis"``); ``evaluate_masks`` takes dense masks; ``mask_to_boundary`` is the
Boundary IoU band of dense masks. Only numpy is imported: never torch.
"""

from segfuse.coco import mask
from segfuse.coco._boundary import mask_to_boundary
from segfuse.coco.dense import evaluate_masks
from segfuse.coco.evaluation import CocoEvaluation, evaluate

__all__ = ["mask", "evaluate", "evaluate_masks", "CocoEvaluation", "mask_to_boundary"]
