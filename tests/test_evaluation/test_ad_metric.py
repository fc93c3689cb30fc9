import json
import math
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmengine.logging import MessageHub, MMLogger
from mmengine.structures import BaseDataElement
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from mmad.evaluation.functional import au_pro, auroc, average_precision, pixel_metrics
from mmad.evaluation.metrics import ADMetric, format_metrics_table
from mmad.evaluation.metrics.results_table import format_percent
from mmad.evaluation.metrics.run_record import run_record
from mmad.registry import METRICS

SIZE = 16
MODALITIES = ('rgb', 'depth')
DEFECTS = ['good'] * 4 + ['crack'] * 4 + ['hole'] * 4 + ['scratch'] * 2
MODALITIES_AND_FUSED = ('fused', *MODALITIES)
METRIC_NAMES = ['I-AUROC', 'P-AUROC', 'AUPRO@0.3', 'AUPRO@0.05', 'I-AP', 'P-AP']


def make_arrays(seed: int = 0) -> dict:
    """Masks and maps of every sample: good and scratch all normal, crack and hole with blobs."""
    rng = np.random.default_rng(seed)
    num = len(DEFECTS)
    masks = ndimage.gaussian_filter(rng.random((num, SIZE, SIZE)), (0, 2, 2)) > 0.53
    for index, defect in enumerate(DEFECTS):
        if defect in ('good', 'scratch'):
            masks[index] = False
    masks[4, 2:5, 2:5] = True  # every crack sample has a region
    arrays = dict(masks=masks)
    for source in ('fused', *MODALITIES):
        maps = (masks * rng.uniform(0.2, 1.5) + rng.normal(0.0, 0.6, masks.shape)).astype(np.float32)
        arrays[source] = maps
        arrays[f'{source}_scores'] = maps.max(axis=(1, 2)).astype(np.float64)
    return arrays


def data_sample(arrays: dict, index: int, **metainfo) -> BaseDataElement:
    """A predicted data sample as ADDataSample holds it; its to_dict() is what ADMetric.process receives."""
    sample = BaseDataElement(metainfo={
        'img_path': f'test/{DEFECTS[index]}/rgb/{index:03d}.png', 'defect_type': DEFECTS[index], 'category': 'toy',
        'ori_shape': (SIZE, SIZE), 'gt_path': None, **metainfo})
    sample.gt_label = torch.tensor(int(DEFECTS[index] != 'good'))
    sample.gt_mask = torch.from_numpy(arrays['masks'][index])
    sample.pred_score = torch.tensor(arrays['fused_scores'][index], dtype=torch.float32)
    sample.anomaly_map = torch.from_numpy(arrays['fused'][index])
    sample.branch_scores = {m: torch.tensor(arrays[f'{m}_scores'][index], dtype=torch.float32) for m in MODALITIES}
    sample.branch_maps = {m: torch.from_numpy(arrays[m][index]) for m in MODALITIES}
    return sample


def evaluate(metric: ADMetric, samples: list[BaseDataElement], batch_size: int = 5) -> dict:
    evaluator = Evaluator(metric)
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def expected_metrics(arrays: dict, source: str, indices: np.ndarray, masks: list | None = None,
                     maps: list | None = None) -> dict:
    masks = [arrays['masks'][i] for i in indices] if masks is None else [masks[i] for i in indices]
    maps = [arrays[source][i] for i in indices] if maps is None else [maps[i] for i in indices]
    labels = np.array([mask.any() for mask in masks])
    scores = arrays[f'{source}_scores'][indices].astype(np.float32)
    pixel_labels = np.concatenate([mask.ravel() for mask in masks])
    pixel_scores = np.concatenate([score_map.ravel() for score_map in maps])
    return {
        'I-AUROC': auroc(labels, scores) if labels.any() and not labels.all() else math.nan,
        'P-AUROC': auroc(pixel_labels, pixel_scores),
        'AUPRO@0.3': au_pro(maps, masks, 0.3),
        'AUPRO@0.05': au_pro(maps, masks, 0.05),
        'I-AP': average_precision(labels, scores),
        'P-AP': average_precision(pixel_labels, pixel_scores),
    }


def assert_metrics_equal(actual: dict, expected: dict):
    assert list(actual) == METRIC_NAMES
    for name in METRIC_NAMES:
        if math.isnan(expected[name]):
            assert actual[name] is None or math.isnan(actual[name]), name
        else:
            assert actual[name] == pytest.approx(expected[name], abs=1e-9), name


@pytest.fixture
def logger(tmp_path):
    return MMLogger.get_instance(f'test_ad_metric_{tmp_path.name}', log_file=str(tmp_path / 'eval.log'))


def test_end_to_end_json_flat_dict_and_table(tmp_path, logger):
    arrays = make_arrays()
    samples = [data_sample(arrays, index) for index in range(len(DEFECTS))]
    metric = METRICS.build(dict(type='ADMetric', integration_limits=(0.3, 0.05), out_dir=str(tmp_path / 'work')))
    flat = evaluate(metric, samples)

    with open(tmp_path / 'work' / 'metrics.json') as file:
        saved = json.load(file)
    assert list(saved) == ['fused', 'rgb', 'depth', 'notes', 'run']
    assert saved['notes'] == [
        "2 sample(s) of a defect type other than 'good' have no anomalous pixel in their ground truth at the "
        "evaluated resolution ('map') and count as normal images: test/scratch/rgb/012.png, test/scratch/rgb/013.png.",
        "I-AUROC, P-AUROC, AUPRO@0.3, AUPRO@0.05, I-AP, P-AP null in subset 'scratch': it holds no anomalous image "
        "(no ground-truth mask of its samples has an anomalous pixel)."]
    saved = {source: saved[source] for source in MODALITIES_AND_FUSED}
    defects = np.array(DEFECTS)
    subsets = {'all': np.arange(len(DEFECTS)), 'crack': np.flatnonzero(np.isin(defects, ['good', 'crack'])),
               'hole': np.flatnonzero(np.isin(defects, ['good', 'hole'])),
               'scratch': np.flatnonzero(np.isin(defects, ['good', 'scratch']))}
    for source in saved:
        assert list(saved[source]) == list(subsets)
        for subset, indices in subsets.items():
            expected = expected_metrics(arrays, source, indices)
            assert_metrics_equal(saved[source][subset], expected)
            for name in METRIC_NAMES:
                value = flat[f'{source}/{subset}/{name}']
                assert (math.isnan(value) and saved[source][subset][name] is None) or \
                    value == saved[source][subset][name]
    assert len(flat) == 3 * 4 * len(METRIC_NAMES)

    # Image level against scikit-learn; scratch samples are all normal, so the scratch subset is one class.
    labels = arrays['masks'].any(axis=(1, 2))
    assert saved['fused']['all']['I-AUROC'] == pytest.approx(roc_auc_score(labels, arrays['fused_scores']))
    assert saved['rgb']['scratch']['I-AUROC'] is None and saved['rgb']['scratch']['AUPRO@0.3'] is None
    assert math.isnan(flat['rgb/scratch/P-AP'])

    log_text = (tmp_path / 'eval.log').read_text()
    assert format_metrics_table(saved_as_floats(saved)) in log_text
    rows = [line for line in log_text.splitlines() if line.startswith('| depth ') and '| hole ' in line]
    assert len(rows) == 1
    cells = [cell.strip() for cell in rows[0].strip('|').split('|')]
    assert cells[2:] == [format_percent(flat[f'depth/hole/{name}']) for name in METRIC_NAMES]
    assert cells[2] == f'{100 * saved["depth"]["hole"]["I-AUROC"]:.1f}'


def saved_as_floats(saved: dict) -> dict:
    return {source: {subset: {name: math.nan if value is None else value for name, value in values.items()}
                     for subset, values in subsets.items()} for source, subsets in saved.items()}


def test_samples_are_kept_in_cpu_arrays_of_the_chosen_dtype():
    arrays = make_arrays()
    metric = ADMetric(map_dtype='float16')
    metric.process(None, [data_sample(arrays, index).to_dict() for index in (0, 5)])
    samples = metric.samples
    assert len(samples) == 2 and samples.sources == ('fused', 'rgb', 'depth')
    assert all(samples.maps(source).dtype == np.float16 and samples.maps(source).shape == (2, SIZE, SIZE)
               for source in samples.sources)
    assert samples.gt_masks.dtype == bool and samples.gt_masks.shape == (2, SIZE, SIZE)
    assert samples.scores('rgb')[1] == pytest.approx(arrays['rgb_scores'][5], rel=1e-6)
    assert samples.defect_types == ['good', 'crack'] and samples.ori_shapes[1].tolist() == [SIZE, SIZE]
    np.testing.assert_array_equal(samples.maps('depth')[1], arrays['depth'][5].astype(np.float16))


def test_without_branches_reports_fused_only(logger):
    arrays = make_arrays(1)
    samples = []
    for index in range(len(DEFECTS)):
        sample = data_sample(arrays, index)
        del sample.branch_scores, sample.branch_maps
        samples.append(sample)
    flat = evaluate(ADMetric(), samples)
    assert {key.split('/')[0] for key in flat} == {'fused'}
    assert flat['fused/all/AUPRO@0.3'] == pytest.approx(au_pro(arrays['fused'], arrays['masks']), abs=1e-12)


def test_native_resolution_reads_and_binarises_gt_and_upsamples_maps(tmp_path, logger):
    arrays = make_arrays(2)
    native_shape = (24, 20)
    rng = np.random.default_rng(3)
    native_masks, samples = [], []
    for index, defect in enumerate(DEFECTS):
        mask = np.zeros(native_shape, dtype=bool)
        gt_path = None
        if defect in ('crack', 'hole'):
            mask = ndimage.gaussian_filter(rng.random(native_shape), 2) > 0.52
            mask[3:6, 4:8] = True
            gt_path = str(tmp_path / f'{index:03d}_mask.png')
            cv2.imwrite(gt_path, np.where(mask, rng.choice([253, 255], native_shape), 0).astype(np.uint8))
        native_masks.append(mask)
        samples.append(data_sample(arrays, index, ori_shape=native_shape, gt_path=gt_path))
    flat = evaluate(ADMetric(resolution='native', integration_limits=(0.3, 0.05)), samples)

    upsampled = [cv2.resize(score_map, native_shape[::-1], interpolation=cv2.INTER_LINEAR)
                 for score_map in arrays['depth']]
    assert upsampled[0].shape == native_shape
    indices = np.flatnonzero(np.isin(np.array(DEFECTS), ['good', 'hole']))
    expected = expected_metrics(arrays, 'depth', indices, masks=native_masks, maps=upsampled)
    assert_metrics_equal({name: flat[f'depth/hole/{name}'] for name in METRIC_NAMES}, expected)
    result = pixel_metrics(upsampled, native_masks, (0.3,))
    assert flat['depth/all/P-AUROC'] == pytest.approx(result.auroc, abs=1e-12)
    assert flat['depth/all/AUPRO@0.3'] == pytest.approx(result.au_pros[0], abs=1e-12)


def test_native_resolution_rejects_a_mask_of_the_wrong_size(tmp_path, logger):
    arrays = make_arrays()
    gt_path = str(tmp_path / 'small_mask.png')
    cv2.imwrite(gt_path, np.full((5, 5), 255, dtype=np.uint8))
    samples = [data_sample(arrays, index) for index in range(4)]
    samples.append(data_sample(arrays, 4, gt_path=gt_path))
    with pytest.raises(ValueError, match=r'small_mask.png: ground-truth mask has shape \(5, 5\), expected ori_shape'):
        evaluate(ADMetric(resolution='native'), samples)


def test_rejects_incomplete_or_inconsistent_samples():
    arrays = make_arrays()
    sample = data_sample(arrays, 5).to_dict()
    del sample['anomaly_map']
    with pytest.raises(KeyError, match=r"test/crack/rgb/005.png lacks \['anomaly_map'\]"):
        ADMetric().process(None, [sample])
    sample = data_sample(arrays, 5).to_dict()
    sample['branch_maps']['rgb'] = torch.zeros(SIZE, SIZE + 1)
    with pytest.raises(ValueError, match=r'the rgb map has shape \(16, 17\) but gt_mask has shape \(16, 16\)'):
        ADMetric().process(None, [sample])
    sample = data_sample(arrays, 5).to_dict()
    del sample['branch_scores']['depth']
    with pytest.raises(ValueError, match='expected the same modalities'):
        ADMetric().process(None, [sample])


@pytest.mark.parametrize(('kwargs', 'message'), [
    (dict(resolution='full'), "resolution must be one of \\('map', 'native'\\)"),
    (dict(integration_limits=(0.3, 0.0)), r'integration_limits must lie in \(0, 1\]'),
    (dict(integration_limits=()), 'at least one FPR limit'),
    (dict(map_dtype='float64'), "map_dtype must be 'float32' or 'float16'"),
])
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ADMetric(**kwargs)


def test_rejects_an_empty_test_set():
    with pytest.raises(ValueError, match='no data sample was processed'):
        ADMetric().compute_metrics([])


def test_kept_maps_do_not_alias_the_model_outputs():
    arrays = make_arrays()
    expected_map, expected_mask = arrays['fused'][5].copy(), arrays['masks'][5].copy()
    sample = data_sample(arrays, 5).to_dict()
    metric = ADMetric()
    metric.process(None, [sample])
    sample['anomaly_map'].zero_()
    sample['gt_mask'].zero_()
    assert not sample['anomaly_map'].any()
    np.testing.assert_array_equal(metric.samples.maps('fused')[0], expected_map)
    np.testing.assert_array_equal(metric.samples.gt_masks[0], expected_mask)


def read_json(path):
    with open(path) as file:
        return json.load(file)


def test_a_test_set_without_good_samples_says_why_i_auroc_is_null(tmp_path, logger):
    """Case 5 of issue 8: before, I-AUROC was null in metrics.json and nan in the table without a reason."""
    arrays = make_arrays()
    defective = [data_sample(arrays, index) for index in range(4, 12)]  # crack and hole, every mask has a region
    flat = evaluate(ADMetric(out_dir=str(tmp_path / 'work')), defective)
    saved = read_json(tmp_path / 'work' / 'metrics.json')
    assert math.isnan(flat['fused/all/I-AUROC']) and saved['fused']['hole']['I-AUROC'] is None
    assert saved['fused']['all']['P-AUROC'] is not None
    reason = ('I-AUROC null in every subset: it holds no normal image (every sample has an anomalous pixel; the test '
              'set has 0 normal images in all), so I-AP is 1 whatever the scores.')
    assert saved['notes'] == [reason]
    assert (tmp_path / 'eval.log').read_text().count(reason) == 1


def test_a_test_set_without_defective_samples_says_why_every_metric_is_null(tmp_path, logger):
    arrays = make_arrays()
    evaluate(ADMetric(out_dir=str(tmp_path / 'work')), [data_sample(arrays, index) for index in range(4)])
    saved = read_json(tmp_path / 'work' / 'metrics.json')
    assert all(value is None for value in saved['rgb']['all'].values())
    assert saved['notes'] == ['I-AUROC, P-AUROC, AUPRO@0.3, I-AP, P-AP null in every subset: it holds no anomalous '
                              'image (no ground-truth mask of its samples has an anomalous pixel).']


def test_a_defect_sample_with_an_empty_mask_is_named_and_counted_as_normal(tmp_path, logger):
    arrays = make_arrays()
    arrays['masks'][6] = False  # a crack sample whose ground truth is all zero
    samples = [data_sample(arrays, index) for index in range(8)]
    evaluate(ADMetric(out_dir=str(tmp_path / 'work')), samples)
    saved = read_json(tmp_path / 'work' / 'metrics.json')
    labels = arrays['masks'][:8].any(axis=(1, 2))
    assert saved['fused']['all']['I-AUROC'] == pytest.approx(roc_auc_score(labels, arrays['fused_scores'][:8]))
    note = ("1 sample(s) of a defect type other than 'good' have no anomalous pixel in their ground truth at the "
            "evaluated resolution ('map') and count as normal images: test/crack/rgb/006.png.")
    assert saved['notes'] == [note]
    assert (tmp_path / 'eval.log').read_text().count(note) == 1


def test_metrics_json_records_the_run_and_each_run_keeps_its_file(tmp_path, logger):
    arrays = make_arrays()
    samples = [data_sample(arrays, index) for index in range(len(DEFECTS))]
    work = tmp_path / 'work'
    metric = ADMetric(out_dir=str(work), checkpoint='work_dirs/crd/epoch_3.pth', config='configs/crd/x.py')
    metric.dataset_meta = dict(dataset_name='MVTec 3D-AD', category='bagel', split='test', defect_types=('good',))
    before = datetime.now(timezone.utc).replace(microsecond=0)
    evaluate(metric, samples)
    evaluate(metric, samples)
    run_files = sorted(work.glob('metrics_*.json'))
    assert len(run_files) == 2 and sorted(path.name for path in work.iterdir()) == sorted(
        ['metrics.json', 'scores.csv', 'curves.npz', *(path.name for path in run_files)])
    latest = read_json(work / 'metrics.json')
    assert latest == read_json(run_files[-1]) and latest['run']['time'] >= read_json(run_files[0])['run']['time']
    run = latest['run']
    head = subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parent).stdout.strip()
    assert run['git_revision'] in (head, f'{head}-dirty')
    assert run['checkpoint'] == os.path.abspath('work_dirs/crd/epoch_3.pth')
    assert run['config'] == os.path.abspath('configs/crd/x.py')
    assert run['dataset'] == dict(dataset_name='MVTec 3D-AD', category='bagel', split='test')
    assert before <= datetime.fromisoformat(run['time']) <= datetime.now(timezone.utc)
    stamp = datetime.fromisoformat(run['time']).strftime('%Y%m%d_%H%M%S')
    assert any(path.name.startswith(f'metrics_{stamp}') for path in run_files)


def test_checkpoint_defaults_to_the_runners_load_from(tmp_path, logger):
    hub = MessageHub.get_instance(f'test_ad_metric_hub_{tmp_path.name}')
    hub.update_info('cfg', "model = dict(type='CRD')\nload_from = 'work_dirs/demo/epoch_30.pth'\nresume = False\n")
    hub.update_info('experiment_name', 'crd_demo_synthetic_20261201_000000')
    arrays = make_arrays()
    evaluate(ADMetric(out_dir=str(tmp_path)), [data_sample(arrays, index) for index in range(len(DEFECTS))])
    run = read_json(tmp_path / 'metrics.json')['run']
    assert run['checkpoint'] == os.path.abspath('work_dirs/demo/epoch_30.pth')
    assert run['experiment'] == 'crd_demo_synthetic_20261201_000000' and run['config'] is None
    assert run['precision'] == 'float32'
    hub.update_info('cfg', "load_from = 'a.pth'\ntest_cfg = dict(fp16=True, type='TestLoop')\n")
    evaluate(ADMetric(out_dir=str(tmp_path)), [data_sample(arrays, index) for index in range(len(DEFECTS))])
    assert read_json(tmp_path / 'metrics.json')['run']['precision'] == 'autocast'


def test_a_failed_metrics_write_names_the_file(tmp_path, logger):
    blocker = tmp_path / 'work'
    blocker.write_text('a file where the work dir should be')
    arrays = make_arrays()
    with pytest.raises(OSError, match=r"while writing: '.*work/metrics_\d{8}_\d{6}\.json'"):
        evaluate(ADMetric(out_dir=str(blocker)), [data_sample(arrays, index) for index in range(len(DEFECTS))])


def test_run_record_keeps_uris_and_makes_local_paths_absolute():
    record = run_record(checkpoint='s3://bucket/epoch_3.pth', config='x.py')
    assert record['checkpoint'] == 's3://bucket/epoch_3.pth' and record['config'] == os.path.abspath('x.py')
