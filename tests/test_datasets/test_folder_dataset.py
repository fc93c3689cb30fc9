"""FolderDataset: free layouts, the seeded hold-out, 16-bit depth PNGs, bad input, and the configs of configs/folder."""
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.structures import BaseDataElement

from mmad.datasets import FolderDataset
from mmad.datasets.folder import min_normal_samples, sample_key, split_pattern
from mmad.datasets.synthetic import make_synthetic_mvtec3d
from mmad.datasets.synthetic.folder_tree import DEPTH_UNITS_PER_METRE, make_synthetic_folder_tree
from mmad.datasets.transforms import LoadDepthFromFile
from mmad.evaluation.metrics import ADMetric

REPO = Path(__file__).resolve().parents[2]
LAYOUT = dict(modalities=dict(rgb='*.jpg', xyz='*.tiff', depth='*_depth.png'), normal_dir='train_good',
              test_normal_dir='test_good', abnormal_dirs=('crack', 'color'),
              mask_dirs=dict(crack='masks/crack/*_mask.png'))


@pytest.fixture(scope='module')
def source_tree(tmp_path_factory) -> Path:
    """Free-layout tree: 10 normal training samples, 2 per test folder, 32x32 (part_000..part_015)."""
    return make_synthetic_folder_tree(tmp_path_factory.mktemp('folder') / 'my_part', size=32, num_normal=10,
                                      num_test=2)


@pytest.fixture
def tree(source_tree, tmp_path) -> Path:
    """A private copy of the tree that a test may change."""
    return Path(shutil.copytree(source_tree, tmp_path / 'my_part'))


def snapshot(root: Path) -> dict[str, int]:
    """Every path below ``root`` with its modification time in ns."""
    return {str(path.relative_to(root)): path.stat().st_mtime_ns for path in sorted(root.rglob('*'))}


def dataset(root: Path, split: str = 'train', **overrides) -> FolderDataset:
    return FolderDataset(data_root=str(root), split=split, **{**LAYOUT, **overrides})


def test_patterns_name_samples():
    assert split_pattern('rgb/*.png') == ('rgb', '*.png')
    assert split_pattern('*_depth.png') == ('', '*_depth.png')
    assert split_pattern('rgb') == ('rgb', '*')
    assert sample_key('part_007_depth.png', '*_depth.png') == 'part_007'
    assert sample_key('007.png', '*') == '007'
    with pytest.raises(ValueError, match=r"'rgb/\*/\*.png' must hold exactly one \*"):
        split_pattern('rgb/*/*.png')
    assert [min_normal_samples(fraction) for fraction in (0.2, 0.5, 0.05)] == [3, 2, 10]


def test_hold_out_is_seeded_disjoint_and_recorded(source_tree):
    before = snapshot(source_tree)
    train, validation = dataset(source_tree, 'train'), dataset(source_tree, 'validation')
    train_names = [info['sample_name'] for info in train.load_data_list()]
    held_names = [info['sample_name'] for info in validation.load_data_list()]
    assert len(train_names) == 8 and len(held_names) == 2
    assert sorted(train_names + held_names) == [f'good_part_{index:03d}' for index in range(10)]
    assert validation.metainfo['holdout'] == train.metainfo['holdout'] == dict(
        normal_dir=str(source_tree / 'train_good'), fraction=0.2, seed=0, normal_samples=10, held_out=held_names)
    assert [info['sample_name'] for info in dataset(source_tree, 'validation').load_data_list()] == held_names
    other_seeds = {tuple(info['sample_name'] for info in dataset(source_tree, 'validation',
                                                                 holdout_seed=seed).load_data_list())
                   for seed in range(1, 6)}
    assert other_seeds - {tuple(held_names)}
    info = train.get_data_info(0)
    assert info['rgb_path'].endswith('.jpg') and info['depth_path'].endswith('_depth.png')
    assert snapshot(source_tree) == before


def test_test_split_labels_masks_and_defect_types(source_tree):
    test = dataset(source_tree, 'test')
    infos = test.load_data_list()
    assert test.metainfo['defect_types'] == ('good', 'crack', 'color')
    by_type = {defect: [info for info in infos if info['defect_type'] == defect] for defect in ('good', 'crack',
                                                                                               'color')}
    assert [len(value) for value in by_type.values()] == [2, 2, 2]
    assert all(info['label'] == 0 and info['gt_path'] is None and not info['mask_missing'] for info in by_type['good'])
    assert all(info['label'] == 1 and info['gt_path'].endswith(f'{Path(info["rgb_path"]).stem}_mask.png')
               and not info['mask_missing'] for info in by_type['crack'])
    assert all(info['label'] == 1 and info['gt_path'] is None and info['mask_missing'] for info in by_type['color'])


def test_abnormal_folders_as_one_folder_or_by_defect_type(source_tree):
    one = dataset(source_tree, 'test', test_normal_dir=None, abnormal_dirs='crack', mask_dirs=None)
    assert one.metainfo['defect_types'] == ('crack', )
    assert [info['mask_missing'] for info in one.load_data_list()] == [True, True]
    named = dataset(source_tree, 'test', abnormal_dirs=dict(cracked='crack'),
                    mask_dirs=dict(cracked='masks/crack/*_mask.png'))
    assert named.metainfo['defect_types'] == ('good', 'cracked')
    assert [info['sample_name'] for info in named.load_data_list()] == [
        'good_part_010', 'good_part_011', 'cracked_part_012', 'cracked_part_013']


def test_modality_sub_folders_read_the_benchmark_layout(tmp_path):
    """Sub-folder patterns ('rgb', 'xyz/*.tiff', 'gt/*.png') read an MVTec 3D-AD-format category."""
    category = make_synthetic_mvtec3d(tmp_path, 'toy', 24, 24, num_train=3, num_val=0, num_test_per_defect=1,
                                      defect_types=('crack', ))
    layout = dict(data_root=str(category), modalities=dict(rgb='rgb', xyz='xyz/*.tiff'), normal_dir='train/good',
                  test_normal_dir='test/good', abnormal_dirs=dict(crack='test/crack'),
                  mask_dirs=dict(crack='test/crack/gt/*.png'))
    test = FolderDataset(split='test', **layout)
    assert [(info['sample_name'], Path(info['rgb_path']).name, Path(info['xyz_path']).name, info['gt_path'])
            for info in test.load_data_list()] == [
        ('good_000', '000.png', '000.tiff', None),
        ('crack_000', '000.png', '000.tiff', str(category / 'test' / 'crack' / 'gt' / '000.png'))]
    assert len(FolderDataset(split='train', **layout)) == 2


def test_pipeline_packs_jpg_and_depth_png(source_tree):
    test = dataset(source_tree, 'test', pipeline=[
        dict(type='LoadRGBFromFile'), dict(type='LoadDepthFromFile'), dict(type='LoadMaskFromFile'),
        dict(type='PackADInputs', modalities=('rgb', 'depth'))])
    packed = test[len(test) - 1]
    assert packed['inputs']['rgb'].shape == (3, 32, 32) and packed['inputs']['depth'].shape[-2:] == (32, 32)
    assert packed['data_samples'].mask_missing is True and int(packed['data_samples'].gt_label) == 1
    crack = test[2]
    assert crack['data_samples'].defect_type == 'crack' and crack['data_samples'].gt_mask.any()


def test_load_depth_from_16_bit_png_follows_the_xyz_depth(source_tree):
    depth_path = source_tree / 'train_good' / 'part_000_depth.png'
    encoded = cv2.imread(str(depth_path), cv2.IMREAD_UNCHANGED)
    assert encoded.dtype == np.uint16 and encoded.ndim == 2
    z = tifffile.imread(source_tree / 'train_good' / 'part_000.tiff')[..., 2]
    np.testing.assert_allclose(encoded / DEPTH_UNITS_PER_METRE, z, atol=0.6 / DEPTH_UNITS_PER_METRE)
    depth = LoadDepthFromFile()(dict(depth_path=str(depth_path)))['depth']
    valid = encoded > 0
    assert depth.dtype == np.float32 and (depth[~valid] == 0).all()
    assert depth[valid].min() == pytest.approx(0.1) and depth[valid].max() == pytest.approx(0.9)
    values = encoded[valid].astype(np.float64)
    expected = 0.1 + 0.8 * (values - values.min()) / (values.max() - values.min())
    np.testing.assert_allclose(depth[valid], expected, atol=1e-6)


def test_load_depth_refuses_colour_and_empty_maps(tmp_path):
    cv2.imwrite(str(tmp_path / 'colour.png'), np.zeros((4, 4, 3), np.uint8))
    cv2.imwrite(str(tmp_path / 'empty.png'), np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match=r'colour.png: expected a single-channel 8- or 16-bit depth image'):
        LoadDepthFromFile()(dict(depth_path=str(tmp_path / 'colour.png')))
    with pytest.raises(ValueError, match=r'empty.png: every pixel is missing'):
        LoadDepthFromFile()(dict(depth_path=str(tmp_path / 'empty.png')))


def test_missing_modality_folder(tree):
    before = snapshot(tree)
    with pytest.raises(FileNotFoundError) as error:
        dataset(tree, modalities=dict(rgb='*.jpg', ir='ir/*.png'))
    message = str(error.value)
    assert '\n' not in message
    assert f'ir folder {tree / "train_good" / "ir"} does not exist' in message and "'ir/*.png'" in message
    assert snapshot(tree) == before


def test_sample_missing_one_modality(tree):
    (tree / 'crack' / 'part_013.tiff').unlink()
    with pytest.raises(ValueError) as error:
        dataset(tree, 'test')
    assert f"files under {tree / 'crack'} do not pair up" in str(error.value)
    assert (f"sample 'part_013' has no xyz file (expected '*.tiff' under {tree / 'crack'}; found "
            f"{tree / 'crack' / 'part_013.jpg'}, {tree / 'crack' / 'part_013_depth.png'})") in str(error.value)


def test_mask_that_matches_no_image(tree):
    shutil.copyfile(tree / 'masks' / 'crack' / 'part_012_mask.png', tree / 'masks' / 'crack' / 'part_099_mask.png')
    with pytest.raises(ValueError, match=(r"mask .*part_099_mask.png matches no crack sample \(sample name "
                                          r"'part_099'; samples: part_012, part_013\)")):
        dataset(tree, 'test')


def test_mask_of_another_size(tree):
    mask = tree / 'masks' / 'crack' / 'part_013_mask.png'
    cv2.imwrite(str(mask), np.zeros((16, 24), np.uint8))
    with pytest.raises(ValueError) as error:
        dataset(tree, 'test')
    message = str(error.value)
    assert '\n' not in message
    assert message.startswith(f'{mask} is 16x24 (HxW) but {tree / "test_good" / "part_010.jpg"} is 32x32')
    assert 'expected every gt file, like every file of the dataset, to have one size' in message


def test_mixed_sizes_within_a_modality(tree):
    image = dataset(tree).get_data_info(-1)['rgb_path']
    cv2.imwrite(image, np.zeros((40, 32, 3), np.uint8))
    with pytest.raises(ValueError, match=(rf'^{image} is 40x32 \(HxW\) but \S+\.jpg is 32x32; expected every rgb '
                                          'file')):
        dataset(tree)


def test_empty_normal_folder(tree):
    shutil.rmtree(tree / 'train_good')
    (tree / 'train_good').mkdir()
    with pytest.raises(FileNotFoundError, match=rf'^good folder {tree / "train_good"} is empty; expected the '
                                                  'samples of .good. there'):
        dataset(tree)
    (tree / 'train_good' / 'notes.txt').write_text('no images')
    with pytest.raises(FileNotFoundError, match=rf'^{tree / "train_good"} holds no sample: no file matches'):
        dataset(tree)


def test_too_few_normal_samples_to_hold_out(tree):
    for path in (tree / 'train_good').iterdir():
        if not path.name.startswith(('part_000', 'part_001')):
            path.unlink()
    with pytest.raises(ValueError) as error:
        dataset(tree, 'validation', holdout_fraction=0.2)
    assert str(error.value) == (f'normal folder {tree / "train_good"} holds 2 sample(s); holding out '
                                'holdout_fraction=0.2 of them for the validation statistics and the threshold needs '
                                'at least 3 (one held out, one to train): add normal samples')
    assert len(dataset(tree, 'validation', holdout_fraction=0.5)) == 1


def test_configuration_errors(source_tree):
    with pytest.raises(ValueError, match="mask_dirs names defect types \\['dent'\\]"):
        dataset(source_tree, mask_dirs=dict(dent='masks/dent/*.png'))
    with pytest.raises(ValueError, match=r'holdout_fraction must lie in \(0, 1\), got 1.0'):
        dataset(source_tree, holdout_fraction=1.0)
    with pytest.raises(ValueError, match='split test needs test_normal_dir or abnormal_dirs'):
        dataset(source_tree, 'test', test_normal_dir=None, abnormal_dirs=(), mask_dirs=None)


def predicted_sample(index: int, defect_type: str, mask: np.ndarray, score_map: np.ndarray,
                     mask_missing: bool) -> BaseDataElement:
    """A predicted data sample as ADMetric receives it (one branch, rgb)."""
    sample = BaseDataElement(metainfo=dict(img_path=f'{defect_type}/{index:03d}.jpg', defect_type=defect_type,
                                           gt_path=None, ori_shape=mask.shape, mask_missing=mask_missing))
    sample.gt_label = torch.tensor(int(defect_type != 'good'))
    sample.gt_mask = torch.from_numpy(mask)
    sample.pred_score = torch.tensor(float(score_map.max()))
    sample.anomaly_map = torch.from_numpy(score_map)
    sample.branch_scores = dict(rgb=sample.pred_score)
    sample.branch_maps = dict(rgb=sample.anomaly_map)
    return sample


def test_samples_without_mask_count_in_image_metrics_only(tmp_path):
    """color (no masks) is anomalous for I-AUROC; the pixel metrics are those of good + crack, null for color."""
    rng = np.random.default_rng(0)
    samples = []
    for index, defect_type in enumerate(['good'] * 4 + ['crack'] * 3 + ['color'] * 3):
        mask = np.zeros((16, 16), dtype=bool)
        if defect_type == 'crack':
            mask[4:8, 4:8] = True
        score_map = (rng.random((16, 16)) + 2 * mask + (defect_type == 'color')).astype(np.float32)
        samples.append(predicted_sample(index, defect_type, mask, score_map, defect_type == 'color'))
    evaluator = Evaluator(ADMetric(out_dir=str(tmp_path)))
    evaluator.process(samples)
    metrics = evaluator.evaluate(len(samples))
    reference = Evaluator(ADMetric())
    reference.process(samples[:7])
    masked_only = reference.evaluate(7)
    assert metrics['fused/color/I-AUROC'] == 1.0 and metrics['fused/all/I-AUROC'] == 1.0
    assert metrics['fused/all/P-AUROC'] == masked_only['fused/all/P-AUROC']
    assert metrics['fused/all/AUPRO@0.3'] == masked_only['fused/all/AUPRO@0.3']
    assert all(np.isnan(metrics[f'fused/color/{name}']) for name in ('P-AUROC', 'AUPRO@0.3', 'P-AP'))
    notes = json.loads((tmp_path / 'metrics.json').read_text())['notes']
    assert notes == [
        "3 anomalous sample(s) have no ground-truth mask (defect types ['color']): they count in the image metrics; "
        'pixel metrics are computed on the samples with masks and are not available where none of them is '
        'anomalous.',
        "P-AUROC, AUPRO@0.3, P-AP null in subset 'color': its anomalous samples have no ground-truth mask, so pixel "
        'metrics are not available.']
    with open(tmp_path / 'scores.csv') as file:
        labels = [line.split(',') for line in file.read().splitlines()]
    label_column = labels[0].index('label')
    assert [int(row[label_column]) for row in labels[1:]] == [0] * 4 + [1] * 6


def load_tool(name: str):
    """tools/<name>.py imported as a module (its main() takes the command-line arguments)."""
    spec = importlib.util.spec_from_file_location(f'mmad_folder_test_{Path(name).name}', REPO / 'tools' / f'{name}.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_dry_run_reports_a_broken_tree(tree):
    (tree / 'crack' / 'part_013.tiff').unlink()
    before = snapshot(tree)
    with pytest.raises(SystemExit) as exited:
        load_tool('train').main([str(REPO / 'configs' / 'folder' / 'crd_folder_rgbd.py'), '--data-root', str(tree),
                                 '--work-dir', str(tree.parent / 'work'), '--dry-run'])
    assert (f"sample 'part_013' has no xyz file (expected '*.tiff' under {tree / 'crack'}; found "
            f"{tree / 'crack' / 'part_013.jpg'}") in str(exited.value.code)
    assert snapshot(tree) == before


CONFIG_MODALITIES = {
    'crd_folder_rgbd.py': ['rgb', 'depth'],
    'crd_folder_rgbd_png.py': ['rgb', 'depth'],
    'crd_folder_rgbn.py': ['rgb', 'normals'],
    'crd_folder_rgb.py': ['rgb'],
}
SMALL_RUN = ['train_cfg.max_epochs=1', 'train_dataloader.batch_size=4', 'train_dataloader.num_workers=0',
             'train_dataloader.persistent_workers=False', 'val_stats_dataloader.num_workers=0',
             'test_dataloader.num_workers=0']
SMALL_SIZE = 64  # the tree's images are 32x32: the configs' 256 px only enlarge them


def small_size_options(config: str) -> list[str]:
    """--cfg-options setting the size of every pipeline step that has one to SMALL_SIZE."""
    cfg = Config.fromfile(REPO / 'configs' / 'folder' / config)
    return [f'{loader}.dataset.pipeline.{index}.size={SMALL_SIZE}'
            for loader in ('train_dataloader', 'val_stats_dataloader', 'test_dataloader')
            for index, step in enumerate(cfg[loader].dataset.pipeline) if 'size' in step]


@pytest.mark.slow
@pytest.mark.parametrize('config', sorted(CONFIG_MODALITIES))
def test_config_trains_and_tests_on_a_free_layout(config, source_tree, tmp_path):
    """Each config of configs/folder trains one epoch and tests on the tree (at 64 px), which stays untouched."""
    before = snapshot(source_tree)
    work_dir = tmp_path / 'work'
    config_path = str(REPO / 'configs' / 'folder' / config)
    common = ['--data-root', str(source_tree), '--work-dir', str(work_dir)]
    small_size = small_size_options(config)
    load_tool('train').main([config_path, *common, '--cfg-options', *SMALL_RUN, *small_size])
    checkpoint = torch.load(work_dir / 'epoch_1.pth', map_location='cpu', weights_only=True)
    holdout = checkpoint['meta']['dataset_meta']['holdout']
    assert holdout['normal_samples'] == 10 and len(holdout['held_out']) == 2 and holdout['seed'] == 0
    assert checkpoint['meta']['mmad']['modalities'] == CONFIG_MODALITIES[config]
    load_tool('test').main([config_path, str(work_dir / 'epoch_1.pth'), *common, '--cfg-options',
                            'test_dataloader.num_workers=0', *small_size])
    metrics = json.loads((work_dir / 'metrics.json').read_text())
    fused = metrics['fused']
    assert set(fused) == {'all', 'crack', 'color'}
    assert all(0 <= fused[subset][name] <= 1 for subset in fused for name in ('I-AUROC', 'I-AP'))
    assert all(fused['color'][name] is None for name in ('P-AUROC', 'AUPRO@0.3', 'P-AP'))
    assert fused['crack']['P-AUROC'] is not None and fused['all']['P-AUROC'] is not None
    assert any("2 anomalous sample(s) have no ground-truth mask (defect types ['color'])" in note
               for note in metrics['notes'])
    assert any(note.startswith("P-AUROC, AUPRO@0.3, P-AP null in subset 'color': its anomalous samples have no "
                               'ground-truth mask') for note in metrics['notes'])
    assert snapshot(source_tree) == before


def test_browse_dataset_shows_each_modality_of_a_folder_config(source_tree, tmp_path, capsys):
    """tools/analysis_tools/browse_dataset.py on a FolderDataset config: rgb, 16-bit png depth and the mask."""
    before = snapshot(source_tree)
    out = tmp_path / 'browse'
    load_tool('analysis_tools/browse_dataset').main([str(REPO / 'configs' / 'folder' / 'crd_folder_rgbd_png.py'),
                                                     '--data-root', str(source_tree), '--num', '3', '--out', str(out)])
    assert '3 samples of the test split' in capsys.readouterr().out
    from mmad.visualization import TITLE_BAR
    files = sorted(out.rglob('*.png'))
    assert len(files) == 3
    for file in files:
        panel = cv2.imread(str(file))
        assert panel.shape == (256 + TITLE_BAR, 256 * 3, 3)  # rgb, depth, mask tiles of the 256 px pipeline
        depth = panel[TITLE_BAR:, 256:512]
        assert (depth[..., 0] == depth[..., 2]).all() and depth.max() > depth.min()  # grey, not empty
        assert set(np.unique(panel[TITLE_BAR:, 512:])) <= {0, 255}
    assert snapshot(source_tree) == before
