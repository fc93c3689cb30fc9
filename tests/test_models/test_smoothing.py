import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from mmad.models.detectors import cosine_distance_map, gaussian_kernel1d, gaussian_smooth


@pytest.mark.parametrize('shape', [(2, 64, 64), (1, 10, 7), (3, 40, 65)])
def test_gaussian_smooth_equals_scipy(shape):
    generator = torch.Generator().manual_seed(0)
    maps = torch.rand(shape, generator=generator)
    maps[0, 3, 4] = 5.0  # a peak near a border exercises the reflection
    smoothed = gaussian_smooth(maps, sigma=4.0)
    expected = np.stack([gaussian_filter(m, sigma=4) for m in maps.numpy().astype(np.float64)])
    assert smoothed.shape == maps.shape and smoothed.dtype == maps.dtype
    np.testing.assert_allclose(smoothed.numpy(), expected, atol=1e-5, rtol=0)


def test_gaussian_smooth_other_sigma_and_float64():
    maps = torch.rand(1, 20, 30, dtype=torch.float64)
    expected = gaussian_filter(maps[0].numpy(), sigma=1.5, truncate=3.0)
    np.testing.assert_allclose(gaussian_smooth(maps, sigma=1.5, truncate=3.0)[0].numpy(), expected, atol=1e-12)


def test_gaussian_kernel_matches_scipy_radius():
    kernel = gaussian_kernel1d(4.0)
    assert kernel.numel() == 2 * 16 + 1
    assert kernel.sum().item() == pytest.approx(1.0)
    impulse = np.zeros(33)
    impulse[16] = 1.0
    np.testing.assert_allclose(kernel.numpy(), gaussian_filter(impulse, sigma=4.0, mode='constant'), atol=1e-7)
    with pytest.raises(ValueError, match='positive'):
        gaussian_kernel1d(0.0)
    with pytest.raises(ValueError, match=r'\(B, H, W\)'):
        gaussian_smooth(torch.zeros(4, 4))


def test_cosine_distance_map_values():
    student = [torch.ones(1, 2, 2, 2), torch.ones(1, 3, 1, 1)]
    teacher = [torch.ones(1, 2, 2, 2), -torch.ones(1, 3, 1, 1)]
    teacher[0][0, :, 0, 0] = torch.tensor([1.0, -1.0])  # orthogonal to (1, 1): distance 1 at one pixel
    distance = cosine_distance_map(student, teacher, size=(3, 3))
    assert distance.shape == (1, 3, 3)
    # level 2 is constant 2 (opposite vectors); level 1 is 1 at the top-left corner, bilinear (align_corners) inside
    expected = 2.0 + torch.tensor([[1.0, 0.5, 0.0], [0.5, 0.25, 0.0], [0.0, 0.0, 0.0]])
    torch.testing.assert_close(distance[0], expected)
    with pytest.raises(ValueError, match='same number of levels'):
        cosine_distance_map(student, teacher[:1], size=(3, 3))
