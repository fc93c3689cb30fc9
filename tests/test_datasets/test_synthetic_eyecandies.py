"""The Eyecandies-layout generator and the Eyecandies depth path (16-bit depth + yaml -> camera-frame xyz)."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from mmad.datasets import EyecandiesDataset
from mmad.datasets.synthetic import make_synthetic_eyecandies, render_synthetic_sample
from mmad.datasets.synthetic.eyecandies import eyecandies_focal_length, lighting_directions
from mmad.datasets.transforms import LoadXYZFromDepthFile

SIZE = 48
CATEGORY = 'Candy'
COUNTS = dict(num_train=3, num_val=2, num_test_per_defect=2)


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> Path:
    return make_synthetic_eyecandies(tmp_path_factory.mktemp('eyecandies'), CATEGORY, size=SIZE, seed=1, **COUNTS)


def render(split, kind, index, intact=False):
    return render_synthetic_sample(CATEGORY, split, kind, index, height=SIZE, width=SIZE, seed=1, shadow_prob=0.0,
                                   intact=intact, focal=eyecandies_focal_length(SIZE), lights=lighting_directions())


def test_layout_of_the_authors(root):
    data = root / 'test_public' / 'data'
    assert sorted(path.name for path in (root / 'train' / 'data').iterdir() if path.name.startswith('000_')) == [
        '000_depth.png', *[f'000_image_{k}.png' for k in range(6)], '000_info_depth.yaml', '000_mask.png',
        '000_normals.png']
    assert len(list((root / 'val' / 'data').glob('*_depth.png'))) == 2
    assert len(list(data.glob('*_image_4.png'))) == 2 * 4  # good + color, dent, crack
    depth = cv2.imread(str(data / '002_depth.png'), cv2.IMREAD_UNCHANGED)
    assert depth.dtype == np.uint16 and depth.shape == (SIZE, SIZE) and depth.min() == 0 and depth.max() == 65535
    info = yaml.safe_load((data / '002_info_depth.yaml').read_text())
    assert 0.4 < info['normalization']['min'] < info['normalization']['max'] < 1.0
    images = [cv2.imread(str(data / f'002_image_{k}.png')) for k in range(6)]
    assert all(image.shape == (SIZE, SIZE, 3) for image in images)
    assert min(np.abs(a.astype(int) - b).mean() for i, a in enumerate(images) for b in images[i + 1:]) > 1  # lights
    masks = [cv2.imread(str(data / f'{n:03d}_mask.png'), cv2.IMREAD_UNCHANGED) for n in range(8)]
    assert [bool(mask.any()) for mask in masks] == [False] * 2 + [True] * 6
    assert set(np.unique(masks[3])) == {0, 255}


def test_depth_is_back_projected_to_the_rendered_points(root):
    data = root / 'test_public' / 'data'
    sample = render('test', 'dent', 0)  # file 004: the first dent
    xyz = LoadXYZFromDepthFile(focal_length=eyecandies_focal_length(SIZE)).transform(
        dict(depth_path=str(data / '004_depth.png'), depth_info_path=str(data / '004_info_depth.yaml')))['xyz']
    assert xyz.dtype == np.float32 and xyz.shape == (SIZE, SIZE, 3)
    span = float(sample.depth.max() - sample.depth.min())
    np.testing.assert_allclose(xyz[..., 2], sample.depth, atol=span / 65535)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    focal = eyecandies_focal_length(SIZE)
    np.testing.assert_allclose(xyz[..., 0], (cols - (SIZE - 1) / 2) * xyz[..., 2] / focal, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(xyz[..., 1], (rows - (SIZE - 1) / 2) * xyz[..., 2] / focal, rtol=1e-5, atol=1e-7)


def test_defects_are_modality_specific(root):
    data = root / 'test_public' / 'data'
    for number, kind, index in ((2, 'color', 0), (4, 'dent', 0)):
        intact = render('test', kind, index, intact=True)
        depth_changed = not np.array_equal(render('test', kind, index).depth, intact.depth)
        image = cv2.cvtColor(cv2.imread(str(data / f'{number:03d}_image_4.png')), cv2.COLOR_BGR2RGB)
        image_changed = not np.array_equal(image, intact.lightings[4])
        assert (depth_changed, image_changed) == ((False, True) if kind == 'color' else (True, False))


def test_dataset_and_pipeline_with_depth_and_normals(root):
    size = 32
    pipeline = [dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromDepthFile',
                                                  focal_length=eyecandies_focal_length(SIZE)),
                dict(type='LoadNormalsFromFile'), dict(type='LoadMaskFromFile'), dict(type='FitTablePlane', size=size),
                dict(type='DepthFromPoints'), dict(type='ResizeImage', size=size, keys=('rgb', 'normals')),
                dict(type='ResizeMask', size=size), dict(type='PackADInputs', modalities=('rgb', 'depth', 'normals'))]
    dataset = EyecandiesDataset(category=CATEGORY, split='test', data_root=str(root.parent),
                                files=('normals', 'depth'), pipeline=pipeline)
    info = dataset.get_data_info(4)
    assert info['depth_path'].endswith('004_depth.png') and info['depth_info_path'].endswith('004_info_depth.yaml')
    packed = dataset[4]
    inputs, sample = packed['inputs'], packed['data_samples']
    assert {name: tuple(tensor.shape) for name, tensor in inputs.items()} == dict(
        rgb=(3, size, size), depth=(1, size, size), normals=(3, size, size))
    depth = inputs['depth'][0].numpy()
    assert 0.2 < (depth > 0).mean() < 0.9  # the object stands off the table: real structure, not a constant
    assert sample.metainfo['depth_path'] == info['depth_path'] and sample.gt_mask.any()
    assert [dataset.get_data_info(index)['label'] for index in range(len(dataset))] == [0, 0] + [1] * 6


def test_depth_loader_errors_name_the_file(root, tmp_path):
    data = root / 'train' / 'data'
    with pytest.raises(FileNotFoundError, match=r'missing_info_depth\.yaml does not exist'):
        LoadXYZFromDepthFile().transform(dict(depth_path=str(data / '000_depth.png'),
                                              depth_info_path=str(tmp_path / 'missing_info_depth.yaml')))
    (tmp_path / 'bad.yaml').write_text('normalization: {min: 0.5}\n')
    with pytest.raises(ValueError, match=r'bad\.yaml: expected a yaml file with normalization: \{min: float'):
        LoadXYZFromDepthFile().transform(dict(depth_path=str(data / '000_depth.png'),
                                              depth_info_path=str(tmp_path / 'bad.yaml')))
    with pytest.raises(ValueError, match=r'000_image_4\.png: expected a 16-bit single-channel depth map'):
        LoadXYZFromDepthFile().transform(dict(depth_path=str(data / '000_image_4.png'),
                                              depth_info_path=str(data / '000_info_depth.yaml')))
    (data / '001_info_depth.yaml').rename(tmp_path / 'moved.yaml')
    try:
        with pytest.raises(ValueError, match=r'rgb image .*001_image_4\.png has no depth range \(expected '
                                             r'.*001_info_depth\.yaml\)'):
            EyecandiesDataset(category=CATEGORY, split='train', data_root=str(root.parent), files=('depth',))
    finally:
        (tmp_path / 'moved.yaml').rename(data / '001_info_depth.yaml')
