"""segfuse: segmentation losses and metrics on one statistics core."""

__version__ = "0.1.0"
