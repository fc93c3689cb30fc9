"""CRD's fusion of the decoder feature with the Crossmodal Amplifier's, one learnable weight vector per level.

``F_CA,l = alpha_l * F_D,l + beta_l * F_IBP,l``. The authors' code computes ``(alpha_l, beta_l)`` as the
softmax of a learnable 2-vector initialised to ones (0.5 / 0.5 at start, ``mode='softmax'``); the paper's
Eq. 3 uses free scalars initialised to 1.0 (``mode='free'``).

Example:
    >>> import torch
    >>> fuser = SoftmaxFuser(num_inputs=2, num_levels=3)
    >>> fuser(0, [torch.ones(1, 4, 2, 2), torch.zeros(1, 4, 2, 2)]).flatten()[0].item()
    0.5
"""
from collections.abc import Sequence

import torch
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmad.registry import MODELS

FUSION_MODES = ('softmax', 'free')


@MODELS.register_module()
class SoftmaxFuser(BaseModule):
    """Weighted sum of ``num_inputs`` same-shaped features with learnable per-level weights.

    Args:
        num_inputs: Features fused per level (2 in CRD: decoder and IBP).
        num_levels: Levels, each with its own weight vector.
        mode: ``'softmax'`` = weights are the softmax of the learnable vector (authors' code);
            ``'free'`` = weights are the learnable vector itself (paper's Eq. 3).
        init_value: Initial value of every entry of the learnable vectors.
        init_cfg: mmengine initialisation config (the vectors are set by ``init_value``).

    Attributes:
        level_weights: Learnable parameter of shape (num_levels, num_inputs), one row per level.
    """

    def __init__(self,
                 num_inputs: int = 2,
                 num_levels: int = 3,
                 mode: str = 'softmax',
                 init_value: float = 1.0,
                 init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg)
        if mode not in FUSION_MODES:
            raise ValueError(f'mode must be one of {FUSION_MODES}, got {mode!r}.')
        if num_inputs < 1 or num_levels < 1:
            raise ValueError(f'num_inputs and num_levels must be >= 1, got {num_inputs} and {num_levels}.')
        self.num_inputs = num_inputs
        self.num_levels = num_levels
        self.mode = mode
        self.level_weights = nn.Parameter(torch.full((num_levels, num_inputs), float(init_value)))

    def weights(self, level: int) -> Tensor:
        """Fusion weights of a level.

        Args:
            level: Level index, 0 (shallowest) to ``num_levels - 1``.

        Returns:
            Weights of shape (num_inputs,): softmax of the level's vector, or the raw vector in ``'free'`` mode.
        """
        if not 0 <= level < self.num_levels:
            raise IndexError(f'level must be in 0..{self.num_levels - 1}, got {level}.')
        raw = self.level_weights[level]
        return raw.softmax(dim=0) if self.mode == 'softmax' else raw

    def forward(self,
                level: int,
                feats: Sequence[Tensor],
                detach_weights: bool = False,
                detach_inputs: bool = False) -> Tensor:
        """Fuse the features of one level.

        CRD (paper-era code) feeds the next decoder stage with ``detach_weights=True`` (gradients reach the
        features, not the weights) and computes its output ``F_CA`` with ``detach_inputs=True`` (the output
        loss trains only the weights).

        Args:
            level: Level index, 0 (shallowest) to ``num_levels - 1``.
            feats: ``num_inputs`` tensors of one shape (B, C, H, W), e.g. ``[F_D, F_IBP]``.
            detach_weights: Stop the gradient to the weights.
            detach_inputs: Stop the gradient to the features.

        Returns:
            ``sum_j weights(level)[j] * feats[j]``, shape (B, C, H, W).
        """
        if len(feats) != self.num_inputs:
            raise ValueError(f'SoftmaxFuser expects {self.num_inputs} features, got {len(feats)}.')
        if any(f.shape != feats[0].shape for f in feats):
            raise ValueError(f'SoftmaxFuser needs features of one shape, got {[tuple(f.shape) for f in feats]}.')
        weights = self.weights(level)
        if detach_weights:
            weights = weights.detach()
        if detach_inputs:
            feats = [f.detach() for f in feats]
        return sum((weight * f for weight, f in zip(weights, feats)), torch.zeros_like(feats[0]))
