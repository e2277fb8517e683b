import math

import torch

from segfuse.metrics import compare_models, semantic_scores
from segfuse.report import comparison_means_table, comparison_table, scores_table, worst_images
from segfuse.report.tables import interval_text, signed_points


def test_scores_table_shows_the_scores_in_percent():
    confusion = torch.tensor([[5, 1, 0], [2, 6, 0], [0, 0, 0]])  # class c absent: undefined
    scores = semantic_scores(confusion, class_names=["a", "b", "c"])
    table = scores_table(scores)
    assert table.columns == ["Class", "IoU", "Dice", "F1", "Precision", "Recall", "Pixels"]
    assert [row[0] for row in table.rows] == ["a", "b", "c", "mean"]
    assert table.rows[0][1] == f"{100 * 5 / 8:.2f}" and table.rows[0][6] == "6"
    assert table.rows[2][1] == "nan" and table.rows[3][6] == "14"
    assert table.rows[3][1] == f"{100 * float(scores.miou):.2f}" and table.cell_classes[3][0] == "mean"


def test_comparison_tables_list_every_class_with_interval_and_verdict():
    gt = torch.randint(0, 3, (6, 8, 8), generator=torch.Generator().manual_seed(0))
    from segfuse.metrics import per_image_confusion_matrix

    noisy = torch.where(torch.rand(6, 8, 8, generator=torch.Generator().manual_seed(1)) < 0.5, gt, (gt + 1) % 3)
    result = compare_models(per_image_confusion_matrix(noisy, gt, 3), per_image_confusion_matrix(gt, gt, 3), resamples=50)
    table = comparison_table(result, "iou", ("old", "new"))
    assert table.columns[1:3] == ["IoU old", "IoU new"] and table.columns[4] == "95% interval"
    assert len(table.rows) == 4 and table.rows[-1][0] == "mIoU" and table.cell_classes[-1][0] == "mean"
    low, high = result.per_class["iou"].low[0].item(), result.per_class["iou"].high[0].item()
    assert table.rows[0][4] == f"[{100 * low:+.2f}, {100 * high:+.2f}]"
    assert table.rows[0][5] == "better" and table.cell_classes[0][5] == "better"
    means = comparison_means_table(result, ("old", "new"))
    assert [row[0] for row in means.rows] == ["mIoU", "mDice", "mF1", "mPrecision", "mRecall", "aAcc", "mAcc", "fwIoU"]


def test_unbounded_and_undefined_intervals_are_spelled_out():
    assert interval_text(-math.inf, math.inf) == "[-inf, +inf]"
    assert interval_text(math.nan, math.nan) == ""
    assert signed_points(0.0123) == "+1.23" and signed_points(-0.5) == "-50.00"


def test_worst_images_lowest_first_skipping_nan():
    assert worst_images([0.5, math.nan, 0.1, 0.5, 0.3], 3) == [2, 4, 0]
    assert worst_images([0.2, 0.1], 10) == [1, 0]
    assert worst_images([0.2], 0) == []
