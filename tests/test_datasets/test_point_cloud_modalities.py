"""The point-cloud steps: one plane fit shared by depth, normals (Sobel or from the points), height and xyz image."""
from pathlib import Path

import cv2
import numpy as np
import pytest

import mmad.datasets.transforms.geometry as geometry
from mmad.datasets.transforms import (
    DepthFromPoints,
    FitTablePlane,
    HeightFromPlane,
    NormalsFromDepth,
    NormalsFromPoints,
    XYZImageFromPoints,
    XYZToDepth,
)

GOLDEN_DIR = Path(__file__).resolve().parents[1] / 'data' / 'golden_depth'
SIZE = (96, 112)
TILT = (0.04, 0.03)


def tilted_scene(object_height=0.02, radius=18, tilt=TILT):
    """Table z = 0.6 + tilt . (x, y) (metres); a cylinder of ``radius`` pixels whose top is parallel to the table."""
    rows, cols = np.mgrid[0:SIZE[0], 0:SIZE[1]]
    x, y = (cols - SIZE[1] / 2) * 0.001, (rows - SIZE[0] / 2) * 0.001
    on_object = (rows - SIZE[0] / 2) ** 2 + (cols - SIZE[1] / 2) ** 2 <= radius ** 2
    towards_camera = np.array([*tilt, -1.0]) / np.linalg.norm([*tilt, -1.0])
    xyz = np.stack([x, y, 0.6 + tilt[0] * x + tilt[1] * y], axis=-1)
    xyz[on_object] += towards_camera * object_height
    return xyz.astype(np.float32), on_object


def run(xyz, *steps):
    results = dict(xyz=xyz, xyz_path='scene.tiff')
    for step in steps:
        results = step(results)
    return results


def core(mask, margin=7):
    return cv2.erode(mask.astype(np.uint8), np.ones((margin, margin), np.uint8)).astype(bool)


@pytest.mark.parametrize('case', ['case1_square', 'case2_tall', 'case3_wide'])
def test_the_split_steps_reproduce_the_golden_depth(case):
    golden = np.load(GOLDEN_DIR / f'{case}.npz')
    results = run(golden['xyz'], FitTablePlane(256), DepthFromPoints(), NormalsFromDepth())
    np.testing.assert_allclose(results['depth'], golden['depth'], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(results['foreground'], golden['foreground'])


def test_depth_normals_and_height_fit_the_plane_once(monkeypatch):
    calls = []
    original = geometry.estimate_table_plane
    monkeypatch.setattr(geometry, 'estimate_table_plane', lambda *args: calls.append(1) or original(*args))
    xyz, _ = tilted_scene()
    results = run(xyz, FitTablePlane(SIZE), DepthFromPoints(), NormalsFromDepth(), HeightFromPlane(),
                  XYZImageFromPoints())
    assert len(calls) == 1
    assert {'depth', 'normals', 'height', 'xyz', 'points', 'table_plane', 'foreground'} <= set(results)
    np.testing.assert_array_equal(results['depth'], XYZToDepth(SIZE).transform(dict(xyz=xyz))['depth'])


def test_normals_from_points_are_the_surface_normals_with_holes_filled():
    xyz, on_object = tilted_scene()
    away_from_camera = -np.array([*TILT, -1.0]) / np.linalg.norm([*TILT, -1.0])
    holes = np.zeros(SIZE, bool)
    holes[44:46, 50:52] = True  # a 2x2 hole on the object's top
    xyz[holes] = 0
    normals = run(xyz, FitTablePlane(SIZE), NormalsFromPoints())['normals']
    assert normals.dtype == np.float32 and normals.shape == (*SIZE, 3)
    top = core(on_object)
    np.testing.assert_allclose(normals[top], np.broadcast_to((away_from_camera + 1) / 2, normals[top].shape),
                               atol=1e-4)
    assert (normals[~on_object] == 0).all()
    # Sobel normals of the min-max scaled depth see the tilted top as flat; the metric ones see the tilt.
    sobel = run(xyz, FitTablePlane(SIZE), DepthFromPoints(), NormalsFromDepth())['normals']
    assert abs(normals[top, 0].mean() - sobel[top, 0].mean()) > 0.01
    unfilled = run(xyz, FitTablePlane(SIZE), NormalsFromPoints(fill_passes=0))['normals']
    assert (unfilled[holes] == 0).all() and (normals[holes] > 0).all()


def test_height_is_continuous_from_the_table_in_fixed_millimetres():
    xyz, on_object = tilted_scene(object_height=0.02)
    xyz[45, 56] = 0  # a missing point on the object
    results = run(xyz, FitTablePlane(SIZE), HeightFromPlane(height_range_mm=(0, 40)))
    height = results['height']
    assert height.dtype == np.float32 and height.shape == SIZE
    np.testing.assert_allclose(height[core(on_object)], 0.5, atol=1e-4)  # 20 mm of 40
    np.testing.assert_allclose(height[core(~on_object)], 0.0, atol=1e-4)  # the table, not a step to 0
    assert height[45, 56] == pytest.approx(0.5, abs=1e-4)
    taller = run(tilted_scene(object_height=0.03)[0], FitTablePlane(SIZE), HeightFromPlane(height_range_mm=(0, 40)))
    np.testing.assert_allclose(taller['height'][core(on_object)], 0.75, atol=1e-4)  # no per-image rescaling
    with pytest.raises(ValueError, match='low < high'):
        HeightFromPlane(height_range_mm=(10, 10))


def test_xyz_image_is_plane_aligned_centred_and_scaled():
    xyz, on_object = tilted_scene()
    image = run(xyz, FitTablePlane(SIZE), XYZImageFromPoints())['xyz']
    assert image.dtype == np.float32 and image.shape == (*SIZE, 3) and 0 <= image.min() and image.max() <= 1
    top = core(on_object)
    assert np.ptp(image[top, 2]) < 1e-4 and image[top, 2].mean() > 0.5  # the top is level, above the table
    np.testing.assert_allclose(image[core(~on_object), 2], 0.5, atol=1e-4)  # the table is height 0
    np.testing.assert_allclose(image[on_object, :2].mean(axis=0), 0.5, atol=0.02)  # centred on the object
    assert np.isclose(np.abs(image[on_object] * 2 - 1).max(), 1.0, atol=1e-5)  # scaled per sample
    shifted = xyz.copy()
    shifted[..., 2] += 0.1  # the whole scene farther away: the image barely changes
    np.testing.assert_allclose(run(shifted, FitTablePlane(SIZE), XYZImageFromPoints())['xyz'][top, 2],
                               image[top, 2], atol=0.02)


def test_a_step_without_its_inputs_names_the_missing_step():
    with pytest.raises(KeyError, match=r"DepthFromPoints: scene\.tiff has no \['points', 'foreground'\]; put "
                                       'FitTablePlane before DepthFromPoints'):
        DepthFromPoints().transform(dict(xyz_path='scene.tiff'))
    with pytest.raises(KeyError, match=r"NormalsFromDepth: .* has no \['depth'\]; put FitTablePlane and "
                                       'DepthFromPoints before'):
        NormalsFromDepth().transform(dict(foreground=np.ones((2, 2))))
