import errno
import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize('extension', ['.ply', '.pcd'])
def test_coloured_round_trip_through_open3d(tmp_path, extension):
    open3d = pytest.importorskip('open3d', reason='open3d needs libusb-1.0-0 (installed by tools/setup_env.sh)')
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-0.5, 0.9, (6, 7, 3))
    xyz[0, :3] = 0.0  # missing
    rgb = rng.integers(0, 256, (6, 7, 3), dtype=np.uint8)
    path = tmp_path / f'cloud{extension}'
    assert save_point_cloud(path, xyz, rgb) == 39
    cloud = open3d.io.read_point_cloud(str(path))
    points, colours = organised_to_points(xyz, rgb)
    if extension == '.ply':
        np.testing.assert_array_equal(np.asarray(cloud.points), points)
    else:  # float32, as open3d and PCL write .pcd files
        np.testing.assert_array_equal(np.asarray(cloud.points), points.astype(np.float32))
    np.testing.assert_allclose(np.asarray(cloud.colors), colours, atol=1e-12)


def test_xyz_text_round_trip(tmp_path):
    xyz, *_ = _cloud()
    assert save_point_cloud(tmp_path / 'cloud.xyz', xyz) == 5
    np.testing.assert_array_equal(np.loadtxt(tmp_path / 'cloud.xyz'), organised_to_points(xyz)[0])


WRITE_UNDER_FILE_SIZE_LIMIT = """
import resource, signal, sys
import numpy as np
from mmad.utils.point_cloud_io import save_point_cloud
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
xyz = np.random.default_rng(0).uniform(0.1, 1.0, (50, 40, 3)).astype(np.float32)
for path in sys.argv[1:]:
    try:
        save_point_cloud(path, xyz)
    except OSError as error:
        print(error)
"""


def test_a_failed_write_is_an_error_naming_the_file(tmp_path):
    """open3d, used before, returned True for a .ply or .pcd cut short by a full disk (here: a file size limit)."""
    targets = [tmp_path / f'cloud{extension}' for extension in ('.ply', '.pcd', '.xyz')]
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get('PYTHONPATH', '')]))
    result = subprocess.run([sys.executable, '-c', WRITE_UNDER_FILE_SIZE_LIMIT, *map(str, targets)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"[Errno {errno.EFBIG}] File too large while writing: '{target}'"
                                          for target in targets]
    assert os.listdir(tmp_path) == []


def test_an_unknown_extension_is_an_error_naming_the_file(tmp_path):
    xyz, *_ = _cloud()
    with pytest.raises(ValueError, match=r"cannot write the point cloud .*cloud\.obj: unknown extension '\.obj'; "
                                         r"expected one of \('\.ply', '\.pcd', '\.xyz'\)"):
        save_point_cloud(tmp_path / 'cloud.obj', xyz)
    assert os.listdir(tmp_path) == []
