"""Reverse Distillation's student decoder: the teacher mirrored, upsampling from the one-class embedding.

Deng et al., "Anomaly Detection via Reverse Distillation from One-Class Embedding", CVPR 2022
(``de_resnet`` / ``de_wide_resnet50_2``). CRD fuses features between the stages, so the stages are exposed.

Example:
    >>> import torch
    >>> decoder = ReverseDecoder('basic', in_channels=512, out_channels=(64, 128, 256), stage_blocks=(2, 2, 2))
    >>> [f.shape[1:] for f in decoder(torch.rand(1, 512, 2, 2))]
    [torch.Size([64, 16, 16]), torch.Size([128, 8, 8]), torch.Size([256, 4, 4])]
"""
from collections.abc import Sequence

from mmengine.model import BaseModule
from torch import Tensor, nn

from mmad.registry import MODELS

from ..bottlenecks.layers import RD_INIT_CFG
from .upsampling_blocks import UPSAMPLING_BLOCKS, UpsamplingBasicBlock, UpsamplingBottleneck


@MODELS.register_module()
class ReverseDecoder(BaseModule):
    """Reverse decoder, one upsampling stage per teacher level: a ResNet teacher's mirror image.

    Stage ``i`` (deep to shallow) produces level ``num_levels - 1 - i``: its first block doubles the
    resolution and maps the channels to that level's teacher channels, the other blocks keep the shape.
    As in RD, stage ``i`` of a ResNet teacher's student holds ``stage_blocks[i]`` blocks, i.e. the teacher's
    block counts are reused in their given order (WRN50's (3, 4, 6) gives 3 blocks to the deepest decoder stage);
    other teachers get 2 basic blocks per stage by default (``TeacherSpec.default_student``).

    Args:
        block_type: ``'basic'`` or ``'bottleneck'`` (``TeacherSpec.block_type``).
        in_channels: Channels of the input embedding (the OCBE output, 2048 for WRN50).
        out_channels: Teacher channels of each level, shallow to deep, e.g. ``(256, 512, 1024)``.
        stage_blocks: Residual blocks of each decoder stage, deep to shallow (``TeacherSpec.decoder_blocks``;
            RD: a ResNet teacher's blocks per stage, unchanged).
        width_factor: Bottleneck inner width relative to a plain ResNet (``TeacherSpec.width_factor``, 2 for WRN50).
        init_cfg: mmengine initialisation config, RD's by default.

    Attributes:
        stages: ``nn.ModuleList`` ordered deep to shallow; ``stages[i](x)`` produces level ``num_levels - 1 - i``.
    """

    def __init__(self,
                 block_type: str,
                 in_channels: int,
                 out_channels: Sequence[int],
                 stage_blocks: Sequence[int],
                 width_factor: float = 1.0,
                 init_cfg: dict | list[dict] | None = RD_INIT_CFG) -> None:
        super().__init__(init_cfg)
        if block_type not in UPSAMPLING_BLOCKS:
            raise ValueError(f'block_type must be one of {tuple(UPSAMPLING_BLOCKS)}, got {block_type!r}.')
        if len(out_channels) != len(stage_blocks):
            raise ValueError(f'out_channels {tuple(out_channels)} and stage_blocks {tuple(stage_blocks)} must '
                             'have one entry per level.')
        block = UPSAMPLING_BLOCKS[block_type]
        self.num_levels = len(out_channels)
        self.out_channels = tuple(out_channels)
        stages = []
        stage_in_channels = in_channels
        for stage_out_channels, num_blocks in zip(reversed(self.out_channels), stage_blocks):
            stages.append(self._make_stage(block, stage_in_channels, stage_out_channels, num_blocks, width_factor))
            stage_in_channels = stage_out_channels
        self.stages = nn.ModuleList(stages)

    @staticmethod
    def _make_stage(block: type[UpsamplingBasicBlock | UpsamplingBottleneck], in_channels: int, out_channels: int,
                    num_blocks: int, width_factor: float) -> nn.Sequential:
        """One stage: an upsampling block to ``out_channels`` followed by ``num_blocks - 1`` shape-keeping ones."""
        if out_channels % block.expansion:
            raise ValueError(f'{block.__name__} needs output channels divisible by {block.expansion}, '
                             f'got {out_channels}.')
        if num_blocks < 1:
            raise ValueError(f'Every decoder stage needs at least one block, got {num_blocks}.')
        planes = out_channels // block.expansion
        blocks = [block(in_channels, planes, upsample=True, width_factor=width_factor)]
        blocks += [block(out_channels, planes, width_factor=width_factor) for _ in range(num_blocks - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Decode the embedding through every stage, without fusion.

        Args:
            x: Embedding, shape (B, in_channels, h, w) (2048@8x8 for WRN50 at 256x256).

        Returns:
            One feature per level, shallow to deep, level ``l`` of shape
            (B, out_channels[l], h * 2 ** (num_levels - l), w * 2 ** (num_levels - l)).
        """
        features = []
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features[::-1]
