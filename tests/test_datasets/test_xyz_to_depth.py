from pathlib import Path

import cv2
import numpy as np
import pytest

from mmad.datasets.transforms import DepthFromPoints, FitTablePlane, NormalsFromDepth, XYZToDepth
from mmad.datasets.transforms.point_cloud import (
    corner_points,
    estimate_table_plane,
    fill_depth_holes,
    resize_nearest,
    scale_foreground_depth,
)
from mmad.registry import TRANSFORMS

# Outputs of the authors' preprocessing on three crafted inputs (copied from shared/reference/golden_depth).
GOLDEN_DIR = Path(__file__).resolve().parents[1] / 'data' / 'golden_depth'
GOLDEN_CASES = ['case1_square', 'case2_tall', 'case3_wide']


def tilted_scene(height=96, width=112, object_height=0.02, radius=18, tilt=(0.04, 0.03)):
    """Table plane z = 0.6 + tilt . (x, y) (metres) with a cylinder of ``radius`` pixels, its top parallel to it."""
    rows, cols = np.mgrid[0:height, 0:width]
    x = (cols - width / 2) * 0.001
    y = (rows - height / 2) * 0.001
    z = 0.6 + tilt[0] * x + tilt[1] * y
    on_object = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 <= radius ** 2
    normal = np.array([*tilt, -1.0]) / np.linalg.norm([*tilt, -1.0])
    xyz = np.stack([x, y, z], axis=-1)
    xyz[on_object] += normal * object_height
    return xyz.astype(np.float32), on_object


@pytest.mark.parametrize('case', GOLDEN_CASES)
def test_reproduces_golden_depth(case):
    golden = np.load(GOLDEN_DIR / f'{case}.npz')
    results = TRANSFORMS.build(dict(type='XYZToDepth', size=256)).transform(dict(xyz=golden['xyz']))
    assert results['depth'].dtype == np.float32 and results['depth'].shape == (256, 256)
    np.testing.assert_allclose(results['depth'], golden['depth'], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(results['foreground'], golden['foreground'])
    _, used_fallback = estimate_table_plane(resize_nearest(golden['xyz'], (256, 256)), 3, 0.005, 200)
    assert not used_fallback


@pytest.mark.parametrize('shape', [(300, 300), (320, 240), (200, 280), (800, 600), (17, 301)])
def test_resize_nearest_matches_opencv(shape):
    image = np.arange(shape[0] * shape[1] * 3, dtype=np.float32).reshape(*shape, 3)
    expected = cv2.resize(image, (256, 256), interpolation=cv2.INTER_NEAREST)
    np.testing.assert_array_equal(resize_nearest(image, (256, 256)), expected)
    rows = np.arange(256) * shape[0] // 256
    np.testing.assert_array_equal(resize_nearest(image, (256, 256))[:, 0, 0], image[rows, 0, 0])


def test_flat_object_on_tilted_table():
    xyz, on_object = tilted_scene()
    results = XYZToDepth(size=(96, 112)).transform(dict(xyz=xyz))
    np.testing.assert_array_equal(results['foreground'], on_object)
    depth = results['depth']
    assert depth[on_object].min() == pytest.approx(0.1) and depth[on_object].max() == pytest.approx(0.9)
    # hole filling grows the object by exactly two pixels; the far background stays 0
    grown = cv2.dilate(on_object.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    assert (depth[grown] > 0).all() and (depth[~grown] == 0).all()


def test_shadow_strip_on_left_border_falls_back_to_robust_plane():
    xyz, on_object = tilted_scene()
    xyz[:, :6] = 0  # sensor shadow: the top-left and bottom-left corner patches hold no valid point
    _, valid_counts = corner_points(xyz, 3)
    assert valid_counts.tolist() == [0, 9, 0]
    plane, used_fallback = estimate_table_plane(xyz, 3, 0.005, 200)
    normal = plane[0] / np.linalg.norm(plane[0])
    assert used_fallback
    np.testing.assert_allclose(np.abs(normal), np.abs([0.04, 0.03, -1.0]) / np.linalg.norm([0.04, 0.03, -1.0]),
                               atol=1e-6)
    results = XYZToDepth(size=(96, 112)).transform(dict(xyz=xyz))
    np.testing.assert_array_equal(results['foreground'], on_object)
    assert results['depth'][on_object].min() == pytest.approx(0.1)


def test_fallback_ignores_object_touching_the_border():
    xyz, on_object = tilted_scene()
    xyz[:4, :] = 0
    xyz[40:60, -3:, 2] -= 0.03  # a second object crossing the right border band
    plane, used_fallback = estimate_table_plane(xyz, 3, 0.005, 200)
    assert used_fallback
    table = ~on_object
    table[:4] = False
    table[40:60, -3:] = False
    distance = np.abs(xyz[table].astype(np.float64) @ plane[0] - plane[1]) / np.linalg.norm(plane[0])
    assert distance.max() < 1e-6


def test_collinear_corner_points_fall_back():
    xyz, _ = tilted_scene()
    top_left, top_right = xyz[:3, :3].mean(axis=(0, 1)), xyz[:3, -3:].mean(axis=(0, 1))
    xyz[-3:, :3] = 2 * top_right - top_left  # bottom-left patch on the line through the two top patches
    _, used_fallback = estimate_table_plane(xyz, 3, 0.005, 200)
    assert used_fallback


def test_errors_name_the_file():
    transform = XYZToDepth(size=32)
    sparse = np.zeros((64, 64, 3), dtype=np.float32)
    sparse[1, 1] = (0.0, 0.0, 0.5)  # one valid point, dropped by the nearest resize
    with pytest.raises(ValueError, match=r'scene\.tiff: the 64x64 point cloud holds 1 valid point\(s\) \(z != 0\) and '
                                         r'none is left after the nearest resize to \(32, 32\)'):
        transform.transform(dict(xyz=sparse, xyz_path='scene.tiff'))
    sparse = np.zeros((32, 32, 3), dtype=np.float32)
    sparse[10:12, 10] = (0.0, 0.0, 0.5)
    with pytest.raises(ValueError, match=r'scene\.tiff: no table plane can be fitted: the 32x32 point cloud holds 2 '
                                         r'valid point\(s\) \(z != 0\), 0 of them in its 3-pixel border band'):
        transform.transform(dict(xyz=sparse, xyz_path='scene.tiff'))


def test_a_single_valid_point_is_reported_as_found():
    """Case 16 of issue 8: one valid point said "a plane needs at least 3 valid points, got 0"."""
    single = np.zeros((64, 64, 3), dtype=np.float32)
    single[32, 32] = (0.0, 0.0, 0.5)
    with pytest.raises(ValueError, match=r'one\.tiff: no table plane can be fitted: the 32x32 point cloud holds 1 '
                                         r'valid point\(s\) \(z != 0\), 0 of them in its 3-pixel border band and '
                                         r'\[0, 0, 0\] in the top-left, top-right and bottom-left corner patches; '
                                         r'expected the table around the object'):
        XYZToDepth(size=32).transform(dict(xyz=single, xyz_path='one.tiff'))
    single[0, 5] = (0.1, 0.0, 0.6)  # now one of them lies in the border band
    with pytest.raises(ValueError, match=r'holds 2 valid point\(s\) \(z != 0\), 1 of them in its 3-pixel border'):
        XYZToDepth(size=64).transform(dict(xyz=single, xyz_path='one.tiff'))


def test_output_range_and_fill_passes_are_parameters():
    xyz, on_object = tilted_scene()
    xyz[on_object, 2] -= np.linspace(0, 0.01, on_object.sum(), dtype=np.float32)  # object top is not flat
    results = XYZToDepth(size=(96, 112), output_range=(0.2, 0.6), fill_passes=0).transform(dict(xyz=xyz))
    depth = results['depth']
    assert depth[on_object].min() == pytest.approx(0.2) and depth[on_object].max() == pytest.approx(0.6)
    assert (depth[~on_object] == 0).all()


@pytest.mark.parametrize('kwargs, message', [(dict(output_range=(0.0, 1.0)), '0 < low < high'),
                                             (dict(size=8, corner_size=5), 'corner_size must be in'),
                                             (dict(size=0), 'size must be positive')])
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        XYZToDepth(**kwargs)


def test_scale_foreground_depth_min_over_nonzero_and_constant_case():
    z = np.array([[0.5, 0.6, 0.0], [0.7, 0.8, 0.9]])
    foreground = np.array([[1, 1, 1], [1, 0, 0]], dtype=np.uint8)
    scaled = scale_foreground_depth(z, foreground, (0.1, 0.9))
    np.testing.assert_allclose(scaled, [[0.1, 0.1 + 0.8 * 0.5, 0.0], [0.9, 0.0, 0.0]])
    constant = scale_foreground_depth(np.full((2, 2), 0.5), np.ones((2, 2), np.uint8), (0.1, 0.9))
    np.testing.assert_allclose(constant, 0.5)
    assert not scale_foreground_depth(z, np.zeros_like(foreground), (0.1, 0.9)).any()


def test_fill_depth_holes_by_hand():
    depth = np.array([[0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.4, 0.8, 0.0],
                      [0.0, 0.0, 0.0, 0.0],
                      [0.0, 0.0, 0.0, 0.0]])
    once = fill_depth_holes(depth, 1)
    np.testing.assert_allclose(once[0], [0.4, 0.6, 0.6, 0.8])
    np.testing.assert_allclose(once[1], [0.4, 0.4, 0.8, 0.8])
    np.testing.assert_allclose(once[3], 0.0)  # no positive neighbour after one pass
    assert fill_depth_holes(depth, 2)[3, 0] == pytest.approx((0.4 + 0.6) / 2)
    np.testing.assert_array_equal(fill_depth_holes(depth, 0), depth)


def sobel_normals(xyz, size=(96, 112)):
    """The authors' normals: plane step, depth, Sobel normals."""
    results = dict(xyz=xyz)
    for transform in (FitTablePlane(size), DepthFromPoints(), NormalsFromDepth()):
        results = transform(results)
    return results


def test_normals_from_depth():
    xyz, on_object = tilted_scene(tilt=(0.0, 0.0))
    results = sobel_normals(xyz)
    normals = results['normals']
    assert normals.dtype == np.float32 and normals.shape == (96, 112, 3)
    assert (normals[~on_object] == 0).all()
    core = cv2.erode(on_object.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    # the scaled top is flat (one z value): normal (0, 0, 1) -> (0.5, 0.5, 1)
    np.testing.assert_allclose(normals[core], np.broadcast_to([0.5, 0.5, 1.0], normals[core].shape), atol=1e-6)
    rows, cols = np.mgrid[0:96, 0:112]
    sloped = xyz.copy()
    sloped[on_object, 2] += (cols[on_object] * 1e-4).astype(np.float32)  # depth grows with x
    normals = sobel_normals(sloped)['normals']
    assert (normals[core, 0] < 0.5).all() and np.allclose(normals[core, 1], 0.5, atol=1e-6)
    assert np.allclose(np.linalg.norm(normals[core] * 2 - 1, axis=-1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match='sobel_kernel_size'):
        NormalsFromDepth(sobel_kernel_size=4)
