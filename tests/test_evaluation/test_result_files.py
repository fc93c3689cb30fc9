"""scores.csv and curves.npz written by ADMetric: the curve points against sklearn and the AU-PRO, the CSV rows."""
import csv

import numpy as np
import pytest
from mmengine.structures import BaseDataElement
from sklearn.metrics import precision_recall_curve, roc_curve

from mmad.evaluation.functional import au_pro
from mmad.evaluation.metrics import ADMetric
from mmad.evaluation.metrics.result_files import MAX_CURVE_POINTS, pro_curve, ranking_curve


def test_ranking_curve_equals_sklearn():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50).astype(bool)
    scores = np.round(rng.normal(size=50) + labels, 1)  # ties
    curve = ranking_curve(labels, scores)
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(curve['fpr'], fpr)
    np.testing.assert_allclose(curve['tpr'], tpr)
    np.testing.assert_allclose(curve['threshold'][1:], thresholds[1:])
    precision, recall, pr_thresholds = precision_recall_curve(labels, scores)
    by_threshold = dict(zip(pr_thresholds, zip(precision, recall)))
    for threshold, p, r in zip(curve['threshold'][1:], curve['precision'][1:], curve['tpr'][1:]):
        assert by_threshold[threshold] == pytest.approx((p, r))
    thinned = ranking_curve(np.r_[labels, labels], np.r_[scores, scores + 0.05], max_points=20)
    assert len(thinned['fpr']) == 20 and thinned['fpr'][0] == 0 and thinned['fpr'][-1] == 1


def test_pro_curve_integrates_to_the_au_pro():
    rng = np.random.default_rng(1)
    masks = np.zeros((4, 32, 32), bool)
    masks[0, 4:10, 4:10] = masks[1, 20:30, 2:8] = masks[2, 1:3, 1:30] = True
    maps = rng.random((4, 32, 32)) + masks * rng.random((4, 32, 32))
    curve = pro_curve(list(maps), list(masks), max_points=MAX_CURVE_POINTS)
    assert np.all(np.diff(curve['fpr']) >= 0) and curve['fpr'][-1] == 1 and curve['pro'][-1] == pytest.approx(1)
    keep = curve['fpr'] <= 0.3
    fpr, pro = np.r_[0, curve['fpr'][keep], 0.3], np.r_[0, curve['pro'][keep], np.interp(0.3, curve['fpr'],
                                                                                            curve['pro'])]
    assert np.trapezoid(pro, fpr) / 0.3 == pytest.approx(au_pro(maps, masks, 0.3), abs=5e-3)


def test_metric_writes_scores_and_curves(tmp_path):
    rng = np.random.default_rng(2)
    metric = ADMetric(out_dir=str(tmp_path))
    samples = []
    for index, defect in enumerate(['good', 'good', 'crack', 'crack']):
        mask = np.zeros((16, 16), bool)
        if defect != 'good':
            mask[4:8, 4:8] = True
        maps = {name: rng.random((16, 16)).astype(np.float32) + mask for name in ('fused', 'rgb')}
        samples.append(dict(pred_score=float(maps['fused'].max()), anomaly_map=maps['fused'],
                            branch_scores=dict(rgb=float(maps['rgb'].max())), branch_maps=dict(rgb=maps['rgb']),
                            gt_mask=mask, defect_type=defect, img_path=f'{defect}/{index}.png',
                            pred_label=int(index > 1)))
    metric.process({}, [BaseDataElement(**sample).to_dict() for sample in samples])
    metric.compute_metrics(metric.samples)
    with open(tmp_path / 'scores.csv') as file:
        rows = list(csv.DictReader(file))
    assert list(rows[0]) == ['name', 'defect_type', 'label', 'score', 'pred_label', 'rgb_score', 'gt_path']
    assert [row['name'] for row in rows] == [sample['img_path'] for sample in samples]
    assert [row['label'] for row in rows] == ['0', '0', '1', '1'] and [row['pred_label'] for row in rows] == [
        '0', '0', '1', '1']
    assert [float(row['score']) for row in rows] == [sample['pred_score'] for sample in samples]
    curves = np.load(tmp_path / 'curves.npz')
    for source in ('fused', 'rgb'):
        for curve, axes in (('image_roc', ('threshold', 'fpr', 'tpr')), ('pixel_pr', ('threshold', 'precision',
                                                                                     'recall')),
                            ('pixel_roc', ('threshold', 'fpr', 'tpr')), ('pro', ('threshold', 'fpr', 'pro'))):
            lengths = {len(curves[f'{source}/{curve}/{axis}']) for axis in axes}
            assert len(lengths) == 1 and 0 < lengths.pop() <= MAX_CURVE_POINTS + 1
