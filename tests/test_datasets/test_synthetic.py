import filecmp
import importlib.util
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from mmad.datasets.synthetic import DEFECT_TYPES, make_synthetic_mvtec3d, render_synthetic_sample

HEIGHT, WIDTH = 40, 56
CATEGORY = 'toy'
SEED = 3
COUNTS = dict(num_train=3, num_val=2, num_test_per_defect=3)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_mvtec3d(tmp_path_factory.mktemp('synthetic'), CATEGORY, height=HEIGHT, width=WIDTH,
                                  seed=SEED, **COUNTS)


def read_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, path
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_gt(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def render(defect_type: str, index: int, **kwargs) -> object:
    options = dict(height=HEIGHT, width=WIDTH, seed=SEED) | kwargs
    return render_synthetic_sample(CATEGORY, 'test', defect_type, index, **options)


def missing(xyz: np.ndarray) -> np.ndarray:
    return (xyz == 0).all(-1)


def test_tree_and_file_names(dataset):
    assert dataset.name == CATEGORY
    files = {p.relative_to(dataset).as_posix() for p in dataset.rglob('*') if p.is_file()}
    expected = set()
    for split, count in (('train', 3), ('validation', 2)):
        for i in range(count):
            expected |= {f'{split}/good/rgb/{i:03d}.png', f'{split}/good/xyz/{i:03d}.tiff'}
    for kind in ('good', *DEFECT_TYPES):
        for i in range(3):
            expected |= {f'test/{kind}/rgb/{i:03d}.png', f'test/{kind}/xyz/{i:03d}.tiff', f'test/{kind}/gt/{i:03d}.png'}
    assert files == expected


def test_formats_read_back(dataset):
    folder = dataset / 'test' / 'dent'
    rgb = cv2.imread(str(folder / 'rgb' / '000.png'), cv2.IMREAD_UNCHANGED)
    xyz = tifffile.imread(folder / 'xyz' / '000.tiff')
    gt = cv2.imread(str(folder / 'gt' / '000.png'), cv2.IMREAD_UNCHANGED)
    assert rgb.dtype == np.uint8 and rgb.shape == (HEIGHT, WIDTH, 3)
    assert xyz.dtype == np.float32 and xyz.shape == (HEIGHT, WIDTH, 3)
    assert gt.dtype == np.uint8 and gt.shape == (HEIGHT, WIDTH)
    with tifffile.TiffFile(folder / 'xyz' / '000.tiff') as tiff:
        page = tiff.pages[0]
        assert len(tiff.pages) == 1 and page.planarconfig == 1 and page.samplesperpixel == 3
        assert page.dtype == np.float32


def test_files_equal_the_render_in_rgb_order(dataset):
    for split, kind in (('train', 'good'), ('test', 'crack')):
        sample = render_synthetic_sample(CATEGORY, split, kind, 1, height=HEIGHT, width=WIDTH, seed=SEED)
        folder = dataset / split / kind
        np.testing.assert_array_equal(read_rgb(folder / 'rgb' / '001.png'), sample.rgb)
        np.testing.assert_array_equal(tifffile.imread(folder / 'xyz' / '001.tiff'), sample.xyz)
    np.testing.assert_array_equal(read_gt(dataset / 'test' / 'crack' / 'gt' / '001.png'), sample.gt)


@pytest.mark.parametrize('height,width', [(48, 32), (32, 48), (17, 16)])
def test_height_and_width_are_independent(height, width):
    sample = render_synthetic_sample('odd', 'test', 'color', 0, height=height, width=width)
    assert sample.rgb.shape == (height, width, 3)
    assert sample.xyz.shape == (height, width, 3)
    assert sample.gt.shape == sample.object_mask.shape == (height, width)


def test_same_seed_same_bytes_other_seed_other_data(dataset, tmp_path):
    again = make_synthetic_mvtec3d(tmp_path / 'again', CATEGORY, height=HEIGHT, width=WIDTH, seed=SEED, **COUNTS)
    for path in dataset.rglob('*.*'):
        assert filecmp.cmp(path, again / path.relative_to(dataset), shallow=False), path
    other = render_synthetic_sample(CATEGORY, 'train', 'good', 0, height=HEIGHT, width=WIDTH, seed=SEED + 1)
    assert not np.array_equal(other.xyz, tifffile.imread(dataset / 'train' / 'good' / 'xyz' / '000.tiff'))
    assert np.abs(other.rgb.astype(int) - read_rgb(dataset / 'train' / 'good' / 'rgb' / '000.png')).mean() > 3


def table_tilt_degrees(sample) -> float:
    valid = ~missing(sample.xyz) & ~cv2.dilate(sample.object_mask.astype(np.uint8), np.ones((5, 5))).astype(bool)
    points = sample.xyz[valid].astype(np.float64)
    design = np.c_[points[:, 0], points[:, 1], np.ones(len(points))]
    (a, b, _), *_ = np.linalg.lstsq(design, points[:, 2], rcond=None)
    return float(np.degrees(np.arctan(np.hypot(a, b))))


def test_pose_size_texture_and_tilt_vary_between_samples():
    samples = [render_synthetic_sample('bagel', 'train', 'good', i, height=64, width=64) for i in range(4)]
    centroids = [np.argwhere(s.object_mask).mean(0) for s in samples]
    areas = [s.object_mask.sum() for s in samples]
    colours = [s.rgb[s.object_mask].mean(0) for s in samples]
    tilts = [table_tilt_degrees(s) for s in samples]
    assert min(np.linalg.norm(a - b) for i, a in enumerate(centroids) for b in centroids[i + 1:]) > 0.5
    assert len(set(areas)) == 4
    assert min(np.abs(a - b).max() for i, a in enumerate(colours) for b in colours[i + 1:]) > 1.0
    assert all(0.5 < t < 7.0 for t in tilts) and np.ptp(tilts) > 0.2


def test_xyz_is_a_pinhole_point_cloud_in_metres():
    sample = render_synthetic_sample('bagel', 'train', 'good', 0, height=60, width=80)
    xyz = sample.xyz.astype(np.float64)
    valid = ~missing(sample.xyz)
    z = xyz[..., 2]
    assert 0.45 < z[valid].min() and z[valid].max() < 0.95
    rows, cols = np.nonzero(valid)
    # x / z = (u - cx) / f and y / z = (v - cy) / f with one f, cx, cy for the whole image.
    (inverse_fx, offset_x), *_ = np.linalg.lstsq(np.c_[cols, np.ones_like(cols)], xyz[rows, cols, 0] / z[valid],
                                                 rcond=None)
    (inverse_fy, _), *_ = np.linalg.lstsq(np.c_[rows, np.ones_like(rows)], xyz[rows, cols, 1] / z[valid], rcond=None)
    np.testing.assert_allclose(inverse_fx, inverse_fy, rtol=1e-5)
    np.testing.assert_allclose(-offset_x / inverse_fx, (80 - 1) / 2, atol=1e-3)
    residual = xyz[rows, cols, 0] / z[valid] - (inverse_fx * cols + offset_x)
    assert np.abs(residual).max() < 1e-6
    heights = z[valid & ~sample.object_mask].mean() - z[sample.object_mask & valid]
    assert 0.01 < heights.max() < 0.06


def test_missing_points_are_exact_zeros(dataset):
    for path in dataset.rglob('*.tiff'):
        xyz = tifffile.imread(path)
        assert np.array_equal((xyz == 0).any(-1), missing(xyz)), path
        assert 0 < missing(xyz).mean() < 0.3, path
        assert np.isfinite(xyz).all()


def border_shadow(xyz: np.ndarray) -> bool:
    hole = missing(xyz)
    return bool(hole[:, :3].all() or hole[:, -3:].all() or hole[:3].all() or hole[-3:].all())


def invalid_corner_patches(xyz: np.ndarray) -> int:
    hole = missing(xyz)
    return sum(bool(hole[rows, cols].all()) for rows in (slice(0, 3), slice(-3, None))
               for cols in (slice(0, 3), slice(-3, None)))


def test_some_samples_have_a_border_shadow_strip():
    samples = [render_synthetic_sample(CATEGORY, 'train', 'good', i, height=32, width=32) for i in range(12)]
    shadowed = [s for s in samples if border_shadow(s.xyz)]
    assert 0 < len(shadowed) < len(samples)
    assert all(invalid_corner_patches(s.xyz) == 2 for s in shadowed)
    never = [render_synthetic_sample(CATEGORY, 'train', 'good', i, height=32, width=32, shadow_prob=0.0)
             for i in range(12)]
    assert not any(invalid_corner_patches(s.xyz) for s in never)
    always = render_synthetic_sample(CATEGORY, 'train', 'good', 0, height=32, width=32, shadow_prob=1.0)
    assert border_shadow(always.xyz)


def test_masks_zero_for_good_and_region_ids_on_the_object(dataset):
    for path in (dataset / 'test' / 'good' / 'gt').iterdir():
        assert not read_gt(path).any()
    for kind in DEFECT_TYPES:
        for index in range(3):
            gt = read_gt(dataset / 'test' / kind / 'gt' / f'{index:03d}.png')
            values = set(np.unique(gt)) - {0}
            assert values and values <= {253, 254, 255}, (kind, index)
            assert 0 < (gt > 0).mean() < 0.05
            assert not (gt > 0)[~render(kind, index).object_mask].any()


def test_color_defect_changes_rgb_only(dataset):
    for index in range(3):
        intact = render('color', index, intact=True)
        gt = read_gt(dataset / 'test' / 'color' / 'gt' / f'{index:03d}.png') > 0
        np.testing.assert_array_equal(tifffile.imread(dataset / 'test' / 'color' / 'xyz' / f'{index:03d}.tiff'),
                                      intact.xyz)
        rgb = read_rgb(dataset / 'test' / 'color' / 'rgb' / f'{index:03d}.png').astype(int)
        assert np.abs(rgb - intact.rgb)[gt].max(-1).mean() > 40
        near = cv2.dilate(gt.astype(np.uint8), np.ones((7, 7))).astype(bool)
        np.testing.assert_array_equal(rgb[~near], intact.rgb[~near])


def test_dent_changes_xyz_only(dataset):
    for index in range(3):
        intact = render('dent', index, intact=True)
        gt = read_gt(dataset / 'test' / 'dent' / 'gt' / f'{index:03d}.png') > 0
        np.testing.assert_array_equal(read_rgb(dataset / 'test' / 'dent' / 'rgb' / f'{index:03d}.png'), intact.rgb)
        xyz = tifffile.imread(dataset / 'test' / 'dent' / 'xyz' / f'{index:03d}.tiff')
        both = gt & ~missing(xyz) & ~missing(intact.xyz)
        deeper = xyz[..., 2][both] - intact.xyz[..., 2][both]
        assert deeper.max() > 0.0015 and deeper.min() > -0.001
        far = ~cv2.dilate(gt.astype(np.uint8), np.ones((9, 9))).astype(bool)
        np.testing.assert_array_equal(xyz[far], intact.xyz[far])


def test_crack_changes_both_modalities(dataset):
    for index in range(3):
        intact = render('crack', index, intact=True)
        gt = read_gt(dataset / 'test' / 'crack' / 'gt' / f'{index:03d}.png') > 0
        rgb = read_rgb(dataset / 'test' / 'crack' / 'rgb' / f'{index:03d}.png').astype(int)
        xyz = tifffile.imread(dataset / 'test' / 'crack' / 'xyz' / f'{index:03d}.tiff')
        assert (rgb.sum(-1) < intact.rgb.astype(int).sum(-1))[gt].mean() > 0.8
        changed_geometry = (np.abs(xyz[..., 2] - intact.xyz[..., 2]) > 0.0005) | (missing(xyz) & ~missing(intact.xyz))
        assert changed_geometry[gt].mean() > 0.3


def test_geometry_is_visible_in_rgb_of_the_intact_surface():
    # The rim of the object faces the light on one side and turns away from it on the other.
    for index in range(3):
        sample = render_synthetic_sample('bagel', 'test', 'good', index, height=96, width=96)
        mask = sample.object_mask.astype(np.uint8)
        rows, cols = np.nonzero(sample.object_mask & ~cv2.erode(mask, np.ones((7, 7))).astype(bool))
        centre = np.argwhere(sample.object_mask).mean(0)
        sector = ((np.arctan2(rows - centre[0], cols - centre[1]) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
        brightness = sample.rgb[rows, cols].astype(float).sum(-1)
        sector_means = [brightness[sector == k].mean() for k in range(8)]
        assert np.ptp(sector_means) > 100


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="plain directory name, got 'a/b'"):
        make_synthetic_mvtec3d('/nonexistent', 'a/b')
    with pytest.raises(ValueError, match=r"unknown defect types \['scratch'\]"):
        make_synthetic_mvtec3d('/nonexistent', 'ok', defect_types=('color', 'scratch'))
    with pytest.raises(ValueError, match='at least 16 pixels, got 8x64'):
        make_synthetic_mvtec3d('/nonexistent', 'ok', height=8, width=64)
    with pytest.raises(ValueError, match="split must be one of .* got 'val'"):
        render_synthetic_sample('ok', 'val', 'good', 0)


def test_command_line_writes_the_tree_and_prints_a_summary(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location('make_synthetic', REPO / 'tools/misc/make_synthetic_mvtec3d.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(tmp_path), '--category', 'cli', '--height', '24', '--width', '20', '--num-train', '2',
               '--num-val', '1', '--num-test-per-defect', '1', '--seed', '5'])
    out = capsys.readouterr().out
    assert 'train 2, validation 1' in out and '24x20' in out
    assert len(list((tmp_path / 'cli').rglob('*.png'))) == 2 + 1 + 4 * 2
    assert tifffile.imread(tmp_path / 'cli' / 'test' / 'crack' / 'xyz' / '000.tiff').shape == (24, 20, 3)
    np.testing.assert_array_equal(read_rgb(tmp_path / 'cli' / 'train' / 'good' / 'rgb' / '001.png'),
                                  render_synthetic_sample('cli', 'train', 'good', 1, height=24, width=20, seed=5).rgb)


@pytest.mark.parametrize('height,width', [(48, 36), (36, 48)])
def test_object_stays_off_the_corner_patches(height, width):
    for index in range(8):
        sample = render_synthetic_sample('corners', 'train', 'good', index, height=height, width=width)
        rows, cols = np.r_[0:3, height - 3:height], np.r_[0:3, width - 3:width]
        assert not sample.object_mask[np.ix_(rows, cols)].any()
        assert sample.object_mask.mean() > 0.05


def test_import_mmad_datasets_does_not_import_the_generators():
    code = ('import sys, mmad.datasets; from mmad.registry import DATASETS; DATASETS.get("MVTec3DDataset"); '
            'print(sorted(name for name in sys.modules if "synthetic" in name))')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '[]'
