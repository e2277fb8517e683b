"""A compact U-Net (Ronneberger et al. 2015) written in plain PyTorch: no torchvision, no weights.

Shapes: input (N, in_channels, H, W) float, output logits (N, num_classes, H, W). Any H, W
work: the input is zero-padded to a multiple of 2**depth and the logits cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segfuse._validate import check_num_classes


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


class ConvBlock(nn.Sequential):
    """Two (3x3 conv, BatchNorm, ReLU) layers: (N, c_in, H, W) -> (N, c_out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """Encoder-decoder with skip connections; channels double at each of ``depth`` downsamplings.

    Args:
        in_channels: image channels (3 for RGB).
        num_classes: C, the channels of the logits.
        base_channels: channels of the first stage (stage k has base_channels * 2**k).
        depth: number of 2x max-pool downsamplings (and of transposed-conv upsamplings).
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 2, base_channels: int = 16, depth: int = 3):
        super().__init__()
        _check_int("in_channels", in_channels, 1)
        check_num_classes(num_classes)
        _check_int("base_channels", base_channels, 1)
        _check_int("depth", depth, 0)
        widths = [base_channels * 2**k for k in range(depth + 1)]
        self.depth = depth
        self.encoders = nn.ModuleList([ConvBlock(in_channels, widths[0])])
        self.encoders.extend(ConvBlock(widths[k], widths[k + 1]) for k in range(depth))
        self.upsamplers = nn.ModuleList(nn.ConvTranspose2d(widths[k + 1], widths[k], 2, stride=2)
                                        for k in reversed(range(depth)))
        self.decoders = nn.ModuleList(ConvBlock(2 * widths[k], widths[k]) for k in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, image: Tensor) -> Tensor:
        if image.dim() != 4:
            raise ValueError(f"UNet expects an image batch (N, C, H, W), got shape {tuple(image.shape)}")
        height, width = image.shape[-2:]
        multiple = 2**self.depth
        x = F.pad(image, (0, -width % multiple, 0, -height % multiple))
        skips = []
        for k, encoder in enumerate(self.encoders):
            x = encoder(x if k == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for upsample, decoder in zip(self.upsamplers, self.decoders):
            x = decoder(torch.cat([skips.pop(), upsample(x)], dim=1))
        return self.head(x)[..., :height, :width]
