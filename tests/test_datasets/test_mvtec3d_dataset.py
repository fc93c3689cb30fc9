import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tifffile
import torch
from mmengine.registry import DefaultScope

from mmad.datasets import MVTec3DDataset
from mmad.registry import DATASETS

HEIGHT, WIDTH = 24, 20  # not square, like real categories


def write_sample(split_dir, defect_type, stem, gt_value=None):
    """Write one sample in the real MVTec 3D-AD format: rgb PNG, float32 xyz TIFF, optional 8-bit gt PNG."""
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    xyz = np.stack([(cols - WIDTH / 2) * 1e-3, (rows - HEIGHT / 2) * 1e-3, np.full((HEIGHT, WIDTH), 0.7)], axis=-1)
    xyz[8:16, 6:14, 2] = 0.68
    rgb = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    folder = split_dir / defect_type
    for sub in ('rgb', 'xyz'):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / 'rgb' / f'{stem}.png'), rgb)
    tifffile.imwrite(str(folder / 'xyz' / f'{stem}.tiff'), xyz.astype(np.float32), photometric='rgb')
    if gt_value is not None:
        (folder / 'gt').mkdir(exist_ok=True)
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        mask[10:12, 8:10] = gt_value
        cv2.imwrite(str(folder / 'gt' / f'{stem}.png'), mask)


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / 'mvtec_3d_anomaly_detection'
    category = root / 'bagel'
    for stem in ('000', '001'):
        write_sample(category / 'train', 'good', stem)
    write_sample(category / 'validation', 'good', '000')
    write_sample(category / 'test', 'good', '000', gt_value=0)  # real test/good masks exist and are all zero
    write_sample(category / 'test', 'good', '001')  # ... but a good sample without gt is accepted too
    write_sample(category / 'test', 'crack', '000', gt_value=255)
    write_sample(category / 'test', 'crack', '001', gt_value=253)
    write_sample(category / 'test', 'combined', '000', gt_value=254)
    (category / 'calibration').mkdir()
    (category / 'calibration' / 'camera_parameters.json').write_text('{}')
    (root / 'readme.txt').write_text('MVTec 3D-AD')
    (category / 'test' / 'crack' / 'rgb' / '.DS_Store').write_bytes(b'')
    return root


def test_lists_and_pairs_test_split(data_root):
    dataset = MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))
    assert len(dataset) == 5
    names = [dataset.get_data_info(index)['sample_name'] for index in range(5)]
    assert names == ['good_000', 'good_001', 'combined_000', 'crack_000', 'crack_001']
    assert [dataset.get_data_info(index)['label'] for index in range(5)] == [0, 0, 1, 1, 1]
    crack = dataset.get_data_info(4)
    assert crack['rgb_path'] == str(data_root / 'bagel/test/crack/rgb/001.png')
    assert crack['xyz_path'] == str(data_root / 'bagel/test/crack/xyz/001.tiff')
    assert crack['gt_path'] == str(data_root / 'bagel/test/crack/gt/001.png')
    assert crack['defect_type'] == 'crack' and crack['category'] == 'bagel' and crack['sample_idx'] == 4
    assert dataset.get_data_info(0)['gt_path'] == str(data_root / 'bagel/test/good/gt/000.png')
    assert dataset.get_data_info(1)['gt_path'] is None
    assert dataset.metainfo['defect_types'] == ('good', 'combined', 'crack')
    assert dataset.metainfo['dataset_name'] == 'MVTec 3D-AD' and dataset.metainfo['category'] == 'bagel'



def test_data_list_is_kept_as_a_list_unless_serialisation_is_asked_for(data_root, monkeypatch):
    """No gc.collect per dataset build by default; serialize_data=True gives mmengine's packed list, same infos."""
    import mmengine.dataset.base_dataset as mmengine_base_dataset
    collections = []
    monkeypatch.setattr(mmengine_base_dataset.gc, 'collect', lambda *args: collections.append(args) or 0)
    plain = MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))
    assert not plain.serialize_data and len(plain.data_list) == 5 and collections == []
    packed = MVTec3DDataset(category='bagel', split='test', data_root=str(data_root), serialize_data=True)
    assert packed.serialize_data and packed.data_list == [] and len(collections) == 1
    assert [packed.get_data_info(index) for index in range(5)] == [plain.get_data_info(index) for index in range(5)]

@pytest.mark.parametrize('split, count', [('train', 2), ('validation', 1)])
def test_train_and_validation_splits(data_root, split, count):
    dataset = MVTec3DDataset(category='bagel', split=split, data_root=str(data_root))
    assert len(dataset) == count
    assert all(dataset.get_data_info(index)['label'] == 0 for index in range(count))
    assert dataset.metainfo['defect_types'] == ('good',)


def test_pipeline_output_and_indices(data_root):
    pipeline = [dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromFile'), dict(type='LoadMaskFromFile'),
                dict(type='XYZToDepth', size=16), dict(type='ResizeImage', size=16, keys=('rgb',)),
                dict(type='ResizeMask', size=16),
                dict(type='PackADInputs', modalities=('rgb', 'depth'))]
    with DefaultScope.overwrite_default_scope('mmad'):
        dataset = DATASETS.build(dict(type='MVTec3DDataset', category='bagel', split='test',
                                      data_root=str(data_root), pipeline=pipeline, test_mode=True, indices=[3, 4]))
    assert len(dataset) == 2
    packed = dataset[1]
    assert packed['inputs']['rgb'].shape == (3, 16, 16) and packed['inputs']['depth'].shape == (1, 16, 16)
    sample = packed['data_samples']
    assert sample.metainfo['sample_name'] == 'crack_001' and int(sample.gt_label) == 1
    assert sample.gt_mask.dtype == torch.bool and sample.gt_mask.sum() > 0
    assert sample.metainfo['ori_shape'] == (HEIGHT, WIDTH)


BUILD_WITHOUT_SCOPE = """
import sys
from mmengine.registry import DefaultScope
from mmad.registry import DATASETS
assert DefaultScope.get_current_instance() is None
dataset = DATASETS.build(dict(type='MVTec3DDataset', category='bagel', split='test', data_root=sys.argv[1],
                              pipeline=[dict(type='LoadRGBFromFile'), dict(type='ResizeImage', size=8),
                                        dict(type='PackADInputs', modalities=('rgb',))]))
print(tuple(dataset[0]['inputs']['rgb'].shape))
"""


def test_dataset_builds_its_pipeline_without_a_runner_or_default_scope(data_root):
    """As mmpretrain's datasets: the pipeline resolves mmad transforms through mmad's registry, no scope needed."""
    result = subprocess.run([sys.executable, '-c', BUILD_WITHOUT_SCOPE, str(data_root)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '(3, 8, 8)'
    with pytest.raises(TypeError, match='neither a transform config'):
        MVTec3DDataset(category='bagel', split='test', data_root=str(data_root), pipeline=[42])


def test_xyz_without_rgb(data_root):
    (data_root / 'bagel/test/crack/rgb/001.png').unlink()
    with pytest.raises(ValueError, match=r'point cloud .*crack/xyz/001\.tiff has no rgb image \(expected '
                                         r'.*crack/rgb/001\.png\)'):
        MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))


def test_rgb_without_xyz(data_root):
    (data_root / 'bagel/train/good/xyz/001.tiff').unlink()
    with pytest.raises(ValueError, match=r'rgb image .*good/rgb/001\.png has no point cloud \(expected '
                                         r'.*good/xyz/001\.tiff\)'):
        MVTec3DDataset(category='bagel', split='train', data_root=str(data_root))


def test_defect_sample_without_gt(data_root):
    (data_root / 'bagel/test/combined/gt/000.png').unlink()
    with pytest.raises(ValueError, match=r'defect sample .*combined/rgb/000\.png has no gt mask \(expected '
                                         r'.*combined/gt/000\.png\)'):
        MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))


def test_gt_without_rgb_and_many_problems_listed(data_root):
    for stem in ('000', '001'):
        (data_root / f'bagel/test/crack/rgb/{stem}.png').unlink()
        (data_root / f'bagel/test/crack/xyz/{stem}.tiff').unlink()
    with pytest.raises(ValueError, match=r'gt mask .*crack/gt/000\.png has no rgb image') as error:
        MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))
    assert str(error.value).count('has no rgb image') == 2


def make_unusable_category(folder, kind):
    """Make ``folder`` one of the things a category folder must not be."""
    if kind == 'empty':
        folder.mkdir()
    elif kind == 'hidden files only':
        folder.mkdir()
        (folder / '.DS_Store').write_bytes(b'')
        (folder / '._train').write_bytes(b'')
    elif kind == 'link loop':
        folder.symlink_to(folder.name)
    elif kind == 'broken link':
        folder.symlink_to(folder.parent / 'gone')
    elif kind == 'file':
        folder.write_text('not a folder')


@pytest.mark.parametrize(('kind', 'description'), [
    ('missing', 'does not exist'),
    ('empty', 'is empty'),
    ('hidden files only', r'holds hidden files only \(\.DS_Store, \._train\)'),
    ('link loop', r'is a symbolic link loop \(.*cookie -> cookie\)'),  # was: "is missing or empty"
    ('broken link', r'is a symbolic link to .*gone, which does not exist'),
    ('file', 'is a file, not a folder'),
])
def test_unusable_category_folder_says_what_it_is(data_root, kind, description):
    make_unusable_category(data_root / 'cookie', kind)
    (data_root / '.Trashes').mkdir()
    with pytest.raises(FileNotFoundError, match=rf'MVTec 3D-AD category folder .*cookie {description} '
                                                r"\(folders found in .*: \['bagel'(, 'cookie')?\]\)"
                                                r'.*cookie/train/good/rgb/000\.png'
                                                r'.*--data-root PATH --category NAME.*docs/datasets\.md'):
        MVTec3DDataset(category='cookie', split='train', data_root=str(data_root))


def test_missing_data_root(tmp_path):
    with pytest.raises(FileNotFoundError, match=r'bagel does not exist \(.*nowhere does not exist\).*datasets\.md'):
        MVTec3DDataset(category='bagel', data_root=str(tmp_path / 'nowhere'))
    (tmp_path / 'loop').symlink_to('loop')
    with pytest.raises(FileNotFoundError, match=r'loop/bagel lies under a symbolic link loop \(.*loop is a '
                                                r'symbolic link loop'):
        MVTec3DDataset(category='bagel', data_root=str(tmp_path / 'loop'))


def test_dot_files_and_folders_are_skipped(data_root):
    """Case 16 of issue 8: before, ._000.png (macOS AppleDouble) was "rgb image ._000.png has no point cloud"."""
    crack = data_root / 'bagel' / 'test' / 'crack'
    for sub, name in (('rgb', '._000.png'), ('xyz', '._000.tiff'), ('gt', '._000.png'), ('gt', '.DS_Store')):
        (crack / sub / name).write_bytes(b'\x00\x05\x16\x07')
    (data_root / 'bagel' / 'test' / '.ipynb_checkpoints' / 'rgb').mkdir(parents=True)
    (data_root / 'bagel' / 'test' / '.DS_Store').write_bytes(b'')
    dataset = MVTec3DDataset(category='bagel', split='test', data_root=str(data_root))
    assert [info['sample_name'] for info in dataset.load_data_list()] == [
        'good_000', 'good_001', 'combined_000', 'crack_000', 'crack_001']
    assert dataset.metainfo['defect_types'] == ('good', 'combined', 'crack')


def test_missing_or_empty_split_and_bad_split_name(data_root):
    (data_root / 'bagel/validation/good/rgb/000.png').unlink()
    (data_root / 'bagel/validation/good/xyz/000.tiff').unlink()
    with pytest.raises(FileNotFoundError, match=r'bagel/validation holds no sample'):
        MVTec3DDataset(category='bagel', split='validation', data_root=str(data_root))
    shutil.rmtree(data_root / 'bagel/validation')
    with pytest.raises(FileNotFoundError, match=r"split folder .*bagel/validation does not exist \(folders present: "
                                                r"\['calibration', 'test', 'train'\]\)"):
        MVTec3DDataset(category='bagel', split='validation', data_root=str(data_root))
    (data_root / 'bagel/validation').symlink_to('validation')
    with pytest.raises(FileNotFoundError, match=r'split folder .*bagel/validation is a symbolic link loop'):
        MVTec3DDataset(category='bagel', split='validation', data_root=str(data_root))
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'validation', 'test'\), got 'val'"):
        MVTec3DDataset(category='bagel', split='val', data_root=str(data_root))


def test_duplicate_stems(data_root):
    source = data_root / 'bagel/train/good/xyz/000.tiff'
    (data_root / 'bagel/train/good/xyz/000.tif').write_bytes(source.read_bytes())
    with pytest.raises(ValueError, match=r'000\.tif and .*000\.tiff have the same stem'):
        MVTec3DDataset(category='bagel', split='train', data_root=str(data_root))
