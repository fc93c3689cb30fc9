import numpy as np
import pytest

from mmad.utils.point_cloud_io import organised_to_points, save_point_cloud


def _cloud():
    xyz = np.zeros((4, 5, 3), np.float32)
    xyz[1:3, 1:4] = [0.1, 0.2, 0.6]
    xyz[2, 3] = np.nan
    rgb = np.full((4, 5, 3), 255, np.uint8)
    return xyz, rgb


def test_missing_points_are_dropped():
    xyz, rgb = _cloud()
    points, colours = organised_to_points(xyz, rgb)
    assert points.shape == (5, 3) and colours.shape == (5, 3)
    np.testing.assert_allclose(points, np.tile([0.1, 0.2, 0.6], (5, 1)), rtol=1e-6)
    np.testing.assert_allclose(colours, 1.0)


def test_shape_errors():
    with pytest.raises(ValueError, match=r'\(H, W, 3\)'):
        organised_to_points(np.zeros((4, 5)))
    with pytest.raises(ValueError, match='does not match'):
        organised_to_points(np.zeros((4, 5, 3)), np.zeros((3, 5, 3), np.uint8))


def test_ply_round_trip(tmp_path):
    open3d = pytest.importorskip('open3d', reason='open3d needs libusb-1.0-0 (installed by tools/setup_env.sh)')
    xyz, rgb = _cloud()
    path = tmp_path / 'cloud.ply'
    assert save_point_cloud(path, xyz, rgb) == 5
    cloud = open3d.io.read_point_cloud(str(path))
    np.testing.assert_allclose(np.asarray(cloud.points), np.tile([0.1, 0.2, 0.6], (5, 1)), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(cloud.colors), 1.0)
