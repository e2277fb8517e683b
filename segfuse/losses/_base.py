"""The base of every segfuse loss module: weighted sums written ``1.0 * A() + 0.5 * B()``."""

from __future__ import annotations

from numbers import Real

from torch import nn


class SegmentationLoss(nn.Module):
    """A loss module; ``w * loss``, ``loss_a + loss_b`` and ``sum([loss_a, loss_b])`` build a
    :class:`WeightedSum`."""

    def __mul__(self, weight):
        from segfuse.losses.compound import WeightedSum

        if not isinstance(weight, Real) or isinstance(weight, bool):
            return NotImplemented
        return WeightedSum([(float(weight), self)])

    __rmul__ = __mul__

    def __add__(self, other):
        from segfuse.losses.compound import WeightedSum

        if not isinstance(other, SegmentationLoss):
            return NotImplemented
        return WeightedSum.of(self) + WeightedSum.of(other)

    def __radd__(self, other):
        # sum([A, B]) starts from the integer 0
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            from segfuse.losses.compound import WeightedSum

            return WeightedSum.of(self)
        return NotImplemented
