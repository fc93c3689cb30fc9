"""CRD's Crossmodal Amplifier: the Inverted Bottleneck Projection (IBP) of the other modality's features.

Per level with C channels: 3x3 conv C -> C, 1x1 conv C -> expansion * C, 1x1 conv expansion * C -> C, each
followed by BN + ReLU (expansion 2 is the paper's choice, Tab. 6). Its output is fused with the decoder's.
"""
from collections.abc import Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmad.registry import MODELS

from .layers import RD_INIT_CFG, conv_bn_relu


@MODELS.register_module()
class InvertedBottleneckProjection(BaseModule):
    """Per-level channel-expanding projection; output shapes equal input shapes.

    Args:
        in_channels: Channels of each level, shallow to deep (``TeacherSpec.out_channels``).
        expansion: Channel expansion of the hidden 1x1 layer; None = identity for every level.
        init_cfg: mmengine initialisation config, CRD's by default.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 expansion: int | None = 2,
                 init_cfg: dict | list[dict] | None = RD_INIT_CFG) -> None:
        super().__init__(init_cfg)
        if expansion is not None and expansion < 1:
            raise ValueError(f'expansion must be a positive integer or None, got {expansion}.')
        self.projections = nn.ModuleList(
            nn.Identity() if expansion is None else self._projection(channels, expansion) for channels in in_channels)

    @staticmethod
    def _projection(channels: int, expansion: int) -> nn.Sequential:
        """3x3 conv, expanding 1x1 conv and contracting 1x1 conv, each + BN + ReLU."""
        hidden = expansion * channels
        return nn.Sequential(
            conv_bn_relu(nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)),
            conv_bn_relu(nn.Conv2d(channels, hidden, kernel_size=1, bias=False)),
            conv_bn_relu(nn.Conv2d(hidden, channels, kernel_size=1, bias=False)))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        """Project every level.

        Args:
            feats: One tensor per level, shallow to deep, shape (B, C_i, H_i, W_i).

        Returns:
            One tensor per level, same shapes as ``feats``.
        """
        if len(feats) != len(self.projections):
            raise ValueError(f'InvertedBottleneckProjection expects {len(self.projections)} levels, '
                             f'got {len(feats)}.')
        return [projection(x) for projection, x in zip(self.projections, feats)]
