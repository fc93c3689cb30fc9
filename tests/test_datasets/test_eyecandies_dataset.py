import cv2
import numpy as np
import pytest
import torch
from mmengine.registry import DefaultScope

from mmad.datasets import EyecandiesDataset
from mmad.registry import DATASETS

SIZE = 16


def write_sample(data_dir, stem, anomalous=None, light_indices=(0, 4, 5), metadata_anomalous=None):
    """Write the files of one sample as the authors distribute them (subset of the six lightings).

    ``metadata_anomalous`` overrides the label written to ``_metadata.yaml`` (default: ``anomalous``, as the mask).
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    for index in light_indices:
        cv2.imwrite(str(data_dir / f'{stem}_image_{index}.png'), np.full((SIZE, SIZE, 3), 40 * index, np.uint8))
    normals = np.zeros((SIZE, SIZE, 3), np.uint8)
    normals[..., 0] = 255  # B; the z component, stored in the blue channel
    normals[..., 2] = 128
    cv2.imwrite(str(data_dir / f'{stem}_normals.png'), normals)
    cv2.imwrite(str(data_dir / f'{stem}_depth.png'), np.full((SIZE, SIZE), 30000, np.uint16))
    (data_dir / f'{stem}_info_depth.yaml').write_text('normalization:\n  min: 0.1\n  max: 0.5\n')
    (data_dir / f'{stem}_pose.txt').write_text(' '.join(['1 0 0 0', '0 1 0 0', '0 0 1 0', '0 0 0 1']))
    if anomalous is not None:
        mask = np.zeros((SIZE, SIZE), np.uint8)
        if anomalous:
            mask[3:6, 4:8] = 255
        cv2.imwrite(str(data_dir / f'{stem}_mask.png'), mask)
        metadata_anomalous = anomalous if metadata_anomalous is None else metadata_anomalous
        (data_dir / f'{stem}_metadata.yaml').write_text(f'anomalous: {int(metadata_anomalous)}\n')


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / 'eyecandies'
    category = root / 'CandyCane'
    for stem in ('000', '001', '002'):
        write_sample(category / 'train' / 'data', stem, anomalous=False)
    write_sample(category / 'val' / 'data', '000')
    # The metadata of '02' and '10' contradict their masks: the labels must come from the masks.
    for stem, anomalous, metadata in (('00', False, False), ('01', True, True), ('02', True, False),
                                      ('10', False, True)):
        write_sample(category / 'test_public' / 'data', stem, anomalous=anomalous, metadata_anomalous=metadata)
    (category / 'test_private' / 'data').mkdir(parents=True)
    return root


def test_test_split_reads_test_public_and_labels_from_masks(data_root):
    dataset = EyecandiesDataset(category='CandyCane', split='test', data_root=str(data_root))
    infos = [dataset.get_data_info(index) for index in range(len(dataset))]
    assert [info['sample_name'] for info in infos] == ['good_00', 'anomalous_01', 'anomalous_02', 'good_10']
    assert [info['label'] for info in infos] == [0, 1, 1, 0]
    data_dir = data_root / 'CandyCane/test_public/data'
    assert infos[1]['rgb_path'] == str(data_dir / '01_image_4.png')
    assert infos[1]['normals_path'] == str(data_dir / '01_normals.png')
    assert infos[1]['gt_path'] == str(data_dir / '01_mask.png')
    assert dataset.metainfo['defect_types'] == ('good', 'anomalous')
    assert dataset.metainfo['dataset_name'] == 'Eyecandies' and dataset.metainfo['category'] == 'CandyCane'


@pytest.mark.parametrize('split, folder, count', [('train', 'train', 3), ('validation', 'val', 1)])
def test_train_and_validation_map_onto_folders(data_root, split, folder, count):
    dataset = EyecandiesDataset(category='CandyCane', split=split, data_root=str(data_root))
    assert len(dataset) == count
    info = dataset.get_data_info(0)
    assert info['rgb_path'] == str(data_root / 'CandyCane' / folder / 'data' / '000_image_4.png')
    assert info['label'] == 0 and info['gt_path'] is None and info['defect_type'] == 'good'
    assert dataset.metainfo['defect_types'] == ('good',)


def test_rgb_image_index_is_a_parameter(data_root):
    dataset = EyecandiesDataset(category='CandyCane', split='train', data_root=str(data_root), rgb_image_index=5)
    assert dataset.get_data_info(0)['rgb_path'].endswith('000_image_5.png')


def test_pipeline_with_normals(data_root):
    pipeline = [dict(type='LoadRGBFromFile'), dict(type='LoadNormalsFromFile'), dict(type='LoadMaskFromFile'),
                dict(type='ResizeImage', size=8, keys=('rgb', 'normals')), dict(type='ResizeMask', size=8),
                dict(type='PackADInputs', modalities=('rgb', 'normals'))]
    with DefaultScope.overwrite_default_scope('mmad'):
        dataset = DATASETS.build(dict(type='EyecandiesDataset', category='CandyCane', split='test',
                                      data_root=str(data_root), pipeline=pipeline))
    packed = dataset[1]
    normals = packed['inputs']['normals']
    assert normals.shape == (3, 8, 8) and normals.dtype == torch.float32
    torch.testing.assert_close(normals[:, 0, 0], torch.tensor([128 / 255, 0.0, 1.0]))  # RGB order
    assert packed['inputs']['rgb'][:, 0, 0].tolist() == [160.0, 160.0, 160.0]
    sample = packed['data_samples']
    assert int(sample.gt_label) == 1 and sample.gt_mask.any() and sample.metainfo['sample_name'] == 'anomalous_01'


def test_normals_without_rgb(data_root):
    (data_root / 'CandyCane/train/data/001_image_4.png').unlink()
    with pytest.raises(ValueError, match=r'normal map .*001_normals\.png has no rgb image \(expected '
                                         r'.*001_image_4\.png\)'):
        EyecandiesDataset(category='CandyCane', split='train', data_root=str(data_root))


def test_rgb_without_normals(data_root):
    (data_root / 'CandyCane/val/data/000_normals.png').unlink()
    with pytest.raises(ValueError, match=r'rgb image .*000_image_4\.png has no normal map'):
        EyecandiesDataset(category='CandyCane', split='validation', data_root=str(data_root))


def test_test_sample_without_mask(data_root):
    (data_root / 'CandyCane/test_public/data/02_mask.png').unlink()
    with pytest.raises(ValueError, match=r'test sample .*data/02 has no anomaly mask \(expected .*02_mask\.png\)'):
        EyecandiesDataset(category='CandyCane', split='test', data_root=str(data_root))


def test_unreadable_mask(data_root):
    (data_root / 'CandyCane/test_public/data/01_mask.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'01_mask\.png is not a readable PNG image'):
        EyecandiesDataset(category='CandyCane', split='test', data_root=str(data_root))


def test_missing_category_split_and_data_folders(data_root):
    with pytest.raises(FileNotFoundError, match=r"Eyecandies category folder .*Lollipop does not exist \(folders "
                                                r"found in .*: \['CandyCane'\]\).*docs/datasets\.md"):
        EyecandiesDataset(category='Lollipop', data_root=str(data_root))
    (data_root / 'Confetto' / 'train').mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r'Confetto/train/data does not exist'):
        EyecandiesDataset(category='Confetto', split='train', data_root=str(data_root))
    with pytest.raises(FileNotFoundError, match=r'split folder .*Confetto/val does not exist'):
        EyecandiesDataset(category='Confetto', split='validation', data_root=str(data_root))
    (data_root / 'Confetto' / 'train' / 'data').symlink_to('data')
    with pytest.raises(FileNotFoundError, match=r'Confetto/train/data is a symbolic link loop'):
        EyecandiesDataset(category='Confetto', split='train', data_root=str(data_root))
    (data_root / 'Confetto' / 'train' / 'data').unlink()
    (data_root / 'Confetto' / 'train' / 'data').mkdir()
    (data_root / 'Confetto' / 'train' / 'data' / '000_pose.txt').write_text('')
    with pytest.raises(FileNotFoundError, match=r'Confetto/train/data holds no sample: expected NNN_image_4\.png'):
        EyecandiesDataset(category='Confetto', split='train', data_root=str(data_root))
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'validation', 'test'\), got 'test_public'"):
        EyecandiesDataset(category='CandyCane', split='test_public', data_root=str(data_root))


def test_dot_files_are_skipped(data_root):
    """macOS AppleDouble files (._NNN_image_4.png) and .DS_Store in a data folder are not samples."""
    data_dir = data_root / 'CandyCane' / 'test_public' / 'data'
    for name in ('._01_image_4.png', '._01_normals.png', '._03_image_4.png', '._03_mask.png', '.DS_Store'):
        (data_dir / name).write_bytes(b'\x00\x05\x16\x07')
    (data_root / 'CandyCane' / '._test_public').write_bytes(b'')
    dataset = EyecandiesDataset(category='CandyCane', split='test', data_root=str(data_root))
    assert [info['sample_name'] for info in dataset.load_data_list()] == [
        'good_00', 'anomalous_01', 'anomalous_02', 'good_10']
