"""CRD's Crossmodal Filter: the Bottleneck Projection (BP) of the other modality's teacher features.

Per level, 2x2 stride-2 convolutions (+BN+ReLU) double the channels at each halving down to a small spatial
bottleneck (stride 32 = 8x8 at 256x256), then 2x2 stride-2 transposed convolutions (+BN+ReLU) bring the
feature back to the level's shape. The bottleneck filters out modality-specific detail (paper Tab. 5 varies it).

Example:
    >>> import torch
    >>> bp = BottleneckProjection(in_channels=(8, 16), strides=(4, 8), bottleneck_stride=16)
    >>> [f.shape[1:] for f in bp([torch.rand(1, 8, 8, 8), torch.rand(1, 16, 4, 4)])]
    [torch.Size([8, 8, 8]), torch.Size([16, 4, 4])]
"""
from collections.abc import Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmad.registry import MODELS

from .layers import RD_INIT_CFG, conv_bn_relu, halvings_between


@MODELS.register_module()
class BottleneckProjection(BaseModule):
    """Per-level encoder-decoder through a spatial bottleneck; output shapes equal input shapes.

    Args:
        in_channels: Channels of each level, shallow to deep (``TeacherSpec.out_channels``).
        strides: Stride of each level (``TeacherSpec.strides``, e.g. ``(4, 8, 16)``).
        bottleneck_stride: Stride of the bottleneck (16 / 32 / 64 = 16x16 / 8x8 / 4x4 at 256x256; 32 is
            CRD's). A level already at that stride passes through. None = identity for every level.
        init_cfg: mmengine initialisation config, CRD's by default.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 strides: Sequence[int],
                 bottleneck_stride: int | None = 32,
                 init_cfg: dict | list[dict] | None = RD_INIT_CFG) -> None:
        super().__init__(init_cfg)
        if len(in_channels) != len(strides):
            raise ValueError(f'in_channels {tuple(in_channels)} and strides {tuple(strides)} must have one entry '
                             'per level.')
        self.halvings = tuple(0 if bottleneck_stride is None else halvings_between(stride, bottleneck_stride)
                              for stride in strides)
        self.projections = nn.ModuleList(
            self._projection(channels, halvings) for channels, halvings in zip(in_channels, self.halvings))

    @staticmethod
    def _projection(channels: int, halvings: int) -> nn.Module:
        """Down ``halvings`` times (channels doubling), then back up to ``channels``."""
        if halvings == 0:
            return nn.Identity()
        widths = [channels * 2**step for step in range(halvings + 1)]
        down = [conv_bn_relu(nn.Conv2d(c_in, c_out, kernel_size=2, stride=2, bias=False))
                for c_in, c_out in zip(widths, widths[1:])]
        up = [conv_bn_relu(nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2, bias=False))
              for c_in, c_out in zip(widths[:0:-1], widths[-2::-1])]
        return nn.Sequential(*down, *up)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Project every level.

        Args:
            feats: One tensor per level, shallow to deep, shape (B, C_i, H_i, W_i); H_i and W_i must be
                divisible by ``2 ** halvings[i]``.

        Returns:
            One tensor per level, same shapes as ``feats``.
        """
        if len(feats) != len(self.projections):
            raise ValueError(f'BottleneckProjection expects {len(self.projections)} levels, got {len(feats)}.')
        for level, (x, halvings) in enumerate(zip(feats, self.halvings)):
            if any(size % 2**halvings for size in x.shape[-2:]):
                raise ValueError(f'BottleneckProjection level {level}: height and width must be divisible by '
                                 f'{2**halvings} to reach the bottleneck and come back, got {tuple(x.shape)}.')
        return [projection(x) for projection, x in zip(self.projections, feats)]
