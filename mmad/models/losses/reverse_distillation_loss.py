"""Reverse Distillation's cosine loss between student and teacher multi-scale features.

``L(S, T) = sum_l mean_b (1 - cos(S_l[b].flatten(), T_l[b].flatten()))``: the cosine is taken over each
sample's whole flattened (C, H, W) feature, not per pixel (Deng et al., CVPR 2022; CRD uses it for every term).

Example:
    >>> import torch
    >>> feats = [torch.rand(2, 4, 3, 3)]
    >>> ReverseDistillationLoss()(feats, feats).abs().item() < 1e-6
    True
"""
from collections.abc import Sequence

import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import Tensor

from mmad.registry import MODELS


@MODELS.register_module()
class ReverseDistillationLoss(BaseModule):
    """Sum over levels of the batch mean of ``1 - cosine similarity`` of flattened features.

    Args:
        loss_weight: Factor applied to the loss.
        init_cfg: mmengine initialisation config (the loss has no parameter).
    """

    def __init__(self, loss_weight: float = 1.0, init_cfg: dict | list[dict] | None = None) -> None:
        super().__init__(init_cfg)
        self.loss_weight = loss_weight

    def forward(self, student: Sequence[Tensor], teacher: Sequence[Tensor]) -> Tensor:
        """Compute the loss.

        Args:
            student: One tensor per level, shape (B, C_l, H_l, W_l).
            teacher: One tensor per level, same shapes as ``student``.

        Returns:
            Scalar loss, ``loss_weight * sum_l mean_b (1 - cos(S_l[b], T_l[b]))``.
        """
        if len(student) != len(teacher) or not student:
            raise ValueError(f'ReverseDistillationLoss needs as many student as teacher levels (at least one), '
                             f'got {len(student)} and {len(teacher)}.')
        for level, (s, t) in enumerate(zip(student, teacher)):
            if s.shape != t.shape:
                raise ValueError(f'ReverseDistillationLoss level {level}: student shape {tuple(s.shape)} differs '
                                 f'from teacher shape {tuple(t.shape)}.')
        level_losses = [(1 - F.cosine_similarity(s.flatten(1), t.flatten(1), dim=1)).mean()
                        for s, t in zip(student, teacher)]
        return self.loss_weight * sum(level_losses)
