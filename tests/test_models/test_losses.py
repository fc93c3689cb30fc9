import math

import pytest
import torch

from mmad.models.losses import ReverseDistillationLoss
from mmad.registry import MODELS


def test_hand_computed_value():
    # Level 0, batch of two (C, H, W) = (1, 1, 2) samples:
    # sample 0: S = (1, 0), T = (1, 1) -> cos = 1 / sqrt(2); sample 1: S = (1, 0), T = (0, 3) -> cos = 0.
    student0 = torch.tensor([[[[1.0, 0.0]]], [[[1.0, 0.0]]]])
    teacher0 = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 3.0]]]])
    # Level 1: student = -2 * teacher -> cos = -1 for both samples.
    teacher1 = torch.tensor([[[[1.0]], [[2.0]]], [[[-3.0]], [[0.5]]]])
    student1 = -2 * teacher1
    expected = ((1 - 1 / math.sqrt(2)) + 1) / 2 + 2.0
    loss = MODELS.build(dict(type='ReverseDistillationLoss'))([student0, student1], [teacher0, teacher1])
    assert loss.shape == ()
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    weighted = ReverseDistillationLoss(loss_weight=0.5)([student0, student1], [teacher0, teacher1])
    assert weighted.item() == pytest.approx(0.5 * expected, rel=1e-6)


def test_cosine_over_flattened_sample_not_per_pixel():
    # One channel: per-pixel cosines are all 1 (loss 0), the flattened vectors (1, 1) and (1, 2) are not parallel.
    student = torch.tensor([[[[1.0, 1.0]]]])
    teacher = torch.tensor([[[[1.0, 2.0]]]])
    loss = ReverseDistillationLoss()([student], [teacher])
    assert loss.item() == pytest.approx(1 - 3 / (math.sqrt(2) * math.sqrt(5)), rel=1e-6)


def test_zero_for_scaled_copies_and_gradient_to_student():
    teacher = [torch.rand(3, 4, 5, 5), torch.rand(3, 8, 2, 2)]
    student = [(2.5 * t).requires_grad_() for t in teacher]
    loss = ReverseDistillationLoss()(student, teacher)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    perturbed = [torch.rand_like(t).requires_grad_() for t in teacher]
    ReverseDistillationLoss()(perturbed, teacher).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in perturbed)


def test_rejects_mismatched_inputs():
    loss = ReverseDistillationLoss()
    with pytest.raises(ValueError, match='as many student as teacher levels .* got 1 and 2'):
        loss([torch.rand(1, 2, 2, 2)], [torch.rand(1, 2, 2, 2)] * 2)
    with pytest.raises(ValueError, match=r'level 0: student shape \(1, 2, 2, 2\) differs from teacher shape '
                                         r'\(1, 3, 2, 2\)'):
        loss([torch.rand(1, 2, 2, 2)], [torch.rand(1, 3, 2, 2)])
