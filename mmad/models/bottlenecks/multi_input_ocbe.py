"""One-class bottleneck embedding (OCBE) of Reverse Distillation, generalised to several inputs per level.

RD's OCBE (Deng et al., CVPR 2022) squeezes the teacher's multi-scale features into one compact embedding.
CRD's modified OCBE takes, per level, the branch's own teacher features concatenated on channels with the
Bottleneck Projection of the other modality's features. One rule gives both:

* level ``i``, ``n = log2(stride_last / stride_i)`` halvings: 3x3 stride-2 conv + BN + ReLU, channels
  ``num_inputs * C_i -> 2x -> 4x ...``, the last convolution of the chain giving ``C_last``;
* the last level passes through when ``num_inputs == 1`` and gets a 3x3 stride-1 conv + BN + ReLU
  ``num_inputs * C_last -> C_last`` otherwise;
* the levels are concatenated (``num_levels * C_last``) and fed to ``out_blocks`` residual blocks of the
  student's type (``TeacherSpec.block_type``: the teacher's own for a ResNet), the first one of stride 2 with
  a downsampling shortcut, giving ``2 * C_last`` channels.

For a WRN50 teacher at 256x256 and ``num_inputs=2``: 512@64 -> 1024@32 -> 1024@16, 1024@32 -> 1024@16,
2048@16 -> 1024@16, concat 3072@16 -> 2048@8.
"""
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from timm.models.resnet import BasicBlock, Bottleneck
from torch import Tensor, nn

from mmad.registry import MODELS

from .layers import RD_INIT_CFG, conv_bn_relu, halvings_between

RESIDUAL_BLOCKS: dict[str, type[BasicBlock | Bottleneck]] = {'basic': BasicBlock, 'bottleneck': Bottleneck}


@MODELS.register_module()
class MultiInputOCBE(BaseModule):
    """RD's one-class bottleneck embedding over ``num_inputs`` feature maps per level.

    Args:
        in_channels: Channels ``C_i`` of one input at each level, shallow to deep (``TeacherSpec.out_channels``).
        num_inputs: Feature maps concatenated per level: 1 = RD's OCBE, 2 = CRD's modified OCBE.
        block_type: ``'basic'`` or ``'bottleneck'`` (``TeacherSpec.block_type``).
        out_blocks: Residual blocks after the concatenation (``TeacherSpec.ocbe_blocks``: 3 for WRN50).
        strides: Stride of each level (``TeacherSpec.strides``); None = each level halves the previous one.
        width_factor: Bottleneck inner width relative to a plain ResNet (``TeacherSpec.width_factor``, 2 for WRN50).
        init_cfg: mmengine initialisation config, RD's by default.

    Attributes:
        out_channels: Channels of the embedding, ``2 * in_channels[-1]``.
    """

    def __init__(self,
                 in_channels: Sequence[int],
                 num_inputs: int,
                 block_type: str,
                 out_blocks: int,
                 strides: Sequence[int] | None = None,
                 width_factor: float = 1.0,
                 init_cfg: dict | list[dict] | None = RD_INIT_CFG) -> None:
        super().__init__(init_cfg)
        if block_type not in RESIDUAL_BLOCKS:
            raise ValueError(f'block_type must be one of {tuple(RESIDUAL_BLOCKS)}, got {block_type!r}.')
        if block_type == 'basic' and width_factor != 1:
            raise ValueError(f'BasicBlock supports width_factor=1 only, got {width_factor}.')
        if num_inputs < 1 or out_blocks < 1:
            raise ValueError(f'num_inputs and out_blocks must be >= 1, got {num_inputs} and {out_blocks}.')
        self.in_channels = tuple(in_channels)
        self.num_inputs = num_inputs
        self.num_levels = len(self.in_channels)
        strides = tuple(strides) if strides is not None else tuple(2**level for level in range(self.num_levels))
        if len(strides) != self.num_levels:
            raise ValueError(f'strides {strides} must have one entry per level of in_channels {self.in_channels}.')
        last_channels = self.in_channels[-1]
        self.out_channels = 2 * last_channels
        self.level_projections = nn.ModuleList(
            self._level_projection(num_inputs * channels, last_channels, halvings_between(stride, strides[-1]))
            for channels, stride in zip(self.in_channels, strides))
        self.residual_stage = self._residual_stage(
            RESIDUAL_BLOCKS[block_type], self.num_levels * last_channels, self.out_channels, out_blocks, width_factor)

    def _level_projection(self, in_channels: int, out_channels: int, halvings: int) -> nn.Module:
        """Bring one level to ``out_channels`` at the last level's stride."""
        if halvings == 0:
            if self.num_inputs == 1:
                return nn.Identity()
            return conv_bn_relu(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False))
        chain = [in_channels * 2**step for step in range(halvings)] + [out_channels]
        return nn.Sequential(*(
            conv_bn_relu(nn.Conv2d(conv_in, conv_out, kernel_size=3, stride=2, padding=1, bias=False))
            for conv_in, conv_out in zip(chain, chain[1:])))

    @staticmethod
    def _residual_stage(block: type[BasicBlock | Bottleneck], in_channels: int, out_channels: int, num_blocks: int,
                        width_factor: float) -> nn.Sequential:
        """Residual blocks halving the resolution once: ``in_channels`` -> ``out_channels``."""
        planes = out_channels // block.expansion
        base_width = int(64 * width_factor)
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=2, bias=False), nn.BatchNorm2d(out_channels))
        blocks = [block(in_channels, planes, stride=2, downsample=downsample, base_width=base_width)]
        blocks += [block(out_channels, planes, base_width=base_width) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, feats: Sequence[Tensor | Sequence[Tensor]]) -> Tensor:
        """Embed the multi-scale features.

        Args:
            feats: One entry per level, shallow to deep. Each entry is either a list of ``num_inputs`` tensors
                of shape (B, C_i, H_i, W_i), concatenated on channels in the given order (own teacher features
                first in CRD), or one tensor already concatenated, shape (B, num_inputs * C_i, H_i, W_i).

        Returns:
            The embedding, shape (B, 2 * C_last, H_last / 2, W_last / 2) (2048@8x8 for WRN50 at 256x256).
        """
        if len(feats) != self.num_levels:
            raise ValueError(f'MultiInputOCBE expects {self.num_levels} levels of features, got {len(feats)}.')
        projected = []
        for level, (level_feats, projection, channels) in enumerate(
                zip(feats, self.level_projections, self.in_channels)):
            x = level_feats if isinstance(level_feats, Tensor) else torch.cat(list(level_feats), dim=1)
            if x.ndim != 4 or x.shape[1] != self.num_inputs * channels:
                raise ValueError(f'MultiInputOCBE level {level} expects (B, {self.num_inputs} x {channels}, H, W) '
                                 f'features, got {tuple(x.shape)}.')
            projected.append(projection(x))
        return self.residual_stage(torch.cat(projected, dim=1))
