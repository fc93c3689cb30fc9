"""ADMetric stores a test set compactly (EvaluatedSamples) and gives the metrics of independent computations.

The oracle is independent of mmad's metric code: scikit-learn for I-AUROC, I-AP, P-AUROC and P-AP, the
step-by-step AU-PRO of ``reference_aupro``, on per-sample lists built from the raw inputs.
"""
import gc
import math
import pickle
import socket

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from reference_aupro import reference_au_pro
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from mmad.evaluation.metrics import ADMetric
from mmad.evaluation.metrics.evaluated_samples import GROWTH, NO_PRED_LABEL, EvaluatedSamples

SIZE = (12, 16)
NATIVE_SHAPE = (20, 26)
LIMITS = (0.3, 0.05)
BRANCHES = ('rgb', 'depth')
SOURCES = ('fused', *BRANCHES)
# Good samples, two defect types with masks (one sample with an empty mask, one without a mask) and one without masks.
DEFECTS = ['good'] * 9 + ['crack'] * 6 + ['hole'] * 5 + ['stain'] * 4
MASK_MISSING = {16, 20, 21, 22, 23}
EMPTY_MASK = 13


def make_test_set(seed: int, native: bool, folder=None) -> list[dict]:
    """Raw inputs of every sample: maps and scores of each source, the mask at map (and native) size."""
    rng = np.random.default_rng(seed)
    samples = []
    for index, defect in enumerate(DEFECTS):
        shape = NATIVE_SHAPE if native else SIZE
        mask = np.zeros(shape, dtype=bool)
        if defect != 'good' and index != EMPTY_MASK and index not in MASK_MISSING:
            mask = ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.55
            mask[2:4, 3:6] = True
        map_mask = cv2.resize(mask.astype(np.uint8), SIZE[::-1], interpolation=cv2.INTER_NEAREST).astype(bool)
        gt_path = None
        if native and mask.any():
            gt_path = str(folder / f'{index:03d}.png')
            cv2.imwrite(gt_path, mask.astype(np.uint8) * 255)
        maps = {source: (map_mask * rng.uniform(0.3, 1.2) + rng.normal(0, 0.5, SIZE)).astype(np.float32)
                for source in SOURCES}
        maps['rgb'] = np.round(maps['rgb'], 1)  # tied pixel scores
        samples.append(dict(index=index, defect=defect, native_mask=mask, map_mask=map_mask, gt_path=gt_path,
                            maps=maps, scores={source: float(maps[source].max()) for source in SOURCES},
                            mask_missing=index in MASK_MISSING))
    return samples


def as_data_sample(raw: dict) -> dict:
    """The dict ``ADDataSample.to_dict()`` gives ADMetric.process, with tensors."""
    return dict(img_path=f'test/{raw["defect"]}/{raw["index"]:03d}.png', sample_idx=raw['index'],
                defect_type=raw['defect'], gt_path=raw['gt_path'], ori_shape=raw['native_mask'].shape,
                mask_missing=raw['mask_missing'], gt_mask=torch.from_numpy(raw['map_mask']),
                pred_score=torch.tensor(raw['scores']['fused']), pred_label=int(raw['scores']['fused'] > 1.0),
                anomaly_map=torch.from_numpy(raw['maps']['fused']),
                branch_scores={name: torch.tensor(raw['scores'][name]) for name in BRANCHES},
                branch_maps={name: torch.from_numpy(raw['maps'][name]) for name in BRANCHES})


def oracle_metrics(raw_samples: list[dict], native: bool) -> dict[str, float]:
    """Every metric from scikit-learn and the reference AU-PRO, NaN where a class is missing."""
    defects = np.array([raw['defect'] for raw in raw_samples])
    subsets = {'all': np.arange(len(raw_samples))}
    for defect in sorted(set(defects) - {'good'}):
        subsets[defect] = np.flatnonzero(np.isin(defects, ['good', defect]))
    masks = [raw['native_mask'] if native else raw['map_mask'] for raw in raw_samples]
    labels = np.array([mask.any() or raw['mask_missing'] for mask, raw in zip(masks, raw_samples)])
    flat = {}
    for source in SOURCES:
        maps = [raw['maps'][source] for raw in raw_samples]
        if native:
            maps = [cv2.resize(score_map, NATIVE_SHAPE[::-1], interpolation=cv2.INTER_LINEAR) for score_map in maps]
        scores = np.array([raw['scores'][source] for raw in raw_samples])
        for subset, indices in subsets.items():
            pixel = [index for index in indices if not raw_samples[index]['mask_missing']]
            pixel_labels = np.concatenate([masks[index].ravel() for index in pixel])
            pixel_scores = np.concatenate([maps[index].ravel() for index in pixel])
            both_classes = 0 < labels[indices].sum() < len(indices)
            has_regions = 0 < pixel_labels.sum() < pixel_labels.size
            values = {
                'I-AUROC': roc_auc_score(labels[indices], scores[indices]) if both_classes else math.nan,
                'P-AUROC': roc_auc_score(pixel_labels, pixel_scores) if has_regions else math.nan,
                **{f'AUPRO@{limit:g}': reference_au_pro([maps[index] for index in pixel],
                                                        [masks[index] for index in pixel], limit)
                   if has_regions else math.nan for limit in LIMITS},
                'I-AP': average_precision_score(labels[indices], scores[indices]) if labels[indices].any()
                else math.nan,
                'P-AP': average_precision_score(pixel_labels, pixel_scores) if has_regions else math.nan,
            }
            flat.update({f'{source}/{subset}/{name}': value for name, value in values.items()})
    return flat


def assert_same_metrics(actual: dict, expected: dict, tolerance: float = 1e-6) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, abs=tolerance), key


def evaluate(metric: ADMetric, data_samples: list[dict], batch_size: int = 4) -> dict:
    evaluator = Evaluator(metric)
    for start in range(0, len(data_samples), batch_size):
        evaluator.process(data_samples[start:start + batch_size])
    return evaluator.evaluate(len(data_samples))


@pytest.mark.parametrize('resolution', ['map', 'native'])
def test_metrics_equal_independent_computations(resolution, tmp_path):
    native = resolution == 'native'
    raw_samples = make_test_set(0, native, tmp_path)
    metric = ADMetric(integration_limits=LIMITS, resolution=resolution, out_dir=str(tmp_path / 'work'))
    flat = evaluate(metric, [as_data_sample(raw) for raw in raw_samples])
    expected = oracle_metrics(raw_samples, native)
    assert_same_metrics(flat, expected)
    assert not any(math.isnan(flat[f'{source}/crack/P-AUROC']) for source in SOURCES)
    assert math.isnan(flat['fused/stain/P-AUROC'])  # its samples have no mask: pixel metrics unavailable
    assert not math.isnan(flat['fused/stain/I-AUROC'])


def test_the_stored_maps_cost_n_h_w_itemsize_bytes_per_source_and_no_per_sample_objects():
    raw_samples = make_test_set(1, native=False) * 5
    metric = ADMetric()
    for raw in raw_samples:
        metric.process(None, [as_data_sample(raw)])
    samples = metric.samples
    num, pixels = len(raw_samples), SIZE[0] * SIZE[1]
    assert len(samples) == num and metric.results == []
    for source in SOURCES:
        maps = samples.maps(source)
        assert maps.shape == (num, *SIZE) and maps.dtype == np.float32 and maps.nbytes == num * pixels * 4
        assert maps.flags.c_contiguous
        np.testing.assert_array_equal(maps, np.stack([raw['maps'][source] for raw in raw_samples]))
        np.testing.assert_array_equal(samples.scores(source), [raw['scores'][source] for raw in raw_samples])
    assert samples.gt_masks.dtype == bool and samples.gt_masks.nbytes == num * pixels
    np.testing.assert_array_equal(samples.gt_masks, np.stack([raw['map_mask'] for raw in raw_samples]))
    np.testing.assert_array_equal(samples.mask_missing, [raw['mask_missing'] for raw in raw_samples])
    assert num <= samples.capacity <= math.ceil(num * GROWTH)
    per_sample_bytes = len(SOURCES) * (pixels * 4 + 8) + pixels + 1 + 1 + 16
    assert samples.allocated_nbytes == samples.capacity * per_sample_bytes
    # Arrays only in the fixed set of stacked buffers, whatever the number of samples; strings in three lists.
    arrays = [value for value in gc.get_referents(*vars(samples).values()) if isinstance(value, np.ndarray)]
    assert len(arrays) == 2 * len(SOURCES) + 4
    assert all(len(array) == samples.capacity for array in arrays)
    for strings in (samples.names, samples.defect_types, samples.gt_paths):
        assert len(strings) == num and all(item is None or isinstance(item, str) for item in strings)
    # Before the metrics are computed, the spare capacity is released.
    assert EvaluatedSamples.interleaved([samples], num) is samples and samples.capacity == num
    assert samples.allocated_nbytes == num * per_sample_bytes


def test_maps_keep_the_chosen_dtype_and_decisions_are_kept():
    raw_samples = make_test_set(2, native=False)
    metric = ADMetric(map_dtype='float16')
    data_samples = [as_data_sample(raw) for raw in raw_samples]
    del data_samples[3]['pred_label']
    metric.process(None, data_samples)
    assert metric.samples.maps('depth').dtype == np.float16
    assert metric.samples.maps('depth').nbytes == len(raw_samples) * SIZE[0] * SIZE[1] * 2
    expected = [int(raw['scores']['fused'] > 1.0) for raw in raw_samples]
    expected[3] = NO_PRED_LABEL
    assert metric.samples.pred_labels.tolist() == expected


def test_bfloat16_maps_of_autocast_are_stored_in_the_map_dtype():
    raw = make_test_set(2, native=False)[10]
    sample = as_data_sample(raw)
    sample['anomaly_map'] = sample['anomaly_map'].bfloat16()
    sample['branch_maps'] = {name: value.bfloat16() for name, value in sample['branch_maps'].items()}
    metric = ADMetric()
    metric.process(None, [sample])
    assert metric.samples.maps('rgb').dtype == np.float32
    np.testing.assert_array_equal(metric.samples.maps('rgb')[0], sample['branch_maps']['rgb'].float().numpy())


def test_a_sample_with_other_branches_or_map_size_is_refused():
    raw = make_test_set(3, native=False)[0]
    metric = ADMetric()
    metric.process(None, [as_data_sample(raw)])
    other = as_data_sample(raw)
    del other['branch_maps']['depth'], other['branch_scores']['depth']
    with pytest.raises(ValueError, match=r"test/good/000.png has maps \['fused', 'rgb'\], but the first sample has "
                                         r"\['fused', 'rgb', 'depth'\]"):
        metric.process(None, [other])
    larger = as_data_sample(raw)
    larger['gt_mask'] = torch.zeros(SIZE[0] + 1, SIZE[1], dtype=torch.bool)
    larger['anomaly_map'] = torch.zeros(SIZE[0] + 1, SIZE[1])
    larger['branch_maps'] = {name: torch.zeros(SIZE[0] + 1, SIZE[1]) for name in BRANCHES}
    with pytest.raises(ValueError, match=r'has maps and gt_mask of shape \(13, 16\), but the first sample has '
                                         r'\(12, 16\); expected one map size'):
        metric.process(None, [larger])


def rank_parts(data_samples: list[dict], world_size: int) -> list[list[dict]]:
    """What mmengine's DefaultSampler (shuffle=False) gives each rank: every world_size-th sample, padded."""
    padded = data_samples + data_samples[:(-len(data_samples)) % world_size]
    return [padded[rank::world_size] for rank in range(world_size)]


@pytest.mark.parametrize('world_size', [2, 3])
def test_parts_of_several_ranks_merge_into_the_dataset_order(world_size, tmp_path):
    raw_samples = make_test_set(4, native=False)
    data_samples = [as_data_sample(raw) for raw in raw_samples]
    single = ADMetric(integration_limits=LIMITS)
    single.process(None, data_samples)
    expected = single.compute_metrics(single.samples)
    parts = []
    for part in rank_parts(data_samples, world_size):
        metric = ADMetric(integration_limits=LIMITS)
        metric.process(None, part)
        parts.append(pickle.loads(pickle.dumps(metric.samples)))  # as collect_results exchanges them
    assert all(part.capacity == len(part) for part in parts)  # the spare capacity is not sent
    merged = EvaluatedSamples.interleaved(parts, len(data_samples))
    assert all(len(part) == 0 and part.allocated_nbytes == 0 for part in parts)  # released while merging
    assert merged.names == [sample['img_path'] for sample in data_samples]
    for source in SOURCES:
        np.testing.assert_array_equal(merged.maps(source), single.samples.maps(source))
    np.testing.assert_array_equal(merged.gt_masks, single.samples.gt_masks)
    assert merged.gt_paths == single.samples.gt_paths and merged.defect_types == single.samples.defect_types
    assert_same_metrics(ADMetric(integration_limits=LIMITS).compute_metrics(merged), expected, tolerance=0.0)


def test_samples_in_another_order_give_the_same_metrics():
    raw_samples = make_test_set(5, native=False)
    data_samples = [as_data_sample(raw) for raw in raw_samples]
    in_order = evaluate(ADMetric(integration_limits=LIMITS), data_samples)
    order = np.random.default_rng(0).permutation(len(data_samples))
    shuffled = evaluate(ADMetric(integration_limits=LIMITS), [data_samples[index] for index in order])
    assert_same_metrics(shuffled, in_order, tolerance=1e-12)


def evaluate_on_rank(rank: int, world_size: int, port: int, collect_dir: str, queue) -> None:
    """One rank of a gloo group: process its share of the test set and evaluate."""
    torch.set_num_threads(1)
    torch_dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=world_size)
    data_samples = [as_data_sample(raw) for raw in make_test_set(6, native=False)]
    metric = ADMetric(integration_limits=LIMITS, collect_dir=collect_dir)
    metric.process(None, rank_parts(data_samples, world_size)[rank])
    queue.put((rank, metric.evaluate(len(data_samples)), len(metric.samples)))
    torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_collect_the_same_metrics_as_one(tmp_path):
    """A real gloo group of two spawned processes (about 10 s on an idle machine: imports in each process)."""
    data_samples = [as_data_sample(raw) for raw in make_test_set(6, native=False)]
    expected = evaluate(ADMetric(integration_limits=LIMITS), data_samples)
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port = sock.getsockname()[1]
    context = mp.get_context('spawn')
    queue = context.Queue()
    processes = [context.Process(target=evaluate_on_rank, args=(rank, 2, port, str(tmp_path), queue))
                 for rank in range(2)]
    for process in processes:
        process.start()
    results = sorted(queue.get(timeout=300) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    for _, metrics, kept in results:
        assert kept == 0, 'the samples are released after evaluate'
        assert_same_metrics(metrics, expected, tolerance=0.0)


def test_growth_keeps_every_sample_also_with_a_live_view_or_after_unpickling():
    rng = np.random.default_rng(7)
    maps = rng.random((100, 8, 8), dtype=np.float32)
    samples = EvaluatedSamples()

    def append(index):
        samples.append(name=f'{index}.png', defect_type='good', gt_path=None, ori_shape=None, pred_label=None,
                       mask_missing=False, gt_mask=maps[index] > 0.5, scores={'fused': float(index)},
                       maps={'fused': maps[index]})

    for index in range(40):
        append(index)  # grown in place
    view = samples.maps('fused')
    for index in range(40, 60):
        append(index)  # grown by a copy: the view keeps the old array alive
    np.testing.assert_array_equal(view, maps[:40])
    samples = pickle.loads(pickle.dumps(samples))
    for index in range(60, 100):
        append(index)
    np.testing.assert_array_equal(samples.maps('fused'), maps)
    np.testing.assert_array_equal(samples.gt_masks, maps > 0.5)
    np.testing.assert_array_equal(samples.scores('fused'), np.arange(100.0))
    assert samples.ori_shapes.tolist() == [[-1, -1]] * 100 and samples.names[-1] == '99.png'
