import cv2
import numpy as np
import pytest
import tifffile
import torch
from mmengine.dataset import Compose
from mmengine.registry import DefaultScope
from PIL import Image
from torchvision import transforms as tv_transforms

from mmad.datasets.transforms import (
    LoadMaskFromFile,
    LoadNormalsFromFile,
    LoadRGBFromFile,
    LoadXYZFromFile,
    PackADInputs,
    ResizeImage,
    ResizeMask,
    XYZToDepth,
    check_same_size,
)
from mmad.structures import ADDataSample


def write_rgb(path, rgb):
    """Write an RGB uint8 array as an 8-bit colour PNG (OpenCV stores BGR)."""
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return str(path)


def write_xyz(path, xyz):
    """Write an array as TIFF; (H, W, 3) as MVTec 3D-AD does: one page, 3 contiguous samples per pixel."""
    tifffile.imwrite(str(path), xyz, photometric='rgb' if xyz.ndim == 3 and xyz.shape[2] == 3 else 'minisblack')
    return str(path)


def scene_xyz(height=40, width=48):
    """Table at z = 0.6 m with a 2 cm box in the middle."""
    rows, cols = np.mgrid[0:height, 0:width]
    xyz = np.stack([(cols - width / 2) * 1e-3, (rows - height / 2) * 1e-3, np.full((height, width), 0.6)], axis=-1)
    xyz[height // 3:2 * height // 3, width // 3:2 * width // 3, 2] = 0.58
    return xyz.astype(np.float32)


@pytest.fixture
def sample_files(tmp_path):
    rgb = np.zeros((40, 48, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 10
    mask = np.zeros((40, 48), dtype=np.uint8)
    mask[5:9, 6:12] = 255
    mask[20:22, 30:31] = 253
    cv2.imwrite(str(tmp_path / 'gt.png'), mask)
    return dict(rgb_path=write_rgb(tmp_path / 'rgb.png', rgb), xyz_path=write_xyz(tmp_path / 'xyz.tiff', scene_xyz()),
                gt_path=str(tmp_path / 'gt.png'), label=1, defect_type='crack', category='bagel',
                sample_name='crack_000', sample_idx=3)


def test_load_rgb_channel_order_and_shape(sample_files, tmp_path):
    results = LoadRGBFromFile().transform(dict(sample_files))
    assert results['rgb'].dtype == np.uint8 and results['rgb'].shape == (40, 48, 3)
    assert results['rgb'][0, 0].tolist() == [200, 100, 10]
    assert results['ori_shape'] == (40, 48)
    grey = tmp_path / 'grey.png'
    cv2.imwrite(str(grey), np.full((5, 7), 77, np.uint8))
    assert LoadRGBFromFile().transform(dict(rgb_path=str(grey)))['rgb'].shape == (5, 7, 3)


def test_unreadable_png_errors_name_the_file(sample_files, tmp_path):
    content = open(sample_files['rgb_path'], 'rb').read()
    truncated = tmp_path / 'truncated.png'
    truncated.write_bytes(content[:len(content) // 2])
    with pytest.raises(ValueError, match=r'truncated\.png is not a readable PNG image.*truncated'):
        LoadRGBFromFile().transform(dict(rgb_path=str(truncated)))
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match=r'empty\.png is empty'):
        LoadRGBFromFile().transform(dict(rgb_path=str(empty)))
    with pytest.raises(FileNotFoundError, match=r'missing\.png does not exist'):
        LoadRGBFromFile().transform(dict(rgb_path=str(tmp_path / 'missing.png')))
    with pytest.raises(ValueError, match=r'truncated\.png is not a readable PNG image'):
        LoadMaskFromFile().transform(dict(gt_path=str(truncated)))


def test_load_xyz_roundtrip(sample_files):
    results = LoadXYZFromFile().transform(dict(sample_files))
    assert results['xyz'].dtype == np.float32 and results['xyz'].shape == (40, 48, 3)
    np.testing.assert_array_equal(results['xyz'], scene_xyz())


def test_non_finite_points_become_missing_with_one_warning(tmp_path):
    paths = []
    for index in range(2):
        xyz = scene_xyz()
        xyz[0, :3, 2] = np.nan
        xyz[1, 0, 0] = np.inf
        xyz[2, 0, 1] = -np.inf
        paths.append(write_xyz(tmp_path / f'{index}.tiff', xyz))
    before = open(paths[0], 'rb').read()
    transform = LoadXYZFromFile()
    with pytest.warns(UserWarning) as records:
        loaded = [transform.transform(dict(xyz_path=path))['xyz'] for path in paths]
    assert len(records) == 1
    assert '0.tiff: 5 points with NaN/inf coordinates were set to (0, 0, 0)' in str(records[0].message)
    expected = scene_xyz()
    expected[0, :3] = expected[1, 0] = expected[2, 0] = 0
    for xyz in loaded:
        np.testing.assert_array_equal(xyz, expected)
    assert open(paths[0], 'rb').read() == before  # the dataset file is not rewritten


@pytest.mark.parametrize('array, message', [
    (np.zeros((8, 8), np.float32), r'expected an organised point cloud of shape \(H, W, 3\), got shape \(8, 8\)'),
    (np.zeros((8, 8, 4), np.float32), r'got shape \(8, 8, 4\)'),
    (np.ones((8, 8, 3), np.uint16), 'expected float xyz coordinates in metres, got dtype uint16'),
    (np.zeros((8, 8, 3), np.float32), 'every point is missing'),
    (np.full((8, 8, 3), np.nan, np.float32), 'every point is missing'),
])
def test_bad_xyz_errors_name_the_file(tmp_path, array, message):
    path = write_xyz(tmp_path / 'bad.tiff', array)
    with pytest.raises(ValueError, match=r'bad\.tiff: .*' + message):
        LoadXYZFromFile().transform(dict(xyz_path=path))


def test_truncated_tiff(sample_files, tmp_path):
    content = open(sample_files['xyz_path'], 'rb').read()
    truncated = tmp_path / 'truncated.tiff'
    truncated.write_bytes(content[:len(content) // 2])
    with pytest.raises(ValueError, match=r'truncated\.tiff is not a readable TIFF file'):
        LoadXYZFromFile().transform(dict(xyz_path=str(truncated)))
    not_tiff = tmp_path / 'image.tiff'
    not_tiff.write_bytes(open(sample_files['rgb_path'], 'rb').read())
    with pytest.raises(ValueError, match=r'image\.tiff is not a readable TIFF file'):
        LoadXYZFromFile().transform(dict(xyz_path=str(not_tiff)))


def test_rgb_xyz_size_mismatch_in_either_order(sample_files, tmp_path):
    small = write_xyz(tmp_path / 'small.tiff', scene_xyz(30, 48))
    info = dict(sample_files, xyz_path=small)
    with pytest.raises(ValueError, match=r'small\.tiff: the xyz file is 30x48 \(HxW\) but the rgb file .*rgb\.png '
                                         r'is 40x48'):
        LoadXYZFromFile().transform(LoadRGBFromFile().transform(dict(info)))
    with pytest.raises(ValueError, match=r'rgb\.png: the rgb file is 40x48 .* xyz file .*small\.tiff is 30x48'):
        LoadRGBFromFile().transform(LoadXYZFromFile().transform(dict(info)))


def test_every_loader_checks_every_loaded_array_whatever_its_key(sample_files, tmp_path):
    """A mask loaded first, a normal map and a new modality key are all compared with everything loaded before."""
    cv2.imwrite(str(tmp_path / 'normals.png'), np.zeros((40, 48, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'small_normals.png'), np.zeros((30, 48, 3), np.uint8))
    results = LoadMaskFromFile().transform(dict(sample_files))
    assert results['loaded_sizes'] == {'gt': (40, 48)} and results['ori_shape'] == (40, 48)
    results = LoadNormalsFromFile().transform(dict(results, normals_path=str(tmp_path / 'normals.png')))
    with pytest.raises(ValueError, match=r'small_normals\.png: the normals file is 30x48 \(HxW\) but the gt file '
                                         r'.*gt\.png is 40x48'):
        LoadNormalsFromFile().transform(dict(results, normals_path=str(tmp_path / 'small_normals.png')))
    with pytest.raises(ValueError, match=r'ir\.png: the ir file is 8x8 \(HxW\) but the gt file .*gt\.png is 40x48'):
        check_same_size(dict(results), 'ir', (8, 8), 'ir.png')
    results = LoadXYZFromFile().transform(LoadRGBFromFile().transform(results))
    assert results['loaded_sizes'] == {'gt': (40, 48), 'normals': (40, 48), 'rgb': (40, 48), 'xyz': (40, 48)}
    resized = XYZToDepth(size=16).transform(results)  # resizing later does not count: files are compared
    LoadRGBFromFile().transform(resized)


def test_mask_binarised_at_native_size(sample_files):
    results = LoadMaskFromFile().transform(LoadRGBFromFile().transform(dict(sample_files)))
    mask = results['gt_mask']
    assert mask.dtype == np.uint8 and mask.shape == (40, 48)
    assert set(np.unique(mask)) == {0, 1}
    assert mask.sum() == 4 * 6 + 2 and mask[5:9, 6:12].all() and mask[20:22, 30].all()


def test_mask_ids_253_to_255_and_colour_masks(tmp_path):
    ids = np.array([[0, 253, 254, 255, 1]], dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'ids.png'), ids)
    mask = LoadMaskFromFile().transform(dict(gt_path=str(tmp_path / 'ids.png')))['gt_mask']
    assert mask.tolist() == [[0, 1, 1, 1, 1]]
    colour = np.zeros((1, 3, 3), np.uint8)
    colour[0, 1, 2] = 255
    cv2.imwrite(str(tmp_path / 'colour.png'), colour)
    assert LoadMaskFromFile().transform(dict(gt_path=str(tmp_path / 'colour.png')))['gt_mask'].tolist() == [[0, 1, 0]]


def test_missing_mask_is_zero_of_rgb_size(sample_files):
    results = LoadMaskFromFile().transform(LoadRGBFromFile().transform(dict(sample_files, gt_path=None)))
    assert results['gt_mask'].shape == (40, 48) and not results['gt_mask'].any()
    with pytest.raises(KeyError, match='load a modality first'):
        LoadMaskFromFile().transform(dict(gt_path=None))


def test_mask_size_mismatch(sample_files, tmp_path):
    cv2.imwrite(str(tmp_path / 'small_gt.png'), np.zeros((10, 10), np.uint8))
    results = LoadRGBFromFile().transform(dict(sample_files, gt_path=str(tmp_path / 'small_gt.png')))
    with pytest.raises(ValueError, match=r'small_gt\.png: the gt file is 10x10'):
        LoadMaskFromFile().transform(results)


def test_load_normals_8_and_16_bit(tmp_path):
    encoded = np.zeros((4, 5, 3), np.uint8)
    encoded[..., 0], encoded[..., 1], encoded[..., 2] = 255, 0, 51  # RGB
    path = write_rgb(tmp_path / 'normals.png', encoded)
    normals = LoadNormalsFromFile().transform(dict(normals_path=path))['normals']
    assert normals.dtype == np.float32 and normals.shape == (4, 5, 3)
    np.testing.assert_allclose(normals[0, 0], [1.0, 0.0, 0.2])
    cv2.imwrite(str(tmp_path / 'normals16.png'), np.full((4, 5, 3), 65535, np.uint16))
    np.testing.assert_allclose(LoadNormalsFromFile().transform(dict(normals_path=str(tmp_path / 'normals16.png')))
                               ['normals'], 1.0)
    cv2.imwrite(str(tmp_path / 'grey.png'), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match=r'grey\.png: expected a 3-channel normal map, got shape \(4, 5\)'):
        LoadNormalsFromFile().transform(dict(normals_path=str(tmp_path / 'grey.png')))


def fine_texture(height, width, seed=0):
    """uint8 (H, W, 3) RGB noise plus 1-pixel stripes: the content that aliases when shrunk without a filter."""
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    rgb[:, ::2, 1] = 255
    return rgb


def authors_resize(array, size):
    """The authors' resize: torchvision's bilinear ``Resize`` on a PIL image."""
    return np.asarray(tv_transforms.Resize(size)(Image.fromarray(array)), dtype=np.float32)


def test_resize_image_equals_torchvision_resize_of_a_pil_image():
    rgb = fine_texture(800, 800)
    results = ResizeImage(size=256).transform(dict(rgb=rgb))
    assert results['rgb'].dtype == np.float32 and results['rgb'].shape == (256, 256, 3)
    assert results['img_shape'] == (256, 256)
    np.testing.assert_array_equal(results['rgb'], authors_resize(rgb, (256, 256)))
    # Antialiasing: OpenCV's unfiltered bilinear keeps over twice the pixel noise (red) and the stripes' (green).
    unfiltered = cv2.resize(rgb.astype(np.float32), (256, 256), interpolation=cv2.INTER_LINEAR)
    assert (unfiltered.std(axis=(0, 1))[:2] > 2 * results['rgb'].std(axis=(0, 1))[:2]).all()
    non_square = ResizeImage(size=(30, 50)).transform(dict(rgb=rgb[:100, :120]))['rgb']
    np.testing.assert_array_equal(non_square, authors_resize(rgb[:100, :120], (30, 50)))


def test_resize_image_float_keys_follow_the_8_bit_resize():
    encoded = fine_texture(160, 200, seed=1)
    normals = encoded.astype(np.float32) / 255
    results = ResizeImage(size=64, keys=('rgb', 'normals')).transform(dict(rgb=encoded, normals=normals))
    assert results['normals'].dtype == np.float32 and results['normals'].shape == (64, 64, 3)
    # Float data is resized without the rounding of the 8-bit path (after each of its two 1-D passes): within one
    # grey level of it.
    np.testing.assert_allclose(results['normals'] * 255, authors_resize(encoded, (64, 64)), atol=1.0)
    np.testing.assert_array_equal(results['rgb'], authors_resize(encoded, (64, 64)))
    grey = ResizeImage(size=8, keys=('depth',)).transform(dict(depth=np.full((20, 20), 0.25, np.float64)))['depth']
    assert grey.shape == (8, 8) and grey.dtype == np.float32
    np.testing.assert_allclose(grey, 0.25)
    with pytest.raises(ValueError, match="keys must be a non-empty sequence of result keys, got 'rgb'"):
        ResizeImage(keys='rgb')


def test_resize_mask_as_the_authors_code():
    mask = np.zeros((800, 800), np.uint8)
    mask[100:400, 200:203] = 1  # a thin crack, 3 pixels wide: 0.96 pixels at 256
    mask[500:700, 500:700] = 1
    resized = ResizeMask(size=256).transform(dict(gt_mask=mask))['gt_mask']
    expected = (authors_resize(mask * 255, (256, 256)) / 255 > 0.5).astype(np.uint8)
    assert resized.dtype == np.uint8 and resized.shape == (256, 256)
    np.testing.assert_array_equal(resized, expected)
    assert resized[:, 60:70].any() and resized[160:224, 160:224].all()
    half = np.array([[1, 1, 0, 0]], dtype=np.uint8)  # shrunk to 1x2: the middle pixels blend
    assert ResizeMask(size=(1, 1)).transform(dict(gt_mask=half))['gt_mask'].tolist() == [[1]]  # 128 / 255 > 0.5
    assert ResizeMask(size=(1, 1), threshold=0.6).transform(dict(gt_mask=half))['gt_mask'].tolist() == [[0]]
    block = np.zeros((8, 8), np.uint8)
    block[2:6, 2:6] = 1
    assert ResizeMask(size=4).transform(dict(gt_mask=block))['gt_mask'].tolist() == [
        [0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]]


def test_pack_types_shapes_and_metainfo(sample_files):
    pipeline = [LoadRGBFromFile(), LoadXYZFromFile(), LoadMaskFromFile(), XYZToDepth(size=16), ResizeImage(16),
                ResizeMask(16), PackADInputs(modalities=('rgb', 'depth'))]
    results = dict(sample_files)
    for transform in pipeline:
        results = transform(results)
    inputs, sample = results['inputs'], results['data_samples']
    assert list(inputs) == ['rgb', 'depth']
    assert inputs['rgb'].shape == (3, 16, 16) and inputs['rgb'].dtype == torch.float32
    assert inputs['depth'].shape == (1, 16, 16) and inputs['depth'].dtype == torch.float32
    assert inputs['rgb'][:, 0, 0].tolist() == [200.0, 100.0, 10.0]
    assert all(torch.isfinite(tensor).all() for tensor in inputs.values())
    assert isinstance(sample, ADDataSample)
    assert sample.gt_label.dtype == torch.long and sample.gt_label.shape == () and int(sample.gt_label) == 1
    assert sample.gt_mask.dtype == torch.bool and sample.gt_mask.shape == (16, 16) and sample.gt_mask.any()
    assert sample.metainfo['img_path'] == sample_files['rgb_path']
    assert sample.metainfo['ori_shape'] == (40, 48) and sample.metainfo['img_shape'] == (16, 16)
    for key in ('category', 'defect_type', 'sample_name', 'gt_path', 'xyz_path', 'sample_idx'):
        assert sample.metainfo[key] == sample_files[key]


def test_pack_normals_and_errors():
    normals = np.random.default_rng(0).random((6, 6, 3)).astype(np.float32)
    packed = PackADInputs(modalities=('normals',)).transform(dict(normals=normals, label=0))
    torch.testing.assert_close(packed['inputs']['normals'], torch.from_numpy(normals).permute(2, 0, 1))
    assert int(packed['data_samples'].gt_label) == 0 and 'gt_mask' not in packed['data_samples']
    with pytest.raises(KeyError, match="modality 'depth' is missing for a.png"):
        PackADInputs().transform(dict(rgb=np.zeros((2, 2, 3)), rgb_path='a.png'))
    with pytest.raises(ValueError, match="modality 'depth' of a.png holds NaN or inf"):
        PackADInputs().transform(dict(rgb=np.zeros((2, 2, 3)), depth=np.full((2, 2), np.nan), rgb_path='a.png'))
    with pytest.raises(ValueError, match='non-empty sequence'):
        PackADInputs(modalities='rgb')


def test_pipeline_built_from_config_dicts(sample_files):
    with DefaultScope.overwrite_default_scope('mmad'):
        pipeline = Compose([dict(type='LoadRGBFromFile'), dict(type='LoadXYZFromFile'), dict(type='LoadMaskFromFile'),
                            dict(type='FitTablePlane', size=8), dict(type='DepthFromPoints'),
                            dict(type='NormalsFromDepth'), dict(type='ResizeImage', size=8),
                            dict(type='ResizeMask', size=8), dict(type='PackADInputs', modalities=('rgb', 'normals'))])
    packed = pipeline(dict(sample_files))
    assert packed['inputs']['normals'].shape == (3, 8, 8) and packed['inputs']['rgb'].shape == (3, 8, 8)


def test_pack_derives_the_path_meta_keys_from_the_results():
    """Every ``*_path`` of the data info and the packed modalities reaches the meta information, whatever its name."""
    ir = np.ones((4, 4), np.float32)
    results = dict(ir=ir, ir_path='ir/000.png', xyz_path='xyz/000.tiff', gt_path=None, sample_name='good_000')
    sample = PackADInputs(modalities=('ir',)).transform(results)['data_samples']
    assert sample.metainfo['ir_path'] == 'ir/000.png' and sample.metainfo['xyz_path'] == 'xyz/000.tiff'
    assert sample.metainfo['gt_path'] is None and sample.metainfo['img_path'] == 'ir/000.png'
    with_rgb = PackADInputs(modalities=('ir',)).transform(dict(results, rgb_path='rgb/000.png'))['data_samples']
    assert with_rgb.metainfo['img_path'] == 'rgb/000.png'
    with pytest.raises(KeyError, match="modality 'depth' is missing for good_000"):
        PackADInputs(modalities=('ir', 'depth')).transform(results)
