"""Reports a person reads: a self-contained HTML page, its tables and plots, mask palettes.

``import segfuse.report`` does not import torch or matplotlib; plots import matplotlib
(Agg) when drawn.
"""

from segfuse.report.html import ExampleSection, Figure, HtmlReport, MaskExample, Table
from segfuse.report.palette import colorize, default_palette, error_overlay
from segfuse.report.plots import comparison_plot
from segfuse.report.tables import comparison_means_table, comparison_table, scores_table, worst_images

__all__ = [
    "ExampleSection",
    "Figure",
    "HtmlReport",
    "MaskExample",
    "Table",
    "colorize",
    "comparison_means_table",
    "comparison_plot",
    "comparison_table",
    "default_palette",
    "error_overlay",
    "scores_table",
    "worst_images",
]
