"""Anomaly maps from features: per-pixel cosine distance maps and their Gaussian smoothing (batched, in torch)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_distance_map(student: Sequence[Tensor], teacher: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
    """Sum over levels of the upsampled per-pixel cosine distance between student and teacher features.

    Each level's map ``1 - cos(S_l, T_l)`` (cosine over channels) is upsampled bilinearly with
    ``align_corners=True`` to ``size`` before the sum.

    Args:
        student: Per level a feature map of shape (B, C_l, H_l, W_l).
        teacher: Per level the teacher feature map of the same shape.
        size: Output (H, W), the input image size.

    Returns:
        The summed distance map, shape (B, H, W).
    """
    if len(student) != len(teacher):
        raise ValueError(f'Student and teacher need the same number of levels, got {len(student)} and '
                         f'{len(teacher)}.')
    level_maps = [
        F.interpolate((1 - F.cosine_similarity(s, t, dim=1)).unsqueeze(1), size=size, mode='bilinear',
                      align_corners=True)
        for s, t in zip(student, teacher)
    ]
    return torch.stack(level_maps).sum(dim=0).squeeze(1)


def gaussian_kernel1d(sigma: float, truncate: float = 4.0, dtype: torch.dtype = torch.float32,
                      device: torch.device | str | None = None) -> Tensor:
    """The normalised 1-D Gaussian kernel of ``scipy.ndimage.gaussian_filter``.

    Args:
        sigma: Standard deviation in pixels (> 0).
        truncate: The kernel radius is ``int(truncate * sigma + 0.5)``, as in scipy.
        dtype: Kernel dtype.
        device: Kernel device.

    Returns:
        The kernel, shape (2 * radius + 1,), summing to one.
    """
    if sigma <= 0:
        raise ValueError(f'Gaussian sigma must be positive, got {sigma}.')
    radius = int(truncate * sigma + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).to(dtype)


def gaussian_smooth(maps: Tensor, sigma: float = 4.0, truncate: float = 4.0) -> Tensor:
    """Gaussian-smooth a batch of maps; equal to ``scipy.ndimage.gaussian_filter(map, sigma)`` per map.

    Uses scipy's defaults: ``truncate=4`` and ``mode='reflect'`` (half-sample symmetric, ``d c b a | a b c d``),
    applied separably along W then H. Works for maps smaller than the kernel radius (the reflection repeats).

    Args:
        maps: Maps of shape (B, H, W).
        sigma: Standard deviation in pixels.
        truncate: Kernel radius in standard deviations.

    Returns:
        The smoothed maps, shape (B, H, W), same dtype.
    """
    if maps.dim() != 3:
        raise ValueError(f'gaussian_smooth expects maps of shape (B, H, W), got {tuple(maps.shape)}.')
    kernel = gaussian_kernel1d(sigma, truncate, dtype=maps.dtype, device=maps.device)
    radius = kernel.numel() // 2
    smoothed = maps.unsqueeze(1)
    for dim in (3, 2):
        length = smoothed.shape[dim]
        padded = smoothed.index_select(dim, _symmetric_indices(length, radius, maps.device))
        weight = kernel.view(1, 1, 1, -1) if dim == 3 else kernel.view(1, 1, -1, 1)
        smoothed = F.conv2d(padded, weight)
    return smoothed.squeeze(1)


def _symmetric_indices(length: int, radius: int, device: torch.device) -> Tensor:
    """Source indices of scipy's 'reflect' padding by ``radius`` on both sides of an axis of ``length``."""
    positions = torch.arange(-radius, length + radius, device=device) % (2 * length)
    return torch.where(positions < length, positions, 2 * length - 1 - positions)
