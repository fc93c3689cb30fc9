"""The decision threshold: its rules, its fitting by ValidationStatisticsHook, the refusal of the test split."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader, Dataset

from mmad.engine.hooks import ValidationStatisticsHook, fit_aggregator
from mmad.engine.hooks.validation_statistics_hook import score_dataloader
from mmad.models.detectors.decision_threshold import DecisionThreshold, f1_optimal_threshold, quantile_threshold
from mmad.registry import MODELS
from mmad.structures import ADDataSample
from mmad.utils import register_all_modules

SIZE = 64
NORMALISATION = dict(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])


class LabelledToyDataset(Dataset):
    """rgb (3, S, S) 0-255 and depth (1, S, S); anomalous samples carry a bright square."""

    def __init__(self, labels, seed=0):
        generator = torch.Generator().manual_seed(seed)
        self.labels = list(labels)
        self.rgb = torch.rand(len(self.labels), 3, SIZE, SIZE, generator=generator) * 100
        self.depth = torch.rand(len(self.labels), 1, SIZE, SIZE, generator=generator) * 0.3
        for index, label in enumerate(self.labels):
            if label:
                self.rgb[index, :, 20:36, 20:36] = 255
                self.depth[index, :, 20:36, 20:36] = 1

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        sample = ADDataSample(metainfo=dict(sample_idx=index)).set_gt_label(self.labels[index])
        return dict(inputs=dict(rgb=self.rgb[index], depth=self.depth[index]), data_samples=sample)


@pytest.fixture(scope='module')
def fitted_model():
    register_all_modules()
    with DefaultScope.overwrite_default_scope('mmad'):
        torch.manual_seed(0)
        model = MODELS.build(dict(
            type='CRD', modalities=('rgb', 'depth'), teacher=dict(type='TimmEncoder', model_name='resnet18'),
            crossmodal_filter=False, crossmodal_amplifier=False,
            data_preprocessor=dict(type='ADDataPreprocessor', modalities=dict(rgb=NORMALISATION,
                                                                              depth=NORMALISATION))))
    fit_aggregator(model, loader([0, 0, 0, 0]))
    return model


def loader(labels, seed=0):
    return DataLoader(LabelledToyDataset(labels, seed), batch_size=3, collate_fn=pseudo_collate)


def fake_runner(model, **cfg):
    messages = []
    logger = SimpleNamespace(info=messages.append, warning=messages.append)
    return SimpleNamespace(model=model, cfg=Config(cfg), logger=logger), messages


def test_quantile_rule_equals_numpy():
    scores = np.random.default_rng(0).normal(size=37)
    for q in (0.5, 0.9, 0.99, 1.0):
        assert quantile_threshold(scores, q) == np.quantile(scores, q)
    with pytest.raises(ValueError, match=r'q must be in \(0, 1\], got 0'):
        quantile_threshold(scores, 0)


def test_f1_rule_is_the_best_cut_and_decisions_reach_that_f1():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, size=60)
    scores = rng.normal(size=60) + labels
    threshold, f1 = f1_optimal_threshold(scores, labels)
    best = max(f1_score(labels, scores >= cut) for cut in np.unique(scores))
    assert f1 == pytest.approx(best) and f1_score(labels, scores > threshold) == pytest.approx(best)
    with pytest.raises(ValueError, match='needs good and anomalous samples'):
        f1_optimal_threshold(scores, np.zeros(60))


def test_threshold_module_state_and_decisions():
    threshold = DecisionThreshold()
    assert threshold.threshold is None and threshold.rule_name is None and threshold.describe() == 'not fitted'
    threshold.set(0.5, 'quantile', quantile=0.99)
    assert threshold.threshold == 0.5 and threshold.describe() == '0.5 (quantile q=0.99)'
    assert threshold(torch.tensor([0.4, 0.5, 0.6])).tolist() == [0, 0, 1]
    assert set(threshold.state_dict()) == {'value', 'fitted', 'rule', 'quantile'}
    with pytest.raises(ValueError, match='finite number'):
        threshold.set(float('nan'))


def test_hook_fits_the_quantile_and_says_when_it_is_near_the_maximum(fitted_model):
    normal = loader([0] * 7, seed=3)
    runner, messages = fake_runner(fitted_model)
    hook = ValidationStatisticsHook(dataloader=normal, show_progress=False)
    value = hook.fit_threshold(runner)
    scores, labels = score_dataloader(fitted_model, normal)
    assert value == np.quantile(scores, 0.99) and (labels == 0).all()
    assert fitted_model.decision_threshold == value and fitted_model.threshold_rule == 'quantile'
    assert messages[-1] == (f'Decision threshold {value:.6g}: the 0.99-quantile of the image scores of 7 normal '
                            'validation samples (anomalous when the score is above it). With fewer than 100 scores '
                            f'the 0.99-quantile is close to the maximum normal score ({scores.max():.6g}).')
    data = fitted_model.data_preprocessor(pseudo_collate([normal.dataset[0]]), False)
    assert fitted_model.predict(data['inputs'])[0].pred_label.item() in (0, 1)


def test_hook_fits_the_f1_threshold_on_a_labelled_split(fitted_model):
    labelled = loader([0, 1, 0, 1, 1, 0, 0, 1], seed=4)
    runner, messages = fake_runner(fitted_model, threshold_dataloader=dict())
    hook = ValidationStatisticsHook(dataloader='val_stats_dataloader', show_progress=False,
                                    threshold=dict(rule='f1', dataloader='threshold_dataloader'))
    hook._threshold_dataloader = labelled  # what the named entry builds
    value = hook.fit_threshold(runner)
    scores, labels = score_dataloader(fitted_model, labelled)
    assert value == f1_optimal_threshold(scores, labels)[0] and fitted_model.threshold_rule == 'f1'
    assert 'the F1-optimal threshold' in messages[-1] and "'threshold_dataloader'" in messages[-1]


def test_the_f1_rule_refuses_the_test_split(fitted_model):
    test_dataset = dict(type='MVTec3DDataset', data_root='data/x', category='bagel', split='test')
    runner, _ = fake_runner(fitted_model, test_dataloader=dict(dataset=test_dataset),
                            labelled=dict(dataset=dict(test_dataset, pipeline=[])))
    hook = ValidationStatisticsHook(dataloader='val', threshold=dict(rule='f1', dataloader='test_dataloader'))
    with pytest.raises(ValueError, match='may not be fitted on the test split'):
        hook.fit_threshold(runner)
    hook = ValidationStatisticsHook(dataloader='val', threshold=dict(rule='f1', dataloader='labelled'))
    with pytest.raises(ValueError, match=r"'labelled' reads the test split \(type='MVTec3DDataset', "
                                         r"data_root='data/x', category='bagel', split='test'\)"):
        hook.fit_threshold(runner)


@pytest.mark.parametrize('threshold, message', [
    (dict(rule='median'), r"threshold.rule must be one of \['f1', 'manual', 'quantile'\]"),
    (dict(rule='f1'), "threshold rule 'f1' needs dataloader="),
    (dict(rule='quantile', q=1.5), r'threshold.q must be in \(0, 1\], got 1.5'),
    (dict(rule='quantile', value=1), r"threshold rule 'quantile' takes \['q'\], got the unknown keys \['value'\]"),
])
def test_bad_threshold_configs(threshold, message):
    with pytest.raises(ValueError, match=message):
        ValidationStatisticsHook(dataloader='val', threshold=threshold)
