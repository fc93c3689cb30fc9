import numpy as np
import pytest

from mmad.utils.point_cloud_io import organised_to_points, save_point_cloud


def _cloud():
    """A 4x5 organised cloud: 5 valid points, each pixel with its own point and its own colour.

    Returns:
        ``(xyz, rgb, points, colours)``: the inputs and the expected valid points and colours, row-major.
    """
    rows, cols = np.mgrid[0:4, 0:5]
    xyz = np.stack([0.01 * rows, 0.02 * cols, 0.5 + 0.001 * (5 * rows + cols)], axis=2).astype(np.float32)
    rgb = np.stack([40 * rows, 30 * cols, 10 * (5 * rows + cols)], axis=2).astype(np.uint8)
    valid = np.zeros((4, 5), bool)
    valid[1:3, 1:4] = True
    xyz[~valid] = 0
    xyz[2, 3] = np.nan
    valid[2, 3] = False
    return xyz, rgb, xyz[valid].astype(np.float64), rgb[valid] / 255.0


def test_missing_points_are_dropped_and_colours_stay_with_their_points():
    xyz, rgb, expected_points, expected_colours = _cloud()
    points, colours = organised_to_points(xyz, rgb)
    assert points.shape == (5, 3) and colours.shape == (5, 3)
    assert len({tuple(point) for point in points}) == 5 and len({tuple(colour) for colour in colours}) == 5
    np.testing.assert_allclose(points, expected_points, rtol=1e-6)
    np.testing.assert_allclose(colours, expected_colours)
    np.testing.assert_allclose(points[1], [0.01, 0.04, 0.507], rtol=1e-6)  # pixel (1, 2)
    np.testing.assert_allclose(colours[1], np.array([40, 60, 70]) / 255)
    only_points, no_colours = organised_to_points(xyz)
    np.testing.assert_allclose(only_points, expected_points, rtol=1e-6)
    assert no_colours is None


def test_shape_errors():
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        organised_to_points(np.zeros((4, 5)))
    with pytest.raises(ValueError, match='does not match'):
        organised_to_points(np.zeros((4, 5, 3)), np.zeros((3, 5, 3), np.uint8))


def test_ply_round_trip(tmp_path):
    open3d = pytest.importorskip('open3d', reason='open3d needs libusb-1.0-0 (installed by tools/setup_env.sh)')
    xyz, rgb, expected_points, expected_colours = _cloud()
    path = tmp_path / 'cloud.ply'
    assert save_point_cloud(path, xyz, rgb) == 5
    cloud = open3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(cloud.points), expected_points, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.colors), expected_colours, atol=0.5 / 255)
