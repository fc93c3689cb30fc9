"""mmad.apis on a tiny trained CRD: native-size maps, the tools/test.py score, decisions, arrays, batches, bad input."""
import csv
import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from tiny_crd_model import HEIGHT, WIDTH

from mmad.apis import InferenceInputError, inference_model, init_model
from mmad.utils import load_from_local_safely
from mmad.utils.fileio import atomic_open

TOOLS = Path(__file__).resolve().parents[2] / 'tools'


@pytest.fixture(scope='module')
def model(tiny_crd):
    return init_model(tiny_crd['config'], tiny_crd['checkpoint'])


def files_of(category_dir: Path, defect: str, stem: str = '000', split: str = 'test') -> dict:
    folder = category_dir / split / defect
    return dict(rgb=str(folder / 'rgb' / f'{stem}.png'), xyz=str(folder / 'xyz' / f'{stem}.tiff'))


def test_maps_at_native_size_with_branch_maps_and_mask(tiny_crd, model):
    sample = files_of(tiny_crd['category_dir'], 'crack')
    sample['mask'] = str(tiny_crd['category_dir'] / 'test' / 'crack' / 'gt' / '000.png')
    result = inference_model(model, sample)
    assert result.anomaly_map.shape == (HEIGHT, WIDTH) and result.ori_shape == (HEIGHT, WIDTH)
    assert set(result.branch_maps) == {'rgb', 'depth'}
    assert all(branch_map.shape == (HEIGHT, WIDTH) for branch_map in result.branch_maps.values())
    assert np.isfinite(result.anomaly_map).all()
    assert result.gt_mask.shape == (HEIGHT, WIDTH) and result.gt_mask.any()
    assert result.inputs['rgb'].shape == (3, 64, 64) and result.inputs['depth'].shape == (1, 64, 64)
    assert result.name == '000' and result.files == dict(rgb=sample['rgb'], xyz=sample['xyz'])
    # the image score is the maximum of the fused map at the model's size (64x64); resizing interpolates below it
    assert result.score - 0.1 < result.anomaly_map.max() <= result.score + 1e-5


def test_score_equals_the_test_tool_score(tiny_crd, model, tmp_path):
    spec = importlib.util.spec_from_file_location('mmad_test_tool', TOOLS / 'test.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), '--work-dir', str(tmp_path)])
    with open(tmp_path / 'scores.csv') as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8 and {row['defect_type'] for row in rows} == {'good', 'color', 'dent', 'crack'}
    samples = [dict(rgb=row['name'], xyz=row['name'].replace('/rgb/', '/xyz/').replace('.png', '.tiff'))
               for row in rows]
    results = inference_model(model, samples, batch_size=3)
    for row, result in zip(rows, results):
        assert result.score == pytest.approx(float(row['score']), rel=1e-5)
        assert result.branch_scores['rgb'] == pytest.approx(float(row['rgb_score']), rel=1e-5)
        assert int(row['pred_label']) == result.decision  # the test run used the checkpoint's threshold
    curves = np.load(tmp_path / 'curves.npz')
    assert 'fused/image_roc/fpr' in curves and 'depth/pro/pro' in curves
    tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), '--work-dir', str(tmp_path / 'manual'),
               '--threshold=-1e9'])
    with open(tmp_path / 'manual' / 'scores.csv') as file:
        assert [row['pred_label'] for row in csv.DictReader(file)] == ['1'] * 8
    assert 'Decision threshold set by hand: -1e+09 (manual).' in next((tmp_path / 'manual').glob('*/*.log')).read_text()
    with pytest.raises(SystemExit, match='--threshold needs ValidationStatisticsHook'):
        tool.main([str(tiny_crd['config']), str(tiny_crd['checkpoint']), '--threshold=1',
                   '--cfg-options', 'custom_hooks=[]'])


def test_quantile_threshold_equals_numpy_on_the_validation_scores(tiny_crd, model):
    samples = [files_of(tiny_crd['category_dir'], 'good', stem, split='validation') for stem in ('000', '001', '002',
                                                                                               '003')]
    scores = [result.score for result in inference_model(model, samples)]
    assert model.decision_threshold == pytest.approx(np.quantile(scores, 0.99), rel=1e-6)
    assert model.threshold_rule == 'quantile' and float(model.threshold.quantile) == 0.99
    log = next(tiny_crd['work_dir'].glob('*/*.log')).read_text()
    assert 'the 0.99-quantile of the image scores of 4 normal validation samples' in log
    assert 'With fewer than 100 scores the 0.99-quantile is close to the maximum normal score' in log
    assert 'with the fitted aggregator and decision threshold' in log  # the checkpoint was re-saved


def test_decision_follows_the_threshold(tiny_crd, model):
    sample = files_of(tiny_crd['category_dir'], 'color')
    result = inference_model(model, sample)
    assert model.threshold_rule == 'quantile' and result.threshold == model.decision_threshold
    assert result.decision == int(result.score > model.decision_threshold)
    below, above = inference_model(model, [sample, sample], threshold=result.score - 1e-3), \
        inference_model(model, sample, threshold=result.score + 1e-3)
    assert [item.decision for item in below] == [1, 1] and below[0].label == 'anomalous'
    assert above.decision == 0 and above.label == 'good'


def test_arrays_and_batches_score_as_files(tiny_crd, model):
    samples = [files_of(tiny_crd['category_dir'], defect) for defect in ('good', 'dent', 'crack')]
    singles = [inference_model(model, sample).score for sample in samples]
    batched = [result.score for result in inference_model(model, samples, batch_size=2)]
    assert batched == pytest.approx(singles, rel=1e-5)
    rgb = cv2.cvtColor(cv2.imread(samples[1]['rgb']), cv2.COLOR_BGR2RGB)
    xyz = tifffile.imread(samples[1]['xyz'])
    from_arrays = inference_model(model, dict(rgb=rgb, xyz=xyz, name='dent'))
    assert from_arrays.name == 'dent' and from_arrays.score == pytest.approx(singles[1], rel=1e-5)
    assert from_arrays.anomaly_map.shape == (HEIGHT, WIDTH)


def test_old_checkpoint_without_threshold_loads_with_decisions_off(tiny_crd, tmp_path):
    checkpoint = load_from_local_safely(str(tiny_crd['checkpoint']))
    checkpoint['state_dict'] = {key: value for key, value in checkpoint['state_dict'].items()
                                if not key.startswith('threshold.')}
    old = tmp_path / 'old.pth'
    with atomic_open(old, 'wb') as file:
        torch.save(checkpoint, file)
    model = init_model(tiny_crd['config'], old)
    assert model.decision_threshold is None and model.threshold_rule is None
    result = inference_model(model, files_of(tiny_crd['category_dir'], 'dent'))
    assert result.decision is None and result.threshold is None and result.label == 'undecided'
    assert inference_model(model, files_of(tiny_crd['category_dir'], 'dent'), threshold=-1e9).decision == 1


def test_a_model_without_statistics_is_refused(tiny_crd):
    with pytest.raises(RuntimeError, match='NormalizedSum is not fitted: the checkpoint holds no statistics'):
        inference_model(init_model(tiny_crd['config']), files_of(tiny_crd['category_dir'], 'dent'))


def write_tiff(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(str(path), array)
    return str(path)


def test_missing_modality(tiny_crd, model):
    sample = files_of(tiny_crd['category_dir'], 'dent')
    with pytest.raises(InferenceInputError, match=r'sample 000: missing modality xyz; the test pipeline reads rgb, '
                                                   r'xyz \(got rgb\)\.'):
        inference_model(model, dict(rgb=sample['rgb']))
    with pytest.raises(InferenceInputError, match=r'unknown input depth; the test pipeline reads rgb, xyz'):
        inference_model(model, dict(sample, depth=sample['xyz']))


def test_wrong_image_size(tiny_crd, model, tmp_path):
    sample = files_of(tiny_crd['category_dir'], 'dent')
    xyz = tifffile.imread(sample['xyz'])
    small = write_tiff(tmp_path / 'xyz' / 'small.tiff', cv2.resize(xyz, (40, 30), interpolation=cv2.INTER_NEAREST))
    with pytest.raises(InferenceInputError, match=r'small.tiff: the xyz file is 30x40 \(HxW\) but the rgb file '
                                                   r'.*000.png is 48x64; a sample\'s files must have the same size'):
        inference_model(model, dict(rgb=sample['rgb'], xyz=small))
    rgb = cv2.imread(sample['rgb'])[:30, :40, ::-1].copy()
    with pytest.raises(InferenceInputError, match=r'the arrays have different sizes \(rgb 30x40, xyz 48x64, HxW\)'):
        inference_model(model, dict(rgb=rgb, xyz=xyz))


def test_wrong_channel_count(tiny_crd, model, tmp_path):
    sample = files_of(tiny_crd['category_dir'], 'dent')
    xyz = tifffile.imread(sample['xyz'])
    one_channel = write_tiff(tmp_path / 'xyz' / 'z.tiff', np.ascontiguousarray(xyz[..., 2]))
    with pytest.raises(InferenceInputError, match=r'z.tiff: expected an organised point cloud of shape \(H, W, 3\), '
                                                   r'got shape \(48, 64\)'):
        inference_model(model, dict(rgb=sample['rgb'], xyz=one_channel))
    rgba = np.zeros((HEIGHT, WIDTH, 4), np.uint8)
    with pytest.raises(InferenceInputError, match=r'the rgb array has shape \(48, 64, 4\); expected \(H, W, 3\)'):
        inference_model(model, dict(rgb=rgba, xyz=xyz))


def test_nan_in_xyz(tiny_crd, model, tmp_path):
    sample = files_of(tiny_crd['category_dir'], 'dent')
    xyz = tifffile.imread(sample['xyz'])
    partly = xyz.copy()
    partly[:5] = np.nan
    with pytest.warns(UserWarning, match=r'320 points of the xyz array have NaN/inf coordinates and are treated as '
                                          r'missing'):
        result = inference_model(model, dict(rgb=sample['rgb'], xyz=partly))
    assert np.isfinite(result.score)
    all_nan = write_tiff(tmp_path / 'xyz' / 'nan.tiff', np.full_like(xyz, np.nan))
    with pytest.raises(InferenceInputError, match=r'nan.tiff: every point is missing \(z = 0, NaN or inf\): the '
                                                   r'point cloud is empty'):
        inference_model(model, dict(rgb=sample['rgb'], xyz=all_nan))
    with pytest.raises(InferenceInputError, match='every value of the xyz array is NaN or inf'):
        inference_model(model, dict(rgb=sample['rgb'], xyz=np.full_like(xyz, np.nan)))


def test_unreadable_files(tiny_crd, model, tmp_path):
    sample = files_of(tiny_crd['category_dir'], 'dent')
    broken = tmp_path / 'rgb' / 'broken.png'
    broken.parent.mkdir()
    broken.write_bytes(b'\x89PNG\r\n\x1a\n truncated')
    with pytest.raises(InferenceInputError, match=r'broken.png is not a readable PNG image: the file is corrupt, '
                                                   r'truncated or of another format'):
        inference_model(model, dict(rgb=str(broken), xyz=sample['xyz']))
    with pytest.raises(InferenceInputError, match=r'sample nowhere: .*nowhere.png does not exist'):
        inference_model(model, dict(rgb=str(tmp_path / 'nowhere.png'), xyz=sample['xyz']))
    copied = shutil.copy(sample['xyz'], tmp_path / 'copy.tiff')
    assert np.isfinite(inference_model(model, dict(rgb=sample['rgb'], xyz=str(copied))).score)
